"""How alike two audio fingerprints are: Chromaprint bits that agree beyond chance, at the best shift.

A fingerprint (:mod:`melodex.audio.fingerprint`, stored in the store's ``chromaprint`` column) is
a sequence of 32-bit items, one per :data:`ITEM_SECONDS` of audio. Two copies of one recording
agree on most bits item by item; a copy with seconds cut off its start agrees once shifted by
that many items. The raw share of agreeing bits flatters some audio: for noise-like or static
music several of Chromaprint's 32 bits hardly ever change, so two different clips of one style
agree on them anyway (two demo "Noise Beat" clips of one artist: 0.91 of the bits). The measure
is therefore Cohen's kappa over the bits: (observed - expected) / (1 - expected), where
``expected`` is the agreement that the two fingerprints' bit frequencies give by chance.

A cut seldom falls on the item grid. Halfway between two items, a copy's bits agree with
neither neighbour as well as an aligned copy's do: the plain kappa of an uncut demo clip against
itself cut by 2.5 items fell to 0.79-0.87, and to 0.76-0.84 through a low-rate codec, below the
earlier threshold of 0.78, so such copies went unreported. :func:`agreement` therefore compares an
item of the copy with the two items of the original it lies between, on the bits those two hold
alike (about two thirds of them); on the grid that is the plain comparison.

Measured (``benchmarks/bench_fingerprint.py --files 128`` on the tests' small demo, 128 clips of
10 s; 8 clips in an earlier run): clips cut at 0, 1/4, 1/2 and 3/4 of an item past 2 items, as
they are and through 22.05 kHz mono MP3 48k, Ogg and AAC 64k: 0.963-1.0 (item by item: from
0.77). All 8,128 pairs of different clips within +-1.8 s: at most 0.79 (a drone the demo renders
almost identically twice; item by item 0.80), the next 0.74. :data:`MATCH_AGREEMENT` lies
between. Another take of a piece scores about 0.2.

Only numpy here: the fingerprints were computed when the audio was decoded.
"""

from __future__ import annotations

import numpy as np

from melodex.constants import DUPLICATE_MATCH_AGREEMENT

MATCH_AGREEMENT = DUPLICATE_MATCH_AGREEMENT  # kappa from which two fingerprints are one recording
ITEM_SECONDS = 4096 / 3 / 11025  # as melodex.audio.fingerprint.ITEM_SECONDS
MAX_SHIFT_SECONDS = 15.0  # the most cut off a copy's start that is still found
MIN_OVERLAP_SECONDS = 4.0  # compared audio needed for a verdict


def from_bytes(raw: bytes | None) -> np.ndarray | None:
    """Stored bytes -> items [shape=(n,), uint32]; None for a missing fingerprint."""
    if raw is None:
        return None
    return np.frombuffer(raw, dtype="<u4", count=len(raw) // 4).astype(np.uint32)


def kappa(a: np.ndarray, b: np.ndarray, *, held: np.ndarray | None = None) -> float:
    """Cohen's kappa of two aligned fingerprints of equal length: agreement beyond their bits' chance.

    ``held`` (items of the same length, uint32) counts only the bits set in it, position by
    position: the agreement and the chance agreement are both taken over those bits alone.
    """
    if held is None:
        held = np.full(len(a), 0xFFFFFFFF, dtype=np.uint32)
    mask, ones_a, ones_b = (_bits(x) for x in (held, a, b))  # [shape=(n, 32)] bool
    n = mask.sum(axis=0)
    if not n.sum():
        return 0.0
    observed = (mask & (ones_a == ones_b)).sum() / n.sum()
    px, py = (mask & ones_a).sum(axis=0) / np.maximum(n, 1), (mask & ones_b).sum(axis=0) / np.maximum(n, 1)
    expected = float((n * (px * py + (1.0 - px) * (1.0 - py))).sum() / n.sum())
    return 0.0 if expected >= 1.0 else (observed - expected) / (1.0 - expected)


def _bits(items: np.ndarray) -> np.ndarray:
    """Items [shape=(n,)] uint32 -> their bits [shape=(n, 32)] bool."""
    raw = np.ascontiguousarray(items, dtype="<u4").view(np.uint8)
    return np.unpackbits(raw).reshape(len(items), 32).astype(bool)


def agreement(a: np.ndarray, b: np.ndarray, *, shifts: tuple[float, float] | None = None,
              min_overlap_seconds: float = MIN_OVERLAP_SECONDS) -> tuple[float, float]:
    """(kappa, shift in seconds) of fingerprint ``b`` against ``a`` (items, uint32) where they align best.

    A positive shift means ``b`` starts that much later into the recording than ``a`` (``b`` was cut
    at the start). Shifts from ``shifts[0]`` to ``shifts[1]`` seconds are tried (default up to
    :data:`MAX_SHIFT_SECONDS` each way), keeping at least ``min_overlap_seconds`` of overlap, all at
    once (XORs and popcounts per item pair). A cut rarely falls on the item grid: item ``j`` of ``b``
    then lies between items ``j + s`` and ``j + s + 1`` of ``a``, so it is compared on the bits that
    those two hold alike (:func:`kappa` with ``held``); the ``s`` where most of those agree is the
    alignment, and the shift reported is ``s`` or ``s + 1``, whichever ``b`` is nearer. The narrower
    the range, the less chance two unrelated fingerprints find a shift where they agree.
    """
    low, high = shifts if shifts is not None else (-MAX_SHIFT_SECONDS, MAX_SHIFT_SECONDS)
    a, b = np.ascontiguousarray(a, dtype="<u4"), np.ascontiguousarray(b, dtype="<u4")
    steps = np.arange(int(np.floor(low / ITEM_SECONDS)) - 1, int(np.ceil(high / ITEM_SECONDS)) + 1)
    if len(a) < 2 or not len(b):
        return 0.0, 0.0
    reach = int(np.abs(steps).max()) + 1
    padded = np.zeros(len(a) + 2 * reach + len(b), dtype="<u4")
    padded[reach:reach + len(a)] = a
    inside = np.zeros(len(padded), dtype=bool)
    inside[reach:reach + len(a) - 1] = True  # an item of a that has a next one
    # row j of b meets rows j + s and j + s + 1 of a: windows of the padded a per s [shape=(shifts, len(b))]
    windows = np.lib.stride_tricks.sliding_window_view(padded, len(b))
    here, after = windows[reach + steps], windows[reach + steps + 1]
    valid = np.lib.stride_tricks.sliding_window_view(inside, len(b))[reach + steps]
    held = ~(here ^ after)
    wrong = (_popcount((here ^ b[None]) & held) * valid).sum(axis=1)
    kept = (_popcount(held) * valid).sum(axis=1)
    n = valid.sum(axis=1)
    observed = np.where(n >= max(1, round(min_overlap_seconds / ITEM_SECONDS)),
                        1.0 - wrong / np.maximum(kept, 1), -1.0)
    best = int(np.argmax(observed))
    if observed[best] < 0:
        return 0.0, 0.0
    shift, size = int(steps[best]), int(n[best])
    lo, hi = max(0, shift), max(0, -shift)
    a_here, a_after, b_part = a[lo:lo + size], a[lo + 1:lo + 1 + size], b[hi:hi + size]
    score = kappa(a_here, b_part, held=~(a_here ^ a_after))
    nearer = shift + int(_popcount(a_after ^ b_part).sum() < _popcount(a_here ^ b_part).sum())
    return (float(score), nearer * ITEM_SECONDS) if score > 0 else (0.0, 0.0)


def _popcount(items: np.ndarray) -> np.ndarray:
    """Set bits of each uint32 item [same shape, int64]."""
    return np.bitwise_count(items).astype(np.int64)
