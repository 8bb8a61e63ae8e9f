"""Cutting decoded audio into fixed-length analysis segments.

Two ways to cut:

* :func:`first_segment`: the first :data:`SEGMENT_SECONDS` of a file, zero-padded when the
  file is shorter (its real duration is kept in ``end_time``).
* :func:`sliding_segments`: windows over a whole file, fed from a stream of chunks so a
  two-hour file never sits in memory. What happens to the audio after the last full window
  is set by ``last``:

  ``"pad"`` (default)
      one more window starting a hop after the last full one, zero-padded, kept when it holds
      at least ``min_last_seconds`` of audio no earlier window covered;
  ``"align"``
      one more window that ends exactly at the end of the file (it overlaps the previous one),
      under the same ``min_last_seconds`` rule;
  ``"drop"``
      nothing: the tail is not analysed.

  A file shorter than one window always gives exactly one padded window, whatever ``last``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from melodex.audio.decode import load_audio
from melodex.constants import MIN_LAST_SECONDS, SAMPLE_RATE, SEGMENT_SECONDS

LAST_POLICIES = ("pad", "align", "drop")
DEFAULT_MIN_LAST_SECONDS = MIN_LAST_SECONDS


@dataclass(frozen=True)
class Segment:
    """One analysis window.

    ``audio`` has shape ``(window_samples,)``, float32, zero-padded past the real audio.
    ``start_time`` and ``end_time`` are in seconds from the start of the file; ``end_time``
    marks the end of the real audio in this window, so ``end_time - start_time`` is less
    than the window for a padded segment.
    """

    index: int
    start_time: float
    end_time: float
    audio: np.ndarray = field(repr=False)

    @property
    def duration(self) -> float:
        """Seconds of real (unpadded) audio in the window."""
        return self.end_time - self.start_time


def pad_or_trim(audio: np.ndarray, length: int) -> np.ndarray:
    """Return ``audio`` cut or zero-padded at the end to exactly ``length`` samples."""
    if audio.shape[-1] >= length:
        return np.ascontiguousarray(audio[..., :length], dtype=np.float32)
    out = np.zeros(audio.shape[:-1] + (length,), dtype=np.float32)
    out[..., : audio.shape[-1]] = audio
    return out


def first_segment(
    audio: np.ndarray, *, sr: int = SAMPLE_RATE, window_seconds: float = SEGMENT_SECONDS
) -> Segment:
    """The first window of ``audio`` (shape ``(n,)``), padded when the audio is shorter."""
    length = int(round(window_seconds * sr))
    real = min(audio.shape[-1], length)
    return Segment(0, 0.0, real / sr, pad_or_trim(audio, length))


def sliding_segments(
    chunks: Iterable[np.ndarray],
    *,
    sr: int = SAMPLE_RATE,
    window_seconds: float = SEGMENT_SECONDS,
    hop_seconds: float | None = None,
    last: str = "pad",
    min_last_seconds: float = DEFAULT_MIN_LAST_SECONDS,
) -> Iterator[Segment]:
    """Windows of ``window_seconds`` every ``hop_seconds`` over a stream of mono chunks.

    Parameters
    ----------
    chunks : iterable of np.ndarray [shape=(n,)]
        Consecutive pieces of one signal at ``sr`` Hz, e.g. from :func:`melodex.audio.decode.stream_audio`.
    hop_seconds : float, optional
        Distance between window starts; defaults to ``window_seconds`` (no overlap).
    last : {"pad", "align", "drop"}
        What to do with audio after the last full window (see the module docstring).
    min_last_seconds : float
        Least amount of uncovered audio that earns a final window under "pad" and "align".

    Yields
    ------
    Segment
        In order of ``start_time``; at least one for any non-empty signal. Memory held is
        about one window plus one chunk.
    """
    if last not in LAST_POLICIES:
        raise ValueError(f"last must be one of {LAST_POLICIES}, not {last!r}")
    window = int(round(window_seconds * sr))
    hop = window if hop_seconds is None else int(round(hop_seconds * sr))
    if window <= 0 or hop <= 0:
        raise ValueError("window_seconds and hop_seconds must be positive")

    buf = np.zeros(0, np.float32)
    buf_start = 0  # sample offset of buf[0] in the signal
    next_start = 0  # sample offset of the next window
    index = 0
    total = 0
    last_full_end = 0  # end sample of the last full window emitted
    # "align" may need audio from before next_start: keep one hop more (see the end).
    keep_back = hop if last == "align" else 0
    for chunk in chunks:
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        total += chunk.size
        buf = np.concatenate([buf, chunk]) if buf.size else chunk
        while next_start + window <= buf_start + buf.size:
            lo = next_start - buf_start
            yield Segment(index, next_start / sr, (next_start + window) / sr, buf[lo : lo + window].copy())
            index += 1
            last_full_end = next_start + window
            next_start += hop
            drop = min(next_start - keep_back - buf_start, buf.size)
            if drop > 0:
                buf = buf[drop:]
                buf_start += drop

    if total == 0:
        return
    uncovered = total - last_full_end
    if index == 0:
        yield Segment(0, 0.0, total / sr, pad_or_trim(buf, window))
        return
    if last == "drop" or uncovered < max(1, int(round(min_last_seconds * sr))):
        return
    if last == "pad":
        lo = max(next_start - buf_start, 0)
        piece = buf[lo:]
        yield Segment(index, next_start / sr, total / sr, pad_or_trim(piece, window))
    else:  # align: a full window ending at the end of the signal.
        # total < next_start + window (else it would have been emitted) and
        # total >= next_start - hop + window, so its start lies in what keep_back held.
        start = total - window
        lo = start - buf_start
        yield Segment(index, start / sr, total / sr, buf[lo : lo + window].copy())


def read_first_segment(path: str | Path, *, sr: int = SAMPLE_RATE,
                       window_seconds: float = SEGMENT_SECONDS) -> Segment:
    """Decode only the first ``window_seconds`` of ``path`` and cut them into one segment
    (zero-padded when the file is shorter): what first-30s inference and the MFCC cache use.

    Raises AudioLoadError when the file cannot be decoded.
    """
    return first_segment(load_audio(path, duration=window_seconds, sr=sr), sr=sr, window_seconds=window_seconds)
