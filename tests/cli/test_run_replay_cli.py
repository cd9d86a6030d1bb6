"""Repeatable replays (issue 12, part 2): `radar run --replay FILE` a second time on the same
database says the replay is already complete (instead of ending silently after 0 candles);
`--fresh` replays again into a new database named for the run, the old one untouched;
`--from` / `--to` (UTC days, [from, to)) limit the replayed candles, with clear errors."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from core.backtest.loading import load_from_file
from tests.alerts.test_alerts_live_engine import write_slice
from tests.engine.test_engine_replay import assert_same_result, only_envelope_config, radar

#: 600 real BTC 1h candles (2017-08-17 04:00 UTC .. 2017-09-11), no gap in them.
SLICE = (0, 600)


def _candles_line(stderr: str) -> int:
    m = re.search(r"radar run: (\d+) candles", stderr)
    assert m, stderr[-3000:]
    return int(m.group(1))


def _digest(db: Path) -> dict[str, str]:
    """sha256 of the database and its WAL (the state on disk)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (db, Path(f"{db}-wal")) if p.exists()}


def _run(cfg: Path, db: Path, *args: str):
    return radar("--config-dir", str(cfg), "--db", str(db), "run", "--no-ui", "--status-interval", "0",
                 "--speed", "max", *args, timeout=300)


def test_second_replay_says_complete_and_fresh_replays_into_a_new_database(tmp_path: Path) -> None:
    data = write_slice(tmp_path, *SLICE)
    cfg = only_envelope_config(tmp_path)
    db = tmp_path / "state" / "radar.db"
    db.parent.mkdir()
    first = _run(cfg, db, "--replay", str(data), "--report", str(tmp_path / "first.json"))
    assert first.returncode == 0, first.stderr[-3000:]
    assert _candles_line(first.stderr) == SLICE[1] - SLICE[0]
    assert "already complete" not in first.stderr

    again = _run(cfg, db, "--replay", str(data))
    assert again.returncode == 0, again.stderr[-3000:]
    assert _candles_line(again.stderr) == 0
    last = load_from_file(data).ts[-1]
    when = datetime.fromtimestamp(int(last) / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f"replay already complete at {when}" in again.stderr, again.stderr[-2000:]
    assert "use --fresh" in again.stderr

    before = sorted(p.name for p in db.parent.iterdir())
    old_state = _digest(db)
    fresh = _run(cfg, db, "--replay", str(data), "--fresh", "--report", str(tmp_path / "fresh.json"))
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert _candles_line(fresh.stderr) == SLICE[1] - SLICE[0]        # the whole replay again
    new = sorted(set(p.name for p in db.parent.iterdir()) - set(before))
    new_dbs = [n for n in new if re.fullmatch(r"radar-replay-\d{8}T\d{6}Z(-\d+)?\.db", n)]
    assert len(new_dbs) == 1, new
    assert str(db.parent / new_dbs[0]) in fresh.stderr                 # the new database is named
    assert _digest(db) == old_state                                      # the old state untouched
    got = json.loads((tmp_path / "fresh.json").read_text())
    want = json.loads((tmp_path / "first.json").read_text())
    assert got == want                                                   # same data, same result


def test_from_to_replays_the_utc_day_range_like_the_backtest(tmp_path: Path) -> None:
    data = write_slice(tmp_path, *SLICE)
    cfg = only_envelope_config(tmp_path)
    c = load_from_file(data)
    start = int(datetime(2017, 8, 20, tzinfo=timezone.utc).timestamp() * 1000)
    end = int(datetime(2017, 9, 5, tzinfo=timezone.utc).timestamp() * 1000)
    n = int(((c.ts >= start) & (c.ts < end)).sum())
    assert 0 < n < len(c) and int(c.ts[0]) < start and int(c.ts[-1]) >= end
    report = tmp_path / "r.json"
    run = _run(cfg, tmp_path / "r.db", "--replay", str(data), "--from", "2017-08-20", "--to", "2017-09-05",
               "--report", str(report))
    assert run.returncode == 0, run.stderr[-3000:]
    assert _candles_line(run.stderr) == n
    bt = radar("--config-dir", str(cfg), "backtest", "--strategy", "envelope_dca", "--engine", "event",
               "--data", str(data), "--from", "2017-08-20", "--to", "2017-09-05", "--json")
    assert bt.returncode == 0, bt.stderr[-2000:]
    (got,) = json.loads(report.read_text())
    assert_same_result(got, json.loads(bt.stdout))


@pytest.mark.parametrize(("args", "message"), [
    (("--from", "2017-13-01"), "--from '2017-13-01': no such day"),
    (("--to", "20170901"), "--to '20170901': expected a date YYYY-MM-DD"),
    (("--from", "yesterday"), "--from 'yesterday': expected a date YYYY-MM-DD"),
    (("--from", "2017-09-01", "--to", "2017-09-01"), "--to (2017-09-01) must be after --from (2017-09-01)"),
    (("--from", "2020-01-01"), "no candle of"),
    (("--to", "2017-08-01"), "nothing to replay"),
])
def test_bad_dates_and_empty_ranges_are_refused(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    data = write_slice(tmp_path, *SLICE)
    cfg = only_envelope_config(tmp_path)
    db = tmp_path / "x.db"
    run = _run(cfg, db, "--replay", str(data), *args)
    assert run.returncode == 2, run.stderr[-2000:]
    assert message in run.stderr, run.stderr[-2000:]
    assert not db.exists()


@pytest.mark.parametrize(("args", "message"), [
    (("--fresh",), "--fresh starts a replay over in a new database: it goes with --replay"),
    (("--from", "2017-09-01"), "--from/--to limit the replayed candles: they go with --replay"),
])
def test_replay_flags_need_a_replay(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    run = _run(only_envelope_config(tmp_path), tmp_path / "x.db", *args)
    assert run.returncode == 2 and message in run.stderr, run.stderr[-2000:]
