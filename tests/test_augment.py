"""Training augmentation: each transform does what it says, a run records it, and it can be switched off.

The transforms are checked on signals whose answer is known (white noise low-passed has no
energy above the cutoff; an MFCC shifted by the gain equals the MFCC of the louder audio). The
runs go through ``melodex train`` on the tiny FMA fixture.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from _helpers_trainer import LAYOUT, interrupted_in_epoch, make_fma_fixture

from melodex.audio.encode import CODECS, TRAINING_CODECS, roundtrip
from melodex.cli import script_main
from melodex.datasets import load_dataset
from melodex.features.mfcc import DEFAULT_FEATURES, compute_mfcc
from melodex.model.checkpoint import load_checkpoint, resolve_model_path
from melodex.model.cnn import place_model
from melodex.training import trainer
from melodex.training.augment import DEFAULT_AUGMENT, AugmentConfig, add_noise, crop_start, gain_mfcc, lowpass
from melodex.training.config import TrainConfig, settings_for_resume
from melodex.training.data import MfccDataset, open_cache
from melodex.training.variants import clean_batchnorm, make_variants

SR = 22050
N_TRAIN = sum(split == "training" for _, _, split in LAYOUT)


def _band_energy(audio: np.ndarray, lo: float, hi: float) -> float:
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(audio.size, 1.0 / SR)
    return float(spectrum[(freqs >= lo) & (freqs < hi)].sum())


@pytest.mark.parametrize("cutoff", [4000.0, 7000.0, 11000.0])
def test_lowpass_removes_the_energy_above_the_cutoff_and_keeps_the_rest(rng, cutoff):
    noise = (0.1 * rng.standard_normal(3 * SR)).astype(np.float32)
    out = lowpass(noise, SR, cutoff)
    assert out.shape == noise.shape and out.dtype == np.float32
    assert _band_energy(out, cutoff + 20, SR / 2) < 1e-6 * _band_energy(noise, cutoff + 20, SR / 2)
    assert _band_energy(out, 0, cutoff - 20) == pytest.approx(_band_energy(noise, 0, cutoff - 20), rel=1e-3)


def test_lowpass_shows_in_the_mfcc_as_high_mel_bands_at_the_floor(rng):
    """What the model sees: above the cutoff the mel power drops by more than 60 dB (to the floor)."""
    from melodex.features.mfcc import MFCC

    noise = torch.from_numpy((0.1 * rng.standard_normal((1, 3 * SR))).astype(np.float32))
    cut = torch.from_numpy(lowpass(noise[0].numpy(), SR, 5000.0))[None]
    module = MFCC(DEFAULT_FEATURES)
    with torch.inference_mode():
        before, after = 10 * torch.log10(module._mel_power(noise)), 10 * torch.log10(module._mel_power(cut) + 1e-12)
    top = slice(-20, None)  # the top 20 mel bands lie above ~7 kHz; the mel power is (batch, band, frame)
    assert float((before[:, top] - after[:, top]).mean()) > 60.0
    assert float((before[:, :40] - after[:, :40]).abs().mean()) < 0.5


@pytest.mark.parametrize("gain_db", [-6.0, 2.5, 6.0])
def test_gain_on_the_mfcc_equals_the_mfcc_of_the_louder_audio(rng, gain_db):
    audio = (0.1 * rng.standard_normal(2 * SR)).astype(np.float32)
    louder = audio * np.float32(10 ** (gain_db / 20))
    expected = compute_mfcc(louder)
    got = gain_mfcc(compute_mfcc(audio), gain_db, DEFAULT_FEATURES)
    np.testing.assert_allclose(got, expected, atol=2e-3)
    assert not np.allclose(got[0], compute_mfcc(audio)[0])  # c0 moved
    np.testing.assert_allclose(got[1:], compute_mfcc(audio)[1:], atol=1e-5)  # nothing else did


@pytest.mark.parametrize("snr_db", [30.0, 50.0])
def test_noise_is_added_at_the_asked_signal_to_noise_ratio(rng, snr_db):
    audio = (0.3 * np.sin(2 * np.pi * 440 * np.arange(2 * SR) / SR)).astype(np.float32)
    noisy = add_noise(audio, snr_db, rng)
    measured = 10 * np.log10(np.mean(audio.astype(np.float64) ** 2) / np.mean((noisy - audio).astype(np.float64) ** 2))
    assert measured == pytest.approx(snr_db, abs=0.3)
    assert np.array_equal(add_noise(np.zeros(100, np.float32), snr_db, rng), np.zeros(100, np.float32))


def test_crop_starts_later_and_pads_the_end():
    audio = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(crop_start(audio, 3, 5), [3, 4, 5, 6, 7])
    np.testing.assert_array_equal(crop_start(audio, 7, 5), [7, 8, 9, 0, 0])


@pytest.mark.parametrize("name", TRAINING_CODECS)
def test_codec_roundtrip_keeps_length_and_music_but_changes_the_samples(rng, name):
    t = np.arange(2 * SR) / SR
    audio = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    out = roundtrip(audio, SR, name)
    assert out.shape == audio.shape and out.dtype == np.float32 and np.isfinite(out).all()
    assert not np.allclose(out, audio, atol=1e-4)  # lossy
    assert _band_energy(out, 400, 480) == pytest.approx(_band_energy(audio, 400, 480), rel=0.2)  # the tone survives
    assert CODECS[name].sample_rate in (None, SR)


@pytest.mark.parametrize("name", sorted(CODECS))
def test_codec_roundtrip_keeps_the_music_in_place(name):
    """Every codec's delay is taken out, AAC's 1024 priming samples included (they were kept: the
    AAC views came out one MFCC hop late), so a click sits where it was."""
    audio = np.zeros(2 * SR, np.float32)
    audio[SR:] = 0.3 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)
    out = roundtrip(audio, SR, name)
    assert abs(int(np.flatnonzero(np.abs(out) > 0.05)[0]) - SR) <= 2


def test_unknown_codec_is_refused():
    with pytest.raises(ValueError, match="unknown codecs"):
        AugmentConfig(codecs=("mp3-999k",))


@pytest.fixture(scope="module")
def fma(tmp_path_factory):
    """The tiny FMA fixture with 6-second clips (room for the crop) and its MFCC cache."""
    root = tmp_path_factory.mktemp("fma")
    audio = make_fma_fixture(root, seconds=6.0)
    cache = root / "mfccs"
    script_main("preprocess", ["--data_dir", str(audio), "--cache_dir", str(cache), "--workers", "1", "-q"])
    return audio, cache


def test_variants_are_augmented_and_repeatable(fma):
    audio, cache = fma
    track = next(t for t in load_dataset(audio).split("training") if t.key == "000002")
    variants = make_variants(track, DEFAULT_FEATURES, DEFAULT_AUGMENT)
    assert variants.shape == (DEFAULT_AUGMENT.variants, 20, 640) and variants.dtype == np.float32
    np.testing.assert_array_equal(variants, make_variants(track, DEFAULT_FEATURES, DEFAULT_AUGMENT))
    clean = np.load(cache / "000" / "000002.npy")
    assert all(not np.allclose(v, clean, atol=1e-2) for v in variants)
    plain = AugmentConfig(crop_seconds=0.0, lowpass_prob=0.0, codec_prob=0.0, noise_prob=0.0)
    np.testing.assert_allclose(make_variants(track, DEFAULT_FEATURES, plain)[0], clean, atol=1e-4)


def _train(audio, cache, out, *extra):
    argv = ["--data_dir", str(audio), "--cache_dir", str(cache), "--epochs", "2", "--batch_size", "4",
            "--output_dir", str(out), "--device", "cpu", "-q", *extra]
    assert script_main("train", argv) == 0
    run = resolve_model_path(out / "latest").parent
    return run, json.loads((run / "params.json").read_text())


def _weights(run):
    return torch.load(run / "model_weights.pth", weights_only=True)["state_dict"]


@pytest.fixture
def one_clean_epoch(monkeypatch):
    """The default augmentation with its warm-up cut to one epoch, so that a 2-epoch run augments its second."""
    settings = dataclasses.replace(DEFAULT_AUGMENT, clean_epochs=1)
    monkeypatch.setattr(trainer, "DEFAULT_AUGMENT", settings)
    return settings


def test_training_augments_by_default_and_records_it(fma, tmp_path, one_clean_epoch):
    audio, cache = fma
    run, params = _train(audio, cache, tmp_path / "a")
    aug = params["augmentation"]
    assert aug["enabled"] is True and params["hyperparameters"]["augment"] is True
    assert aug["prob"] == DEFAULT_AUGMENT.prob and aug["clean_epochs"] == one_clean_epoch.clean_epochs == 1
    assert aug["lowpass_hz"] == [4000.0, 11000.0] and aug["codecs"] == list(TRAINING_CODECS)
    assert {"variants", "prob", "crop_seconds", "noise_snr_db", "gain_db", "codec_prob"} <= aug.keys()
    assert aug["clips"] == N_TRAIN and aug["made"] + aug["kept"] == N_TRAIN - 1 and aug["failed"] == 1  # the broken file
    bank = sorted((cache / "augmented").rglob("*.npy"))
    assert aug["bank_dir"] == str(bank[0].parents[1]) and len(bank) == N_TRAIN - 1
    assert aug["clean_batchnorm"] is True and aug["seconds"] >= 0
    _assert_kept_with_clean_batchnorm(run, params, audio, cache)
    again, params2 = _train(audio, cache, tmp_path / "b")  # the same run again: variants reused, same weights
    assert params2["augmentation"]["kept"] == N_TRAIN - 1 and params2["augmentation"]["made"] == 0
    assert all(torch.equal(a, b) for a, b in zip(_weights(run).values(), _weights(again).values()))


def _assert_kept_with_clean_batchnorm(run, params, audio, cache):
    """The kept model's BatchNorm statistics are those of the clean training clips (dropout off),
    not of the augmented mixture it trained on: estimating them again changes nothing."""
    # in the layout training (and inference) runs it in: channels-first sums differently, by up to ~5e-4 here
    model = place_model(load_checkpoint(run / "model_weights.pth").build_model("cpu"), "cpu")
    kept = {k: v.clone() for k, v in model.state_dict().items() if k.endswith(("running_mean", "running_var"))}
    index = {label: i for i, label in enumerate(params["labels"])}
    clean = MfccDataset([t for t in load_dataset(audio).split("training") if t.label in index], index,
                        DEFAULT_FEATURES, open_cache(cache, DEFAULT_FEATURES))
    assert clean_batchnorm(model, clean, torch.device("cpu"), batch_size=4) == N_TRAIN - 1  # all but the broken file
    assert kept and all(torch.allclose(v, model.state_dict()[k], rtol=1e-4, atol=1e-5) for k, v in kept.items())


def test_no_augment_trains_on_the_cached_mfccs_alone_as_before(fma, tmp_path, one_clean_epoch):
    """The off switch: no variants are made or read, and two runs give the same weights, unlike an augmented one."""
    audio, cache = fma
    fresh = tmp_path / "cache-copy"
    shutil.copytree(cache, fresh, ignore=shutil.ignore_patterns("augmented"))
    plain, params = _train(audio, fresh, tmp_path / "plain", "--no-augment")
    assert params["augmentation"] == {"enabled": False} and params["hyperparameters"]["augment"] is False
    assert not (fresh / "augmented").exists()
    again, _ = _train(audio, fresh, tmp_path / "again", "--no-augment")
    assert all(torch.equal(a, b) for a, b in zip(_weights(plain).values(), _weights(again).values()))
    augmented, _ = _train(audio, fresh, tmp_path / "augmented")
    assert not all(torch.equal(a, b) for a, b in zip(_weights(plain).values(), _weights(augmented).values()))


def test_a_run_saved_before_augmentation_resumes_without_it():
    old = {"hyperparameters": {"epochs": 3, "batch_size": 4, "seed": 1}}
    assert settings_for_resume(TrainConfig(), old).augment is False
    new = {"hyperparameters": {"epochs": 3, "augment": True}}
    assert settings_for_resume(TrainConfig(augment=False), new).augment is True


def test_train_py_takes_the_switch_next_to_its_old_flags():
    from conftest import ROOT, run_script

    proc = run_script([str(ROOT / "train.py"), "--help"])
    assert proc.returncode == 0 and "--no-augment" in proc.stdout
    assert all(flag in proc.stdout for flag in ("--data_dir", "--cache_dir", "--batch_size", "--epochs", "--resume"))


def _history(run):
    lines = (run / "history.csv").read_text().splitlines()
    return [dict(zip(lines[0].split(","), line.split(","))) for line in lines[1:]]


def test_clean_epochs_train_clean_first_and_keep_an_augmented_model(fma, tmp_path, monkeypatch):
    """The warm-up: epoch 1 of a run with ``clean_epochs=1`` is the epoch 1 of a ``--no-augment`` run
    (same loss, to the digit), epoch 2 is augmented, and the model kept comes from epoch 2: the
    best of the warm-up is forgotten when augmentation starts."""
    audio, cache = fma
    plain, _ = _train(audio, cache, tmp_path / "plain", "--no-augment")
    monkeypatch.setattr(trainer, "DEFAULT_AUGMENT", AugmentConfig(clean_epochs=1))
    warm, params = _train(audio, cache, tmp_path / "warm")
    assert params["augmentation"]["clean_epochs"] == 1 and params["augmentation"]["enabled"] is True
    assert _history(warm)[0]["train_loss"] == _history(plain)[0]["train_loss"]
    assert _history(warm)[1]["train_loss"] != _history(plain)[1]["train_loss"]
    assert params["result"]["best_epoch"] == 2


def test_settings_recorded_before_a_field_existed_load_as_runs_then_trained():
    recorded = {"enabled": True, **AugmentConfig(prob=0.5).to_dict(), "bank_dir": "/x", "clips": 3, "made": 3,
                "kept": 0, "failed": 0, "seconds": 1.0}
    assert AugmentConfig.recorded(recorded) == AugmentConfig(prob=0.5)
    del recorded["clean_epochs"]  # a params.json from before the warm-up existed: it had none
    assert AugmentConfig.recorded(recorded) == AugmentConfig(prob=0.5, clean_epochs=0)
    assert AugmentConfig.recorded({"enabled": False}) is None
    with pytest.raises(ValueError, match="clean_epochs"):
        AugmentConfig(clean_epochs=-1)


def test_a_resumed_run_keeps_its_own_augmentation_settings(fma, tmp_path, monkeypatch):
    """Resume reads the settings from params.json, not today's default: a run recorded without a
    warm-up resumes without one even when the default has one."""
    audio, cache = fma
    monkeypatch.setattr(trainer, "DEFAULT_AUGMENT", AugmentConfig())  # no warm-up, as before it existed
    whole, _ = _train(audio, cache, tmp_path / "whole")
    with interrupted_in_epoch(2):
        assert script_main("train", ["--data_dir", str(audio), "--cache_dir", str(cache), "--epochs", "2",
                                     "--batch_size", "4", "--output_dir", str(tmp_path / "cut"), "--device", "cpu",
                                     "-q"]) == 130
    cut = resolve_model_path(tmp_path / "cut" / "latest").parent
    params = json.loads((cut / "params.json").read_text())
    del params["augmentation"]["clean_epochs"]  # as written before the field existed
    (cut / "params.json").write_text(json.dumps(params))
    monkeypatch.setattr(trainer, "DEFAULT_AUGMENT", AugmentConfig(clean_epochs=2))
    assert script_main("train", ["--resume", str(cut), "-q"]) == 0
    assert [r["train_loss"] for r in _history(cut)] == [r["train_loss"] for r in _history(whole)]
    assert all(torch.equal(a, b) for a, b in zip(_weights(whole).values(), _weights(cut).values()))
