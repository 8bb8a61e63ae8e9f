"""The contrastive views' batch augmentations: SpecAugment-style masks and a second clip mixed in."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from melodex.training.augment import gain_mfcc
from melodex.training.trainer import DEFAULT_FEATURES
from melodex.training.view_augment import MASKS, MIX_DB, mask_views, mix_views


@pytest.fixture
def views() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(16, 20, 120) * 10 - 30


@pytest.mark.parametrize("width", [0.1, 0.3])
def test_masks_set_at_most_their_width_of_frames_and_coefficients_to_the_fill(views, width):
    fill = torch.arange(20, dtype=torch.float32) + 1000
    masked = mask_views(views, fill, width)
    hidden = masked != views
    assert torch.equal(masked[hidden], fill[None, :, None].expand_as(views)[hidden])
    frames = hidden.all(dim=1).sum(dim=1)  # frames hidden in every coefficient
    coefficients = hidden.all(dim=2).sum(dim=1)
    assert int(frames.max()) <= MASKS * math.floor(width * 120) and int(coefficients.max()) <= MASKS * math.floor(width * 20)
    assert frames.float().mean() > 0 and coefficients.float().mean() > 0


def test_no_mask_and_no_mix_leave_the_views_as_they_are(views):
    assert mask_views(views, torch.zeros(20), 0.0) is views
    assert mix_views(views, 0.0, DEFAULT_FEATURES) is views
    single = views[:1]  # nothing to mix in
    assert mix_views(single, 1.0, DEFAULT_FEATURES) is single


def test_mixing_a_clip_with_itself_is_a_gain_of_at_most_one_db(views):
    same = views[:1].repeat(8, 1, 1)
    mixed = mix_views(same, 1.0, DEFAULT_FEATURES)
    low, high = (10 * math.log10(1 + 10 ** (-db / 10)) for db in (MIX_DB[1], MIX_DB[0]))
    for row in mixed:  # the sum of two copies, the second `below` dB down: the first, louder by a gain
        errors = [float(np.abs(gain_mfcc(same[0].numpy(), g, DEFAULT_FEATURES) - row.numpy()).max())
                  for g in np.linspace(low, high, 2001)]
        assert min(errors) < 1e-2


def test_mixing_changes_a_view_less_than_the_other_clip_differs(views):
    torch.manual_seed(1)
    mixed = mix_views(views, 1.0, DEFAULT_FEATURES)
    change = (mixed - views).abs().mean()
    assert 0 < change < (views - views.roll(1, 0)).abs().mean() / 2
