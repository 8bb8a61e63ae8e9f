"""MFCC parity with librosa, shapes, batching, and segmenting."""

from __future__ import annotations

import numpy as np
import pytest

from melodex.audio.segments import first_segment, pad_or_trim, sliding_segments
from melodex.constants import N_FRAMES, N_MFCC, SAMPLE_RATE, SEGMENT_SAMPLES
from melodex.features.mfcc import (
    DEFAULT_FEATURES,
    MFCC,
    FeatureConfig,
    compute_mfcc,
    dct_matrix,
    mel_filterbank,
)

librosa = pytest.importorskip("librosa")


def _librosa_mfcc(y: np.ndarray) -> np.ndarray:
    c = DEFAULT_FEATURES
    mel = librosa.feature.melspectrogram(y=y, sr=c.sample_rate, n_fft=c.n_fft, hop_length=c.hop_length,
                                         n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax)
    log_mel = librosa.power_to_db(mel, amin=c.amin, top_db=c.top_db)  # librosa.feature.mfcc's chain, our top_db
    return librosa.feature.mfcc(S=log_mel, n_mfcc=c.n_mfcc)[:, : c.n_frames]


@pytest.mark.parametrize("fmax", [DEFAULT_FEATURES.fmax, SAMPLE_RATE / 2])  # today's default and Nyquist (before)
def test_filterbank_equals_librosa(fmax):
    ours = mel_filterbank(SAMPLE_RATE, 2048, 128, 0.0, fmax)
    np.testing.assert_allclose(ours, librosa.filters.mel(sr=SAMPLE_RATE, n_fft=2048, n_mels=128, fmax=fmax), atol=1e-7)


def test_mel_bands_stop_below_the_cut_of_low_rate_files():
    """No mel band reaches past 10.2 kHz, where a 22.05 kHz mono mp3 at 48 kbit/s is cut off."""
    assert DEFAULT_FEATURES.fmax <= 10000.0
    bank = mel_filterbank(SAMPLE_RATE, 2048, 128, 0.0, DEFAULT_FEATURES.fmax)
    freqs = np.fft.rfftfreq(2048, 1.0 / SAMPLE_RATE)
    assert not bank[:, freqs > 10000.0].any()


def test_dct_equals_scipy():
    import scipy.fft

    ref = scipy.fft.dct(np.eye(128), type=2, norm="ortho", axis=0)[:20]
    np.testing.assert_allclose(dct_matrix(128, 20), ref, atol=1e-6)


def _music_like(rng: np.random.Generator, seconds: float = 30.0) -> np.ndarray:
    """Chords, a beat and noise with a changing envelope: real-shaped, not a pure tone."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    y = np.zeros_like(t)
    for f in rng.uniform(80, 2000, 6):
        y += np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.1, 2) * t))
    beat = (np.sin(2 * np.pi * 2 * t) > 0.95) * rng.standard_normal(t.size)
    y = 0.1 * y + 0.3 * beat + 0.01 * rng.standard_normal(t.size)
    y[: SAMPLE_RATE] *= np.linspace(0, 1, SAMPLE_RATE)  # a fade-in
    return y.astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mfcc_matches_librosa(seed):
    y = _music_like(np.random.default_rng(seed))
    ours = compute_mfcc(y)
    ref = _librosa_mfcc(y)
    assert ours.shape == (N_MFCC, N_FRAMES) == ref.shape
    assert np.abs(ours - ref).max() < 1e-2


def test_mfcc_matches_librosa_on_padded_and_silent_segments(rng):
    short = first_segment(_music_like(rng, 4.0)).audio
    np.testing.assert_allclose(compute_mfcc(short), _librosa_mfcc(short), atol=1e-2)
    silence = np.zeros(SEGMENT_SAMPLES, np.float32)
    out = compute_mfcc(silence)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, _librosa_mfcc(silence), atol=1e-2)


def test_batch_equals_one_by_one(rng):
    batch = np.stack([_music_like(np.random.default_rng(s), 30.0) for s in range(3)])
    together = compute_mfcc(batch)
    assert together.shape == (3, N_MFCC, N_FRAMES)
    for i in range(3):
        np.testing.assert_allclose(together[i], compute_mfcc(batch[i]), atol=1e-4)


def test_shorter_window_is_padded_to_fixed_frames(rng):
    cfg = FeatureConfig(segment_seconds=10.0)
    y = _music_like(rng, 10.0)
    out = compute_mfcc(y, cfg)
    assert out.shape == (N_MFCC, N_FRAMES)
    ref = _librosa_mfcc(y)
    np.testing.assert_allclose(out[:, : ref.shape[1]], ref, atol=1e-2)
    assert np.allclose(out[:, -1], out[:, -2])  # the padding is constant


def test_module_runs_on_torch_tensors():
    import torch

    m = MFCC()
    out = m(torch.zeros(2, SEGMENT_SAMPLES))
    assert tuple(out.shape) == (2, N_MFCC, N_FRAMES)


def test_the_gpus_dense_path_equals_the_cpus_blocked_path(rng, monkeypatch):
    """The whole-batch dense mel power a GPU takes, run here on the CPU, gives the MFCCs of the
    blocked sparse path the CPU takes: for full segments, a shorter (padded) one and a batch."""
    import torch

    module = MFCC()
    batch = torch.from_numpy(np.stack([_music_like(np.random.default_rng(s), 30.0) for s in range(2)]))
    short = torch.from_numpy(_music_like(rng, 7.5)).unsqueeze(0)
    blocked = [module(batch), module(short)]
    monkeypatch.setattr(module, "_mel_power", module._mel_power_dense)
    dense = [module(batch), module(short)]
    for a, b in zip(blocked, dense):
        assert a.shape == b.shape == (a.shape[0], N_MFCC, N_FRAMES)
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-4, rtol=0)


def test_config_round_trip_and_unknown_keys():
    cfg = FeatureConfig(n_mfcc=13)
    assert FeatureConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown feature parameters"):
        FeatureConfig.from_dict({"n_mfccs": 20})


# --- segmenting -------------------------------------------------------------------------

SR = 100  # a small rate keeps the arithmetic readable


def _chunks(total: int, size: int):
    signal = np.arange(total, dtype=np.float32) + 1  # no zeros, so padding is visible
    for i in range(0, total, size):
        yield signal[i : i + size]


def test_first_segment_pads_and_keeps_duration():
    seg = first_segment(np.ones(SR * 4, np.float32), sr=SR, window_seconds=10)
    assert seg.audio.shape == (SR * 10,)
    assert seg.end_time == pytest.approx(4.0)
    assert seg.audio[SR * 4 :].sum() == 0
    assert pad_or_trim(np.ones(5), 3).shape == (3,)


@pytest.mark.parametrize("chunk", [7, 100, 1000, 5000])
def test_sliding_windows_independent_of_chunking(chunk):
    segs = list(sliding_segments(_chunks(2700, chunk), sr=SR, window_seconds=10, hop_seconds=5, min_last_seconds=1))
    starts = [s.start_time for s in segs]
    assert starts == [0, 5, 10, 15, 20]  # full windows at 0..15, then a padded tail at 20
    assert segs[-1].end_time == pytest.approx(27.0)
    np.testing.assert_array_equal(segs[1].audio, np.arange(500, 1500) + 1)
    assert segs[-1].audio[700:].sum() == 0 and segs[-1].audio[0] == 2001
    # 25 s of signal is covered exactly by full windows: no tail window
    exact = list(sliding_segments(_chunks(2500, chunk), sr=SR, window_seconds=10, hop_seconds=5, min_last_seconds=1))
    assert [s.start_time for s in exact] == [0, 5, 10, 15]


def test_last_policies():
    kw = dict(sr=SR, window_seconds=10)
    pad = list(sliding_segments(_chunks(2700, 333), last="pad", **kw))
    assert [(s.start_time, s.end_time) for s in pad] == [(0, 10), (10, 20), (20, 27)]
    align = list(sliding_segments(_chunks(2700, 333), last="align", **kw))
    assert [(s.start_time, s.end_time) for s in align] == [(0, 10), (10, 20), (17, 27)]
    np.testing.assert_array_equal(align[-1].audio, np.arange(1700, 2700) + 1)
    drop = list(sliding_segments(_chunks(2700, 333), last="drop", **kw))
    assert [(s.start_time, s.end_time) for s in drop] == [(0, 10), (10, 20)]
    tiny_tail = list(sliding_segments(_chunks(2020, 333), min_last_seconds=1.0, **kw))
    assert len(tiny_tail) == 2  # 0.2 s left over is below min_last_seconds


@pytest.mark.parametrize("last", ["pad", "align", "drop"])
def test_short_signal_always_gives_one_padded_window(last):
    segs = list(sliding_segments(_chunks(300, 64), sr=SR, window_seconds=10, last=last))
    assert len(segs) == 1 and segs[0].end_time == pytest.approx(3.0) and segs[0].audio.shape == (1000,)


def test_empty_signal_gives_nothing_and_bad_policy_raises():
    assert list(sliding_segments([], sr=SR)) == []
    with pytest.raises(ValueError, match="last must be"):
        list(sliding_segments(_chunks(10, 5), sr=SR, last="wrap"))
