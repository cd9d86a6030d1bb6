"""Results with the issue-13 fields are stored and load; older stored results still load."""

from __future__ import annotations

import json
from pathlib import Path

from core.optimize.grade_text import grade_lines
from core.optimize.results_store import get_result, list_results, result_detail, save_result
from core.optimize.walk_forward import walk_forward
from core.storage.db import open_sync
from tests.optimize.test_walk_forward import PLANTED_GRID, SHORT, planted_candles


def test_new_result_round_trips_and_an_old_row_loads(tmp_path: Path) -> None:
    res = walk_forward(planted_candles(120), "envelope_dca", PLANTED_GRID, settings=SHORT)
    s = res.summary()
    json.dumps(s)                                             # JSON-able: no numpy scalars, no NaN objects
    assert s["grading_profile"] == "roadmap" and s["criteria"]["stability_variance"] is not None
    assert s["dsr_detail"]["windows_used"] == len(res.windows) and s["bootstrap"]["ci_low"] <= s["bootstrap"]["ci_high"]
    assert s["selection"]["applied"]["params"] == s["best_params"]
    conn = open_sync(tmp_path / "r.db")
    try:
        rid = save_result(conn, res, git_rev="test")
        row = get_result(conn, rid)
        assert row.grade == res.grade.grade and row.dsr == res.criteria.dsr
        detail = result_detail(conn, rid)                   # the grading and DSR detail are kept with it
        assert detail["grading_profile"] == "roadmap" and detail["selection"] == json.loads(json.dumps(s["selection"]))
        assert detail["dsr_detail"]["windows"] and detail["bootstrap"]["ci_low"] == s["bootstrap"]["ci_low"]
        # an older row: detail without the new keys, as stored before issue 13
        for k in ("uncapped_grade", "grading_profile", "dsr_detail", "selection", "bootstrap", "caps_binding"):
            detail.pop(k, None)
        conn.execute("UPDATE optimization_results SET detail = ? WHERE id = ?", (json.dumps(detail), rid))
        conn.commit()
        old = list_results(conn)[0].to_json()
        assert old["grade"] == res.grade.grade
        assert grade_lines(old)[0].startswith(f"grade {res.grade.grade}")
    finally:
        conn.close()
