"""``melodex index --features mfcc-stats``: a map of a folder without any model.

Through the real commands on the small demo corpus: the store holds standardised 40-d MFCC
statistics stamped as a "model" of their own (never mixed with a CNN's embeddings), later
additions keep the first run's scaling, and map, similar, evolution, playlist and serve work on
it although it has no genre predictions.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from melodex.audio.segments import read_first_segment
from melodex.cli import main
from melodex.features.mfcc import DEFAULT_FEATURES, compute_mfcc
from melodex.features.stats import StatsScaler, mfcc_stats
from melodex.library.mfcc_stats import stats_stamp
from melodex.library.store import LibraryStore
from tests.test_serve import fetch, serving


@pytest.fixture(scope="module")
def demo(small_demo):
    status, data, out = small_demo
    assert status == 0
    return data, out


def _index(store: Path, audio: list[str], *extra: str) -> int:
    return main(["index", "--store", str(store), "--features", "mfcc-stats", "--audio", *audio,
                 "--num-workers", "0", "--quiet", *extra])


def test_the_store_holds_standardised_40d_vectors_and_no_predictions(small_demo_mfcc, demo):
    store = LibraryStore(small_demo_mfcc)
    tracks, vectors = store.tracks(), store.embeddings()
    assert len(tracks) == 128 and vectors.shape == (128, 40)
    np.testing.assert_allclose(vectors.mean(axis=0), 0.0, atol=1e-4)  # fitted on these very tracks
    np.testing.assert_allclose(vectors.std(axis=0), 1.0, atol=1e-4)
    assert tracks["predicted_label"].isna().all() and tracks["confidence"].isna().all()
    assert store.labels() == []  # no prob:<label> columns
    assert tracks["artist"].notna().all()  # metadata is merged as for a model's store
    (stamp,) = store.models().values()
    assert stamp.name == "mfcc-stats" and stamp.fingerprint.startswith("mfcc-stats-")
    assert stamp.params["features"] == DEFAULT_FEATURES.to_dict()
    assert set(tracks["model_fingerprint"]) == {stamp.fingerprint}
    # a stored vector is the file's raw statistics scaled with the recorded scaling
    scaler = StatsScaler.from_dict(stamp.params["scaler"])
    raw = mfcc_stats(compute_mfcc(read_first_segment(tracks["path"][5]).audio))
    np.testing.assert_allclose(vectors[5], scaler.transform(raw), atol=2e-3)


def test_later_additions_keep_the_first_runs_scaling(demo, tmp_path):
    data, _ = demo
    files = sorted(str(p) for p in (data / "fma_small").rglob("*.mp3"))
    assert len(files) == 128
    store = tmp_path / "lib"
    assert _index(store, files[:40]) == 0
    (first,) = LibraryStore(store).models().values()
    before = LibraryStore(store).embeddings()
    assert _index(store, [str(data / "fma_small")]) == 0  # the 88 others are added
    after = LibraryStore(store)
    assert len(after) == 128 and list(after.models()) == [first.fingerprint]
    np.testing.assert_array_equal(after.embeddings()[:40], before)  # stored tracks never move
    scaler = StatsScaler.from_dict(first.params["scaler"])
    row = int(np.flatnonzero(after.tracks()["path"] == str(Path(files[100]).resolve()))[0])
    raw = mfcc_stats(compute_mfcc(read_first_segment(files[100]).audio))
    np.testing.assert_allclose(after.embeddings()[row], scaler.transform(raw), atol=2e-3)
    # another scaling is another model: the fingerprint covers the scaling and the feature parameters
    other = StatsScaler(tuple(v + 1 for v in scaler.mean), scaler.std)
    assert stats_stamp(DEFAULT_FEATURES, other).fingerprint != first.fingerprint
    assert stats_stamp(DEFAULT_FEATURES, scaler).fingerprint == first.fingerprint
    assert _index(store, [str(data / "fma_small")]) == 0 and len(LibraryStore(store)) == 128  # nothing new


def test_mfcc_stats_never_mix_with_a_models_embeddings(demo, small_demo_mfcc, tmp_path, capsys):
    data, out = demo
    mfcc_store, cnn_store = tmp_path / "mfcc", tmp_path / "cnn"
    shutil.copytree(small_demo_mfcc, mfcc_store)
    shutil.copytree(out / "library", cnn_store)
    model = str(out / "training_outputs" / "latest")
    new = tmp_path / "new"
    new.mkdir()
    shutil.copy(next((data / "fma_small").rglob("*.mp3")), new / "copy.mp3")

    assert main(["index", "--store", str(mfcc_store), "--model", model, "--audio", str(new), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "mfcc-stats" in err and str(mfcc_store) in err
    assert _index(cnn_store, [str(new)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--features mfcc-stats" in err and str(cnn_store) in err
    assert main(["index", "--store", str(tmp_path / "x"), "--features", "mfcc-stats", "--model", model,
                 "--audio", str(new)]) == 2
    assert "--features mfcc-stats takes --audio only" in capsys.readouterr().err
    assert len(LibraryStore(mfcc_store)) == 128 and len(LibraryStore(cnn_store)) == 128  # nothing written


def test_map_similar_evolution_playlist_and_serve_work_on_an_mfcc_stats_store(small_demo_mfcc, tmp_path, capsys):
    store = tmp_path / "lib"
    shutil.copytree(small_demo_mfcc, store)
    tracks = LibraryStore(store).tracks()
    first = str(tracks["track_id"][0])
    for color in ("genre", "predicted", "artist", "year"):
        assert main(["map", "--store", str(store), "--out", str(tmp_path / f"map-{color}.html"),
                     "--png", str(tmp_path / f"map-{color}.png"), "--color-by", color, "-q"]) == 0
        assert (tmp_path / f"map-{color}.html").stat().st_size > 10_000
        assert (tmp_path / f"map-{color}.png").is_file()
    capsys.readouterr()
    assert main(["similar", first, "--store", str(store), "-k", "5", "--json"]) == 0
    neighbours = json.loads(capsys.readouterr().out)["neighbours"]
    assert len(neighbours) == 5 and first not in {n["track_id"] for n in neighbours}
    outside = tmp_path / "outside.mp3"  # a file the store does not hold: embedded with the store's scaling
    shutil.copy(tracks["path"][0], outside)
    assert main(["similar", str(outside), "--store", str(store), "-k", "1", "--json"]) == 0
    (nearest,) = json.loads(capsys.readouterr().out)["neighbours"]
    assert nearest["track_id"] == first and nearest["distance"] < 1e-4  # its copy, at distance 0
    assert main(["similar", "--artist", str(tracks["artist"][0]), "--store", str(store), "-k", "3"]) == 0
    assert "artists like" in capsys.readouterr().out
    assert main(["evolution", "--store", str(store), "--all", "--out", str(tmp_path / "evo"), "-q"]) == 0
    assert (tmp_path / "evo" / "evolution.html").is_file()
    assert main(["playlist", "--store", str(store), "--seed", first, "--length", "8",
                 "--out", str(tmp_path / "mix.m3u8"), "-q"]) == 0
    assert (tmp_path / "mix.m3u8").read_text(encoding="utf-8").count(".mp3") == 8
    assert main(["playlist", "--store", str(store), "--clusters", "4", "--out", str(tmp_path / "pl"), "-q"]) == 0
    assert len(list((tmp_path / "pl").glob("*.m3u8"))) == 4
    with serving(LibraryStore(store)) as address:  # the map saved above is served
        status, _, page = fetch(address, "/")
        assert status == 200 and b"<html" in page.lower()
        status, _, body = fetch(address, f"/api/similar/{first}?k=4")
        assert status == 200 and len(json.loads(body)["similar"]) == 4
        assert fetch(address, f"/audio/{first}")[0] == 200


def test_the_statistics_are_means_then_deviations_and_a_constant_dimension_is_only_centred(rng):
    import torch

    from melodex.features.stats import MfccStats

    mfcc = rng.normal(size=(3, 20, 640)).astype(np.float32) * np.arange(1, 21)[:, None]
    stats = mfcc_stats(mfcc)
    assert stats.shape == (3, 40)
    np.testing.assert_allclose(stats[:, :20], mfcc.mean(axis=-1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats[:, 20:], mfcc.std(axis=-1), rtol=1e-5)
    vectors, logits = MfccStats().embed_and_classify(torch.from_numpy(mfcc))
    np.testing.assert_allclose(vectors.numpy(), stats, rtol=1e-5, atol=1e-5)
    assert logits.shape == (3, 0)  # no classes
    data = np.c_[rng.normal(5, 3, size=(50, 2)), np.full(50, 7.0)]
    scaler = StatsScaler.fit(data)
    scaled = scaler.transform(data)
    np.testing.assert_allclose(scaled[:, :2].std(axis=0), 1.0, rtol=1e-5)
    np.testing.assert_allclose(scaled[:, 2], 0.0)  # constant: std kept at 1
    assert StatsScaler.from_dict(json.loads(json.dumps(scaler.to_dict()))) == scaler
    with pytest.raises(ValueError):
        scaler.transform(np.zeros((1, 4)))


def test_a_ctrl_c_while_fitting_the_scaling_keeps_what_was_decoded_and_a_rerun_adds_the_rest(demo, tmp_path,
                                                                                             monkeypatch):
    from melodex.commands import EXIT_INTERRUPTED
    from melodex.inference.predictor import Predictor

    data, _ = demo
    real, calls = Predictor.predict, []

    def ctrl_c_after_five(self, files, **options):  # the first pass (the fit) is interrupted at its 6th file
        calls.append(len(files))
        for n, result in enumerate(real(self, files, **options)):
            if n == 5 and len(calls) == 1:
                raise KeyboardInterrupt
            yield result

    monkeypatch.setattr(Predictor, "predict", ctrl_c_after_five)
    store = tmp_path / "lib"
    assert _index(store, [str(data / "fma_small")]) == EXIT_INTERRUPTED
    assert len(LibraryStore(store)) == 5 and calls == [128]  # fitted on the 5 decoded, nothing decoded after
    (stamp,) = LibraryStore(store).models().values()
    assert _index(store, [str(data / "fma_small")]) == 0
    assert len(LibraryStore(store)) == 128 and list(LibraryStore(store).models()) == [stamp.fingerprint]
