"""Deterministic client order ids: the same (prefix, epoch, strategy, symbol, cycle, level,
purpose) always gives the same id, so a replayed or restarted run re-derives the ids of the
orders it already placed (a venue refuses a duplicate id: no double order after a crash).

Format: `{prefix}{epoch}-{h}-{cycle}-{purpose}{level}[a{n}|r{n}]` where

* `prefix` is the installation's `client_order_prefix` (exchanges.yaml, 1-8 letters/digits);
* `epoch` is the database's epoch (4 hex digits, table radar_meta, drawn when the database is
  created): two databases of one installation never produce the same id, so a lost database
  cannot make a new one re-send (or mistake) the old one's orders;
* `h` is 8 hex digits of a hash of (strategy, symbol); purpose one letter (e entry, s stop,
  t take-profit, x market exit); the level for entries;
* `a{n}`: the order after its n-th amendment on a venue that re-creates amended orders
  (Bitget modify-order wants a fresh `newClientOid`); `r{n}`: a stop re-created the n-th time.

At most 36 characters for prefixes up to 8 characters (Binance/Bitget limits are >= 36).
"""

from __future__ import annotations

import hashlib
import re

PURPOSE_CODES = {"entry": "e", "stop": "s", "take_profit": "t", "exit": "x"}
_PURPOSE_BY_CODE = {v: k for k, v in PURPOSE_CODES.items()}
#: the suffix of an amended (a) or re-created (r) order
_SUFFIX_RE = re.compile(r"[ar](\d+)$")
_ID_RE = re.compile(r"^([0-9A-Za-z]+)-([0-9a-f]{8})-(\d+)-([estx])(\d*)(?:[ar]\d+)?$")


def runner_hash(strategy: str, symbol: str) -> str:
    """8 hex digits identifying (strategy, symbol)."""
    return hashlib.sha1(f"{strategy}|{symbol}".encode()).hexdigest()[:8]


def client_order_id(prefix: str, strategy: str, symbol: str, cycle: int, level: int, purpose: str,
                    epoch: str = "") -> str:
    """The client order id of one order. `level` is ignored (-1) for exits.

    Raises:
        ValueError: unknown purpose, negative cycle, a prefix that is not 1-8 alphanumerics, or
            an epoch that is not 0-4 hex digits.
    """
    if purpose not in PURPOSE_CODES:
        raise ValueError(f"purpose must be one of {list(PURPOSE_CODES)}, got {purpose!r}")
    if cycle < 0:
        raise ValueError(f"cycle must be >= 0, got {cycle}")
    if not (1 <= len(prefix) <= 8 and prefix.isalnum()):
        raise ValueError(f"prefix must be 1-8 letters/digits, got {prefix!r}")
    if not re.fullmatch(r"[0-9a-f]{0,4}", epoch):
        raise ValueError(f"epoch must be 0-4 hex digits, got {epoch!r}")
    lvl = str(level) if purpose == "entry" else ""
    return f"{prefix}{epoch}-{runner_hash(strategy, symbol)}-{cycle}-{PURPOSE_CODES[purpose]}{lvl}"


def base_client_id(client_id: str) -> str:
    """The logical order id without an amendment / re-creation suffix (`a{n}`, `r{n}`)."""
    return _SUFFIX_RE.sub("", client_id) if _ID_RE.match(client_id) else client_id


def parse_client_id(client_id: str | None, prefix: str) -> tuple[str, int, int, str] | None:
    """(purpose, level, cycle, epoch) of an id carrying this installation's `prefix` (any
    database epoch; level -1 except for entries), None for a foreign id."""
    if not client_id or not client_id.startswith(prefix):
        return None
    m = _ID_RE.match(client_id)
    if m is None:
        return None
    head = m.group(1)
    epoch = head[len(prefix):]
    if not re.fullmatch(r"[0-9a-f]{0,4}", epoch):
        return None
    purpose = _PURPOSE_BY_CODE[m.group(4)]
    level = int(m.group(5)) if m.group(5) and purpose == "entry" else -1
    return purpose, level, int(m.group(3)), epoch


class ClientIds:
    """Client ids of one runner (bound prefix, epoch, strategy, symbol).

    Attributes:
        prefix: the installation's prefix. epoch: the database's (4 hex digits, "" for none).
        tag: `prefix + epoch`, the head of every id of this runner's database.
    """

    __slots__ = ("prefix", "epoch", "tag", "_h", "_cache")

    def __init__(self, prefix: str, strategy: str, symbol: str, epoch: str = "") -> None:
        client_order_id(prefix, strategy, symbol, 0, 0, "entry", epoch)     # validates
        self.prefix = prefix
        self.epoch = epoch
        self.tag = prefix + epoch
        self._h = runner_hash(strategy, symbol)
        self._cache: dict[tuple[int, int, str], str] = {}

    def __call__(self, cycle: int, level: int, purpose: str) -> str:
        key = (cycle, level, purpose)
        cid = self._cache.get(key)
        if cid is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            lvl = str(level) if purpose == "entry" else ""
            cid = f"{self.tag}-{self._h}-{cycle}-{PURPOSE_CODES[purpose]}{lvl}"
            self._cache[key] = cid
        return cid

    @staticmethod
    def amended(client_id: str) -> str:
        """The id an order continues under after its next amendment: `<base>a<n+1>`."""
        m = re.search(r"a(\d+)$", client_id)
        if m is None:
            return f"{client_id}a1"
        return f"{client_id[:m.start()]}a{int(m.group(1)) + 1}"

    @staticmethod
    def recreated(client_id: str) -> str:
        """The id of a stop re-created after `client_id`: `<base>r<n+1>`."""
        m = re.search(r"r(\d+)$", client_id)
        if m is None:
            return f"{client_id}r1"
        return f"{client_id[:m.start()]}r{int(m.group(1)) + 1}"
