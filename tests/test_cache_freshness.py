"""The MFCC cache is keyed by the source file as well as the track id: a file replaced under the
same FMA id is recomputed and counted as changed; a touched file is not; an older cache without
file identities is recomputed once; read with the file's path, the cache never answers for audio
that no longer exists."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from _helpers_trainer import BROKEN_KEY, SR, make_fma_fixture

from melodex.audio.encode import write_audio
from melodex.cli import main
from melodex.features.cache import SOURCES_NAME, FeatureCache
from melodex.training.preprocess import extract_track

KEY = "000003"


@pytest.fixture
def fma(tmp_path):
    data_dir = make_fma_fixture(tmp_path / "fma")
    cache_dir = tmp_path / "cache"
    argv = ["preprocess", "--data_dir", str(data_dir), "--cache-dir", str(cache_dir), "--workers", "1"]
    return data_dir, cache_dir, argv


def _audio_path(data_dir, key=KEY):
    return data_dir / key[:3] / f"{key}.mp3"


def _replace_audio(path, freq=3000.0):
    """New audio under the same name: another pitch, 2 s, like the fixture's clips."""
    t = np.arange(2 * SR) / SR
    write_audio(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR)
    stamp = path.stat().st_mtime_ns
    os.utime(path, ns=(stamp + 5_000_000_000, stamp + 5_000_000_000))  # a later mtime, whatever the clock


def _preprocess(argv, capsys) -> str:
    assert main(argv) == 1  # the fixture's broken file fails every time
    return capsys.readouterr().err


def test_a_replaced_file_is_recomputed_and_counted_as_changed(fma, capsys):
    data_dir, cache_dir, argv = fma
    _preprocess(argv, capsys)
    before = np.load(cache_dir / "000" / f"{KEY}.npy")

    path = _audio_path(data_dir)
    _replace_audio(path)
    err = _preprocess(argv, capsys)
    assert "1 written now" in err and "1 file changed since it was cached" in err, err

    after = FeatureCache(cache_dir).get(KEY, path)
    expected, _ = extract_track(path, FeatureCache(cache_dir).config)
    assert not np.allclose(after, before, atol=1e-2)  # the MFCC of the new audio, not the old one
    np.testing.assert_allclose(after, expected, rtol=1e-5, atol=1e-4)

    err = _preprocess(argv, capsys)  # and it is fresh now
    assert "0 written now" in err and "changed" not in err, err


def test_a_touched_or_copied_file_with_the_same_audio_is_not_recomputed(fma, capsys):
    data_dir, cache_dir, argv = fma
    _preprocess(argv, capsys)
    npy = cache_dir / "000" / f"{KEY}.npy"
    written = npy.stat().st_mtime_ns
    path = _audio_path(data_dir)
    copy = path.with_suffix(".tmp")
    shutil.copyfile(path, copy)  # a plain copy: same bytes, new mtime
    os.replace(copy, path)
    os.utime(path, ns=(path.stat().st_mtime_ns + 10**9,) * 2)

    err = _preprocess(argv, capsys)
    assert "0 written now" in err and "changed" not in err, err
    assert npy.stat().st_mtime_ns == written
    assert FeatureCache(cache_dir).get(KEY, path) is not None  # the new stat is recorded: fresh again


def test_an_older_cache_without_identities_is_recomputed_once(fma, capsys):
    data_dir, cache_dir, argv = fma
    _preprocess(argv, capsys)
    (cache_dir / SOURCES_NAME).unlink()  # what a cache of an earlier Melodex looks like
    assert FeatureCache(cache_dir).freshness(KEY, _audio_path(data_dir)) == "legacy"
    _replace_audio(_audio_path(data_dir))  # and one file changed meanwhile

    err = _preprocess(argv, capsys)
    cached = len([p for p in cache_dir.glob("*/*.npy")])
    assert f"{cached} written now" in err, err
    assert f"{cached} entries of an older cache recorded no file identity: recomputed once, 1 of them had gone stale" \
        in err, err
    err = _preprocess(argv, capsys)
    assert "0 written now" in err and "older cache" not in err, err


def test_the_cache_read_with_a_path_never_answers_for_replaced_audio(fma, capsys):
    data_dir, cache_dir, argv = fma
    _preprocess(argv, capsys)
    path = _audio_path(data_dir)
    cache = FeatureCache(cache_dir)
    assert cache.get(KEY, path) is not None and cache.has(KEY, path)
    _replace_audio(path)
    fresh = FeatureCache(cache_dir)
    assert fresh.get(KEY, path) is None and not fresh.has(KEY, path)
    assert fresh.get(KEY) is not None  # by key alone (how training reads it today) it is still there
    assert fresh.freshness(KEY, path) == "stat"


def test_a_replaced_file_that_no_longer_decodes_loses_its_old_mfcc(fma, capsys):
    data_dir, cache_dir, argv = fma
    _preprocess(argv, capsys)
    path = _audio_path(data_dir)
    path.write_bytes(b"not audio any more" * 50)
    err = _preprocess(argv, capsys)
    assert "2 files failed" in err, err
    assert not (cache_dir / "000" / f"{KEY}.npy").exists()
    failed = (cache_dir / "failures.csv").read_text()
    assert KEY in failed and BROKEN_KEY in failed
    assert FeatureCache(cache_dir).get(KEY) is None
