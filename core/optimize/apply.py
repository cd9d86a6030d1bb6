"""Write a graded walk-forward result's best params into `strategies.yaml` as a per-asset override.

`apply_result(conn, result_id, config_dir)`:

1. Refuses a partial (cancelled) result, and a grade below `min_grade` (default "C",
   order A > B > C > D > F) unless `force`.
2. Refuses a symbol that is not in `assets.yaml` (overrides must name one of its symbols).
   `to_symbol` applies the result to another symbol of assets.yaml explicitly — a spot
   research result (`BTC/USDT`, the 2017–2022 data) to its perpetual (`BTC/USDT:USDT`,
   what the assets trade): it must be in assets.yaml and of the same base asset
   (`check_target`); the override and the running engine's `apply_params` then name it.
3. Sets `strategies.<strategy>.overrides.<symbol>` to the five best params (replacing an
   earlier override of that symbol; other symbols' overrides are kept).
4. The new file is validated with the rest of the config (`core.config.load_config` on a
   temporary copy of the folder) and must give exactly those params for the symbol;
   only then is the old file copied to `strategies.yaml.bak-YYYYmmddTHHMMSSZ` (UTC) next to
   it and the new one written atomically (temp file + rename).

The edit is textual so comments and layout elsewhere in the file survive: only the value
of the strategy's `overrides:` key is rewritten (as a one-line flow mapping), or an
`overrides:` line is added to the strategy's entry. If that edit does not parse back to
the intended data, the file is re-dumped with PyYAML instead (comments are then lost;
`AppliedOverride.comments_kept` is False; the backup keeps them).
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import yaml

from core.config import load_config, strategy_params
from core.config.loader import CONFIG_FILES, STRATEGIES_FILE
from core.errors import ConfigError, UsageError
from core.optimize.grade import GRADES
from core.optimize.results_store import get_result

#: Default lowest grade `apply_result` accepts without `force`.
DEFAULT_MIN_GRADE = "C"


@dataclass(frozen=True)
class AppliedOverride:
    """What `write_override` / `apply_result` did.

    Attributes:
        path: the strategies.yaml written.
        backup: the copy of the previous file.
        strategy, symbol, params: the override written.
        comments_kept: False when the file had to be re-dumped (comments lost; see backup).
    """

    path: Path
    backup: Path
    strategy: str
    symbol: str
    params: dict
    comments_kept: bool


def _scalar(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise UsageError(f"cannot write a non-finite parameter value {v!r}")
        r = repr(v)
        if "e" in r and "." not in r.split("e")[0]:        # YAML 1.1 floats need a dot: 1e-05 -> 1.0e-05
            mant, exp = r.split("e")
            r = f"{mant}.0e{exp}"
        return r
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {_scalar(x)}" for k, x in v.items()) + "}"
    raise UsageError(f"cannot write parameter value {v!r} of type {type(v).__name__}")


def _content_end(node: yaml.Node) -> int:
    """Index just after the last character of a node's own content (block collections: their last item)."""
    if isinstance(node, yaml.MappingNode) and not node.flow_style and node.value:
        return _content_end(node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and not node.flow_style and node.value:
        return _content_end(node.value[-1])
    return node.end_mark.index


def _child(node: yaml.Node, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return k, v
    return None


def _edit_text(text: str, strategy: str, overrides: dict) -> str | None:
    """The text with the strategy's `overrides:` value replaced/added, or None when the layout is unusual."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    strategies = _child(root, "strategies") if root is not None else None
    entry = _child(strategies[1], strategy) if strategies else None
    if entry is None or not isinstance(entry[1], yaml.MappingNode) or entry[1].flow_style or not entry[1].value:
        return None
    body = entry[1]
    rendered = _scalar(overrides)
    found = _child(body, "overrides")
    if found is not None:
        v = found[1]
        return text[:v.start_mark.index] + rendered + text[_content_end(v):]
    end = _content_end(body)
    nl = text.find("\n", end)
    cut = len(text) if nl < 0 else nl + 1
    prefix = text[:cut] if nl >= 0 else text + "\n"
    indent = " " * body.value[0][0].start_mark.column
    return prefix + f"{indent}overrides: {rendered}\n" + text[cut:]


def _stamp(now: datetime | None) -> str:
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def write_override(config_dir: str | Path, strategy: str, symbol: str, params: Mapping[str, Any], *,
                   now: datetime | None = None) -> AppliedOverride:
    """Set `strategies.<strategy>.overrides.<symbol>` = params in `<config_dir>/strategies.yaml` (steps 2–4).

    Raises:
        ConfigError: the current config is invalid, or the new file would be (the message names
            strategies.yaml of `config_dir`).
        UsageError: `symbol` is not in assets.yaml, the strategy has no entry in strategies.yaml,
            or a value cannot be written.
    """
    config_dir = Path(config_dir)
    path = config_dir / STRATEGIES_FILE
    cfg = load_config(config_dir)
    if symbol not in cfg.symbols():
        raise UsageError(f"{symbol} is not in {cfg.file('assets.yaml')} ({', '.join(cfg.symbols())}): "
                         "overrides are per asset of assets.yaml; add it there first")
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    entry = (data.get("strategies") or {}).get(strategy)
    if not isinstance(entry, dict):
        raise UsageError(f"{path}: strategies.{strategy} has no entry; add one (enabled: ...) before applying")
    want = dict(params)
    overrides = dict(entry.get("overrides") or {})
    overrides[symbol] = want
    expected = copy.deepcopy(data)
    expected["strategies"][strategy]["overrides"] = overrides

    new_text = None
    try:
        new_text = _edit_text(text, strategy, overrides)
        if new_text is not None and yaml.safe_load(new_text) != expected:
            new_text = None
    except yaml.YAMLError:
        new_text = None
    kept = new_text is not None
    if new_text is None:
        new_text = yaml.safe_dump(expected, sort_keys=False, default_flow_style=None)

    with tempfile.TemporaryDirectory(prefix="radar-apply-") as tmp:
        for name in CONFIG_FILES:
            if name != STRATEGIES_FILE:
                shutil.copy2(config_dir / name, Path(tmp) / name)
        (Path(tmp) / STRATEGIES_FILE).write_text(new_text, encoding="utf-8")
        try:
            got = strategy_params(load_config(Path(tmp)), strategy, symbol).model_dump()
        except ConfigError as err:
            raise ConfigError(str(path), err.key_path, f"the override would make the file invalid: {err.message}") \
                from None
    if any(got.get(k) != v for k, v in want.items()):
        raise UsageError(f"{path}: after writing, {strategy} for {symbol} would be {got}, not {want}")

    stamp = _stamp(now)
    backup = path.with_name(f"{STRATEGIES_FILE}.bak-{stamp}")
    k = 1
    while backup.exists():
        backup = path.with_name(f"{STRATEGIES_FILE}.bak-{stamp}-{k}")
        k += 1
    shutil.copy2(path, backup)
    fd, tmp_name = tempfile.mkstemp(prefix=".strategies-", suffix=".yaml", dir=config_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(new_text)
        shutil.copymode(path, tmp_name)
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    return AppliedOverride(path, backup, strategy, symbol, want, kept)


def grade_at_least(grade: str, minimum: str) -> bool:
    """True when `grade` is `minimum` or better (A > B > C > D > F).

    Raises:
        UsageError: either is not one of A, B, C, D, F.
    """
    for g in (grade, minimum):
        if g not in GRADES:
            raise UsageError(f"grade must be one of {', '.join(GRADES)}, got {g!r}")
    return GRADES.index(grade) <= GRADES.index(minimum)


def base_asset(symbol: str) -> str:
    """The base asset of a ccxt symbol: "BTC" of "BTC/USDT" and of "BTC/USDT:USDT"."""
    return symbol.split("/", 1)[0]


def check_target(config_dir: str | Path, symbol: str, to_symbol: str | None) -> str:
    """The symbol a result of `symbol` is applied to: `to_symbol` when given (it must be in
    assets.yaml and of the same base asset), else `symbol` itself (it must be in assets.yaml).

    Raises:
        UsageError: the target is not in assets.yaml (the message lists its symbols and, for a
            result whose symbol is not there, the assets of the same base to give with --to),
            or `to_symbol` is of another base asset. ConfigError: an invalid config.
    """
    cfg = load_config(config_dir)
    symbols = cfg.symbols()
    where = cfg.file("assets.yaml")
    if to_symbol is None:
        if symbol not in symbols:
            same = [s for s in symbols if base_asset(s) == base_asset(symbol)]
            hint = (f"; apply it to {' or '.join(same)} explicitly with --to {same[0]}" if same
                    else "; add it there first")
            raise UsageError(f"{symbol} is not in {where} ({', '.join(symbols)}): overrides are per asset of "
                             f"assets.yaml{hint}")
        return symbol
    if to_symbol not in symbols:
        raise UsageError(f"--to {to_symbol}: not in {where} ({', '.join(symbols)}): overrides are per asset of "
                         "assets.yaml; give one of them")
    if base_asset(to_symbol) != base_asset(symbol):
        raise UsageError(f"--to {to_symbol}: a result of {symbol} ({base_asset(symbol)}) cannot be applied to "
                         f"another base asset ({base_asset(to_symbol)}); give a {base_asset(symbol)} symbol")
    return to_symbol


def default_target(config_dir: str | Path, symbol: str) -> str | None:
    """Where the console applies a result of `symbol` by default: `symbol` when it is in
    assets.yaml, else the only asset of the same base and quote (the spot result's perpetual:
    BTC/USDT -> BTC/USDT:USDT), else None."""
    symbols = load_config(config_dir).symbols()
    if symbol in symbols:
        return symbol
    pair = symbol.split(":", 1)[0]
    same = [s for s in symbols if s.split(":", 1)[0] == pair]
    return same[0] if len(same) == 1 else None


def apply_stored(r: Any, config_dir: str | Path, *, to_symbol: str | None = None,
                 min_grade: str = DEFAULT_MIN_GRADE, force: bool = False,
                 now: datetime | None = None) -> AppliedOverride:
    """Write the best params of a stored result as the override of its symbol (or `to_symbol`).

    `r`: a `core.optimize.results_store.StoredResult`, or its `to_json()` dict (what the
    console's port returns). Checks as `apply_result`.
    """
    get = (lambda k: r[k]) if isinstance(r, Mapping) else (lambda k: getattr(r, k))
    rid = get("id")
    complete = get("complete")
    n_windows = r["windows"] if isinstance(r, Mapping) else r.n_windows
    strategy, symbol, timeframe, grade_ = get("strategy"), get("symbol"), get("timeframe"), get("grade")
    if not force:
        if not complete:
            raise UsageError(f"result {rid} is partial (its job was cancelled after {n_windows} "
                             "window(s)); use --force to apply it anyway")
        if not grade_at_least(grade_, min_grade):
            raise UsageError(f"result {rid} ({strategy} {symbol} {timeframe}) is graded {grade_}, "
                             f"below the minimum {min_grade}; use --force to apply it anyway")
    else:
        grade_at_least(grade_, min_grade)
    target = check_target(config_dir, symbol, to_symbol)
    return write_override(config_dir, strategy, target, dict(get("best_params")), now=now)


def apply_result(conn: sqlite3.Connection, result_id: int, config_dir: str | Path, *,
                 min_grade: str = DEFAULT_MIN_GRADE, force: bool = False, to_symbol: str | None = None,
                 now: datetime | None = None) -> AppliedOverride:
    """Write the best params of stored result `result_id` as its symbol's override, or as
    `to_symbol`'s (module docstring).

    Raises:
        UsageError: no such result; a partial result or a grade below `min_grade` without
            `force`; the symbol (or `to_symbol`) is not in assets.yaml; `to_symbol` of another
            base asset; a bad `min_grade`.
        ConfigError: as `write_override`.
    """
    return apply_stored(get_result(conn, result_id), config_dir, to_symbol=to_symbol, min_grade=min_grade,
                        force=force, now=now)
