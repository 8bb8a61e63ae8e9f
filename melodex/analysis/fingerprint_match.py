"""How alike two audio fingerprints are: Chromaprint bits that agree beyond chance, at the best shift.

A fingerprint (:mod:`melodex.audio.fingerprint`, stored in the store's ``chromaprint`` column) is
a sequence of 32-bit items, one per :data:`ITEM_SECONDS` of audio. Two copies of one recording
agree on most bits item by item; a copy with seconds cut off its start agrees once shifted by
that many items. The raw share of agreeing bits flatters some audio: for noise-like or static
music several of Chromaprint's 32 bits hardly ever change, so two different clips of one style
agree on them anyway (two demo "Noise Beat" clips of one artist: 0.91 of the bits). The measure
is therefore Cohen's kappa over the bits: (observed - expected) / (1 - expected), where
``expected`` is the agreement that the two fingerprints' bit frequencies give by chance.

Measured on a demo clip (``tests/test_duplicates.py``): copies in FLAC, MP3 128k, Ogg Vorbis,
AAC and 22.05 kHz mono MP3 48k, and one with 3 s cut off its start, score 0.83-1.0; another take
of the piece 0.20; the closest pair of different clips in the demo library's candidates 0.73,
except two clips whose waveforms correlate at 0.965 (0.80: the demo renders that drone almost
identically twice). :data:`MATCH_AGREEMENT` lies between.

Only numpy here: the fingerprints were computed when the audio was decoded.
"""

from __future__ import annotations

import numpy as np

ITEM_SECONDS = 4096 / 3 / 11025  # as melodex.audio.fingerprint.ITEM_SECONDS
MATCH_AGREEMENT = 0.78  # kappa from which two fingerprints are one recording
MAX_SHIFT_SECONDS = 15.0  # the most cut off a copy's start that is still found
MIN_OVERLAP_SECONDS = 4.0  # compared audio needed for a verdict


def from_bytes(raw: bytes | None) -> np.ndarray | None:
    """Stored bytes -> items [shape=(n,), uint32]; None for a missing fingerprint."""
    if raw is None:
        return None
    return np.frombuffer(raw, dtype="<u4", count=len(raw) // 4).astype(np.uint32)


_POPCOUNT = np.array([i.bit_count() for i in range(256)], dtype=np.int32)


def _share_of_ones(items: np.ndarray) -> np.ndarray:
    """Each bit's share of ones over ``items`` [shape=(32,)]."""
    raw = np.ascontiguousarray(items, dtype="<u4").view(np.uint8)
    return np.unpackbits(raw).reshape(len(items), 32).mean(axis=0)


def kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two aligned fingerprints of equal length: agreement beyond their bits' chance."""
    observed = 1.0 - _POPCOUNT[np.bitwise_xor(a, b).view(np.uint8)].sum() / (32.0 * len(a))
    px, py = _share_of_ones(a), _share_of_ones(b)
    expected = float(np.mean(px * py + (1.0 - px) * (1.0 - py)))
    return 0.0 if expected >= 1.0 else (observed - expected) / (1.0 - expected)


def agreement(a: np.ndarray, b: np.ndarray, *, shifts: tuple[float, float] | None = None,
              min_overlap_seconds: float = MIN_OVERLAP_SECONDS) -> tuple[float, float]:
    """(kappa, shift in seconds) of fingerprint ``b`` against ``a`` (items, uint32) where they align best.

    A positive shift means ``b`` starts that much later into the recording than ``a`` (``b`` was cut
    at the start). Shifts from ``shifts[0]`` to ``shifts[1]`` seconds are tried (default up to
    :data:`MAX_SHIFT_SECONDS` each way), keeping at least ``min_overlap_seconds`` of overlap, all at
    once (an XOR and a popcount per item pair); the shift where most bits agree is the alignment,
    and kappa is measured there. (0.0, 0.0) when the fingerprints are too short for that. The
    narrower the range, the less chance two unrelated fingerprints find a shift where they agree.
    """
    low, high = shifts if shifts is not None else (-MAX_SHIFT_SECONDS, MAX_SHIFT_SECONDS)
    a, b = np.ascontiguousarray(a, dtype="<u4"), np.ascontiguousarray(b, dtype="<u4")
    steps = np.arange(int(np.floor(low / ITEM_SECONDS)), int(np.ceil(high / ITEM_SECONDS)) + 1)
    if not len(a) or not len(b) or not len(steps):
        return 0.0, 0.0
    reach = int(np.abs(steps).max())
    padded = np.zeros(len(a) + 2 * reach + len(b), dtype="<u4")
    padded[reach:reach + len(a)] = a
    inside = np.zeros(len(padded), dtype=bool)
    inside[reach:reach + len(a)] = True
    # row j of b meets row j + shift of a: one window of the padded a per shift [shape=(shifts, len(b))]
    rows = reach + steps
    windows = np.lib.stride_tricks.sliding_window_view(padded, len(b))[rows]
    valid = np.lib.stride_tricks.sliding_window_view(inside, len(b))[rows]
    wrong = _POPCOUNT[(windows ^ b[None]).view(np.uint8)].reshape(len(steps), len(b), 4).sum(axis=2)
    n = valid.sum(axis=1)
    observed = np.where(n >= max(1, round(min_overlap_seconds / ITEM_SECONDS)),
                        1.0 - (wrong * valid).sum(axis=1) / (32.0 * np.maximum(n, 1)), -1.0)
    best = int(np.argmax(observed))
    if observed[best] < 0:
        return 0.0, 0.0
    shift, size = int(steps[best]), int(n[best])
    score = kappa(a[max(0, shift):max(0, shift) + size], b[max(0, -shift):max(0, -shift) + size])
    return (float(score), shift * ITEM_SECONDS) if score > 0 else (0.0, 0.0)
