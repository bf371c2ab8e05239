"""Atomic file writes: a reader sees the old file or the whole new one, never half of one."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


class OutputError(ValueError):
    """An output that cannot be written; the message names the file and the fix."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"{path}: folder {path.parent} does not exist; create it or choose another output")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OutputError(f"{path}: cannot write there ({e.strerror}); choose a writable output folder") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())     # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException as e:              # Ctrl-C too: no temporary file is left behind
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise OutputError(f"{path}: cannot write ({e.strerror}); choose a writable output") from None
        raise


def check_output(path: str | os.PathLike, *, overwrite: bool, skip_existing: bool = False,
                 hint: str = "pass --overwrite to replace it") -> bool:
    """The one rule for existing outputs: True to write ``path``, False to leave it alone.

    An existing output is replaced only with ``overwrite``, kept (False) with
    ``skip_existing``, and otherwise an :class:`OutputError` whose message
    names the file and ``hint``. A missing parent folder is an error too.
    """
    path = Path(path)
    if overwrite and skip_existing:
        raise OutputError("--overwrite and --skip-existing contradict each other; pick one")
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give the name of a file to write")
    if path.exists():
        if skip_existing:
            return False
        if not overwrite:
            raise OutputError(f"{path}: exists; {hint}")
    if not path.parent.is_dir():
        raise OutputError(f"{path}: folder {path.parent} does not exist; create it or choose another output")
    return True


def check_writable(folder: str | os.PathLike, *, output: str | os.PathLike | None = None,
                   hint: str = "choose another output") -> None:
    """Raise :class:`OutputError` unless a file can be created in ``folder``, or, for a folder
    still to be made, in its nearest existing parent: before any work, so that nothing is
    computed for an output that cannot be written.

    The check creates and removes an empty temporary file: permission bits alone do not tell
    (a read-only mount, ``/proc``, root's bypass of the bits, a network file system's own rules).
    The message names ``output`` (default ``folder``) and ``hint``.
    """
    folder = Path(folder)
    named = Path(output) if output is not None else folder
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{named}: {existing} is a file, not a folder; {hint}")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".restore-probe-", suffix=".tmp")
    except OSError as e:
        raise OutputError(f"{named}: cannot write in {existing} ({e.strerror}); {hint}") from None
    os.close(fd)
    os.unlink(probe)
