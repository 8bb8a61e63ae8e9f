"""What native decoders write straight to file descriptor 2, turned into debug log lines.

libmpg123 (inside libsndfile) prints warnings about damaged frames on stderr itself, below
Python's ``sys.stderr``; :func:`decoder_chatter` catches them per decoder call.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("melodex.audio.decode")

_chatter_sink: tuple[int, object] | None = None  # (pid, temporary file): one per process, reused


def _sink_file():
    """This process's temporary file that takes the decoders' fd-2 output (a fork gets its own)."""
    global _chatter_sink
    if _chatter_sink is None or _chatter_sink[0] != os.getpid():
        _chatter_sink = (os.getpid(), tempfile.TemporaryFile())
    return _chatter_sink[1]


@contextlib.contextmanager
def decoder_chatter(path: Path) -> Iterator[None]:
    """Turn what libsndfile's mp3 decoder writes straight to file descriptor 2 into a debug log.

    libmpg123 prints lines such as "part2_3_length (960) too large for available bit count" on
    stderr for a damaged or truncated frame (common at the end of cut mp3s), whatever ``-q``
    says, and they would break progress bars once per file. The audio is decoded all the same;
    the message is kept, with the file's name, at debug level (``-v`` shows it). The sink is a
    temporary file kept open per process, emptied after each use: a few system calls per
    decoder call instead of a new file each time.
    """
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        yield
        return
    sink = _sink_file().fileno()
    os.dup2(sink, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        written = os.lseek(sink, 0, os.SEEK_CUR)
        if written:
            os.lseek(sink, 0, os.SEEK_SET)
            text = os.read(sink, min(written, 4096)).decode("utf-8", "replace").strip()
            os.ftruncate(sink, 0)
            os.lseek(sink, 0, os.SEEK_SET)  # the next decoder call writes from the start again
            if text:
                log.debug("%s: decoder says: %s", path, " | ".join(text.splitlines()))
