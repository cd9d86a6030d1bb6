"""`strategies.yaml`: per strategy enabled, live_eligible, params and per-symbol overrides.

```yaml
strategies:
  envelope_dca:
    enabled: true
    live_eligible: false        # optional, default false
    params: {ma_period: 7}      # optional; missing parameters take the model defaults
    overrides:                  # optional; per symbol of assets.yaml, a partial params mapping
      SOL/USDT:USDT: {envelope_start: 0.07}
```

Names are those of `core.strategies.params.STRATEGY_PARAMS`; any other name is
an error. A strategy not written in the file is disabled with default params.
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterable

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, create_model

from core.config.base import ConfigModel
from core.config.translate import to_config_error
from core.config.yaml_doc import Loc, YamlDoc
from core.strategies.params import STRATEGY_PARAMS, StrategyParams


class StrategySettings(BaseModel):
    """One strategy's validated settings.

    Attributes:
        enabled: the engine runs it (paper, or live when also live_eligible).
        live_eligible: it may trade real money (default false).
        params: the full parameter model (defaults <- `params:` of the file).
        overrides: symbol -> the partial parameter mapping written for it
            (already checked: merged over `params` it is valid).
    """

    model_config = ConfigDict(frozen=True)

    enabled: bool
    live_eligible: bool
    params: SerializeAsAny[StrategyParams]
    overrides: dict[str, dict[str, Any]]

    def params_for(self, symbol: str | None) -> StrategyParams:
        """The parameters for `symbol`: `params` with that symbol's override applied (if any)."""
        partial = self.overrides.get(symbol) if symbol is not None else None
        if not partial:
            return self.params
        return type(self.params).model_validate({**self.params.model_dump(), **partial}, strict=True)


class _StrategiesSection(ConfigModel):
    key_noun: ClassVar[str] = "strategy"


def _entry_model(name: str, params_model: type[StrategyParams]) -> type[ConfigModel]:
    return create_model(
        f"StrategyEntry_{name}",
        __base__=ConfigModel,
        enabled=(bool, ...),
        live_eligible=(bool, False),
        params=(params_model, Field(default_factory=params_model)),
        overrides=(dict[str, dict[str, Any]], Field(default_factory=dict)),
    )


#: The `strategies:` mapping: one optional entry per registered strategy.
StrategiesSection: type[ConfigModel] = create_model(  # type: ignore[call-overload]
    "StrategiesSection",
    __base__=_StrategiesSection,
    **{name: (_entry_model(name, model), None) for name, model in STRATEGY_PARAMS.items()},
)


class StrategiesFile(ConfigModel):
    """The whole `strategies.yaml`: `strategies:` strategy name -> entry."""

    strategies: StrategiesSection  # type: ignore[valid-type]


def build_strategies(doc: YamlDoc, symbols: Iterable[str]) -> dict[str, StrategySettings]:
    """Validate `strategies.yaml` against the registry and the asset `symbols`.

    Returns:
        every registered strategy name -> its StrategySettings (registry order).

    Raises:
        ConfigError: wrong type, missing/unknown key, unknown strategy,
            out-of-range parameter, or an override for a symbol not in
            `assets.yaml` or whose merged parameters are invalid.
    """
    try:
        parsed = StrategiesFile.model_validate(doc.data, strict=True)
    except ValidationError as err:
        raise to_config_error(err, doc, StrategiesFile) from None
    known = list(symbols)
    out: dict[str, StrategySettings] = {}
    for name, params_model in STRATEGY_PARAMS.items():
        entry = getattr(parsed.strategies, name)
        if entry is None:
            out[name] = StrategySettings(enabled=False, live_eligible=False,
                                         params=params_model(), overrides={})
            continue
        for symbol, partial in entry.overrides.items():
            _check_override(doc, name, entry.params, symbol, partial, known)
        out[name] = StrategySettings(enabled=entry.enabled, live_eligible=entry.live_eligible,
                                     params=entry.params, overrides=dict(entry.overrides))
    return out


def _check_override(doc: YamlDoc, name: str, params: StrategyParams, symbol: str,
                    partial: dict[str, Any], known: list[str]) -> None:
    base: Loc = ("strategies", name, "overrides", symbol)
    if symbol not in known:
        raise doc.error(base, f"expected a symbol of assets.yaml ({', '.join(known)})")
    model = type(params)

    def relocate(loc: Loc) -> Loc:
        if loc and loc[0] not in partial:
            return ("strategies", name, "params") + loc
        return base + loc

    try:
        model.model_validate({**params.model_dump(), **partial}, strict=True)
    except ValidationError as err:
        raise to_config_error(err, doc, model, relocate) from None
