"""`scenarios.yaml` (optional): the risk of the book — stress scenarios, VaR settings, VaR alert.

    data_dir: /work/shared/data/candles   # freqtrade-layout candles (relative: to this config folder);
                                          # absent: $RADAR_SHARED_CANDLES, else ../shared/data/candles
                                          # beside the checkout
    var:
      lookback_days: 365    # newest daily returns used (>= 5)
      mc_paths: 20000       # Monte Carlo draws (1000 .. 1000000)
      seed: 7               # Monte Carlo seed (repeatable)
    alert:
      enabled: true
      method: historical    # historical | monte_carlo
      level: 0.99           # confidence level of the VaR compared (0.95 or 0.99)
      var_limit: 0.15       # fraction of equity (0.15 = 15 %): a VaR above it raises an alert
      interval_s: 60        # seconds between evaluations by the running engine
    scenarios:
      - name: covid_crash_2020
        from: "2020-03-08"              # UTC, inclusive (YYYY-MM-DD or YYYY-MM-DDTHH:MM)
        to: "2020-03-14"                # UTC, exclusive
        source: "binance-spot/{base}_USDT-1h.json.gz"   # under data_dir; {base} = BTC, ETH, ...
        proxy: BTC                      # base whose path a symbol without data in the window uses

Every key is optional: absent, the file (or a key) takes the defaults below, including the
four built-in scenarios (March 2020 crash, May 2021 sell-off, May 2022 LUNA collapse, April
2025 tariff shock). Unknown keys are refused like in every config file.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from core.config.base import ConfigModel, RuleError

SCENARIOS_FILE = "scenarios.yaml"
_NAME_RE = re.compile(r"^[a-z0-9_]+$")
_BASE_RE = re.compile(r"^[A-Z0-9]+$")
_DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M")


def parse_utc(text: str) -> int:
    """"YYYY-MM-DD" or "YYYY-MM-DDTHH:MM" (UTC) as ms UTC.

    Raises:
        ValueError: any other text.
    """
    for fmt in _DATE_FORMATS:
        try:
            t = dt.datetime.strptime(text, fmt).replace(tzinfo=dt.timezone.utc)
        except ValueError:
            continue
        return int(t.timestamp() * 1000)
    raise ValueError(f"expected a UTC time like '2020-03-08' or '2020-03-08T12:00', got {text!r}")


class ScenarioConfig(ConfigModel):
    """One stress scenario: the real candles of a past window applied to today's book.

    Attributes:
        name: lower-case name, unique in the file.
        from_ (YAML `from`), to: the window, UTC ("YYYY-MM-DD[THH:MM]"), from inclusive, to exclusive.
        source: file pattern under `data_dir` with `{base}` for the base currency, e.g.
            "binance-spot/{base}_USDT-1h.json.gz" (the timeframe is the file's own).
        proxy: base currency (e.g. "BTC") whose path a symbol without data in the window uses.
    """

    name: str
    from_: str = Field(alias="from")
    to: str
    source: str
    proxy: str = "BTC"

    @field_validator("from_", "to", mode="before")
    @classmethod
    def _date_text(cls, v: Any) -> Any:
        if isinstance(v, (dt.date, dt.datetime)):        # YAML reads an unquoted 2020-03-08 as a date
            return v.strftime("%Y-%m-%dT%H:%M") if isinstance(v, dt.datetime) else v.isoformat()
        return v

    @field_validator("from_", "to")
    @classmethod
    def _utc(cls, v: str) -> str:
        parse_utc(v)
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError(f"expected a lower-case name of letters, digits and '_', got {v!r}")
        return v

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        if "{base}" not in v:
            raise ValueError(f"expected a file pattern holding '{{base}}', e.g. "
                             f"'binance-spot/{{base}}_USDT-1h.json.gz', got {v!r}")
        return v

    @field_validator("proxy")
    @classmethod
    def _proxy(cls, v: str) -> str:
        if not _BASE_RE.match(v):
            raise ValueError(f"expected an upper-case base currency like 'BTC', got {v!r}")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> "ScenarioConfig":
        if parse_utc(self.to) <= parse_utc(self.from_):
            raise RuleError(f"expected a time after from ({self.from_!r}), got {self.to!r}", at=("to",))
        return self

    @property
    def start_ms(self) -> int:
        """Window start, ms UTC (inclusive)."""
        return parse_utc(self.from_)

    @property
    def end_ms(self) -> int:
        """Window end, ms UTC (exclusive)."""
        return parse_utc(self.to)


def _s(name: str, a: str, b: str, source: str) -> ScenarioConfig:
    return ScenarioConfig.model_validate({"name": name, "from": a, "to": b, "source": source, "proxy": "BTC"})


_SPOT_1H = "binance-spot/{base}_USDT-1h.json.gz"
_FUT_5M = "binance-futures/{base}_USDT_USDT-5m-futures.json.gz"
#: The scenarios of a folder without scenarios.yaml (or without its `scenarios` key).
BUILTIN_SCENARIOS = (
    _s("covid_crash_2020", "2020-03-08", "2020-03-14", _SPOT_1H),
    _s("may_2021_selloff", "2021-05-12", "2021-05-24", _SPOT_1H),
    _s("luna_collapse_2022", "2022-05-05", "2022-05-13", _SPOT_1H),
    _s("tariff_shock_2025", "2025-04-02", "2025-04-10", _FUT_5M),
)


class VarConfig(ConfigModel):
    """VaR settings. lookback_days: newest daily returns used (5 .. 3650); mc_paths: Monte
    Carlo draws (1000 .. 1000000); seed: the generator's seed (>= 0)."""

    lookback_days: int = Field(default=365, ge=5, le=3650)
    mc_paths: int = Field(default=20_000, ge=1000, le=1_000_000)
    seed: int = Field(default=7, ge=0)


class VarAlertConfig(ConfigModel):
    """The "VaR over a limit" alert of a running engine.

    Attributes:
        enabled: evaluate it (default true).
        method: "historical" or "monte_carlo".
        level: 0.95 or 0.99.
        var_limit: fraction of the equity (0 < x <= 1; 0.10 = 10 %): a one-day VaR above it alerts.
        interval_s: seconds between evaluations (5 .. 86400).
    """

    enabled: bool = True
    method: Literal["historical", "monte_carlo"] = "historical"
    level: Literal[0.95, 0.99] = 0.99
    var_limit: float = Field(default=0.15, gt=0, le=1)
    interval_s: float = Field(default=60.0, ge=5, le=86_400)


class ScenariosConfig(ConfigModel):
    """The whole `scenarios.yaml` (every key optional; see the module docstring).

    Attributes:
        data_dir: folder of the freqtrade-layout candles, relative to the config folder when
            not absolute; None (default): `$RADAR_SHARED_CANDLES`, else `../shared/data/candles`
            beside the checkout (resolve with `data_path`).
        var, alert: VaR settings and the VaR alert.
        scenarios: the stress scenarios (names unique; default: `BUILTIN_SCENARIOS`).
    """

    data_dir: str | None = None
    var: VarConfig = Field(default_factory=VarConfig)
    alert: VarAlertConfig = Field(default_factory=VarAlertConfig)
    scenarios: list[ScenarioConfig] = Field(default_factory=lambda: list(BUILTIN_SCENARIOS))

    @field_validator("scenarios")
    @classmethod
    def _unique(cls, v: list[ScenarioConfig]) -> list[ScenarioConfig]:
        seen: dict[str, int] = {}
        for i, s in enumerate(v):
            if s.name in seen:
                raise RuleError(f"expected each scenario name once, got {s.name!r} again "
                                f"(first at scenarios.{seen[s.name]})", at=(i, "name"))
            seen[s.name] = i
        return v

    def data_path(self, config_dir: str | Path) -> Path:
        """`data_dir` as a path (relative to `config_dir` when not absolute; see the attribute)."""
        if self.data_dir is None:
            import os

            from core.paths import PROJECT_ROOT

            env = os.environ.get("RADAR_SHARED_CANDLES")
            return Path(env) if env else PROJECT_ROOT.parent / "shared" / "data" / "candles"
        p = Path(self.data_dir)
        return p if p.is_absolute() else (Path(config_dir) / p).resolve()


def load_scenarios(config_dir: str | Path) -> ScenariosConfig:
    """`config_dir/scenarios.yaml` validated, or the defaults when the folder has none.

    Raises:
        ConfigError: not valid YAML, a secret-looking key, or a bad value (names the file, the
            dotted key path and what was expected).
    """
    from core.config.secret_keys import refuse_secret_keys
    from core.config.translate import to_config_error
    from core.config.yaml_doc import read_yaml

    path = Path(config_dir) / SCENARIOS_FILE
    if not path.exists():
        return ScenariosConfig()
    doc = read_yaml(path)
    refuse_secret_keys(doc)
    try:
        return ScenariosConfig.model_validate(doc.data if doc.data is not None else {}, strict=True)
    except ValidationError as err:
        raise to_config_error(err, doc, ScenariosConfig) from None
