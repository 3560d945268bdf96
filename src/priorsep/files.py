"""Writing files so that a crash or a failure never leaves a half-written output.

`atomic_write` writes one file to a temporary name beside it and renames it into place.
`write_together` does the same for a group of files (the stems of one track): every file is
written to its temporary name first and only then are they all renamed, so a failure while
writing leaves none of them; if a rename fails, the files already renamed are removed again.
`check_writable` finds, before any work, why a file could not be written.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)


def _temporary(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> None:
    """Call `write(tmp_path)` then rename the temporary file onto `path`."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600: give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_together(payloads: Mapping[Path, bytes | Callable[[Path], object]]) -> None:
    """Write every file or none: all to temporary names, then all renamed into place. A
    payload is the file's bytes, or a function that writes the file at the path it is given.

    Raises:
        OSError: the first failure; nothing written by this call remains (a file it replaced
            stays replaced only when every file was written).
    """
    temporary: dict[Path, Path] = {}
    renamed: list[Path] = []
    created: list[Path] = []
    try:
        for path, payload in payloads.items():
            missing = [folder for folder in path.parents if not folder.exists()]
            temporary[path] = _temporary(path)
            created.extend(missing)  # deepest first
            if callable(payload):
                payload(temporary[path])
            else:
                temporary[path].write_bytes(payload)
            os.chmod(temporary[path], 0o666 & ~_UMASK)
        for path, tmp in temporary.items():
            existed = path.exists()
            os.replace(tmp, path)
            if not existed:
                renamed.append(path)
    except BaseException:
        for tmp in temporary.values():
            tmp.unlink(missing_ok=True)
        if len(renamed) < len(temporary):
            for path in renamed:
                path.unlink(missing_ok=True)
        for folder in created:  # each folder's children come before it
            try:
                folder.rmdir()
            except OSError:
                pass
        raise


def check_writable(path: str | os.PathLike) -> str | None:
    """Why `path` could not be written as a file (None when it can).

    Looks at the path itself (a folder in the way) and at its nearest existing parent (a file
    where a folder is needed, no write permission).
    """
    path = Path(path)
    if path.is_dir():
        return f"{path} is a folder"
    parent = next(folder for folder in path.parents if folder.exists())  # the root exists
    if not parent.is_dir():
        return f"{parent} is a file, not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):  # a rename onto a file needs only this
        return f"{parent} is not writable"
    return None
