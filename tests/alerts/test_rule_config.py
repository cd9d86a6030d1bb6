"""`alert_rules.yaml` (`core.config.alert_rules`): optional, validated with errors naming the file
and key, the drawdown warning checked against risk.yaml; and the run's wiring: `RunServices`
starts the rules from the config folder, their alerts reach `radar alerts list` and the sinks
(Telegram's path)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml

from core.alerts.rules.service import AlertRules
from core.config import load_config
from core.config.alert_rules import ALERT_RULES_FILE, AlertRulesConfig
from core.engine.assembly import RunOptions, build_engine
from core.engine.services import RunServices
from core.errors import ConfigError
from core.paths import DEFAULT_CONFIG_DIR
from tests.alerts.test_alerts_live_engine import write_slice
from tests.engine.test_engine_replay import radar


def _config(tmp: Path, text: str | None) -> Path:
    dst = tmp / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, dst)
    doc = yaml.safe_load((dst / "strategies.yaml").read_text())
    for name, entry in doc["strategies"].items():
        entry["enabled"] = name == "envelope_dca"
    (dst / "strategies.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (dst / ALERT_RULES_FILE).unlink(missing_ok=True)
    if text is not None:
        (dst / ALERT_RULES_FILE).write_text(text)
    return dst


def test_the_packaged_file_holds_the_defaults_and_the_file_is_optional(tmp_path: Path) -> None:
    assert load_config(DEFAULT_CONFIG_DIR).alert_rules == AlertRulesConfig()
    assert load_config(_config(tmp_path, None)).alert_rules == AlertRulesConfig()
    d = AlertRulesConfig().drawdown
    assert d.warn_at(0.20) == pytest.approx(0.15, abs=1e-12) and d.warn_at(None) == pytest.approx(0.15, abs=1e-12)


@pytest.mark.parametrize(("text", "message"), [
    ("near_price:\n  level_within: 0\n", "alert_rules.yaml: near_price.level_within: expected a value > 0, got 0"),
    ("near_price:\n  stop_within: 2\n", "alert_rules.yaml: near_price.stop_within: expected a value < 1, got 2"),
    ("near_price:\n  level_within: '2%'\n", "alert_rules.yaml: near_price.level_within: "),
    ("drawdown:\n  warn_drawdown: 0.25\n",
     "alert_rules.yaml: drawdown.warn_drawdown: expected a value below risk.yaml limits.max_drawdown (0.2)"),
    ("drawdown:\n  warn_drawdown: 0.05\n  rearm_band: 0.05\n",
     "alert_rules.yaml: drawdown.rearm_band: expected a value below drawdown.warn_drawdown (0.05), got 0.05"),
    ("underperformance:\n  percentile: 0.5\n", "alert_rules.yaml: underperformance.percentile: expected a value < 0.5"),
    ("underperformance:\n  n_sims: 10\n", "alert_rules.yaml: underperformance.n_sims: expected a value >= 100"),
    ("divergence:\n  cycles_within: -1\n", "alert_rules.yaml: divergence.cycles_within: expected a value >= 0"),
    ("near_prize:\n  level_within: 0.01\n", "alert_rules.yaml: near_prize"),
])
def test_bad_values_are_refused_naming_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, text))
    assert message in str(err.value), str(err.value)


async def test_run_services_raise_rule_alerts_seen_by_radar_alerts_list(tmp_path: Path) -> None:
    cfg_dir = _config(tmp_path, "near_price:\n  level_within: 0.03\ndrawdown:\n  warn_drawdown: 0.04\n"
                                "  rearm_band: 0.01\n")
    data = write_slice(tmp_path, 0, 1500)                         # BTC/USDT 1h, the real file's first rows
    db = tmp_path / "r.db"
    engine = build_engine(load_config(cfg_dir), RunOptions(db=db, replay=(data,), status_interval=0))
    engine.acquire_lock()
    services = await RunServices.open(engine, db, secrets=None, jobs=False, telegram=False, api=False,
                                      config_dir=cfg_dir)
    sent = []
    services.alerts.sinks.add(lambda n: sent.append(n))            # where the Telegram bot listens
    try:
        assert isinstance(services.rules, AlertRules)
        assert services.rules.config.near_price.level_within == 0.03
        await engine.run()
        assert engine.finished
    finally:
        await services.close()
    assert services.rules.raised >= 2 and services.rules.failures == 0
    out = radar("--db", str(db), "alerts", "list", "--state", "all", "--json", "--limit", "0", timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    listed = [a for a in json.loads(out.stdout) if a["source"] == "rules"]
    keys = {a["key"].split(":")[0] for a in listed}
    assert {"rule.near_level", "rule.drawdown"} <= keys, keys
    assert any(n.alert.key.startswith("rule.drawdown:") for n in sent)
    conn = sqlite3.connect(db)
    try:
        n = conn.execute("SELECT count(*) FROM alerts WHERE source = 'rules'").fetchone()[0]
    finally:
        conn.close()
    assert n == len(listed)
