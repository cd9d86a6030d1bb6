"""Private log files: the log folder mode 0700, each log file mode 0600 (like the database).

Logs may hold order ids, balances and account details: only the owner may read
them. `private_log_handler(path)` creates the folder and the file with those
modes (tightening existing ones Radar owns) and returns a `logging.FileHandler`
appending to it.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

#: Mode of a log folder and of a log file.
DIR_MODE = 0o700
FILE_MODE = 0o600


def ensure_private_dir(folder: str | os.PathLike[str], *, tighten: bool = True) -> Path:
    """Create `folder` (and missing parents) with mode 0700; with `tighten`, chmod an existing one to 0700.

    An existing folder is left as it is when `tighten` is False, when it is not owned by
    this user, or when it is a shared sticky folder such as /tmp (mode +t).

    Returns:
        the folder as a Path.

    Raises:
        OSError: the folder cannot be created or changed (e.g. PermissionError, or
            FileExistsError when `folder` is a file); `core.storage.errors.storage_error`
            words it as one line.
    """
    p = Path(folder)
    missing = [d for d in (p, *p.parents) if not d.exists()]
    for d in reversed(missing):
        d.mkdir(mode=DIR_MODE, exist_ok=True)
        os.chmod(d, DIR_MODE)  # mkdir's mode is reduced by the umask; 0700 is what is wanted
    if not p.is_dir():
        raise FileExistsError(17, "File exists and is not a folder", str(p))
    if tighten and not missing:
        st = p.stat()
        if st.st_uid == os.geteuid() and not st.st_mode & stat.S_ISVTX and stat.S_IMODE(st.st_mode) != DIR_MODE:
            os.chmod(p, DIR_MODE)
    return p


def create_private_file(path: str | os.PathLike[str]) -> Path:
    """Create `path` empty with mode 0600 when missing, else chmod it to 0600; its folder must exist.

    Raises:
        OSError: the file cannot be created or changed.
    """
    p = Path(path)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return p


def private_log_handler(path: str | os.PathLike[str], *, tighten_folder: bool = True,
                        encoding: str = "utf-8") -> logging.FileHandler:
    """A FileHandler appending to `path`, with the folder 0700 (`ensure_private_dir`) and the file 0600.

    Args:
        path: the log file.
        tighten_folder: also chmod an existing folder to 0700 (pass False for a folder the
            operator chose for other files too, e.g. `--log-file ~/radar.jsonl`).
        encoding: of the file.

    Raises:
        OSError: the folder or file cannot be created, changed or opened.
    """
    p = Path(path)
    ensure_private_dir(p.parent, tighten=tighten_folder)
    create_private_file(p)
    return logging.FileHandler(p, mode="a", encoding=encoding)
