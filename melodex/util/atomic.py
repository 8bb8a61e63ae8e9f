"""Writing files so that a crash never leaves a half-written file that looks complete."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from melodex.errors import OutputError


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one step.

    On any error the temporary file is removed and ``path`` keeps its previous content.
    A full disk or a permission problem becomes an :class:`OutputError` naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(tmp, _existing_mode(path))
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise cannot_write(path, exc) from exc
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_NEW_FILE_MODE = 0o666 & ~_umask()


def _existing_mode(path: Path) -> int:
    """The permission bits of ``path`` when it exists, else those of a new file."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        return _NEW_FILE_MODE


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def describe_os_error(exc: OSError) -> str:
    """A short human reason for an OSError, naming a full disk plainly."""
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    return exc.strerror or str(exc)


def cannot_write(path: str | Path | None, reason: OSError | str) -> OutputError:
    """The one-line error for an output that cannot be written: ``PATH: cannot write (REASON)``.

    Parameters
    ----------
    path : str, Path or None
        The file that could not be written; None names ``stdout``.
    reason : OSError or str
        The failure: an OSError is described by :func:`describe_os_error`, a string is used as is.

    Returns
    -------
    OutputError
        The error to raise (``raise cannot_write(path, exc) from None``).
    """
    if isinstance(reason, OSError):
        reason = describe_os_error(reason)
    return OutputError(f"{'stdout' if path is None else path}: cannot write ({reason})")


@contextlib.contextmanager
def output_errors(path: str | Path | None) -> Iterator[None]:
    """Turn any OSError raised inside the block into :func:`cannot_write` for ``path``.

    The OSError itself is dropped from the traceback: the one line names the file and why.
    """
    try:
        yield
    except OSError as exc:
        raise cannot_write(path, exc) from None
