"""File output helpers shared by every stage: atomic writes, stale temporaries, output checks.

Every file this package writes for a user (feature files, tables, models, slides of the
synthetic cohort, tile-score exports) goes through :func:`atomic_write`: it is built under
a temporary name beside its target and renamed into place on success, so a reader never
sees a half-written file, and any failure (an exception, Ctrl-C) removes the temporary.
A process killed outright (SIGKILL, out of memory) cannot clean up: its temporaries carry
its host and process id, and :func:`remove_stale_temporaries` (called by the next run)
removes those whose process is gone.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_write", "check_output_path", "remove_stale_temporaries"]

_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
#: ``.<name>.<pid>@<host>.<tag>.tmp``; also the older ``.<name>.<pid>[.<tag>].tmp``.
_TEMP = re.compile(
    r"^\.(?P<name>.+)\.(?P<pid>\d+)(?:@(?P<host>[A-Za-z0-9-]+))?(?:\.[0-9a-f]{8})?\.tmp$"
)


def _temp_name(path):
    return f".{path.name}.{os.getpid()}@{_HOST}.{uuid.uuid4().hex[:8]}.tmp"


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    except OSError:
        return True  # when in doubt, keep the file
    return True


@contextmanager
def atomic_write(path, *, makedirs=True):
    """Write ``path`` atomically: yields a temporary path to write; renames it on success.

    The temporary lives in the target's folder (same file system, so the rename is atomic)
    and is removed on any failure, including ``KeyboardInterrupt``. Stale temporaries of
    the same target left by dead processes are removed first.

    Parameters
    ----------
    path : str or Path
        The final file.
    makedirs : bool, default=True
        Create the target's folder if needed.

    Examples
    --------
    >>> from he2rna_sklearn._io import atomic_write
    >>> with atomic_write("table.csv") as tmp:  # doctest: +SKIP
    ...     df.to_csv(tmp)
    """
    path = Path(path)
    if makedirs:
        path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "Is a directory; give a file name", str(path))
    remove_stale_temporaries(path.parent, name=path.name)
    tmp = path.with_name(_temp_name(path))
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass


def remove_stale_temporaries(folder, *, name=None):
    """Remove the temporaries that dead processes of this host left in ``folder``.

    Parameters
    ----------
    folder : str or Path
    name : str, optional
        Only the temporaries of this target file name.

    Returns
    -------
    removed : list of Path
    """
    folder = Path(folder)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        m = _TEMP.match(entry.name)
        if m is None or (name is not None and m["name"] != name):
            continue
        if m["host"] not in (None, _HOST) or _pid_alive(int(m["pid"])):
            continue
        try:
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            pass
    return removed


def check_output_path(path, option="--out"):
    """Check, before any work, that a file can be written at ``path``.

    Refuses a directory, a path under a file, and a folder that cannot be written (tried
    with a probe file in the nearest existing folder), naming ``option``.

    Raises
    ------
    ValueError
        With a one-line message naming ``option`` and the path.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} '{path}' is a directory; give a file name inside it.")
    if path.exists() and not path.is_file():
        raise ValueError(f"{option} '{path}' exists and is not a regular file.")
    folder = path.parent
    while not folder.exists():
        if folder.parent == folder:
            break
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"{option} '{path}': '{folder}' is a file, not a folder.")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ValueError(f"{option} '{path}': cannot write in '{folder}' ({reason}).") from None
    os.close(fd)
    os.unlink(probe)
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{option} '{path}' exists and is read-only.")
