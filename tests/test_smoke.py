from __future__ import annotations

import json


def test_enroll_prints_an_id_and_plans_messages(run, enroll_args) -> None:
    result = run(*enroll_args(), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["id"] == 1
    assert len(data["messages"]) == 18
