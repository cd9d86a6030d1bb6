"""`param_grids.yaml`: per strategy, parameter name -> list of values for research jobs.

```yaml
param_grids:
  envelope_dca:
    ma_period: [5, 7, 10]
    sl_percent: [0.15, 0.20]
```

Each value is validated against that parameter's type and bounds in
`core.strategies.params`; a key that is not a parameter of the strategy is an
error. Cross-field rules (e.g. momentum's fast_ema < slow_ema) are not checked
per combination: a research job skips the combinations its model refuses.
Parameters not in a grid keep their configured value (`strategy_params`).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, Field, ValidationError, create_model

from core.config.base import ConfigModel
from core.config.translate import to_config_error
from core.config.yaml_doc import YamlDoc
from core.strategies.params import STRATEGY_PARAMS, StrategyParams


def _no_repeats(values: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for v in values:
        if v in seen:
            raise ValueError(f"expected each value once, got {v!r} twice")
        seen.append(v)
    return values


class _GridBase(ConfigModel):
    key_noun: ClassVar[str] = "parameter"


class _GridsSection(ConfigModel):
    key_noun: ClassVar[str] = "strategy"


def _grid_model(name: str, params_model: type[StrategyParams]) -> type[ConfigModel]:
    fields: dict[str, Any] = {}
    for fname, finfo in params_model.model_fields.items():
        item = Annotated[(finfo.annotation, *finfo.metadata)] if finfo.metadata else finfo.annotation
        fields[fname] = (Annotated[list[item], Field(min_length=1), AfterValidator(_no_repeats)], None)  # type: ignore[valid-type]
    return create_model(f"ParamGrid_{name}", __base__=_GridBase, **fields)


#: The `param_grids:` mapping: one optional grid per registered strategy.
GridsSection: type[ConfigModel] = create_model(  # type: ignore[call-overload]
    "GridsSection",
    __base__=_GridsSection,
    **{name: (_grid_model(name, model), None) for name, model in STRATEGY_PARAMS.items()},
)


class ParamGridsFile(ConfigModel):
    """The whole `param_grids.yaml`: `param_grids:` strategy name -> grid."""

    param_grids: GridsSection  # type: ignore[valid-type]


def build_grids(doc: YamlDoc) -> dict[str, dict[str, list[Any]]]:
    """Validate `param_grids.yaml`.

    Returns:
        strategy name -> {parameter -> values} for every strategy that has a
        grid, parameters in the model's field order.

    Raises:
        ConfigError: unknown strategy, a key that is not a parameter of that
            strategy, a value of the wrong type or out of range, an empty list
            or a repeated value.
    """
    try:
        parsed = ParamGridsFile.model_validate(doc.data, strict=True)
    except ValidationError as err:
        raise to_config_error(err, doc, ParamGridsFile) from None
    out: dict[str, dict[str, list[Any]]] = {}
    for name in STRATEGY_PARAMS:
        grid = getattr(parsed.param_grids, name)
        if grid is not None:
            out[name] = {k: list(v) for k, v in grid if v is not None}
    return out


def grid_size(grid: dict[str, list[Any]]) -> int:
    """Combinations in the cross product of `grid` (1 for an empty grid)."""
    return math.prod(len(v) for v in grid.values())
