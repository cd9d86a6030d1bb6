"""`exchanges.yaml`: how Radar talks to each exchange account (never its keys)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from core.config.base import ConfigModel, RuleError

_ID_RE = re.compile(r"^[a-z][a-z0-9]*$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9]{1,8}$")


class TimeoutsConfig(ConfigModel):
    """Attributes:
        request_ms: timeout of one REST request, ms (>= 100; ccxt `timeout`).
        order_ack_ms: wait for an order's acknowledgement before looking it up
            by client order id, ms (>= 100).
    """

    request_ms: int = Field(ge=100)
    order_ack_ms: int = Field(ge=100)


class ExchangeConfig(ConfigModel):
    """One exchange account.

    Attributes:
        id: ccxt exchange id, lower case (e.g. "bitget").
        market_type: ccxt market type traded: "swap" (perpetuals) only.
        sandbox: use the exchange's demo/testnet environment.
        uta: the account is a unified trading account (must be stated; it
            changes the API endpoints).
        margin_mode: "isolated" (default) or "cross".
        position_mode: "one_way" only (hedge mode is not supported).
        rate_limit_ms: minimum spacing between REST requests, ms (>= 0; ccxt `rateLimit`).
        client_order_prefix: 1-8 letters/digits starting every client order id
            Radar sends (e.g. "rdr1"), to recognise its own orders.
        timeouts: see `TimeoutsConfig`.
    """

    id: str
    market_type: Literal["swap"]
    sandbox: bool
    uta: bool
    margin_mode: Literal["isolated", "cross"] = "isolated"
    position_mode: Literal["one_way"] = "one_way"
    rate_limit_ms: int = Field(ge=0)
    client_order_prefix: str
    timeouts: TimeoutsConfig

    @field_validator("id")
    @classmethod
    def _id_shape(cls, v: str) -> str:
        if not _ID_RE.match(v):
            raise ValueError(f"expected a lower-case ccxt exchange id like 'bitget', got {v!r}")
        return v

    @field_validator("client_order_prefix")
    @classmethod
    def _prefix_shape(cls, v: str) -> str:
        if not _PREFIX_RE.match(v):
            raise ValueError(f"expected 1-8 letters or digits like 'rdr1', got {v!r}")
        return v


class ExchangesFile(ConfigModel):
    """The whole `exchanges.yaml`: `exchanges:` account name -> `ExchangeConfig` (at least one)."""

    exchanges: dict[str, ExchangeConfig] = Field(min_length=1)

    @field_validator("exchanges")
    @classmethod
    def _unique_prefixes(cls, v: dict[str, ExchangeConfig]) -> dict[str, ExchangeConfig]:
        seen: dict[str, str] = {}
        for name, ex in v.items():
            if ex.client_order_prefix in seen:
                raise RuleError(f"expected a prefix of its own, got {ex.client_order_prefix!r} "
                                f"(also used by exchanges.{seen[ex.client_order_prefix]})",
                                at=(name, "client_order_prefix"))
            seen[ex.client_order_prefix] = name
        return v
