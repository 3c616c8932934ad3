"""The worklist (``/``): what needs a person, urgent first then oldest, and marking it handled."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from aftercare.console.context import actor, aftercare_app
from aftercare.console.fields import note_from
from aftercare.console.guard import requires
from aftercare.console.helpers import now
from aftercare.db import transaction
from aftercare.statuses import StaffRole, WorkItemKind
from aftercare.store import replies
from aftercare.store import worklist as items_store

# Enough for a shift; the page says when there are more.
SHOWN = 100


def worklist() -> str:
    with aftercare_app().sessions() as session:
        items = items_store.open_items(session)
    urgent = sum(1 for i in items if i.urgent)
    fragment = request.headers.get("HX-Request") == "true"
    return render_template(
        "console/_worklist_items.html" if fragment else "console/worklist.html",
        fragment=fragment,
        items=items[:SHOWN],
        total=len(items),
        urgent=urgent,
        now=now(),
    )


@requires(StaffRole.NURSE)
def mark_handled(kind: str, ref_id: int) -> Response:
    try:
        item_kind = WorkItemKind(kind)
    except ValueError:
        abort(404)
    note = note_from(request.form)
    with transaction(aftercare_app().sessions) as session:
        if item_kind in (WorkItemKind.URGENT_REPLY, WorkItemKind.REPLY):
            changed = replies.mark_handled(session, ref_id, actor(), now(), note)
        else:
            changed = items_store.mark_handled(session, item_kind, ref_id, actor(), now(), note)
    flash("Marked handled." if changed else "Someone had already handled it.", "ok")
    return redirect(url_for("console.worklist"))
