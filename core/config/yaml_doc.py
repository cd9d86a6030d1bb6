"""Reading one YAML config file: data, line numbers per key path, and its errors.

`read_yaml(path)` returns a `YamlDoc`: the parsed data plus the 1-based line
of every key / list item, so a later validation error can say where the bad
value is. Syntax errors, duplicate keys, non-UTF-8 text and a top level that
is not a mapping are refused here with a `ConfigError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from core.errors import ConfigError

#: A location inside a file: mapping keys (str) and list indices (int).
Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlDoc:
    """One parsed YAML file.

    Attributes:
        file: the file's path as given (used verbatim in error messages).
        data: the parsed top-level mapping ({} for an empty file).
        lines: key path (each part as str) -> 1-based line of that key or list item.
    """

    file: str
    data: dict[str, Any]
    lines: dict[tuple[str, ...], int] = field(default_factory=dict)

    def line_of(self, loc: Iterable[str | int]) -> int | None:
        """Line of `loc`, else of its nearest ancestor written in the file; None if none is."""
        parts = tuple(str(p) for p in loc)
        while parts:
            if parts in self.lines:
                return self.lines[parts]
            parts = parts[:-1]
        return None

    def error(self, loc: Iterable[str | int], message: str, more: int = 0) -> ConfigError:
        """A ConfigError for `loc` in this file.

        Appends "(line N)" when the line is known and "N more problem(s)" when
        `more` > 0, e.g. "expected an integer, got 'x' (line 4; 2 more problems)".
        """
        loc = tuple(loc)
        notes = []
        line = self.line_of(loc)
        if line is not None:
            notes.append(f"line {line}")
        if more > 0:
            notes.append(f"{more} more problem{'s' if more > 1 else ''}")
        suffix = f" ({'; '.join(notes)})" if notes else ""
        return ConfigError(self.file, dotted(loc), message + suffix)


def dotted(loc: Iterable[str | int]) -> str:
    """`("strategies", "envelope_dca", "params")` -> `"strategies.envelope_dca.params"`."""
    return ".".join(str(p) for p in loc)


class _DuplicateKey(Exception):
    def __init__(self, key: str, line: int, first_line: int) -> None:
        super().__init__(key)
        self.key, self.line, self.first_line = key, line, first_line


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:  # type: ignore[override]
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # unhashable key: let PyYAML report it
                continue
            if first is not None:
                raise _DuplicateKey(str(key), key_node.start_mark.line + 1, first)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _record_lines(node: yaml.Node, path: tuple[str, ...], lines: dict[tuple[str, ...], int],
                  stack: set[int]) -> None:
    if id(node) in stack:  # a recursive alias
        return
    stack.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                p = path + (key_node.value,)
                lines.setdefault(p, key_node.start_mark.line + 1)
                _record_lines(value_node, p, lines, stack)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            p = path + (str(i),)
            lines.setdefault(p, item.start_mark.line + 1)
            _record_lines(item, p, lines, stack)
    stack.discard(id(node))


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return f"{value!r}"


def read_yaml(path: Path) -> YamlDoc:
    """Parse the YAML file at `path` (safe loader) with line numbers.

    Raises:
        ConfigError: the file is missing or unreadable, not UTF-8, not valid
            YAML (message gives line and column), has a duplicate key, or its
            top level is not a mapping. `file` is `str(path)`.
    """
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(file, "", "file not found") from None
    except OSError as err:
        raise ConfigError(file, "", f"cannot read the file: {err.strerror or err}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(file, "", f"expected UTF-8 text, got an invalid byte at offset {err.start}") from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except _DuplicateKey as dup:
        raise ConfigError(file, "", f"duplicate key {dup.key!r} at line {dup.line} "
                                    f"(first written at line {dup.first_line})") from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = err.problem or err.context or "syntax error"
        raise ConfigError(file, "", f"invalid YAML{where}: {problem}") from None
    except yaml.YAMLError as err:
        raise ConfigError(file, "", f"invalid YAML: {err}") from None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(file, "", f"expected a mapping at the top level, got {_kind(data)}")
    lines: dict[tuple[str, ...], int] = {}
    if node is not None:
        _record_lines(node, (), lines, set())
    return YamlDoc(file=file, data=data, lines=lines)
