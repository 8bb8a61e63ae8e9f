"""The MFCC of more than the first segment of each track, for contrastive views drawn across a whole track.

The MFCC cache holds each track's first 30-s segment only, which is all that inference and the index
embed. A contrastive pair cut from those 30 s teaches the model to recognise the same few seconds again
(local texture); a pair cut from two places minutes apart in one track (CLMR and COLA crop anywhere in
the track) asks it to find what the whole track shares: instruments, production, style, the artist.

:class:`SegmentBank` keeps, per training track, the MFCC of up to ``segments - 1`` further full 30-s
segments (non-overlapping windows after the first, spread evenly over the track's length), made once by
streaming the file (memory: one window of audio and the track's MFCCs, ~51 kB per segment) and kept on
disk beside the cache, read memory-mapped, so a run's memory stays bounded whatever the number of files.
The first segment comes from the cache, as before; a track shorter than two segments has no further ones.

Layout: ``<cache_dir>/segments/<fingerprint>/<key[:3]>/<key>-<size>-<mtime_ns>.npy``, float32
``(k, n_mfcc, n_frames)`` with ``0 <= k < segments``. The fingerprint hashes the feature settings and
``segments``, and the name carries the source file's size and mtime, so a changed setting or a replaced
file gets new segments. Without a cache directory the bank is a scratch folder deleted after the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np

from melodex.audio.decode import stream_audio
from melodex.audio.segments import sliding_segments
from melodex.datasets.base import Track
from melodex.features.mfcc import FeatureConfig, compute_mfcc
from melodex.training.track_bank import TrackBank

log = logging.getLogger(__name__)

SEGMENT_DIR = "segments"


def fingerprint(features: FeatureConfig, segments: int) -> str:
    """A short hash of what shapes an entry: the feature settings and the number of segments."""
    payload = json.dumps({"version": 1, "features": features.to_dict(), "segments": segments}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def spread(available: int, wanted: int) -> list[int]:
    """``wanted`` indices out of ``range(available)``, evenly spread, always with the first and the
    last (all of them when ``available <= wanted``)."""
    if available <= wanted:
        return list(range(available))
    return sorted({round(float(i)) for i in np.linspace(0, available - 1, wanted)})


def make_segments(track: Track, features: FeatureConfig, segments: int) -> np.ndarray:
    """The MFCC of up to ``segments - 1`` full segments after the first one of ``track``
    [shape=(k, n_mfcc, n_frames), k < segments], spread evenly over the file (every full segment is
    a non-overlapping window; one shorter than a segment at the end is left out).

    Raises ``AudioLoadError`` when the file cannot be decoded.
    """
    sr = features.sample_rate
    windows = sliding_segments(stream_audio(track.path, sr=sr), sr=sr, window_seconds=features.segment_seconds,
                               last="drop")
    mfccs = [compute_mfcc(w.audio, features) for w in windows if w.index > 0]  # the first one is the cache's
    chosen = [mfccs[i] for i in spread(len(mfccs), segments - 1)]
    empty = np.zeros((0, features.n_mfcc, features.n_frames), np.float32)
    out = np.stack(chosen).astype(np.float32) if chosen else empty
    if not np.isfinite(out).all():
        raise ValueError("a segment's MFCC holds NaN or infinity")
    return out


class SegmentBank(TrackBank):
    """The further segments of a set of tracks, on disk under ``root`` or (``root`` None) in a scratch folder."""

    def __init__(self, root: str | Path | None, features: FeatureConfig, segments: int):
        super().__init__(root, fingerprint(features, segments))
        self.features, self.segments = features, segments

    @classmethod
    def beside(cls, cache_dir: str | Path | None, features: FeatureConfig, segments: int) -> SegmentBank:
        """The bank of an MFCC cache: under ``<cache_dir>/segments``, or a scratch folder without a cache."""
        return cls(None if cache_dir is None else Path(cache_dir) / SEGMENT_DIR, features, segments)

    def get(self, track: Track) -> np.ndarray | None:
        """The further segments of ``track`` [shape=(k, n_mfcc, n_frames)], memory-mapped, or None."""
        found = self.load(track)
        if found is None:
            return None
        shape_ok = found.ndim == 3 and found.shape[0] < self.segments and found.shape[1:] == (
            self.features.n_mfcc, self.features.n_frames)
        return found if shape_ok and found.dtype == np.float32 else None

    def fill(self, tracks: Sequence[Track], *, num_workers: int = 0, progress: bool = True) -> dict[str, float]:
        """Make the segments every track of ``tracks`` lacks; returns counts of ``{"tracks", "made",
        "kept", "failed", "segments"}`` (``segments``: further segments over all the tracks now in the
        bank) and the ``"seconds"`` it took. A file that cannot be decoded is counted, never raised: its
        views come from its first segment alone."""
        started = time.perf_counter()
        make = partial(make_segments, features=self.features, segments=self.segments)
        counts = {"tracks": len(tracks), **self.make_missing(tracks, make, num_workers=num_workers, progress=progress,
                                                             desc="track segments", unit="track")}
        counts["segments"] = sum(len(s) for s in map(self.get, tracks) if s is not None)
        counts["seconds"] = round(time.perf_counter() - started, 1)
        log.info("views across tracks: %(segments)d further segments of %(tracks)d training tracks (%(made)d tracks "
                 "read now in %(seconds).0f s, %(kept)d kept from before, %(failed)d not decodable)", counts)
        return counts
