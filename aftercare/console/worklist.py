"""The worklist (``/``): what needs a person, urgent first then oldest, and marking it handled."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from aftercare import inbox
from aftercare.console.blueprint import console_bp, role_required
from aftercare.console.deps import actor, aftercare, now
from aftercare.console.forms import note_from
from aftercare.db import transaction
from aftercare.statuses import WorkItemKind
from aftercare.store import worklist

# Enough for a shift; the page says when there are more.
SHOWN = 200


@console_bp.get("/")
@role_required("viewer")
def worklist_page() -> str:
    with aftercare().sessions() as session:
        items = worklist.open_items(session)
    urgent = sum(1 for i in items if i.urgent)
    fragment = request.headers.get("HX-Request") == "true"
    return render_template(
        "_worklist_items.html" if fragment else "worklist.html",
        fragment=fragment,
        items=items[:SHOWN],
        total=len(items),
        urgent=urgent,
        now=now(),
    )


@console_bp.post("/worklist/<kind>/<int:ref_id>/handled")
@role_required("nurse")
def mark_handled(kind: str, ref_id: int) -> Response:
    try:
        item_kind = WorkItemKind(kind)
    except ValueError:
        abort(404)
    note = note_from(request.form)
    with transaction(aftercare().sessions) as session:
        if item_kind in (WorkItemKind.URGENT_REPLY, WorkItemKind.REPLY):
            changed = inbox.mark_handled(session, ref_id, actor(), now(), note)
        else:
            changed = worklist.mark_handled(session, item_kind, ref_id, actor(), now(), note)
    flash("Marked handled." if changed else "Someone had already handled it.", "ok")
    return redirect(url_for("console.worklist_page"))
