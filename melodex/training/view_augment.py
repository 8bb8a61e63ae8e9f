"""Augmentations of a batch of contrastive views, applied to the MFCC on the training device.

Two field-standard ways to make the pair task harder than recognising the same few seconds again:

- :func:`mask_views`: SpecAugment-style masking (Park et al. 2019), :data:`MASKS` blocks of frames
  and :data:`MASKS` blocks of coefficients per view, each up to ``width`` of its axis, set to the
  training set's mean of each coefficient (zero once the model standardises its input);
- :func:`mix_views`: another clip of the batch mixed in underneath, :data:`MIX_DB` below the view,
  as CLMR and COLA mix in a random other track. The mix is made in the mel power domain: each
  MFCC is mapped back to a (smoothed) log-mel spectrum by the transposed orthonormal DCT, the
  powers are added and the sum is mapped to the MFCC again.

Both are on by default for new runs (``--spec-mask 0.2 --mix 0.5``; runs saved before them resume
without them). On the default demo (288 tracks, seed 0, 30 epochs) they raise the top-10 same-style
agreement of the embedding from 0.888 to 0.959 and same-artist from 0.351 to 0.368 (mfcc-stats: 0.939
and 0.395); the pair task gets harder (training pair accuracy 0.26 against 0.68).

Each view of a pair is augmented on its own draws (from torch's global generator, which the
trainer seeds per epoch and process), so the two views differ in what they lose.
"""

from __future__ import annotations

import torch

from melodex.features.mfcc import FeatureConfig, dct_matrix

MASKS = 2  # time masks, and coefficient masks, per view
MIX_DB = (6.0, 18.0)  # the mixed-in clip lies this many dB (uniform) below the view


def _bands(n: int, length: int, width: float, device: torch.device) -> torch.Tensor:
    """A bool mask [shape=(n, length)] of :data:`MASKS` random blocks per row, each of 0 to
    ``width * length`` entries."""
    span = torch.arange(length, device=device)
    hidden = torch.zeros(n, length, dtype=torch.bool, device=device)
    for _ in range(MASKS):
        size = (torch.rand(n, 1, device=device) * (width * length + 1)).floor()
        start = (torch.rand(n, 1, device=device) * (length - size + 1)).floor()
        hidden |= (span >= start) & (span < start + size)
    return hidden


def mask_views(views: torch.Tensor, fill: torch.Tensor, width: float) -> torch.Tensor:
    """``views`` [shape=(B, n_mfcc, frames)] with random blocks of frames and of coefficients (each
    up to ``width`` of its axis, :data:`MASKS` of each per view) set to ``fill`` [shape=(n_mfcc,)]."""
    if width <= 0 or not len(views):
        return views
    b, coefficients, frames = views.shape
    hidden = _bands(b, frames, width, views.device)[:, None, :] | _bands(b, coefficients, width, views.device)[:, :, None]
    return torch.where(hidden, fill.to(views)[None, :, None], views)


def mix_views(views: torch.Tensor, prob: float, features: FeatureConfig) -> torch.Tensor:
    """``views`` [shape=(B, n_mfcc, frames)], each with probability ``prob`` mixed with the view of
    another item of the batch (a random shift of the batch order) :data:`MIX_DB` below it."""
    n = len(views)
    if prob <= 0 or n < 2:
        return views
    other = views.roll(int(torch.randint(1, n, ()).item()), dims=0)
    dct = torch.as_tensor(dct_matrix(features.n_mels, features.n_mfcc).copy()).to(views)
    low, high = MIX_DB
    below = low + (high - low) * torch.rand(n, 1, 1, device=views.device)
    mel = dct.T @ views  # (B, n_mels, frames), in dB
    under = dct.T @ other - below
    mixed = dct @ (10.0 * torch.log10(torch.pow(10.0, mel / 10.0) + torch.pow(10.0, under / 10.0)))
    chosen = torch.rand(n, 1, 1, device=views.device) < prob
    return torch.where(chosen, mixed, views)
