"""Who is on the other end of a Unix socket: the peer's credentials and the engine's rule.

The kernel reports the connecting process's pid, uid and gid (`SO_PEERCRED`, Linux); the
engine serves only its own uid and root (`check_peer`). Where the platform cannot say,
the connection is refused (fail closed).
"""

from __future__ import annotations

import os
import pwd
import socket
import struct
from dataclasses import dataclass


@dataclass(frozen=True)
class PeerCred:
    """A connected peer: process id, user id, group id (as the kernel reported them)."""

    pid: int
    uid: int
    gid: int

    @property
    def user(self) -> str:
        """The OS user name of `uid` (the number when it has no passwd entry)."""
        return user_name(self.uid)

    def process(self) -> str:
        """"pid N (command)" from /proc when readable, else "pid N"."""
        try:
            with open(f"/proc/{self.pid}/comm", encoding="utf-8", errors="replace") as fh:
                return f"pid {self.pid} ({fh.read().strip()})"
        except OSError:
            return f"pid {self.pid}"


def user_name(uid: int) -> str:
    """The passwd name of `uid`, or `str(uid)` when it has none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def peer_credentials(sock: socket.socket | None) -> PeerCred | None:
    """The credentials of the peer of a connected AF_UNIX socket, or None when unavailable
    (no socket, not Linux, the call failed)."""
    opt = getattr(socket, "SO_PEERCRED", None)
    if sock is None or opt is None:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, opt, struct.calcsize("3i"))
    except OSError:
        return None
    pid, uid, gid = struct.unpack("3i", raw)
    return PeerCred(pid, uid, gid)


def check_peer(cred: PeerCred | None, engine_uid: int | None = None) -> str | None:
    """None when `cred` may use the engine (its uid is the engine's, `engine_uid`, default the
    process's effective uid, or 0: root), else the sentence saying why it is refused."""
    own = os.geteuid() if engine_uid is None else engine_uid
    if cred is None:
        return "the peer's credentials cannot be read on this platform: connection refused"
    if cred.uid in (own, 0):
        return None
    return (f"user {cred.user} (uid {cred.uid}, {cred.process()}) may not use this engine: only its own "
            f"user {user_name(own)} (uid {own}) and root may")
