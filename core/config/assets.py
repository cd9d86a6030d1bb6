"""`assets.yaml`: the symbols Radar trades or scans, their market and timeframes."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from core.config.base import ConfigModel, RuleError
from core.data.timeframes import timeframe_ms
from core.errors import DataError

_SYMBOL_RE = re.compile(r"^[A-Z0-9]+/[A-Z0-9]+(:[A-Z0-9]+)?$")
_GROUP_RE = re.compile(r"^[a-z0-9_]+$")


class AssetConfig(ConfigModel):
    """One asset.

    Attributes:
        symbol: ccxt unified symbol: "BTC/USDT" (spot) or "BTC/USDT:USDT"
            (USDT-M perpetual, settled in USDT).
        market: "spot" or "futures"; must match the symbol ("futures" iff it
            has a ":SETTLE" part).
        timeframes: candle timeframes used for this asset, e.g. ["1h"]
            (`<n><m|h|d|w>`, at least one, no repeats).
        group: optional correlation group (lower-case name, e.g. "majors");
            the risk limit `max_same_direction_per_group` counts positions per group.
    """

    symbol: str
    market: Literal["spot", "futures"]
    timeframes: list[str] = Field(min_length=1)
    group: str | None = None

    @field_validator("symbol")
    @classmethod
    def _symbol_shape(cls, v: str) -> str:
        if not _SYMBOL_RE.match(v):
            raise ValueError(f"expected a ccxt unified symbol like 'BTC/USDT' (spot) or "
                             f"'BTC/USDT:USDT' (perpetual), got {v!r}")
        return v

    @field_validator("timeframes")
    @classmethod
    def _timeframes_known(cls, v: list[str]) -> list[str]:
        for tf in v:
            try:
                timeframe_ms(tf)
            except DataError:
                raise ValueError(f"expected timeframes like '1m', '5m', '1h', '4h', '1d', got {tf!r}") from None
        if len(set(v)) != len(v):
            raise ValueError(f"expected each timeframe once, got {v!r}")
        return v

    @field_validator("group")
    @classmethod
    def _group_name(cls, v: str | None) -> str | None:
        if v is not None and not _GROUP_RE.match(v):
            raise ValueError(f"expected a lower-case name of letters, digits and '_', got {v!r}")
        return v

    @model_validator(mode="after")
    def _market_matches_symbol(self) -> "AssetConfig":
        perpetual = ":" in self.symbol
        if perpetual and self.market != "futures":
            raise RuleError(f"expected 'futures' for the perpetual {self.symbol!r}, got {self.market!r}",
                            at=("market",))
        if not perpetual and self.market != "spot":
            raise RuleError(f"expected 'spot' for the spot symbol {self.symbol!r} (a perpetual is "
                            f"written like 'BTC/USDT:USDT'), got {self.market!r}", at=("market",))
        return self


class AssetsFile(ConfigModel):
    """The whole `assets.yaml`: `assets:` a non-empty list of `AssetConfig`, each symbol once."""

    assets: list[AssetConfig] = Field(min_length=1)

    @field_validator("assets")
    @classmethod
    def _unique_symbols(cls, v: list[AssetConfig]) -> list[AssetConfig]:
        seen: dict[str, int] = {}
        for i, a in enumerate(v):
            if a.symbol in seen:
                raise RuleError(f"expected each symbol once, got {a.symbol!r} again "
                                f"(first at assets.{seen[a.symbol]})", at=(i, "symbol"))
            seen[a.symbol] = i
        return v
