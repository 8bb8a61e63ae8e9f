"""The genre CNN whose 512-d embedding layer drives every analysis.

Input: MFCCs of shape ``(batch, n_mfcc, n_frames)`` = ``(B, 20, 640)`` (a channel axis of 1
may be present). Each MFCC coefficient is first standardised with the training set's mean and
standard deviation, kept as buffers so they travel inside the checkpoint.

Four blocks of Conv2d(3x3, same padding) -> ReLU -> BatchNorm2d -> MaxPool2d(2) ->
Dropout(0.25), with 32, 64, 128 and 256 filters, take the map from 20 x 640 to
10 x 320 -> 5 x 160 -> 2 x 80 -> 1 x 40. A global average pool then leaves 256 x 1 x 1, so
the **flattened size is 256** whatever the number of frames. Linear(256 -> 512) -> ReLU ->
Dropout(0.5) is the embedding; Linear(512 -> n_classes) is the genre head.

A model with ``n_classes == 0`` is *headless* (trained without labels, e.g. contrastively): it
has no genre head, :meth:`GenreCNN.embed_and_classify` returns ``(embeddings, None)`` and its
checkpoint carries an empty label list.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from melodex.constants import N_FRAMES, N_MFCC
from melodex.util.settings import known_fields


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a :class:`GenreCNN`; saved in every checkpoint.

    ``n_classes == 0`` builds a headless model (embedding only, no genre head)."""

    n_classes: int
    n_mfcc: int = N_MFCC
    n_frames: int = N_FRAMES
    channels: tuple[int, ...] = (32, 64, 128, 256)
    embedding_dim: int = 512
    conv_dropout: float = 0.25
    embedding_dropout: float = 0.5

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["channels"] = list(self.channels)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        data = known_fields(cls, data, "model parameters")
        if "channels" in data:
            data["channels"] = tuple(int(c) for c in data["channels"])
        return cls(**data)

    @property
    def flattened_size(self) -> int:
        """Features entering the embedding layer: the last block's channels (global pooling)."""
        return self.channels[-1]


class GenreCNN(nn.Module):
    """MFCC -> 512-d embedding -> genre logits."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        blocks: list[nn.Module] = []
        in_channels = 1
        for out_channels in config.channels:
            blocks += [
                nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.BatchNorm2d(out_channels),
                nn.MaxPool2d(2),
                nn.Dropout(config.conv_dropout),
            ]
            in_channels = out_channels
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.embedding = nn.Sequential(
            nn.Linear(config.flattened_size, config.embedding_dim),
            nn.ReLU(inplace=True),
            nn.Dropout(config.embedding_dropout),
        )
        self.head = nn.Linear(config.embedding_dim, config.n_classes) if config.n_classes > 0 else None
        self.register_buffer("feature_mean", torch.zeros(config.n_mfcc))
        self.register_buffer("feature_std", torch.ones(config.n_mfcc))

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store per-coefficient statistics (shape ``(n_mfcc,)``) of the training features."""
        self.feature_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.feature_std.copy_(torch.clamp(torch.as_tensor(std, dtype=torch.float32), min=1e-6))

    def _prepare(self, mfcc: torch.Tensor) -> torch.Tensor:
        if mfcc.dim() == 4:
            mfcc = mfcc.squeeze(1)
        if mfcc.dim() != 3 or mfcc.shape[1] != self.config.n_mfcc:
            raise ValueError(
                f"expected MFCCs of shape (batch, {self.config.n_mfcc}, frames), got {tuple(mfcc.shape)}"
            )
        x = (mfcc - self.feature_mean[:, None]) / self.feature_std[:, None]
        return x.unsqueeze(1)

    def embed(self, mfcc: torch.Tensor) -> torch.Tensor:
        """MFCCs ``(B, n_mfcc, T)`` -> embeddings ``(B, embedding_dim)`` (after ReLU)."""
        x = self.pool(self.features(self._prepare(mfcc))).flatten(1)
        return self.embedding(x)

    @property
    def headless(self) -> bool:
        """True for a model without a genre head (``n_classes == 0``)."""
        return self.head is None

    def forward(self, mfcc: torch.Tensor) -> torch.Tensor:
        """MFCCs ``(B, n_mfcc, T)`` -> genre logits ``(B, n_classes)``."""
        if self.head is None:
            raise ValueError("this model has no genre head (it was trained without labels); use embed()")
        return self.head(self.embed(mfcc))

    def embed_and_classify(self, mfcc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One pass giving both ``(embeddings, logits)``; logits are ``None`` for a headless model."""
        emb = self.embed(mfcc)
        return emb, (self.head(emb) if self.head is not None else None)


def place_model(model: GenreCNN, device: torch.device | str) -> GenreCNN:
    """Move ``model`` to ``device`` in the memory layout that runs fastest there.

    On the CPU that is channels-last: the same numbers (to ~1e-8) with a forward pass ~2.4x
    and a training step ~1.3x faster, because channels-first max pooling is slow there.
    """
    device = torch.device(device)
    model = model.to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    return model
