"""The inference pass that pools before ReLU and BatchNorm gives the model's own outputs."""

from __future__ import annotations

import pytest
import torch

from melodex.inference.fast_forward import FastForward, max_pool2
from melodex.model.cnn import GenreCNN, ModelConfig, place_model


def _model(n_classes: int = 4, *, negative_bn: bool = False, seed: int = 0) -> GenreCNN:
    """A small GenreCNN with BatchNorm statistics far from their defaults (as after training)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GenreCNN(ModelConfig(n_classes=n_classes, channels=(8, 16, 16, 32), embedding_dim=64))
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.normal_(0.0, 0.3)
            bn.running_var.uniform_(0.3, 3.0)
            bn.weight.data.uniform_(0.2, 2.0)
            bn.bias.data.normal_(0.0, 0.3)
        if negative_bn:
            model.features[2].weight.data[3] = -0.7
    return place_model(model, "cpu").eval()


@pytest.mark.parametrize("n_classes", [4, 0], ids=["with head", "headless"])
@pytest.mark.parametrize("batch", [1, 5])
def test_pooling_first_gives_the_same_outputs(n_classes, batch):
    model = _model(n_classes)
    fast = FastForward(model)
    assert fast.reordered
    mfcc = torch.randn(batch, 20, 640, generator=torch.Generator().manual_seed(batch)) * 30
    with torch.inference_mode():
        emb, logits = fast(mfcc)
        ref_emb, ref_logits = model.embed_and_classify(mfcc)
    torch.testing.assert_close(emb, ref_emb, rtol=0, atol=1e-6)
    if n_classes:
        torch.testing.assert_close(logits, ref_logits, rtol=0, atol=1e-6)
    else:
        assert logits is None and ref_logits is None


def test_a_negative_batchnorm_weight_keeps_the_models_own_pass():
    model = _model(negative_bn=True)
    fast = FastForward(model)
    assert not fast.reordered  # max pooling would have become a min there
    mfcc = torch.randn(2, 20, 640) * 30
    with torch.inference_mode():
        torch.testing.assert_close(fast(mfcc)[0], model.embed_and_classify(mfcc)[0], rtol=0, atol=0)


def test_training_mode_and_other_models_keep_their_own_pass():
    assert not FastForward(_model().train()).reordered
    assert not FastForward(torch.nn.Linear(3, 3)).reordered


@pytest.mark.parametrize("shape", [(2, 8, 20, 640), (3, 16, 5, 161), (1, 4, 3, 2), (2, 32, 2, 5)])
@pytest.mark.parametrize("channels_last", [True, False], ids=["channels-last", "contiguous"])
def test_max_pool2_is_max_pool2d_bit_for_bit(shape, channels_last):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(sum(shape)))
    x[0, 0, 0, 0] = float("nan")  # a NaN wins its window in both
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out, ref = max_pool2(x), torch.nn.functional.max_pool2d(x, 2)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=0, atol=0, equal_nan=True)


def test_other_pooling_keeps_the_models_own_pass():
    model = _model()
    model.features[3] = torch.nn.MaxPool2d(2, ceil_mode=True)
    assert not FastForward(model).reordered
