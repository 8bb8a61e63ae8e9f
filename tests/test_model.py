"""The CNN's shapes and the safe checkpoint format."""

from __future__ import annotations

import pickle

import pytest
import torch

from melodex.errors import ModelLoadError
from melodex.features.mfcc import FeatureConfig
from melodex.model.checkpoint import load_checkpoint, load_model, save_checkpoint
from melodex.model.cnn import GenreCNN, ModelConfig


def test_shapes_and_flattened_size():
    model = GenreCNN(ModelConfig(n_classes=8)).eval()
    assert model.config.flattened_size == 256
    x = torch.randn(4, 20, 640)
    emb, logits = model.embed_and_classify(x)
    assert emb.shape == (4, 512) and logits.shape == (4, 8)
    assert torch.allclose(model(x), logits) and torch.allclose(model.embed(x), emb)
    assert model(x.unsqueeze(1)).shape == (4, 8)
    with pytest.raises(ValueError, match="expected MFCCs"):
        model(torch.randn(2, 13, 640))


def test_layers_are_as_specified():
    model = GenreCNN(ModelConfig(n_classes=8))
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128, 256]
    drops = [m.p for m in model.features if isinstance(m, torch.nn.Dropout)]
    assert drops == [0.25] * 4
    assert model.embedding[0].in_features == 256 and model.embedding[0].out_features == 512
    assert model.embedding[2].p == 0.5


def test_headless_model_round_trips_with_no_labels(tmp_path):
    model = GenreCNN(ModelConfig(n_classes=0)).eval()
    assert model.headless and model.head is None
    x = torch.randn(2, 20, 640)
    emb, logits = model.embed_and_classify(x)
    assert emb.shape == (2, 512) and logits is None
    with pytest.raises(ValueError, match="no genre head"):
        model(x)
    path = tmp_path / "headless.pth"
    save_checkpoint(path, model, [], FeatureConfig())
    again, ckpt = load_model(path)
    assert ckpt.headless and ckpt.labels == [] and again.headless
    assert "headless (no genre head)" in repr(ckpt) and "0 labels" not in repr(ckpt)
    assert torch.allclose(again.embed(x), model.embed(x))


def test_checkpoint_round_trip(tiny_checkpoint):
    model, ckpt = load_model(tiny_checkpoint)
    assert ckpt.labels == ["Folk", "Pop", "Rock"]
    assert ckpt.metadata["note"] == "test"
    assert not model.training
    # loading twice gives the same numbers
    x = torch.randn(2, 20, 640)
    again, _ = load_model(tiny_checkpoint)
    assert torch.allclose(model(x), again(x))


class Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def test_pickle_payload_is_refused_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        pickle.dump({"format": "melodex-checkpoint", "x": Payload()}, f)
    with pytest.raises(ModelLoadError, match="refused"):
        load_checkpoint(evil)
    assert not (tmp_path / "PWNED").exists()
    torch.save({"format": "melodex-checkpoint", "x": Payload()}, evil)
    with pytest.raises(ModelLoadError, match="refused"):
        load_checkpoint(evil)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        ({"weights": torch.zeros(2)}, "not a Melodex checkpoint"),
        ({"format": "melodex-checkpoint", "version": 1}, "malformed"),
    ],
)
def test_foreign_checkpoints_are_refused(tmp_path, content, message):
    path = tmp_path / "other.pth"
    torch.save(content, path)
    with pytest.raises(ModelLoadError, match=message):
        load_checkpoint(path)


def test_missing_and_garbage(tmp_path):
    with pytest.raises(ModelLoadError, match="no such model"):
        load_checkpoint(tmp_path / "none.pth")
    with pytest.raises(ModelLoadError, match="holds no model_weights.pth"):
        load_checkpoint(tmp_path)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelLoadError, match="not a readable torch checkpoint"):
        load_checkpoint(junk)
