"""The socket: mode 0600 from its creation, peer credentials checked (own uid and root only),
a live engine's socket never taken over, a stale one replaced, removed on a clean stop."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path

import pytest

from core.api import server as server_mod
from core.api import sockets
from core.api.client import EngineClient
from core.api.peercred import PeerCred, check_peer, peer_credentials
from core.api.protocol import ApiError
from core.api.server import ApiServer, ApiSocketBusy
from core.engine.api import EngineAPI
from tests.api.conftest import Run

NOBODY = 65534


def test_check_peer_allows_own_uid_and_root_only() -> None:
    assert check_peer(PeerCred(10, 1000, 1000), engine_uid=1000) is None
    assert check_peer(PeerCred(10, 0, 0), engine_uid=1000) is None
    why = check_peer(PeerCred(10, 1001, 1001), engine_uid=1000)
    assert why is not None and "uid 1001" in why and "uid 1000" in why and "may not use this engine" in why
    assert "cannot be read" in check_peer(None, engine_uid=1000)
    own = os.geteuid()
    assert check_peer(PeerCred(1, own, 0)) is None


def test_peer_credentials_of_a_socketpair_are_this_process() -> None:
    a, b = socket.socketpair(socket.AF_UNIX)
    try:
        assert peer_credentials(a) == PeerCred(os.getpid(), os.geteuid(), os.getegid())
    finally:
        a.close(), b.close()
    assert peer_credentials(None) is None


async def test_socket_is_private_and_removed_on_stop(tmp_path: Path, open_position_candles) -> None:
    async with Run(tmp_path / "radar.db", open_position_candles) as run:
        st = os.lstat(run.socket)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid()
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".radar-sock-")] == []
        sock = run.socket
    assert not sock.exists()


async def test_another_uid_is_refused(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's check sees faked credentials of another uid: 403, nothing served."""
    foreign = PeerCred(4242, os.geteuid() + 12345, 100)
    monkeypatch.setattr(server_mod, "peer_credentials", lambda sock: foreign)
    with pytest.raises(ApiError) as err:
        await EngineClient(run.socket).open()
    assert (err.value.status, err.value.code) == (403, "peer_refused")
    assert f"uid {foreign.uid}" in err.value.message
    monkeypatch.setattr(server_mod, "peer_credentials", lambda sock: None)       # platform cannot tell
    with pytest.raises(ApiError, match="cannot be read"):
        await EngineClient(run.socket).open()
    assert run.server.stats.peers_refused == 2
    assert not run.engine.kill_switch.active


def _child_request(path: str, uid: int) -> int:
    """Fork; the child drops to `uid` and sends GET /v1/version on `path`. Returns the child's
    exit code: 13 the connect was refused (file mode), 40 HTTP 403 "peer_refused", 20 HTTP 200,
    2 another answer, 3 an error."""
    pid = os.fork()
    if pid == 0:                                                  # pragma: no cover - child
        code = 1
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            try:
                s.connect(path)
            except PermissionError:
                os._exit(13)
            s.sendall(b"GET /v1/version HTTP/1.1\r\nHost: radar\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            status = int(data.split(b" ", 2)[1])
            code = 40 if status == 403 and b"peer_refused" in data else 20 if status == 200 else 2
        except BaseException:
            code = 3
        os._exit(code)
    _, st = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(st)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a child as another uid (setuid 65534)")
async def test_a_real_connection_from_another_uid_is_refused(open_position_candles) -> None:
    d = Path(tempfile.mkdtemp(prefix="radar-api-"))       # a folder uid 65534 can traverse
    try:
        os.chmod(d, 0o711)
        async with Run(d / "radar.db", open_position_candles) as run:
            path = str(run.socket)
            # the file mode alone keeps another user out ...
            assert await asyncio.to_thread(_child_request, path, NOBODY) == 13
            # ... and when the mode is opened up, the engine's peer check still refuses it
            os.chmod(path, 0o666)
            assert await asyncio.to_thread(_child_request, path, NOBODY) == 40
            assert run.server.stats.peers_refused == 1
            assert await asyncio.to_thread(_child_request, path, 0) == 20        # root is served
    finally:
        shutil.rmtree(d, ignore_errors=True)


async def test_a_live_engine_socket_is_not_taken_over(run: Run) -> None:
    other = ApiServer(EngineAPI(run.engine), run.socket, db_path=None)
    with pytest.raises(ApiSocketBusy, match=f"an engine already listens on {run.socket}") as err:
        await other.start()
    assert err.value.exit_code == 2
    async with EngineClient(run.socket) as c:                     # the first one still serves
        assert (await c.version())["engine"]["pid"] == os.getpid()


async def test_a_stale_socket_is_replaced_and_a_plain_file_refused(tmp_path: Path, open_position_candles) -> None:
    db = tmp_path / "radar.db"
    stale, _ = sockets.bind_private(Path(str(db) + ".sock"))
    stale.close()                                                  # a crashed engine's socket file
    assert sockets.probe(Path(str(db) + ".sock")) == sockets.STALE
    async with Run(db, open_position_candles) as run:
        async with EngineClient(run.socket) as c:
            assert (await c.version())["engine"]["running"]
    (tmp_path / "x.db.sock").write_text("not a socket")
    with pytest.raises(ApiSocketBusy, match="exists and is not a socket"):
        await ApiServer(EngineAPI(run.engine), tmp_path / "x.db.sock").start()
    assert (tmp_path / "x.db.sock").read_text() == "not a socket"


async def test_services_refuse_to_start_when_the_socket_is_live(tmp_path: Path, open_position_candles) -> None:
    db = tmp_path / "radar.db"
    holder, _ = sockets.bind_private(Path(str(db) + ".sock"))     # something listens there
    try:
        with pytest.raises(ApiSocketBusy):
            async with Run(db, open_position_candles):
                pass
    finally:
        holder.close()
    assert Path(str(db) + ".sock").exists()                       # not ours: left alone


async def test_a_socket_path_longer_than_the_unix_limit_works(tmp_path: Path, open_position_candles) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    async with Run(deep / "radar.db", open_position_candles) as run:
        assert len(str(run.socket)) > sockets.MAX_UNIX_PATH
        assert stat.S_IMODE(os.lstat(run.socket).st_mode) == 0o600
        async with EngineClient(run.socket) as c:
            assert (await c.snapshot())["mode"] == "paper"
    assert not (deep / "radar.db.sock").exists()
