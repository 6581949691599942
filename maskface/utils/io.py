"""Small file helpers shared by every writer: atomic writes and JSON I/O.

An interrupted run must never leave a half-written output, so every writer goes through
:func:`atomic_write` (write to a temp file in the same folder, fsync, then ``os.replace``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``);
    elsewhere it is set and restored at once (a brief race with threads creating files)."""
    try:
        with open("/proc/self/status", "r", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_problem(path: PathLike) -> str | None:
    """Why ``path`` cannot be read as a regular file, in words, or ``None`` when it can.

    Tells apart what ``os.path.exists`` lumps together: missing, a broken symbolic link, a
    symbolic-link loop, permission denied, a folder, an empty file.
    """
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "broken symbolic link (its target does not exist)" if os.path.islink(path) else "file not found"
    except PermissionError:
        return "permission denied (cannot reach the file: a folder on its path is not searchable)"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symbolic link loop (the link points back to itself)"
        return f"cannot access the file ({e.strerror or e})"
    import stat

    if stat.S_ISDIR(st.st_mode):
        return "is a folder, not a file"
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device: opening it could block forever
        return "not a regular file (a device, pipe or socket)"
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        return "permission denied (no read permission on the file)"
    except OSError as e:
        return f"cannot open the file ({e.strerror or e})"
    if st.st_size == 0:
        return "empty file (0 bytes)"
    return None


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success it atomically replaces ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched. The file
    gets the mode a plain ``open(path, "w")`` would give (``0666`` less the umask).
    ``mode`` is "w" (text) or "wb" (binary).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        # mkstemp creates the file 0600; give it what open() would (0666 less the umask), so an
        # atomically written output has the same mode as every other file the run writes.
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_json(obj: Any, path: PathLike, indent: int | None = None) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=indent, ensure_ascii=False)
        f.write("\n")


def load_json(path: PathLike) -> Any:
    """Read a JSON file; a parse error names the file, line and column."""
    path = Path(path)
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
