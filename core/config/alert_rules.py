"""`alert_rules.yaml` (optional): thresholds of the engine's alert rules (`core.alerts.rules`).

    near_price:            # price close to the next unfilled grid level or to the stop
      enabled: true
      level_within: 0.02   # fraction of the price (0.02 = 2 %): |close - next level| / close
      stop_within: 0.03    # fraction of the price: |close - stop| / close
      rearm_band: 0.01     # fraction: re-armed once the distance exceeds threshold + band
    drawdown:              # warning BEFORE risk.yaml limits.max_drawdown trips the kill switch
      enabled: true
      warn_ratio: 0.75     # warn at this fraction of limits.max_drawdown (0.75 x 0.20 = 15 % drawdown)
      warn_drawdown: null  # or an explicit drawdown fraction (< limits.max_drawdown); overrides warn_ratio
      rearm_band: 0.02     # fraction: resolved once the drawdown is below warn - band
      per_runner: true
      account: true
    underperformance:      # cumulative return below the Monte Carlo band of the stored research result
      enabled: true
      percentile: 0.05     # lower band: this quantile of the simulated returns (0.05 = 5th percentile)
      min_days: 7          # no verdict before the runner has traded this many days
      n_sims: 2000         # Monte Carlo paths
      seed: 0
      same_params_only: true   # only when the runner trades the result's best params
      rearm_band: 0.01     # fraction of return: resolved once return > band + this
    divergence:            # a live runner vs its paper shadow on the same candles
      enabled: true
      pnl_within: 0.01     # fraction of the initial capital: |realised P&L live - shadow|
      cycles_within: 2     # closed cycles: |count live - count shadow|
      shadow_paper: false  # also shadow paper runners (a self-check of the one-path design)

The file may be absent: every key then takes the default above. Fractions, not percent (as in
risk.yaml). Unknown keys are refused like in every config file.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from core.config.base import ConfigModel, RuleError

#: The optional file in a config folder.
ALERT_RULES_FILE = "alert_rules.yaml"


class NearPriceRule(ConfigModel):
    """Price near the next unfilled level / the stop (fractions of the candle's close).

    Attributes:
        enabled: evaluate the rule.
        level_within: fires when |close - next unfilled level| / close <= this (0 < x < 1).
        stop_within: fires when |close - stop| / close <= this (0 < x < 1).
        rearm_band: after firing, the rule re-arms (and resolves the alert) only once the distance
            exceeds the threshold + this band (0 <= x < 1): once per approach, not per candle.

    Defaults: a close rarely gets much nearer than ~1.5 % to a level without the candle filling
    it (BTC/USDT 1h 2017, envelope_dca: the nearest close to the next unfilled level in 3,000
    candles was 1.43 %), so 2 % warns of an approach on hourly candles; 3 % for the stop.
    """

    enabled: bool = True
    level_within: float = Field(default=0.02, gt=0, lt=1)
    stop_within: float = Field(default=0.03, gt=0, lt=1)
    rearm_band: float = Field(default=0.01, ge=0, lt=1)


class DrawdownRule(ConfigModel):
    """Drawdown warning below risk.yaml `limits.max_drawdown` (fractions below the equity peak).

    Attributes:
        enabled: evaluate the rule.
        warn_ratio: warn at this fraction of `limits.max_drawdown` (0 < x < 1).
        warn_drawdown: an explicit warning drawdown (0 < x < 1); must be below
            `limits.max_drawdown` (checked by `load_config`); overrides `warn_ratio`.
        rearm_band: resolved once the drawdown is below the warning level minus this (0 <= x < 1).
        per_runner: watch each runner's own equity curve.
        account: watch the account (the sum of the runners' equity).
    """

    enabled: bool = True
    warn_ratio: float = Field(default=0.75, gt=0, lt=1)
    warn_drawdown: float | None = Field(default=None, gt=0, lt=1)
    rearm_band: float = Field(default=0.02, ge=0, lt=1)
    per_runner: bool = True
    account: bool = True

    def warn_at(self, max_drawdown: float | None) -> float:
        """The warning drawdown (fraction): `warn_drawdown`, else `warn_ratio * max_drawdown`, else
        (no risk limit known) `warn_ratio * 0.20`, the packaged risk.yaml's limit."""
        if self.warn_drawdown is not None:
            return float(self.warn_drawdown)
        return float(self.warn_ratio) * float(max_drawdown if max_drawdown is not None else 0.20)


class UnderperformanceRule(ConfigModel):
    """A runner below the Monte Carlo band of its stored research result (`core.alerts.rules.underperformance`).

    Attributes:
        enabled: evaluate the rule.
        percentile: the band's quantile (0 < x < 0.5): 0.05 = the 5th percentile.
        min_days: no verdict before this many days since the runner's first equity point (> 0).
        n_sims: Monte Carlo paths (100..100000).
        seed: seed of the simulation (reproducible bands).
        same_params_only: apply only when the runner's params equal the result's best params.
        rearm_band: resolved once the return is above the band by more than this (fraction, >= 0).
    """

    enabled: bool = True
    percentile: float = Field(default=0.05, gt=0, lt=0.5)
    min_days: float = Field(default=7.0, gt=0, le=3650)
    n_sims: int = Field(default=2000, ge=100, le=100_000)
    seed: int = Field(default=0, ge=0)
    same_params_only: bool = True
    rearm_band: float = Field(default=0.01, ge=0, lt=1)


class DivergenceRule(ConfigModel):
    """A live runner vs its paper shadow on the same candles (`core.alerts.rules.divergence`).

    Attributes:
        enabled: evaluate the rule.
        pnl_within: fires when |realised P&L live - shadow| > this fraction of the initial capital (0 < x < 1).
        cycles_within: fires when the closed-cycle counts differ by more than this (>= 0).
        shadow_paper: also shadow paper runners (normally only live runners are shadowed).
    """

    enabled: bool = True
    pnl_within: float = Field(default=0.01, gt=0, lt=1)
    cycles_within: int = Field(default=2, ge=0)
    shadow_paper: bool = False


class AlertRulesConfig(ConfigModel):
    """`alert_rules.yaml` (see the module docstring); every section optional."""

    near_price: NearPriceRule = NearPriceRule()
    drawdown: DrawdownRule = DrawdownRule()
    underperformance: UnderperformanceRule = UnderperformanceRule()
    divergence: DivergenceRule = DivergenceRule()

    @model_validator(mode="after")
    def _band_below_levels(self) -> "AlertRulesConfig":
        d = self.drawdown
        if d.warn_drawdown is not None and d.rearm_band >= d.warn_drawdown:
            raise RuleError(f"expected a value below drawdown.warn_drawdown ({d.warn_drawdown!r}), "
                            f"got {d.rearm_band!r}", at=("drawdown", "rearm_band"))
        return self

    def check_against_risk(self, max_drawdown: float, file: str) -> None:
        """The drawdown warning must come before the kill switch.

        Raises:
            ConfigError: `drawdown.warn_drawdown` >= risk.yaml `limits.max_drawdown` (names `file`).
        """
        from core.errors import ConfigError

        d = self.drawdown
        if d.warn_drawdown is not None and d.warn_drawdown >= max_drawdown:
            raise ConfigError(file, "drawdown.warn_drawdown",
                              f"expected a value below risk.yaml limits.max_drawdown ({max_drawdown!r}): the "
                              f"warning must come before the kill switch trips, got {d.warn_drawdown!r}")


def load_alert_rules(config_dir: str | Path, max_drawdown: float | None = None) -> AlertRulesConfig:
    """`alert_rules.yaml` of `config_dir`, validated; the defaults when the file is absent.

    Args:
        config_dir: the config folder.
        max_drawdown: risk.yaml `limits.max_drawdown` (fraction) to check the warning against, or None.

    Raises:
        ConfigError: not valid YAML, a secret-looking or unknown key, or a bad value (names the
            file, the dotted key and what was expected).
    """
    from core.config.loader import _validate
    from core.config.secret_keys import refuse_secret_keys
    from core.config.yaml_doc import read_yaml

    path = Path(config_dir) / ALERT_RULES_FILE
    if not path.exists():
        return AlertRulesConfig()
    doc = read_yaml(path)
    refuse_secret_keys(doc)
    cfg = _validate(doc, AlertRulesConfig)
    if max_drawdown is not None:
        cfg.check_against_risk(max_drawdown, str(path))
    return cfg
