"""freqtrade's on-disk candle layout: file names and raw rows.

A freqtrade data file is a JSON list of rows `[open_time_ms, open, high, low,
close, volume]`, plain (`.json`) or gzipped (`.json.gz`, freqtrade's "jsongz").
Symbol, market and timeframe are in the file name:

=============================================  ===============  =======  =========  ========
file name                                      symbol           market   timeframe  kind
=============================================  ===============  =======  =========  ========
``BTC_USDT-1h.json.gz``                        BTC/USDT         spot     1h         candles
``BTC_USDT_USDT-1m-futures.json.gz``           BTC/USDT:USDT    futures  1m         candles
``BTC_USDT_USDT-8h-funding_rate.json.gz``      BTC/USDT:USDT    futures  8h         funding
=============================================  ===============  =======  =========  ========

Funding-rate files hold the rate (fraction per interval) in the `open` column;
the other columns are 0 and are ignored.

This module only parses; `core.data.validation` decides whether the rows are
acceptable and `read_data_file` puts both together.
"""

from __future__ import annotations

import gzip
import itertools
import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.data.timeframes import timeframe_ms
from core.errors import DataError
from core.model.candles import Candles

#: The columns of one row, in file order.
COLUMNS = ("open_time_ms", "open", "high", "low", "close", "volume")

MARKETS = ("spot", "futures")

_NAME_RE = re.compile(
    r"^(?P<pair>[A-Za-z0-9]+(?:_[A-Za-z0-9]+){1,2})"
    r"-(?P<tf>[1-9][0-9]*[mhdw])"
    r"(?:-(?P<suffix>futures|funding_rate))?"
    r"\.json(?:\.gz)?$"
)
_SYMBOL_RE = re.compile(r"^[A-Za-z0-9]+/[A-Za-z0-9]+(?::[A-Za-z0-9]+)?$")
_NUMBER_TYPES = (int, float)


@dataclass(frozen=True)
class FileSpec:
    """What one data file holds, from its name (and/or the operator's overrides).

    Attributes:
        kind: "candles" or "funding" (a funding-rate series of a perpetual).
        symbol: ccxt unified symbol, e.g. "BTC/USDT" or "BTC/USDT:USDT".
        market: "spot" or "futures" (always "futures" for funding).
        timeframe: candle length, e.g. "1h"; for funding the nominal interval, e.g. "8h".
    """

    kind: str
    symbol: str
    market: str
    timeframe: str


@dataclass(frozen=True, eq=False)
class FundingRates:
    """A funding-rate series of one perpetual.

    Attributes:
        symbol: ccxt unified symbol of the perpetual, e.g. "BTC/USDT:USDT".
        interval: nominal funding interval from the file name, e.g. "8h".
        ts: int64 funding times, ms UTC, strictly increasing, shape (n,);
            as the exchange reported them (may sit a few ms off the grid).
        rate: float64 rate as a fraction per interval (0.0001 = 0.01 %), shape (n,).
    """

    symbol: str
    interval: str
    ts: np.ndarray
    rate: np.ndarray

    def __len__(self) -> int:
        return int(self.ts.shape[0])


def parse_file_name(
    path: str | Path,
    symbol: str | None = None,
    market: str | None = None,
    timeframe: str | None = None,
) -> FileSpec:
    """Symbol, market, timeframe and kind of a freqtrade data file from its name.

    `symbol`, `market` and `timeframe` override what the name says (the CLI's
    `--symbol/--market/--timeframe`). When the name does not follow the
    freqtrade layout, `symbol` and `timeframe` must be given; `market` then
    defaults to "futures" for a symbol with a settle currency (`BTC/USDT:USDT`),
    else "spot", and the file is read as candles.

    Raises:
        DataError: the name is not parseable and no overrides were given, the
            extension is not `.json`/`.json.gz`, or an override is malformed
            (unknown timeframe, market not spot/futures, symbol not `BASE/QUOTE`
            or `BASE/QUOTE:SETTLE`, or a symbol that does not fit the market).
    """
    name = Path(path).name
    if not (name.endswith(".json") or name.endswith(".json.gz")):
        raise DataError(f"{path}: expected a .json or .json.gz file (freqtrade layout)")
    m = _NAME_RE.match(name)
    if m is None:
        if symbol is None or timeframe is None:
            raise DataError(
                f"{path}: cannot tell symbol and timeframe from the file name: expected "
                "BASE_QUOTE-<tf>.json(.gz), BASE_QUOTE_SETTLE-<tf>-futures.json(.gz) or "
                "BASE_QUOTE_SETTLE-<tf>-funding_rate.json(.gz); or give --symbol and --timeframe"
            )
        kind, name_symbol, name_market, name_tf = "candles", None, None, None
    else:
        parts = m.group("pair").split("_")
        suffix = m.group("suffix")
        name_tf = m.group("tf")
        if suffix is None and len(parts) == 2:
            kind, name_market = "candles", "spot"
        elif suffix == "futures" and len(parts) == 3:
            kind, name_market = "candles", "futures"
        elif suffix == "funding_rate" and len(parts) == 3:
            kind, name_market = "funding", "futures"
        elif symbol is None:
            raise DataError(
                f"{path}: file name pair {m.group('pair')!r} does not fit "
                f"{'a spot file' if suffix is None else 'a ' + suffix + ' file'}: expected "
                f"{'BASE_QUOTE' if suffix is None else 'BASE_QUOTE_SETTLE'}; or give --symbol"
            )
        else:
            kind, name_market = ("funding" if suffix == "funding_rate" else "candles"), None
        name_symbol = f"{parts[0]}/{parts[1]}" + (f":{parts[2]}" if len(parts) == 3 else "")

    sym = symbol if symbol is not None else name_symbol
    tf = timeframe if timeframe is not None else name_tf
    assert sym is not None and tf is not None
    if not _SYMBOL_RE.match(sym):
        raise DataError(f"{path}: symbol {sym!r} is not a ccxt unified symbol (BASE/QUOTE or BASE/QUOTE:SETTLE)")
    mkt = market if market is not None else (name_market or ("futures" if ":" in sym else "spot"))
    if mkt not in MARKETS:
        raise DataError(f"{path}: market {mkt!r} is not one of {', '.join(MARKETS)}")
    if kind == "funding" and mkt != "futures":
        raise DataError(f"{path}: funding rates belong to a futures market, not {mkt!r}")
    if (mkt == "futures") != (":" in sym):
        want = "BASE/QUOTE:SETTLE" if mkt == "futures" else "BASE/QUOTE"
        raise DataError(f"{path}: symbol {sym!r} does not fit market {mkt!r}: expected {want}")
    try:
        timeframe_ms(tf)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    return FileSpec(kind, sym, mkt, tf)


def read_rows(path: str | Path) -> np.ndarray:
    """The rows of a freqtrade file as an (n, 6) float64 array, in file order.

    JSON `null`, `NaN` and `Infinity` become nan/inf (validation refuses them
    later); integers are exact up to 2**53, far beyond any ms timestamp.

    Raises:
        DataError: the file is missing or unreadable, the gzip stream is
            truncated or corrupt, the text is not valid JSON, the top level is
            not a non-empty list, a row is not a list of 6 values (the message
            names the first bad row's 0-based index), or a value is not a
            number (names row and column).
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a .json or .json.gz file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if p.name.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except EOFError:
            raise DataError(f"{path}: truncated gzip stream (the file ends before the end-of-stream marker)") from None
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise DataError(f"{path}: corrupt gzip stream ({exc})") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 JSON text") from None
    return rows_to_array(data, str(path))


def rows_to_array(data: object, source: str) -> np.ndarray:
    """Check the structure of decoded JSON rows and convert them to an (n, 6) float64 array.

    `source` names the file in error messages. Raises DataError as `read_rows` describes.
    """
    if not isinstance(data, list):
        raise DataError(f"{source}: expected a JSON list of rows [{', '.join(COLUMNS)}], got {_json_type(data)}")
    if not data:
        raise DataError(f"{source}: no rows")
    # Fast path: C-level scans of types and lengths; the slow scan only runs to name the culprit.
    if set(map(type, data)) != {list} or set(map(len, data)) != {6}:
        _raise_first_bad_shape(data, source)
    value_types = set(map(type, itertools.chain.from_iterable(data)))
    if not value_types <= {int, float, type(None)}:
        _raise_first_bad_value(data, source)
    return np.array(data, dtype=np.float64)


def read_data_file(
    path: str | Path,
    symbol: str | None = None,
    market: str | None = None,
    timeframe: str | None = None,
) -> tuple[FileSpec, Candles | FundingRates]:
    """Parse the name, read and validate one file: a `Candles` or a `FundingRates`.

    Overrides as in `parse_file_name`. Nothing is returned unless every row is good.

    Raises:
        DataError: any problem `parse_file_name` or `read_rows` names, or
            `core.data.validation.BadRowsError` (a DataError) listing the bad rows.
    """
    from core.data import validation

    spec = parse_file_name(path, symbol, market, timeframe)
    rows = read_rows(path)
    if spec.kind == "funding":
        validation.validate_funding_rows(str(path), rows)
        return spec, FundingRates(
            spec.symbol, spec.timeframe, rows[:, 0].astype(np.int64), np.ascontiguousarray(rows[:, 1])
        )
    validation.validate_candle_rows(str(path), rows, timeframe_ms(spec.timeframe))
    return spec, Candles.from_rows(spec.symbol, spec.market, spec.timeframe, rows)


def _json_type(value: object) -> str:
    """JSON's name for the type of a decoded value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _raise_first_bad_shape(data: list, source: str) -> None:
    for i, row in enumerate(data):
        if not isinstance(row, list):
            raise DataError(f"{source}: row {i}: expected a list of {len(COLUMNS)} values, got {_json_type(row)}")
        if len(row) != len(COLUMNS):
            raise DataError(
                f"{source}: row {i}: expected {len(COLUMNS)} values [{', '.join(COLUMNS)}], got {len(row)}"
            )
    raise AssertionError("unreachable: a bad shape was detected but not found")  # pragma: no cover


def _raise_first_bad_value(data: list, source: str) -> None:
    for i, row in enumerate(data):
        for j, value in enumerate(row):
            if value is not None and (isinstance(value, bool) or not isinstance(value, _NUMBER_TYPES)):
                raise DataError(
                    f"{source}: row {i}: column {COLUMNS[j]}: expected a number, got {_json_type(value)} "
                    f"{json.dumps(value)[:40]}"
                )
    raise AssertionError("unreachable: a bad value was detected but not found")  # pragma: no cover
