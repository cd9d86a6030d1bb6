"""The YAML config: the shipped files load, and every kind of bad file gives one exact error.

Each bad-config case copies the shipped config folder to tmp_path, replaces one
file with a small broken version, and checks the exact ConfigError message from
`load_config` and, through the CLI (`radar config check`), exit code 2, the same
message on stderr and that nothing was written (no database, no other file).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import shutil
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.cli.main import main
from core.config import CONFIG_FILES, load_config, param_grid, strategy_params
from core.config.secrets import SECRET_VARS
from core.errors import ConfigError, UsageError
from core.paths import DEFAULT_CONFIG_DIR
from core.strategies.params import (STRATEGY_PARAMS, EnvelopeDcaParams, FundingParams, MomentumParams,
                                    VwapRsiParams)

ENVELOPE_FIELDS = "ma_period, num_levels, envelope_start, envelope_step, sl_percent"
STRATEGY_NAMES = ", ".join(STRATEGY_PARAMS)   # every registered name, in registry order
EXCHANGE_FIELDS = ("id, market_type, sandbox, uta, margin_mode, position_mode, rate_limit_ms, "
                   "client_order_prefix, timeouts")


# --------------------------------------------------------------------------- helpers

@pytest.fixture
def cfg_dir(tmp_path: Path) -> Path:
    """A copy of the shipped config folder in tmp_path."""
    dest = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, dest)
    return dest


def write(cfg_dir: Path, name: str, text: str) -> None:
    """Replace config file `name` with `text` (dedented)."""
    (cfg_dir / name).write_text(textwrap.dedent(text), encoding="utf-8")


def snapshot(root: Path) -> dict[str, str]:
    """Every file below `root` -> sha256 of its content."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def run_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Run `radar --config-dir D --db tmp/x.db config check` in tmp_path (no .env, no secret env vars).

    Returns (exit code, stdout, stderr); asserts that the run wrote nothing:
    no database and no file created or changed below tmp_path.
    """
    monkeypatch.chdir(tmp_path)
    for var in SECRET_VARS:
        monkeypatch.delenv(var, raising=False)

    def run(config_dir: Path) -> tuple[int, str, str]:
        db = tmp_path / "x.db"
        before = snapshot(tmp_path)
        code = main(["--config-dir", str(config_dir), "--db", str(db), "config", "check"])
        out, err = capsys.readouterr()
        assert not db.exists()
        assert snapshot(tmp_path) == before
        return code, out, err

    return run


def assert_refused(cfg_dir: Path, run_check, expected: str) -> None:
    """load_config raises exactly `expected`; the CLI exits 2 printing it on stderr."""
    with pytest.raises(ConfigError) as info:
        load_config(cfg_dir)
    assert str(info.value) == expected
    assert info.value.exit_code == 2
    code, out, err = run_check(cfg_dir)
    assert code == 2
    assert out == ""
    assert err == f"radar: error: {expected}\n"


# --------------------------------------------------------------------------- shipped config

def test_shipped_config_loads() -> None:
    cfg = load_config(DEFAULT_CONFIG_DIR)
    assert [(a.symbol, a.market, a.timeframes) for a in cfg.assets] == [
        ("BTC/USDT:USDT", "futures", ["1h"]),
        ("ETH/USDT:USDT", "futures", ["1h"]),
        ("SOL/USDT:USDT", "futures", ["1h"]),
        ("LINK/USDT:USDT", "futures", ["1h"]),
        ("DOGE/USDT", "spot", ["1h"]),
    ]
    assert list(cfg.strategies) == list(STRATEGY_PARAMS)
    assert cfg.enabled_strategies() == ["envelope_dca"]
    assert not any(s.live_eligible for s in cfg.strategies.values())
    risk = cfg.risk
    assert (risk.account.initial_capital, risk.account.leverage) == (10000, 1)
    assert (risk.fees.maker, risk.fees.taker) == (0.0002, 0.0006)
    ex = cfg.exchanges["bitget"]
    assert (ex.id, ex.market_type, ex.margin_mode, ex.position_mode, ex.client_order_prefix) == (
        "bitget", "swap", "isolated", "one_way", "rdr1")
    assert ex.sandbox is True and ex.uta is False


def test_shipped_strategy_params_are_the_model_defaults() -> None:
    cfg = load_config(DEFAULT_CONFIG_DIR)
    for name, model in STRATEGY_PARAMS.items():
        assert strategy_params(cfg, name, None) == model(), name


def test_config_check_cli_prints_a_summary(cfg_dir: Path, run_check) -> None:
    code, out, err = run_check(cfg_dir)
    assert (code, err) == (0, "")
    assert f"config OK: {cfg_dir}" in out
    for text in ("BTC/USDT:USDT", "DOGE/USDT", "envelope_dca", "324", "secrets: Bitget keys not set"):
        assert text in out


def test_envelope_dca_default_grid_has_exactly_324_combinations() -> None:
    cfg = load_config(DEFAULT_CONFIG_DIR)
    expected = {
        "ma_period": [5, 7, 10],
        "num_levels": [2, 3, 4],
        "envelope_start": [0.05, 0.07, 0.10],
        "envelope_step": [0.02, 0.03, 0.05],
        "sl_percent": [0.15, 0.20, 0.25, 0.30],
    }
    for name in ("envelope_dca", "envelope_dca_short"):
        grid = param_grid(cfg, name)
        assert grid == expected
        assert len(list(itertools.product(*grid.values()))) == 324


def test_every_strategy_has_a_small_valid_default_grid() -> None:
    cfg = load_config(DEFAULT_CONFIG_DIR)
    for name, model in STRATEGY_PARAMS.items():
        grid = param_grid(cfg, name)
        size = math.prod(len(v) for v in grid.values())
        if not name.startswith("envelope_dca"):
            assert 2 <= size <= 100, (name, size)
        base = strategy_params(cfg, name).model_dump()
        for combo in itertools.product(*grid.values()):  # every combination passes the model's rules
            model.model_validate({**base, **dict(zip(grid, combo))}, strict=True)


def test_param_grid_returns_a_copy() -> None:
    cfg = load_config(DEFAULT_CONFIG_DIR)
    param_grid(cfg, "momentum")["fast_ema"].append(99)
    assert 99 not in param_grid(cfg, "momentum")["fast_ema"]


# --------------------------------------------------------------------------- strategy_params merging

def test_strategy_params_merges_defaults_params_and_symbol_override(cfg_dir: Path) -> None:
    write(cfg_dir, "strategies.yaml", """\
        strategies:
          envelope_dca:
            enabled: true
            params: {ma_period: 10, sl_percent: 0.25}
            overrides:
              SOL/USDT:USDT: {envelope_start: 0.07, sl_percent: 0.30}
    """)
    cfg = load_config(cfg_dir)
    sol = strategy_params(cfg, "envelope_dca", "SOL/USDT:USDT")
    assert sol == EnvelopeDcaParams(ma_period=10, num_levels=3, envelope_start=0.07,
                                    envelope_step=0.03, sl_percent=0.30)
    btc = strategy_params(cfg, "envelope_dca", "BTC/USDT:USDT")  # no override: strategy-wide params
    assert btc == EnvelopeDcaParams(ma_period=10, sl_percent=0.25)
    assert strategy_params(cfg, "envelope_dca", None) == btc
    assert strategy_params(cfg, "envelope_dca", "XRP/USDT:USDT") == btc
    # a strategy not written in strategies.yaml: disabled, model defaults
    assert cfg.strategies["momentum"].enabled is False
    assert strategy_params(cfg, "momentum", "SOL/USDT:USDT") == MomentumParams()


def test_strategy_params_of_an_unknown_strategy_is_a_usage_error() -> None:
    cfg = load_config(DEFAULT_CONFIG_DIR)
    with pytest.raises(UsageError) as info:
        strategy_params(cfg, "envelope", None)
    assert str(info.value) == f"unknown strategy 'envelope'; expected one of: {STRATEGY_NAMES}"


def test_param_grid_of_a_strategy_without_grid(cfg_dir: Path) -> None:
    write(cfg_dir, "param_grids.yaml", """\
        param_grids:
          momentum: {fast_ema: [8, 12]}
    """)
    cfg = load_config(cfg_dir)
    assert param_grid(cfg, "momentum") == {"fast_ema": [8, 12]}
    with pytest.raises(ConfigError) as info:
        param_grid(cfg, "supertrend")
    assert str(info.value) == (f"{cfg_dir}/param_grids.yaml: param_grids.supertrend: no grid for this "
                               "strategy; expected a mapping of parameter name -> list of values")


# --------------------------------------------------------------------------- bad config files

def test_wrong_type(cfg_dir: Path, run_check) -> None:
    write(cfg_dir, "strategies.yaml", """\
        strategies:
          envelope_dca:
            enabled: true
            params:
              ma_period: seven
    """)
    assert_refused(cfg_dir, run_check, f"{cfg_dir}/strategies.yaml: strategies.envelope_dca.params.ma_period: "
                                       "expected an integer, got 'seven' (line 5)")


def test_quoted_number_is_not_an_integer(cfg_dir: Path, run_check) -> None:
    write(cfg_dir, "strategies.yaml", """\
        strategies:
          momentum:
            enabled: false
            params: {fast_ema: "12"}
    """)
    assert_refused(cfg_dir, run_check, f"{cfg_dir}/strategies.yaml: strategies.momentum.params.fast_ema: "
                                       "expected an integer, got '12' (line 4)")


def test_unknown_strategy(cfg_dir: Path, run_check) -> None:
    write(cfg_dir, "strategies.yaml", """\
        strategies:
          envelope_dca:
            enabled: true
          envelope_dcaa:
            enabled: true
    """)
    assert_refused(cfg_dir, run_check, f"{cfg_dir}/strategies.yaml: strategies.envelope_dcaa: "
                                       f"unknown strategy; expected one of: {STRATEGY_NAMES} (line 4)")


def test_missing_key(cfg_dir: Path, run_check) -> None:
    write(cfg_dir, "strategies.yaml", """\
        strategies:
          momentum:
            params: {fast_ema: 10}
    """)
    assert_refused(cfg_dir, run_check, f"{cfg_dir}/strategies.yaml: strategies.momentum.enabled: "
                                       "required key is missing (line 2)")


def test_missing_key_counts_the_other_problems(cfg_dir: Path, run_check) -> None:
    write(cfg_dir, "exchanges.yaml", """\
        exchanges:
          bitget:
            id: bitget
            market_type: swap
            rate_limit_ms: 100
            client_order_prefix: rdr1
            timeouts: {request_ms: 10000, order_ack_ms: 5000}
    """)
    assert_refused(cfg_dir, run_check, f"{cfg_dir}/exchanges.yaml: exchanges.bitget.sandbox: "
                                       "required key is missing (line 2; 1 more problem)")


def test_missing_file(cfg_dir: Path, run_check) -> None:
    (cfg_dir / "risk.yaml").unlink()
    assert_refused(cfg_dir, run_check, f"{cfg_dir}/risk.yaml: file not found")


def test_unknown_key(cfg_dir: Path, run_check) -> None:
    write(cfg_dir, "exchanges.yaml", """\
        exchanges:
          bitget:
            id: bitget
            market_type: swap
            sandbox: true
            uta: false
            leverage: 2
            rate_limit_ms: 100
            client_order_prefix: rdr1
            timeouts: {request_ms: 10000, order_ack_ms: 5000}
    """)
    assert_refused(cfg_dir, run_check, f"{cfg_dir}/exchanges.yaml: exchanges.bitget.leverage: "
                                       f"unknown key; expected one of: {EXCHANGE_FIELDS} (line 7)")


def test_out_of_range(cfg_dir: Path, run_check) -> None:
    text = (cfg_dir / "risk.yaml").read_text()
    old = "  max_drawdown: 0.20 "
    assert text.count(old) == 1
    (cfg_dir / "risk.yaml").write_text(text.replace(old, "  max_drawdown: 20   "))
    line = text[:text.index(old)].count("\n") + 1
    assert_refused(cfg_dir, run_check, f"{cfg_dir}/risk.yaml: limits.max_drawdown: expected a value < 1, "
                                       f"got 20 (a fraction, not percent: 0.05 = 5 %) (line {line})")


def test_out_of_range_cross_field_rule(cfg_dir: Path, run_check) -> None:
    write(cfg_dir, "strategies.yaml", """\
        strategies:
          envelope_dca:
            enabled: true
            params: {num_levels: 4, envelope_start: 0.5, envelope_step: 0.2}
    """)
    assert_refused(cfg_dir, run_check, f"{cfg_dir}/strategies.yaml: strategies.envelope_dca.params: "
                                       "expected envelope_start + (num_levels - 1) * envelope_step < 1, "
                                       "got 0.5 + 3 * 0.2 = 1.1 (line 4)")


def test_leverage_above_cap(cfg_dir: Path, run_check) -> None:
    text = (cfg_dir / "risk.yaml").read_text()
    old = "  leverage: 1 "
    assert text.count(old) == 1
    (cfg_dir / "risk.yaml").write_text(text.replace(old, "  leverage: 5 "))
    line = text[:text.index(old)].count("\n") + 1
    assert_refused(cfg_dir, run_check, f"{cfg_dir}/risk.yaml: account.leverage: expected a value <= "
                                       f"limits.leverage_cap (3), got 5 (line {line})")


def test_override_for_a_symbol_not_in_assets(cfg_dir: Path, run_check) -> None:
    write(cfg_dir, "strategies.yaml", """\
        strategies:
          envelope_dca:
            enabled: true
            overrides:
              XRP/USDT:USDT: {ma_period: 5}
    """)
    assert_refused(cfg_dir, run_check, f"{cfg_dir}/strategies.yaml: strategies.envelope_dca.overrides."
                                       "XRP/USDT:USDT: expected a symbol of assets.yaml (BTC/USDT:USDT, "
                                       "ETH/USDT:USDT, SOL/USDT:USDT, LINK/USDT:USDT, DOGE/USDT) (line 5)")


def test_override_out_of_range(cfg_dir: Path, run_check) -> None:
    write(cfg_dir, "strategies.yaml", """\
        strategies:
          envelope_dca:
            enabled: true
            overrides:
              SOL/USDT:USDT:
                sl_percent: 0
    """)
    assert_refused(cfg_dir, run_check, f"{cfg_dir}/strategies.yaml: strategies.envelope_dca.overrides."
                                       "SOL/USDT:USDT.sl_percent: expected a value > 0, got 0 (line 6)")


def test_invalid_yaml(cfg_dir: Path, run_check) -> None:
    write(cfg_dir, "assets.yaml", """\
        assets:
          - symbol: BTC/USDT:USDT
            market: futures
           timeframes: [1h]
    """)
    assert_refused(cfg_dir, run_check, f"{cfg_dir}/assets.yaml: invalid YAML at line 4, column 4: "
                                       "expected <block end>, but found '<block mapping start>'")


def test_duplicate_yaml_key(cfg_dir: Path, run_check) -> None:
    write(cfg_dir, "exchanges.yaml", """\
        exchanges:
          bitget:
            id: bitget
            sandbox: true
            sandbox: false
    """)
    assert_refused(cfg_dir, run_check, f"{cfg_dir}/exchanges.yaml: duplicate key 'sandbox' at line 5 "
                                       "(first written at line 4)")


def test_market_must_match_symbol(cfg_dir: Path, run_check) -> None:
    write(cfg_dir, "assets.yaml", """\
        assets:
          - symbol: BTC/USDT:USDT
            market: futures
            timeframes: [1h]
          - symbol: ETH/USDT
            market: futures
            timeframes: [1h]
    """)
    assert_refused(cfg_dir, run_check, f"{cfg_dir}/assets.yaml: assets.1.market: expected 'spot' for the spot "
                                       "symbol 'ETH/USDT' (a perpetual is written like 'BTC/USDT:USDT'), "
                                       "got 'futures' (line 6)")


@pytest.mark.parametrize("key", ["api_key", "API_KEY", "Passphrase", "bot_token", "apiSecret", "password"])
def test_secret_in_yaml(cfg_dir: Path, run_check, key: str) -> None:
    write(cfg_dir, "exchanges.yaml", f"""\
        exchanges:
          bitget:
            id: bitget
            extra:
              - {{name: main, {key}: s3cr3t-value-123}}
    """)
    expected = (f"{cfg_dir}/exchanges.yaml: exchanges.bitget.extra.0.{key}: secrets are read only "
                "from the environment or .env, never from YAML (line 5)")
    assert_refused(cfg_dir, run_check, expected)
    assert "s3cr3t" not in expected


def test_grid_key_not_a_parameter(cfg_dir: Path, run_check) -> None:
    write(cfg_dir, "param_grids.yaml", """\
        param_grids:
          envelope_dca:
            ma_period: [5, 7]
            rsi_period: [14]
    """)
    assert_refused(cfg_dir, run_check, f"{cfg_dir}/param_grids.yaml: param_grids.envelope_dca.rsi_period: "
                                       f"unknown parameter; expected one of: {ENVELOPE_FIELDS} (line 4)")


def test_grid_value_out_of_range(cfg_dir: Path, run_check) -> None:
    write(cfg_dir, "param_grids.yaml", """\
        param_grids:
          funding:
            max_hold_candles: [8, 0, 24]
    """)
    assert_refused(cfg_dir, run_check, f"{cfg_dir}/param_grids.yaml: param_grids.funding.max_hold_candles.1: "
                                       "expected a value >= 1, got 0 (line 3)")


def test_grid_for_an_unknown_strategy(cfg_dir: Path, run_check) -> None:
    write(cfg_dir, "param_grids.yaml", """\
        param_grids:
          rsi:
            rsi_period: [7, 14]
    """)
    assert_refused(cfg_dir, run_check, f"{cfg_dir}/param_grids.yaml: param_grids.rsi: "
                                       f"unknown strategy; expected one of: {STRATEGY_NAMES} (line 2)")


def test_config_folder_not_found(tmp_path: Path, run_check) -> None:
    missing = tmp_path / "nope"
    expected = f"{missing}: config folder not found; expected a folder holding {', '.join(CONFIG_FILES)}"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert str(info.value) == expected
    code, _, err = run_check(missing)
    assert (code, err) == (2, f"radar: error: {expected}\n")


# --------------------------------------------------------------------------- parameter models

def test_param_models_refuse_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ValidationError):
        EnvelopeDcaParams(ma_period=7, colour="red")
    with pytest.raises(ValidationError):
        EnvelopeDcaParams(envelope_start=1.0)
    with pytest.raises(ValidationError, match="fast_ema < slow_ema"):
        MomentumParams(fast_ema=26, slow_ema=26)
    with pytest.raises(ValidationError, match="rsi_oversold < rsi_overbought"):
        VwapRsiParams(rsi_oversold=70, rsi_overbought=30)
    with pytest.raises(ValidationError):
        FundingParams(max_hold_candles=0)
    assert EnvelopeDcaParams(num_levels=1, envelope_start=0.99, envelope_step=5.0).num_levels == 1
