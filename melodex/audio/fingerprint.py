"""Audio fingerprints: Chromaprint (AcoustID's fingerprint) of the audio a file was decoded to.

A fingerprint is the raw Chromaprint item sequence: one 32-bit integer per 4096/3 samples at
11,025 Hz (about 0.124 s, :data:`ITEM_SECONDS`), each bit a sign of a filtered chroma
difference. Re-encodes of one recording (FLAC, MP3, Ogg, AAC, 22.05 kHz mono) give sequences
whose bits mostly agree item by item; a trimmed copy agrees after a shift; another take of the
piece, or another song, agrees on about half the bits, as chance does
(:mod:`melodex.analysis.duplicates` compares them).

The work is done by ``libchromaprint`` (Debian's ``libchromaprint1``, through ``pyacoustid``'s
ctypes binding); :func:`missing_reason` says in one line when it is not installed. The
fingerprint is computed from samples already decoded for indexing (the first analysis
segment, 30 s), so it costs no extra decoding: 0.2-0.35 of what decoding that segment takes,
1.5-8 % of decoding + MFCC (``benchmarks/bench_fingerprint.py`` on a busy 2-core machine: 11 ms
against 37 ms of decoding for a 30-s MP3, 2.5 ms against 12 ms for a 10-s clip).
Stored as the little-endian uint32 items back to back (:func:`to_bytes`), about 1 kB per file.
"""

from __future__ import annotations

import numpy as np
import soxr

from melodex.audio.segments import Segment

try:  # libchromaprint is a system library; without it, fingerprints are not computed (and said so)
    import chromaprint as _chromaprint
except ImportError:  # pragma: no cover - depends on the machine
    _chromaprint = None
else:

    class _Fingerprinter(_chromaprint.Fingerprinter):
        """pyacoustid's Fingerprinter, quiet when a Ctrl-C lands inside its ``__init__``: the
        parent's ``__del__`` then printed an AttributeError traceback (no ``_ctx``) above the
        "interrupted: ..." line, in every DataLoader worker the signal reached."""

        _ctx = None

        def __del__(self) -> None:
            if self._ctx is not None:
                super().__del__()

CHROMAPRINT_RATE = 11025  # Hz: Chromaprint's own rate; audio is resampled to it here (soxr, 4x faster
# than libchromaprint's internal resampler, which took as long as decoding the file)
ITEM_SECONDS = 4096 / 3 / CHROMAPRINT_RATE  # seconds of audio per fingerprint item
INSTALL_HINT = "install libchromaprint (Debian/Ubuntu: apt-get install libchromaprint1; macOS: brew install chromaprint)"


def missing_reason() -> str | None:
    """None when fingerprints can be computed here, else why not (one line, with the fix)."""
    if _chromaprint is None:
        return f"libchromaprint was not found: {INSTALL_HINT}"
    return None


def chromaprint(audio: np.ndarray, sr: int) -> np.ndarray:
    """The Chromaprint items [shape=(n,), uint32] of ``audio`` [shape=(samples,)] float in [-1, 1] at ``sr`` Hz.

    An empty array when the audio is too short for one item (under about 1 s). Raises
    RuntimeError when libchromaprint is missing (see :func:`missing_reason`).
    """
    reason = missing_reason()
    if reason is not None:
        raise RuntimeError(reason)
    pcm = np.asarray(audio, dtype=np.float32).reshape(-1)
    if sr != CHROMAPRINT_RATE:
        pcm = soxr.resample(pcm, sr, CHROMAPRINT_RATE, quality="LQ")
    pcm = (np.clip(pcm, -1.0, 1.0) * 32767.0).astype("<i2")
    printer = _Fingerprinter()
    printer.start(CHROMAPRINT_RATE, 1)
    printer.feed(pcm.tobytes())
    encoded = printer.finish()
    if not encoded:
        return np.zeros(0, dtype=np.uint32)
    items, _algorithm = _chromaprint.decode_fingerprint(encoded)
    return np.asarray(items, dtype=np.uint32)


def to_bytes(items: np.ndarray) -> bytes:
    """``items`` as stored: little-endian uint32 back to back."""
    return np.asarray(items, dtype="<u4").tobytes()


def segment_fingerprint(segment: Segment, sr: int) -> bytes | None:
    """The stored fingerprint (:func:`to_bytes`) of a decoded ``segment`` at ``sr`` Hz: its real
    audio only (``end_time - start_time`` seconds; the rest is the segment's zero padding).

    None when libchromaprint is missing (the indexer says so once); empty bytes when the audio is
    too short to give an item (fingerprinted, but nothing to compare: never a duplicate).
    """
    if _chromaprint is None:
        return None
    real = max(0, round((segment.end_time - segment.start_time) * sr))
    return to_bytes(chromaprint(np.asarray(segment.audio)[:real], sr))
