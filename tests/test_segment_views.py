"""Contrastive views from several segments of each track (``--segments N``) and the last epoch kept
(``--keep last``): the segment bank's contents, the views it gives, and both through ``melodex train``."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tone

from melodex.audio.decode import load_audio
from melodex.audio.encode import write_audio
from melodex.cli import main
from melodex.datasets.base import Track
from melodex.features.mfcc import DEFAULT_FEATURES, compute_mfcc
from melodex.model.checkpoint import load_checkpoint
from melodex.training.data import MfccDataset
from melodex.training.pairs import PairViews
from melodex.training.segment_bank import SegmentBank, make_segments, spread

SR = DEFAULT_FEATURES.sample_rate  # 22050: no resampling, so a segment's MFCC is exactly comparable
SEGMENT = int(DEFAULT_FEATURES.segment_seconds * SR)


@pytest.mark.parametrize(("available", "wanted", "expected"), [
    (0, 3, []), (2, 3, [0, 1]), (3, 3, [0, 1, 2]), (7, 3, [0, 3, 6]), (9, 1, [0]), (5, 2, [0, 4])])
def test_spread_picks_evenly_from_first_to_last(available, wanted, expected):
    assert spread(available, wanted) == expected


def test_make_segments_gives_the_mfcc_of_full_later_segments_spread_over_the_track(tmp_path):
    # four full segments at 30-s steps, each its own pitch, then 10 s that make no full segment
    pieces = [tone(30.0, SR, freq=200.0 * (1 + i), channels=1, seed=i) for i in range(4)]
    audio = np.concatenate([*pieces, tone(10.0, SR, freq=3000.0, channels=1)])
    path = write_audio(tmp_path / "long.wav", audio, SR)
    track = Track(key="long", path=path, label=None, split="training")
    every = make_segments(track, DEFAULT_FEATURES, 8)  # at most 7 further: all 3 there are
    assert every.shape == (3, DEFAULT_FEATURES.n_mfcc, DEFAULT_FEATURES.n_frames) and every.dtype == np.float32
    decoded = load_audio(path, sr=SR)  # the file holds 16-bit samples
    for i in range(3):
        expected = compute_mfcc(decoded[(i + 1) * SEGMENT:(i + 2) * SEGMENT], DEFAULT_FEATURES)
        np.testing.assert_allclose(every[i], expected, atol=1e-3)
    two = make_segments(track, DEFAULT_FEATURES, 3)  # 2 further ones of 3: the second and the last segment
    np.testing.assert_array_equal(two, every[[0, 2]])
    short = write_audio(tmp_path / "short.wav", tone(40.0, SR, channels=1), SR)
    assert make_segments(Track(key="short", path=short, label=None, split="training"), DEFAULT_FEATURES, 4).shape[0] == 0


def test_segment_bank_keeps_segments_on_disk_and_names_them_by_the_file(tmp_path):
    path = write_audio(tmp_path / "a.wav", tone(65.0, SR, channels=1), SR)
    track = Track(key="a", path=path, label=None, split="training")
    bank = SegmentBank.beside(tmp_path / "cache", DEFAULT_FEATURES, 4)
    counts = bank.fill([track], progress=False)
    assert (counts["made"], counts["kept"], counts["failed"], counts["segments"]) == (1, 0, 0, 1)
    assert bank.get(track).shape == (1, DEFAULT_FEATURES.n_mfcc, DEFAULT_FEATURES.n_frames)
    assert list((tmp_path / "cache" / "segments").rglob("a-*.npy"))
    assert SegmentBank.beside(tmp_path / "cache", DEFAULT_FEATURES, 4).fill([track], progress=False)["kept"] == 1
    assert SegmentBank.beside(tmp_path / "cache", DEFAULT_FEATURES, 3).get(track) is None  # other settings
    broken = Track(key="b", path=tmp_path / "b.wav", label=None, split="training")
    (tmp_path / "b.wav").write_bytes(b"not audio")
    assert bank.fill([broken], progress=False)["failed"] == 1 and bank.get(broken) is None


class _Constant(MfccDataset):
    """A dataset whose only track's first segment is all zeros."""

    def __getitem__(self, index):
        return index, torch.zeros(DEFAULT_FEATURES.n_mfcc, DEFAULT_FEATURES.n_frames), -1, None


def test_views_come_from_every_segment_and_without_a_bank_as_before(tmp_path):
    path = write_audio(tmp_path / "a.wav", tone(1.0, SR, channels=1), SR)
    track = Track(key="a", path=path, label=None, split="training")
    base = _Constant([track], {}, DEFAULT_FEATURES)
    bank = SegmentBank(None, DEFAULT_FEATURES, 3)
    bank.put(track, np.stack([np.full((DEFAULT_FEATURES.n_mfcc, DEFAULT_FEATURES.n_frames), v, np.float32)
                              for v in (1.0, 2.0)]))
    seen, differ = set(), 0
    for epoch in range(40):
        _, a, b, _ = PairViews(base, None, frames=100, seed=0, epoch=epoch, segments=bank)[0]
        assert a.shape == b.shape == (DEFAULT_FEATURES.n_mfcc, 100)
        values = (float(a[0, 0]), float(b[0, 0]))
        assert all(float(v.min()) == float(v.max()) for v in (a, b))  # each view from one segment
        seen |= set(values)
        differ += values[0] != values[1]
    assert seen == {0.0, 1.0, 2.0} and differ > 15  # independent picks: 2 in 3 pairs span two segments
    plain = PairViews(base, None, frames=100, seed=0, epoch=3)[0]
    empty = SegmentBank(None, DEFAULT_FEATURES, 3)
    empty.put(track, np.zeros((0, DEFAULT_FEATURES.n_mfcc, DEFAULT_FEATURES.n_frames), np.float32))
    same = PairViews(base, None, frames=100, seed=0, epoch=3, segments=empty)[0]
    assert all(torch.equal(x, y) for x, y in zip(plain[1:3], same[1:3]))


@pytest.fixture(scope="module")
def long_folder(tmp_path_factory) -> Path:
    """Eight 65-s mono wav files (two full segments each), each its own pitch."""
    root = tmp_path_factory.mktemp("long")
    for i in range(8):
        write_audio(root / f"{i:02d}.wav", tone(65.0, SR, freq=150.0 + 60 * i, channels=1, seed=i), SR)
    return root


def test_train_with_segments_and_keep_last_records_both_and_keeps_the_last_epoch(long_folder, tmp_path, capsys):
    out, cache = tmp_path / "runs", tmp_path / "cache"
    args = ["train", "--objective", "contrastive", "--audio", str(long_folder), "--cache_dir", str(cache),
            "--output_dir", str(out), "--batch_size", "4", "--seed", "1", "--device", "cpu", "--num_workers", "0",
            "--epochs", "3", "--no-augment", "-q"]
    assert main([*args, "--segments", "3", "--keep", "last"]) == 0
    (run,) = sorted(out.glob("20*"))
    params = json.loads((run / "params.json").read_text())
    assert (params["hyperparameters"]["segments"], params["hyperparameters"]["keep"]) == (3, "last")
    objective = params["objective"]
    assert (objective["segments"], objective["keep"]) == (3, "last")
    training = params["split_sizes"]["training"]
    bank = objective["segment_bank"]
    assert (bank["tracks"], bank["made"], bank["failed"], bank["segments"]) == (training, training, 0, training)
    assert len(list(Path(bank["dir"]).rglob("*.npy"))) == training  # one further segment of each training track
    assert params["result"]["kept"] == "last" and params["result"]["best_epoch"] == 3
    assert load_checkpoint(run).metadata["epoch"] == 3
    assert "(last epoch 3)" in (run / "retrieval_report.txt").read_text()
    for flag, value in (("--segments", "0"), ("--keep", "first")):
        assert main([*args, flag, value]) == 2
        assert flag in capsys.readouterr().err


def test_runs_saved_before_the_options_resume_with_the_first_segment_and_the_best_epoch():
    from melodex.training.config import TrainConfig, settings_for_resume

    old = {"hyperparameters": {"objective": "contrastive", "view_seconds": 5.0}}
    resumed = settings_for_resume(TrainConfig(segments=4, keep="last"), old)
    assert (resumed.segments, resumed.keep) == (1, "best")


def test_a_bank_without_a_cache_keeps_its_arrays_on_disk_and_removes_them_after(tmp_path, monkeypatch):
    """Without a cache folder a bank is a scratch folder under $TMPDIR, not arrays in memory (a run over
    100,000 tracks would hold tens of GB); the folder goes with the bank, and a forked child (a DataLoader
    worker) that drops its copy leaves it to the parent."""
    import gc
    import os

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    path = write_audio(tmp_path / "a.wav", tone(1.0, SR, channels=1), SR)
    track = Track(key="a", path=path, label=None, split="training")
    bank = SegmentBank(None, DEFAULT_FEATURES, 3)
    assert bank.temporary and bank.root.is_relative_to(tmp_path)
    values = np.ones((2, DEFAULT_FEATURES.n_mfcc, DEFAULT_FEATURES.n_frames), np.float32)
    bank.put(track, values)
    found = bank.get(track)
    assert isinstance(found, np.memmap) and np.array_equal(found, values) and bank.has(track)
    scratch = bank.root.parent
    del found
    child = os.fork()
    if child == 0:  # the child lets go of its copy of the bank, as a worker does when it ends
        del bank
        gc.collect()
        os._exit(0)
    os.waitpid(child, 0)
    assert scratch.is_dir() and bank.has(track)
    del bank
    gc.collect()
    assert not scratch.exists()
