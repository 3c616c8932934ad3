"""``aftercare demo --serve`` leaves a database with something for each console page."""

from __future__ import annotations

from aftercare.accounts import service
from aftercare.cli import demo_console
from aftercare.statuses import WorkItemKind
from aftercare.store import worklist


def test_the_demo_database_has_an_urgent_reply_a_question_an_opt_out_and_two_accounts(app):
    password = demo_console.build(app)
    with app.sessions() as session:
        items = worklist.open_items(session)
    kinds = [i.kind for i in items]
    assert kinds.count(WorkItemKind.URGENT_REPLY) == 2  # a warning sign and a pain rise 4 -> 8
    assert WorkItemKind.REPLY in kinds and WorkItemKind.OPT_OUT in kinds
    assert items[0].first_name in {"James", "Priya"}
    accounts = {a.email: a.role for a in service.list_staff(app.sessions)}
    assert accounts == {demo_console.NURSE: "nurse", demo_console.VIEWER: "viewer"}
    assert len(password) >= 16
