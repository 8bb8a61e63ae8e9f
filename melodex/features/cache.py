"""The on-disk MFCC cache: one ``.npy`` per track, written so that a crash never corrupts it.

Layout of a cache directory::

    features.json              {"format": "melodex-mfcc-cache", "version": 1, "feature_config": {...}}
    000/000123.npy             float32 MFCC of the track's first segment, shape (n_mfcc, n_frames)
    index.csv                  key,seconds - one line per finished track, appended and flushed
    sources.csv                key,size,mtime_ns,blake2b,features - the source file each entry was made from
    failures.csv               key,path,reason - every file that could not be decoded

``seconds`` is the length of real (unpadded) audio in the cached segment: 30.0 for any track at
least one segment long, less for a shorter file (whose MFCC is padded with silence).

Each ``.npy`` is written to a temporary name and moved into place with ``os.replace``, and its
``index.csv`` line is appended only afterwards. So a track is *complete* when its ``.npy`` exists
and ``index.csv`` names it; a run killed at any point leaves at worst a stray temporary file
(removed by the next run) or an ``.npy`` without its index line (redone by the next run).

A cache belongs to one :class:`~melodex.features.mfcc.FeatureConfig`; opening it for another raises
:class:`CacheMismatchError` rather than mixing features made two ways.

An entry is keyed by more than its track id: ``sources.csv`` records the identity of the file it
was computed from (size, ``mtime_ns`` and a BLAKE2b digest of its bytes, the last read while the
file is decoded anyway) and a fingerprint of the feature parameters. :meth:`FeatureCache.freshness`
compares them with the file as it is now, so a file replaced under the same id is never answered
with the MFCC of audio that no longer exists. The line is appended after the ``.npy`` is in place
and before its ``index.csv`` line (latest line wins), so a killed run leaves at worst an identity
that no longer matches, and the entry is recomputed. ``index.csv`` keeps its two columns, so a
cache stays readable by older versions. Entries without an identity line (caches written before
it existed) count as ``"legacy"``: ``preprocess`` recomputes them once. :meth:`get` and :meth:`has`
check the identity only when given the file's path (training asks by key alone, as before).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from melodex.errors import CacheMismatchError, OutputError
from melodex.features.mfcc import DEFAULT_FEATURES, FeatureConfig
from melodex.util.atomic import atomic_write, describe_os_error
from melodex.util.csvlog import Failure, csv_line, read_csv_lines

CACHE_FORMAT = "melodex-mfcc-cache"
CACHE_VERSION = 1
FEATURES_NAME = "features.json"
INDEX_NAME = "index.csv"
FAILURES_NAME = "failures.csv"
SOURCES_NAME = "sources.csv"
INDEX_HEADER = ("key", "seconds")
FAILURES_HEADER = ("key", "path", "reason")
SOURCES_HEADER = ("key", "size", "mtime_ns", "blake2b", "features")
HASH_LIMIT = 256 * 2**20  # bytes; larger files are identified by size and mtime alone (digest "")


@dataclass(frozen=True)
class SourceIdentity:
    """What a cached MFCC was made from: the file's size, ``mtime_ns`` and BLAKE2b-128 digest.

    ``digest`` is ``""`` when it was not computed (a file over :data:`HASH_LIMIT`)."""

    size: int
    mtime_ns: int
    digest: str = ""

    @classmethod
    def of(cls, path: str | Path, *, digest: bool = True) -> SourceIdentity:
        """The identity of ``path`` now (stat first, so a change while hashing is seen next time).

        Raises OSError when the file cannot be read."""
        info = os.stat(path)
        hashed = file_digest(path) if digest and info.st_size <= HASH_LIMIT else ""
        return cls(int(info.st_size), int(info.st_mtime_ns), hashed)

    def same_stat(self, other: SourceIdentity) -> bool:
        return (self.size, self.mtime_ns) == (other.size, other.mtime_ns)


def file_digest(path: str | Path) -> str:
    """BLAKE2b-128 hex digest of the bytes of ``path`` (about 1 GB/s: a few ms for a track)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def features_fingerprint(config: FeatureConfig) -> str:
    """A short hash of every feature parameter; an entry made with others is stale."""
    text = json.dumps(config.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class FeatureCache:
    """Read access (and the bookkeeping for writing) to an MFCC cache directory.

    Parameters
    ----------
    cache_dir : str or Path
        The cache directory; it need not exist yet.
    config : FeatureConfig
        The feature parameters the caller wants. When the directory holds a ``features.json``
        for other parameters, :meth:`check` raises :class:`CacheMismatchError`.
    """

    def __init__(self, cache_dir: str | Path, config: FeatureConfig = DEFAULT_FEATURES):
        self.root = Path(cache_dir)
        self.config = config
        self._seconds: dict[str, float] | None = None
        self._sources: dict[str, tuple[SourceIdentity, str]] | None = None
        self._compatible: bool | None = None
        self.fingerprint = features_fingerprint(config)

    # -- the cache as a whole -------------------------------------------------------------
    @property
    def features_path(self) -> Path:
        return self.root / FEATURES_NAME

    @property
    def index_path(self) -> Path:
        return self.root / INDEX_NAME

    @property
    def failures_path(self) -> Path:
        return self.root / FAILURES_NAME

    @property
    def sources_path(self) -> Path:
        return self.root / SOURCES_NAME

    def exists(self) -> bool:
        """True when the directory holds a ``features.json`` (it has been started)."""
        return self.features_path.is_file()

    def saved_config(self) -> FeatureConfig | None:
        """The FeatureConfig in ``features.json``, or None when there is none yet."""
        if not self.exists():
            return None
        try:
            data = json.loads(self.features_path.read_text(encoding="utf-8"))
            if data.get("format") != CACHE_FORMAT:
                raise ValueError(f"no 'format': '{CACHE_FORMAT}' field")
            return FeatureConfig.from_dict(data["feature_config"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CacheMismatchError(f"{self.features_path}: not a Melodex MFCC cache ({exc})") from None

    def is_compatible(self) -> bool:
        """True when the cache exists and was made with this cache's FeatureConfig."""
        try:
            return self.saved_config() == self.config
        except CacheMismatchError:
            return False

    def check(self) -> None:
        """Raise :class:`CacheMismatchError` when the cache was made with other parameters."""
        saved = self.saved_config()
        if saved is not None and saved != self.config:
            raise CacheMismatchError(
                f"{self.root}: cache was made with other feature parameters: {self.differences(saved)}; "
                "use another --cache_dir or delete this one"
            )

    def differences(self, saved: FeatureConfig) -> str:
        """The parameters where ``saved`` differs from this cache's, as ``name=theirs (wanted ours)``."""
        theirs, ours = saved.to_dict(), self.config.to_dict()
        return ", ".join(f"{k}={theirs[k]!r} (wanted {ours[k]!r})" for k in ours if theirs.get(k) != ours[k])

    def initialise(self) -> None:
        """Create the directory and its ``features.json`` (after :meth:`check`)."""
        self.check()
        if self.exists():
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.root}: cannot create the cache directory ({describe_os_error(exc)})") from None
        payload = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "feature_config": self.config.to_dict()}
        with atomic_write(self.features_path, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2)
            handle.write("\n")

    # -- one track --------------------------------------------------------------------------
    def path_for(self, key: str) -> Path:
        """Where the MFCC of ``key`` lives: ``<cache>/<key[:3]>/<key>.npy``."""
        return self.root / key[:3] / f"{key}.npy"

    def seconds(self) -> dict[str, float]:
        """key -> seconds of real audio, for every track ``index.csv`` lists (read once)."""
        if self._seconds is None:
            self._seconds = {}
            for key, value in read_csv_lines(self.index_path, INDEX_HEADER):
                try:
                    self._seconds[key] = float(value)
                except ValueError:
                    continue
        return self._seconds

    def sources(self) -> dict[str, tuple[SourceIdentity, str]]:
        """key -> (identity of the source file, feature fingerprint), latest line wins (read once)."""
        if self._sources is None:
            self._sources = {}
            for key, size, mtime_ns, digest, features in read_csv_lines(self.sources_path, SOURCES_HEADER):
                try:
                    self._sources[key] = (SourceIdentity(int(size), int(mtime_ns), digest), features)
                except ValueError:
                    continue
        return self._sources

    def identity(self, key: str) -> SourceIdentity | None:
        """The recorded identity of the file ``key`` was made from, when made with these parameters."""
        found = self.sources().get(key)
        return found[0] if found is not None and found[1] == self.fingerprint else None

    def freshness(self, key: str, path: str | Path | None) -> str:
        """Whether the entry of ``key`` still stands for the file at ``path``.

        ``"fresh"`` (complete, same size and mtime, same parameters), ``"missing"`` (not
        complete), ``"legacy"`` (no identity recorded), ``"features"`` (made with other
        parameters) or ``"stat"`` (size or mtime differ: the content may have changed). A file
        that cannot be stat'ed is judged by the record alone (``"fresh"`` when there is one).
        """
        if not self.has(key):
            return "missing"
        found = self.sources().get(key)
        if found is None:
            return "legacy"
        if found[1] != self.fingerprint:
            return "features"
        if path is None:
            return "fresh"
        try:
            now = SourceIdentity.of(path, digest=False)
        except OSError:
            return "fresh"
        return "fresh" if found[0].same_stat(now) else "stat"

    def has(self, key: str, path: str | Path | None = None) -> bool:
        """True when ``key`` is complete: its ``.npy`` is in place and ``index.csv`` lists it.

        With ``path``, also that the entry was made from that file as it is now (see
        :meth:`freshness`)."""
        if path is not None:
            return self.freshness(key, path) == "fresh"
        return key in self.seconds() and self.path_for(key).is_file()

    def get(self, key: str, path: str | Path | None = None) -> np.ndarray | None:
        """The cached MFCC of ``key``, shape ``(n_mfcc, n_frames)`` float32, or None.

        None when the track is not complete, the cache is for other feature parameters, the
        file does not hold an array of the expected shape, or (given ``path``) the entry was not
        made from the file at ``path`` as it is now.
        """
        if self._compatible is None:
            self._compatible = self.is_compatible()
        if not self._compatible or not self.has(key, path):
            return None
        try:
            mfcc = np.load(self.path_for(key), allow_pickle=False)
        except (OSError, ValueError):
            return None
        if mfcc.shape != (self.config.n_mfcc, self.config.n_frames) or mfcc.dtype != np.float32:
            return None
        return mfcc

    def write(self, key: str, mfcc: np.ndarray) -> Path:
        """Write one MFCC atomically (temporary file, then ``os.replace``); returns its path."""
        path = self.path_for(key)
        # Serialised first: np.save straight into a file reports a full disk as "N requested and
        # M written" without an errno; a plain write says "no space left on device".
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(mfcc, dtype=np.float32), allow_pickle=False)
        with atomic_write(path, "wb") as handle:
            handle.write(buffer.getbuffer())
        return path

    # -- bookkeeping ------------------------------------------------------------------------
    def failures(self) -> dict[str, Failure]:
        """key -> the last recorded failure, from ``failures.csv``."""
        return {key: Failure(key, path, reason) for key, path, reason in read_csv_lines(self.failures_path, FAILURES_HEADER)}

    def write_failures(self, failures: Iterable[Failure]) -> None:
        """Replace ``failures.csv`` atomically with ``failures`` (header only when none)."""
        with atomic_write(self.failures_path, "w", encoding="utf-8", newline="") as handle:
            handle.write(csv_line(*FAILURES_HEADER))
            for failure in failures:
                handle.write(csv_line(failure.key, failure.path, failure.reason))

    def remove_stale_temporaries(self) -> int:
        """Delete temporary files a killed run left behind; returns how many."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for sub in self.root.iterdir():
            if not sub.is_dir():
                continue
            for tmp in sub.glob(".*.tmp"):
                try:
                    tmp.unlink()
                    removed += 1
                except OSError:
                    pass
        return removed
