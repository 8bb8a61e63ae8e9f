"""What inference produces: frozen per-segment and per-file results.

:class:`~melodex.inference.predictor.Predictor` yields one :class:`FileResult` per audio file; the writers
in :mod:`melodex.inference.writers` serialize them, and the analysis side (library store, similarity)
reads them. Nothing here decodes audio or runs a model.

How a file's numbers are made from its segments:

* ``probabilities``: the softmax of each segment's logits, then the mean over the segments
  (a segment is 30 s of audio; ``first-30s`` mode has one).
* ``embedding``: the mean of the segments' 512-d embeddings (the model's embedding layer,
  after its ReLU).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MODE_FIRST = "first-30s"
MODE_FULL = "full-file"
MODES = (MODE_FIRST, MODE_FULL)


@dataclass(frozen=True)
class SegmentPrediction:
    """One analysed window of a file.

    ``start_time`` and ``end_time`` are seconds from the start of the file; ``end_time`` is
    the end of the real audio in the window (a padded last window ends where the file ends).
    ``probabilities`` [shape=(n_labels,), float32] is the softmax of the window's logits.
    """

    index: int
    start_time: float
    end_time: float
    probabilities: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class FileResult:
    """Inference for one audio file, or the reason it failed.

    Attributes
    ----------
    audio_file : str
        The path as it was found (relative paths stay relative).
    mode : {"first-30s", "full-file"}
    labels : tuple of str
        The model's labels, in the order of ``probabilities``; empty for a model without a genre
        head, whose ``probabilities`` then have shape ``(0,)``.
    duration : float or None
        Real length of the file in seconds (exact when decoded to the end; in first-30s
        mode a file longer than a segment reports its header's length). None on error.
    segments : tuple of SegmentPrediction
        The analysed windows in order; empty on error.
    probabilities : np.ndarray [shape=(n_labels,), float32] or None
        Mean of the segments' softmax probabilities; None on error.
    embedding : np.ndarray [shape=(embedding_dim,), float32] or None
        Mean of the segments' embeddings; None on error or when embeddings were not asked for.
    error : str or None
        Why the file could not be analysed (one line); None on success.
    """

    audio_file: str
    mode: str
    labels: tuple[str, ...] = field(repr=False)
    duration: float | None = None
    segments: tuple[SegmentPrediction, ...] = field(default=(), repr=False)
    probabilities: np.ndarray | None = field(default=None, repr=False)
    embedding: np.ndarray | None = field(default=None, repr=False)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the file was analysed."""
        return self.error is None

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most probable labels as ``(label, probability)``, best first.

        Fewer than ``k`` when the model has fewer labels; empty for a failed file. Ties keep
        the labels' order.
        """
        if self.probabilities is None:
            return []
        order = np.argsort(-self.probabilities, kind="stable")[: max(0, k)]
        return [(self.labels[i], float(self.probabilities[i])) for i in order]

    def all_probabilities(self) -> dict[str, float]:
        """``{label: probability}`` in the model's label order (empty for a failed file)."""
        if self.probabilities is None:
            return {}
        return {label: float(p) for label, p in zip(self.labels, self.probabilities)}

    @classmethod
    def failed(cls, audio_file: str, mode: str, labels: tuple[str, ...], error: str) -> FileResult:
        """The result of a file that could not be analysed."""
        return cls(audio_file=audio_file, mode=mode, labels=labels, error=error)
