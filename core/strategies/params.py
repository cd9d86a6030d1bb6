"""Parameter models of every strategy, and the registry `STRATEGY_PARAMS`.

This module is the contract between the config (`config/strategies.yaml`,
`config/param_grids.yaml`) and the engineers implementing the strategies: a
strategy named here takes exactly these parameters, with these types, bounds
and defaults. Every model forbids unknown keys and is frozen (hashable).

Conventions: `*_period` and `*_candles` count candles of the strategy's
timeframe; `*_percent` and `*_threshold` are fractions, not percent
(0.05 = 5 %); `*_atr` are multiples of the ATR (price distance = k x ATR).

Cross-field rules (a model validator) are listed per model; a grid
(`param_grids.yaml`) is checked field by field only, so a combination of grid
values can still break a cross-field rule and must then be skipped.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class StrategyParams(BaseModel):
    """Base of the parameter models: unknown keys refused, instances frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvelopeDcaParams(StrategyParams):
    """`envelope_dca` (long) and `envelope_dca_short` (short): DCA levels around an SMA.

    See `../shared/specs/envelope_dca.md` for the exact semantics.

    Attributes:
        ma_period: SMA length, in candles (>= 1; default 7).
        num_levels: DCA levels per cycle (>= 1; default 3).
        envelope_start: offset of level 0 from the SMA, a fraction in (0, 1)
            (default 0.05 = 5 %).
        envelope_step: extra offset per further level, a fraction >= 0
            (default 0.03 = 3 %).
        sl_percent: stop distance from the average entry, a fraction in (0, 1)
            (default 0.20 = 20 %).

    Rule: `envelope_start + (num_levels - 1) * envelope_step < 1` (the deepest
    long level stays above zero).
    """

    ma_period: int = Field(7, ge=1)
    num_levels: int = Field(3, ge=1)
    envelope_start: float = Field(0.05, gt=0, lt=1)
    envelope_step: float = Field(0.03, ge=0)
    sl_percent: float = Field(0.20, gt=0, lt=1)

    @model_validator(mode="after")
    def _deepest_level_above_zero(self) -> "EnvelopeDcaParams":
        deepest = self.envelope_start + (self.num_levels - 1) * self.envelope_step
        if not deepest < 1:
            raise ValueError(
                "expected envelope_start + (num_levels - 1) * envelope_step < 1, got "
                f"{self.envelope_start!r} + {self.num_levels - 1} * {self.envelope_step!r} = {deepest!r}")
        return self


class VwapRsiParams(StrategyParams):
    """`vwap_rsi`: mean reversion to a rolling VWAP, filtered by the RSI.

    Attributes:
        vwap_period: candles in the rolling VWAP window (>= 1; default 24).
        rsi_period: RSI length, in candles (>= 2; default 14).
        rsi_oversold: RSI level (0-100 scale) at or below which price is
            oversold (default 30).
        rsi_overbought: RSI level (0-100 scale) at or above which price is
            overbought (default 70).
        sl_percent: stop distance from the entry price, a fraction in (0, 1)
            (default 0.03 = 3 %).
        tp_percent: take-profit distance from the entry price, a fraction in
            (0, 1) (default 0.05 = 5 %).

    Rule: `rsi_oversold < rsi_overbought`.
    """

    vwap_period: int = Field(24, ge=1)
    rsi_period: int = Field(14, ge=2)
    rsi_oversold: float = Field(30.0, gt=0, lt=100)
    rsi_overbought: float = Field(70.0, gt=0, lt=100)
    sl_percent: float = Field(0.03, gt=0, lt=1)
    tp_percent: float = Field(0.05, gt=0, lt=1)

    @model_validator(mode="after")
    def _oversold_below_overbought(self) -> "VwapRsiParams":
        if not self.rsi_oversold < self.rsi_overbought:
            raise ValueError(f"expected rsi_oversold < rsi_overbought, got "
                             f"{self.rsi_oversold!r} >= {self.rsi_overbought!r}")
        return self


class MomentumParams(StrategyParams):
    """`momentum`: EMA crossover trend following with ATR-sized exits.

    Attributes:
        fast_ema: fast EMA length, in candles (>= 1; default 12).
        slow_ema: slow EMA length, in candles (>= 2; default 26).
        atr_period: ATR length, in candles (>= 1; default 14).
        sl_atr: stop distance from the entry, in ATRs (> 0; default 2.0).
        tp_atr: take-profit distance from the entry, in ATRs (> 0; default 4.0).

    Rule: `fast_ema < slow_ema`.
    """

    fast_ema: int = Field(12, ge=1)
    slow_ema: int = Field(26, ge=2)
    atr_period: int = Field(14, ge=1)
    sl_atr: float = Field(2.0, gt=0)
    tp_atr: float = Field(4.0, gt=0)

    @model_validator(mode="after")
    def _fast_below_slow(self) -> "MomentumParams":
        if not self.fast_ema < self.slow_ema:
            raise ValueError(f"expected fast_ema < slow_ema, got {self.fast_ema} >= {self.slow_ema}")
        return self


class BollingerMrParams(StrategyParams):
    """`bollinger_mr`: Bollinger-band mean reversion; take-profit at the middle band.

    Attributes:
        bb_period: SMA length of the bands, in candles (>= 2; default 20).
        bb_std: band width, in standard deviations of the close (> 0; default 2.0).
        sl_percent: stop distance from the entry price, a fraction in (0, 1)
            (default 0.04 = 4 %).
    """

    bb_period: int = Field(20, ge=2)
    bb_std: float = Field(2.0, gt=0)
    sl_percent: float = Field(0.04, gt=0, lt=1)


class DonchianBreakoutParams(StrategyParams):
    """`donchian_breakout`: breakout of the Donchian channel with ATR-sized exits.

    Attributes:
        channel_period: candles in the high/low channel (>= 1; default 20).
        atr_period: ATR length, in candles (>= 1; default 14).
        sl_atr: stop distance from the entry, in ATRs (> 0; default 2.0).
        tp_atr: take-profit distance from the entry, in ATRs (> 0; default 4.0).
    """

    channel_period: int = Field(20, ge=1)
    atr_period: int = Field(14, ge=1)
    sl_atr: float = Field(2.0, gt=0)
    tp_atr: float = Field(4.0, gt=0)


class SupertrendParams(StrategyParams):
    """`supertrend`: follows the SuperTrend direction; the stop is the SuperTrend line.

    Attributes:
        atr_period: ATR length, in candles (>= 1; default 10).
        multiplier: band distance from the HL2 midpoint, in ATRs (> 0; default 3.0).
        tp_percent: take-profit distance from the entry price, a fraction in
            (0, 1) (default 0.06 = 6 %).
    """

    atr_period: int = Field(10, ge=1)
    multiplier: float = Field(3.0, gt=0)
    tp_percent: float = Field(0.06, gt=0, lt=1)


class FundingParams(StrategyParams):
    """`funding`: positions against an extreme perpetual funding rate.

    Attributes:
        funding_threshold: funding rate per 8 h interval, a fraction in (0, 1),
            whose magnitude triggers an entry (default 0.00005 = 0.005 % per 8 h; the 2025 data rarely reaches 0.0003).
        sl_percent: stop distance from the entry price, a fraction in (0, 1)
            (default 0.03 = 3 %).
        tp_percent: take-profit distance from the entry price, a fraction in
            (0, 1) (default 0.03 = 3 %).
        max_hold_candles: the position is closed after this many candles
            (>= 1; default 24).
    """

    funding_threshold: float = Field(0.00005, gt=0, lt=1)
    sl_percent: float = Field(0.03, gt=0, lt=1)
    tp_percent: float = Field(0.03, gt=0, lt=1)
    max_hold_candles: int = Field(24, ge=1)


class LiquidationParams(StrategyParams):
    """`liquidation`: fades a liquidation cascade seen as an open-interest drop with a large
    price move (see docs/single_position.md, "liquidation").

    Attributes:
        oi_period: candles over which the open-interest drop and the price move are
            measured (>= 1; default 3).
        oi_drop_threshold: open-interest drop over the lookback, a fraction in (0, 1), at or
            beyond which a cascade is seen (default 0.01 = 1 %).
        move_atr: price move over the lookback, in ATRs (> 0; default 2.0), at or beyond
            which a cascade is seen.
        atr_period: ATR length, in candles (>= 1; default 14).
        sl_atr: stop distance from the entry, in ATRs (> 0; default 1.5).
        tp_atr: take-profit distance from the entry, in ATRs (> 0; default 2.0).
        max_hold_candles: the position is closed after this many candles
            (>= 1; default 12).
    """

    oi_period: int = Field(3, ge=1)
    oi_drop_threshold: float = Field(0.01, gt=0, lt=1)
    move_atr: float = Field(2.0, gt=0)
    atr_period: int = Field(14, ge=1)
    sl_atr: float = Field(1.5, gt=0)
    tp_atr: float = Field(2.0, gt=0)
    max_hold_candles: int = Field(12, ge=1)


class _GridLevelsParams(StrategyParams):
    """The envelope fields shared by grid_rsi, grid_funding and grid_mtf (same meaning and
    bounds as `EnvelopeDcaParams`, same rule), see docs/grid_family.md."""

    ma_period: int = Field(7, ge=1)
    num_levels: int = Field(3, ge=1)
    envelope_start: float = Field(0.05, gt=0, lt=1)
    envelope_step: float = Field(0.03, ge=0)
    sl_percent: float = Field(0.20, gt=0, lt=1)

    @model_validator(mode="after")
    def _deepest_level_above_zero(self) -> "_GridLevelsParams":
        deepest = self.envelope_start + (self.num_levels - 1) * self.envelope_step
        if not deepest < 1:
            raise ValueError(
                "expected envelope_start + (num_levels - 1) * envelope_step < 1, got "
                f"{self.envelope_start!r} + {self.num_levels - 1} * {self.envelope_step!r} = {deepest!r}")
        return self


class GridAtrParams(StrategyParams):
    """`grid_atr` (long) and `grid_atr_short`: DCA levels at ATR multiples from the SMA.

    Level i at `m − (start_atr + i·step_atr)·ATR` (long; short `m + …`), docs/grid_family.md.

    Attributes:
        ma_period: SMA length (take-profit and level base), in candles (>= 1; default 7).
        atr_period: simple-ATR length, in candles (>= 1; default 14).
        num_levels: DCA levels per cycle (>= 1; default 3).
        start_atr: distance of level 0 from the SMA, in ATRs (> 0; default 1.5).
        step_atr: extra distance per further level, in ATRs (>= 0; default 1.0).
        sl_percent: stop distance from the average entry, a fraction in (0, 1) (default 0.20).
    """

    ma_period: int = Field(7, ge=1)
    atr_period: int = Field(14, ge=1)
    num_levels: int = Field(3, ge=1)
    start_atr: float = Field(1.5, gt=0)
    step_atr: float = Field(1.0, ge=0)
    sl_percent: float = Field(0.20, gt=0, lt=1)


class GridRsiParams(_GridLevelsParams):
    """`grid_rsi` (long) and `grid_rsi_short`: envelope levels; a new cycle only when the RSI
    (simple averages, known at the candle's open) is < rsi_oversold (long) / > rsi_overbought
    (short). docs/grid_family.md.

    Attributes (besides the envelope's five):
        rsi_period: RSI length, in close-to-close changes (>= 1; default 14).
        rsi_oversold: 0-100 scale, long gate (default 35).
        rsi_overbought: 0-100 scale, short gate (default 65).

    Rules: the envelope's, and `rsi_oversold < rsi_overbought`.
    """

    rsi_period: int = Field(14, ge=1)
    rsi_oversold: float = Field(35.0, gt=0, lt=100)
    rsi_overbought: float = Field(65.0, gt=0, lt=100)

    @model_validator(mode="after")
    def _oversold_below_overbought(self) -> "GridRsiParams":
        if not self.rsi_oversold < self.rsi_overbought:
            raise ValueError(f"expected rsi_oversold < rsi_overbought, got "
                             f"{self.rsi_oversold!r} >= {self.rsi_overbought!r}")
        return self


class GridFundingParams(_GridLevelsParams):
    """`grid_funding` (long) and `grid_funding_short`: envelope levels; a new cycle only when
    the perpetual's last known funding rate is < −funding_threshold (long) / > +funding_threshold
    (short). docs/grid_family.md.

    Attributes (besides the envelope's five):
        funding_threshold: funding rate per 8 h, a fraction in (0, 1) (default 0.00005).
    """

    funding_threshold: float = Field(0.00005, gt=0, lt=1)


class GridMtfParams(_GridLevelsParams):
    """`grid_mtf` (long) and `grid_mtf_short`: the envelope on a higher timeframe (HTF),
    traded on the base timeframe, with a HTF trend filter. docs/grid_family.md.

    Attributes (besides the envelope's five; `ma_period` counts HTF candles here):
        htf_hours: the higher timeframe in hours, one of 2, 3, 4, 6, 8, 12, 24 (default 4);
            a whole multiple (> 1) of the base timeframe.
        trend_period: HTF SMA length of the trend filter, in HTF candles (>= 1; default 20).
    """

    htf_hours: int = Field(4, ge=2, le=24)
    trend_period: int = Field(20, ge=1)

    @model_validator(mode="after")
    def _htf_divides_day(self) -> "GridMtfParams":
        if 24 % self.htf_hours:
            raise ValueError(f"expected htf_hours dividing 24 (2, 3, 4, 6, 8, 12, 24), got {self.htf_hours}")
        return self


#: Strategy name -> its parameter model. The names are the ones used in the
#: YAML config, the CLI (`--strategy`) and every stored result.
STRATEGY_PARAMS: dict[str, type[StrategyParams]] = {
    "envelope_dca": EnvelopeDcaParams,
    "envelope_dca_short": EnvelopeDcaParams,
    "vwap_rsi": VwapRsiParams,
    "momentum": MomentumParams,
    "bollinger_mr": BollingerMrParams,
    "donchian_breakout": DonchianBreakoutParams,
    "supertrend": SupertrendParams,
    "funding": FundingParams,
    "grid_atr": GridAtrParams,
    "grid_atr_short": GridAtrParams,
    "grid_rsi": GridRsiParams,
    "grid_rsi_short": GridRsiParams,
    "grid_funding": GridFundingParams,
    "grid_funding_short": GridFundingParams,
    "grid_mtf": GridMtfParams,
    "grid_mtf_short": GridMtfParams,
    "liquidation": LiquidationParams,
}
