"""Pydantic `ValidationError` -> one-line `ConfigError` naming file, key path and expectation."""

from __future__ import annotations

import types
import typing
from typing import Any, Callable

from pydantic import BaseModel, ValidationError

from core.config.base import RuleError
from core.config.yaml_doc import Loc, YamlDoc
from core.strategies.params import StrategyParams


def show(value: Any) -> str:
    """A YAML-flavoured short rendering of a bad input value: 'abc', 7, true, null, a list."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _unwrap(tp: Any) -> list[Any]:
    """The concrete types inside Annotated/Optional/Union wrappers."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin is typing.Union or origin is types.UnionType:
        out: list[Any] = []
        for arg in typing.get_args(tp):
            if arg is not type(None):
                out.extend(_unwrap(arg))
        return out
    return [tp]


def model_at(root: Any, loc: Loc) -> type[BaseModel] | None:
    """The pydantic model class that validates the value at `loc` below `root`, or None."""
    candidates = _unwrap(root)
    for part in loc:
        nxt: list[Any] = []
        for tp in candidates:
            origin = typing.get_origin(tp)
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                field = tp.model_fields.get(str(part))
                if field is not None:
                    nxt.extend(_unwrap(field.annotation))
            elif origin is dict:
                nxt.extend(_unwrap(typing.get_args(tp)[1]))
            elif origin in (list, tuple):
                nxt.extend(_unwrap(typing.get_args(tp)[0]))
        candidates = nxt
    for tp in candidates:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            return tp
    return None


def _noun(model: type[BaseModel] | None) -> str:
    if model is None:
        return "key"
    if issubclass(model, StrategyParams):
        return "parameter"
    return str(getattr(model, "key_noun", "key"))


_TYPE_WORDS = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "string_type": "a string", "list_type": "a list", "tuple_type": "a list",
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
}

_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
_BOUND_CTX = {"greater_than": "gt", "greater_than_equal": "ge", "less_than": "lt", "less_than_equal": "le"}


def describe(error: Any, root: Any) -> tuple[Loc, str]:
    """(location, message) of one pydantic error dict; the message says what was expected."""
    loc: Loc = tuple(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if loc and loc[-1] == "[key]":
        loc = loc[:-1]
        return loc, f"expected a string key, got {show(loc[-1]) if loc else 'a non-string key'}"
    if kind == "missing":
        return loc, "required key is missing"
    if kind == "extra_forbidden":
        model = model_at(root, loc[:-1])
        allowed = ", ".join(model.model_fields) if model is not None else ""
        tail = f"; expected one of: {allowed}" if allowed else ""
        return loc, f"unknown {_noun(model)}{tail}"
    if kind in _TYPE_WORDS:
        return loc, f"expected {_TYPE_WORDS[kind]}, got {show(value)}"
    if kind in _BOUNDS:
        bound = ctx.get(_BOUND_CTX[kind])
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)  # "< 1", not "< 1.0"
        hint = ""
        if (kind.startswith("less") and isinstance(bound, (int, float)) and bound <= 1
                and isinstance(value, (int, float)) and not isinstance(value, bool) and value > 1):
            hint = " (a fraction, not percent: 0.05 = 5 %)"
        return loc, f"expected a value {_BOUNDS[kind]} {bound}, got {show(value)}{hint}"
    if kind == "literal_error":
        return loc, f"expected {ctx.get('expected')}, got {show(value)}"
    if kind in ("too_short", "too_long"):
        n = ctx.get("min_length" if kind == "too_short" else "max_length")
        word = "at least" if kind == "too_short" else "at most"
        return loc, f"expected {word} {n} item{'s' if n != 1 else ''}, got {ctx.get('actual_length')}"
    if kind == "value_error" and isinstance(ctx.get("error"), RuleError):
        return loc + ctx["error"].at, str(ctx["error"])
    if kind in ("value_error", "assertion_error"):
        msg = str(error["msg"])
        for prefix in ("Value error, ", "Assertion failed, "):
            if msg.startswith(prefix):
                msg = msg[len(prefix):]
        return loc, msg
    return loc, f"{str(error['msg'])[:1].lower()}{str(error['msg'])[1:]}, got {show(value)}"


def to_config_error(err: ValidationError, doc: YamlDoc, root: Any,
                    relocate: Callable[[Loc], Loc] | None = None):
    """The first error of `err` as a ConfigError of `doc`, counting the others.

    Args:
        err: raised by validating data of `doc` (or a part of it) with `root`.
        doc: the file the data came from (its name and line numbers).
        root: the model/type validated; used to list allowed keys.
        relocate: maps a pydantic location (relative to `root`) to the key
            path inside the file; identity when None.
    """
    errors = err.errors(include_url=False)
    loc, message = describe(errors[0], root)
    path = relocate(loc) if relocate is not None else loc
    return doc.error(path, message, more=len(errors) - 1)
