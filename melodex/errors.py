"""The exceptions Melodex raises on purpose.

Everything derives from :class:`MelodexError`, so a caller (or the CLI) can tell a
problem with the input, which it reports in one line, from a bug, which it lets surface.
"""

from __future__ import annotations

from pathlib import Path


class MelodexError(Exception):
    """Base class of every error Melodex raises deliberately."""


class AudioLoadError(MelodexError):
    """An audio file could not be read or decoded.

    ``path`` names the file, ``reason`` says why in the decoder's words.
    """

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ModelLoadError(MelodexError):
    """A model file is missing, is not a Melodex checkpoint, or is unsafe to load."""


class DatasetError(MelodexError):
    """A dataset's layout or metadata is not what Melodex expects."""


class OutputError(MelodexError):
    """A result file could not be written (full disk, permissions, bad format name)."""


class DeviceError(MelodexError):
    """The requested compute device is not available."""


class CacheMismatchError(MelodexError):
    """The cache directory was made with other feature parameters (or is not a Melodex cache)."""


class ResumeError(MelodexError):
    """A run cannot be resumed: no such run, no saved state, or it has already finished."""


class StoreError(MelodexError):
    """A library store is unreadable, or a record does not fit it."""


class QueryError(MelodexError):
    """The query is neither a track in the store nor a readable audio file."""


class MapError(MelodexError):
    """A map cannot be made from this store (empty, missing embeddings, bad values)."""


class ServeError(MelodexError):
    """The server cannot start (no map in the store, address in use)."""


class DistributedError(MelodexError):
    """A process of a ``torchrun`` training stops because another one (rank 0) failed, or the group cannot start."""


class WorkerError(MelodexError):
    """A worker process died without a word (killed by the system, often for lack of memory)."""
