"""The API's Unix socket file: created private (mode 0600 from its first instant), probed
(is an engine listening?), removed only when it is still ours.

Linux limits a socket path to 107 bytes; a longer one is reached through the folder's open
descriptor (`/proc/self/fd/N/<name>`, `reachable`), so a deep `--db` path still works.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from core.errors import UsageError

#: Longest AF_UNIX path (bytes, without the final NUL) on Linux.
MAX_UNIX_PATH = 107

#: `probe` answers.
ABSENT, LIVE, STALE, NOT_SOCKET, DENIED = "absent", "live", "stale", "not_socket", "denied"


@contextlib.contextmanager
def reachable(path: str | os.PathLike[str]) -> Iterator[str]:
    """A name to bind or connect `path` with: the path itself when short enough, else
    `/proc/self/fd/N/<name>` with its folder held open until the block ends.

    Raises:
        UsageError: the path is too long and cannot be shortened (no /proc, or its file
            name alone is too long).
    """
    p = Path(path)
    if len(os.fsencode(str(p))) <= MAX_UNIX_PATH:
        yield str(p)
        return
    if not os.path.isdir("/proc/self/fd"):
        raise UsageError(f"socket path {p} is too long ({len(os.fsencode(str(p)))} bytes, at most "
                         f"{MAX_UNIX_PATH}); use a shorter --db path")
    fd = os.open(p.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        short = f"/proc/self/fd/{fd}/{p.name}"
        if len(os.fsencode(short)) > MAX_UNIX_PATH:
            raise UsageError(f"socket file name {p.name!r} is too long; use a shorter --db file name")
        yield short
    finally:
        os.close(fd)


def probe(path: str | os.PathLike[str], timeout_s: float = 1.0) -> str:
    """What is at `path`: ABSENT (no file), NOT_SOCKET (another kind of file), STALE (a socket
    nobody listens on: a crashed engine's), DENIED (a socket this user may not connect to), or
    LIVE (something accepts connections on it)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return ABSENT
    if not stat.S_ISSOCK(st.st_mode):
        return NOT_SOCKET
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout_s)
    try:
        with reachable(path) as name:
            s.connect(name)
    except (ConnectionRefusedError, FileNotFoundError):
        return STALE
    except PermissionError:
        return DENIED
    except OSError:                              # timeout: a backlog full of connections is alive
        return LIVE
    finally:
        s.close()
    return LIVE


def bind_private(path: str | os.PathLike[str], backlog: int = 64) -> tuple[socket.socket, tuple[int, int]]:
    """A listening AF_UNIX socket at `path`, mode 0600 before anyone can see it (bound in a
    private folder beside `path`, then renamed over it: a stale socket file is replaced
    atomically). Returns the socket and the file's identity (st_dev, st_ino) for `remove_if_ours`.

    Raises:
        OSError: the folder of `path` cannot be written. UsageError: see `reachable`.
    """
    target = Path(path)
    tmpdir = tempfile.mkdtemp(prefix=".radar-sock-", dir=target.parent)      # mode 0700
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        tmp = Path(tmpdir) / "s"
        with reachable(tmp) as name:
            sock.bind(name)
        os.chmod(tmp, 0o600)
        sock.listen(backlog)
        os.rename(tmp, target)
        st = os.lstat(target)
    except BaseException:
        sock.close()
        raise
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    sock.setblocking(False)
    return sock, (st.st_dev, st.st_ino)


def remove_if_ours(path: str | os.PathLike[str], ident: tuple[int, int] | None) -> bool:
    """Unlink `path` when it is still the file `ident` (st_dev, st_ino) names (never a newer
    engine's socket); True when removed."""
    if ident is None:
        return False
    try:
        st = os.lstat(path)
        if (st.st_dev, st.st_ino) != ident:
            return False
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
