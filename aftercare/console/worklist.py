"""/ (after sign-in): the worklist. A placeholder until the worklist itself lands (issue 13)."""

from __future__ import annotations

from flask import render_template


def worklist() -> str:
    return render_template("console/worklist.html", urgent=0)
