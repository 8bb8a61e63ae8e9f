"""The synthetic demo corpus: FMA's layout, determinism, styles that differ, an artist that drifts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from melodex.audio.decode import load_audio
from melodex.cli import main
from melodex.datasets import load_dataset
from melodex.datasets.fma import load_tracks
from melodex.demo.corpus import write_demo_corpus
from melodex.demo.plan import DRIFTER, STYLE_ARTISTS, plan_corpus
from melodex.features.mfcc import FeatureConfig, compute_mfcc

SECONDS = 3.0


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """96 tracks of 3 s: 6 per artist, enough for centroids and a visible drift."""
    return write_demo_corpus(
        tmp_path_factory.mktemp("demo"), tracks_per_artist=6, seconds=SECONDS, seed=0, workers=1
    )


@pytest.fixture(scope="module")
def truth(corpus) -> dict:
    return json.loads((corpus / "demo_truth.json").read_text())


@pytest.fixture(scope="module")
def features(corpus) -> dict[str, np.ndarray]:
    """MFCC mean and standard deviation per track [shape=(40,)], standardised over the corpus."""
    n = int(SECONDS * 22050)
    config = FeatureConfig(segment_seconds=SECONDS, n_frames=n // 1024)
    raw = {}
    for track in load_dataset(corpus / "fma_small"):
        mfcc = compute_mfcc(load_audio(track.path)[:n], config)
        raw[track.key] = np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)])
    matrix = np.array(list(raw.values()))
    mean, std = matrix.mean(axis=0), matrix.std(axis=0) + 1e-9
    return {key: (value - mean) / std for key, value in raw.items()}


def small_corpus(out: Path, seed: int = 0, workers: int = 1) -> Path:
    return write_demo_corpus(out, tracks_per_artist=1, seconds=2.0, seed=seed, workers=workers)


def test_layout_is_fmas_and_load_dataset_reads_it(corpus, truth):
    header = (corpus / "fma_metadata" / "tracks.csv").read_text().splitlines()[:3]
    assert header[0].startswith(",album,album") and header[2].startswith("track_id,")
    ds = load_dataset(corpus / "fma_small")
    assert len(ds) == 16 * 6 and ds.skipped == []
    assert ds.labels == sorted(STYLE_ARTISTS)
    assert all(n > 0 for n in ds.split_sizes().values())
    assert ds.split_sizes()["training"] / len(ds) == pytest.approx(0.7, abs=0.08)
    for track in ds:
        tid = track.key
        assert track.path == corpus / "fma_small" / tid[:3] / f"{tid}.mp3" and track.path.is_file()
        assert track.artist and track.artist_id and track.title and track.album and track.date
        assert 2005 <= int(track.date[:4]) <= 2016
        assert (
            track.label
            == truth["tracks"][tid]["label"]
            == max(truth["tracks"][tid]["mix"].items(), key=lambda kv: kv[1])[0]
        )
    assert {t.date_source for t in ds} == {"album.date_released", "track.date_created"}
    tracks = load_tracks(corpus / "fma_metadata" / "tracks.csv")
    assert (tracks["set", "subset"] == "small").all() and tracks.shape[1] == 52
    assert len(load_audio(ds.tracks[0].path)) == pytest.approx(SECONDS * 22050, abs=2000)


def test_truth_names_the_styles_and_the_drifting_artist(truth):
    name, a, b = DRIFTER
    assert set(truth["styles"]) == set(STYLE_ARTISTS) and len(truth["styles"]) == 5
    assert truth["drifting_artist"]["name"] == name and (
        truth["drifting_artist"]["from"],
        truth["drifting_artist"]["to"],
    ) == (a, b)
    drifting = sorted((t["date"], t["mix"][b]) for t in truth["tracks"].values() if t["artist"] == name)
    weights = [w for _, w in drifting]
    assert weights[0] == 0.0 and weights[-1] == 1.0 and weights == sorted(weights)
    stable = [t for t in truth["tracks"].values() if t["artist"] != name]
    assert all(max(t["mix"].values()) >= 0.6 for t in stable)
    assert sum(len(t["mix"]) > 1 for t in stable) > 0  # some tracks hold a trace of another style


def test_same_seed_same_corpus_whatever_the_workers(tmp_path):
    one = small_corpus(tmp_path / "one", workers=1)
    two = small_corpus(tmp_path / "two", workers=2)
    other = small_corpus(tmp_path / "other", seed=1)
    csv = lambda root: (root / "fma_metadata" / "tracks.csv").read_bytes()  # noqa: E731
    assert csv(one) == csv(two) and csv(one) != csv(other)
    files = sorted(p.relative_to(one) for p in (one / "fma_small").rglob("*.mp3"))
    assert len(files) == 16
    assert all((one / f).read_bytes() == (two / f).read_bytes() for f in files)
    assert (one / "demo_truth.json").read_bytes() == (two / "demo_truth.json").read_bytes()


def test_styles_separate_in_mfcc_space(truth, features):
    """Leave-one-out nearest centroid on MFCC statistics: far above the 20 % of chance."""
    keys = [k for k in sorted(features) if truth["tracks"][k]["artist"] != DRIFTER[0]]
    x = np.array([features[k] for k in keys])
    y = np.array([truth["tracks"][k]["label"] for k in keys])
    styles = sorted(set(y))
    correct = 0
    for i in range(len(keys)):
        rest = np.arange(len(keys)) != i
        centroids = np.array([x[rest & (y == s)].mean(axis=0) for s in styles])
        correct += styles[int(np.argmin(((centroids - x[i]) ** 2).sum(axis=1)))] == y[i]
    assert correct / len(keys) >= 0.7


def test_the_drifting_artist_moves_from_a_to_b_and_stable_artists_do_not(truth, features):
    name, a, b = DRIFTER
    info = truth["tracks"]
    stable = [k for k in features if info[k]["artist"] != name]
    centre_a = np.mean([features[k] for k in stable if info[k]["label"] == a], axis=0)
    centre_b = np.mean([features[k] for k in stable if info[k]["label"] == b], axis=0)
    axis = centre_b - centre_a

    def positions(artist: str) -> np.ndarray:  # 0 at style A's centroid, 1 at style B's, in date order
        keys = sorted(
            (k for k in features if info[k]["artist"] == artist), key=lambda k: (info[k]["date"], k)
        )
        return np.array([(features[k] - centre_a) @ axis / (axis @ axis) for k in keys])

    def movement(p: np.ndarray) -> float:  # the last third's mean minus the first third's
        third = max(1, len(p) // 3)
        return float(p[-third:].mean() - p[:third].mean())

    drift = positions(name)
    ranks = np.argsort(np.argsort(drift))
    spearman = np.corrcoef(ranks, np.arange(len(drift)))[0, 1]
    assert spearman >= 0.8 and movement(drift) >= 0.5
    assert drift[0] < 0.5 < drift[-1]  # starts nearer A, ends nearer B
    for artist in STYLE_ARTISTS[a]:
        assert movement(positions(artist)) <= 0.35, artist
    for artist in STYLE_ARTISTS[b]:
        assert abs(movement(positions(artist))) <= 0.35, artist


def test_make_demo_command_writes_and_reports(tmp_path, capsys):
    out = tmp_path / "demo_data"
    assert (
        main(
            [
                "make-demo",
                "--out",
                str(out),
                "--tracks-per-artist",
                "1",
                "--seconds",
                "1",
                "--seed",
                "3",
                "--workers",
                "1",
                "-q",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "16 tracks" in printed and str(out) in printed
    assert len(load_dataset(out / "fma_small")) == 16
    # a second run with fewer tracks leaves no stale audio behind
    assert (
        main(
            [
                "make-demo",
                "--out",
                str(out),
                "--tracks_per_artist",
                "1",
                "--seconds",
                "1",
                "--seed",
                "4",
                "--workers",
                "1",
                "-q",
            ]
        )
        == 0
    )
    assert len(list((out / "fma_small").rglob("*.mp3"))) == 16


def test_make_demo_refuses_to_overwrite_a_real_fma_and_bad_sizes(tmp_path, capsys):
    (tmp_path / "fma_metadata").mkdir()
    (tmp_path / "fma_metadata" / "tracks.csv").write_text("real data\n")
    assert (
        main(["make-demo", "--out", str(tmp_path), "--tracks-per-artist", "1", "--seconds", "1", "-q"]) == 2
    )
    assert "not overwriting it" in capsys.readouterr().err
    assert (tmp_path / "fma_metadata" / "tracks.csv").read_text() == "real data\n"
    assert main(["make-demo", "--out", str(tmp_path / "x"), "--tracks-per-artist", "0"]) == 2


def test_a_second_run_reuses_the_corpus_and_resumes_a_partial_one(tmp_path):
    out = small_corpus(tmp_path / "demo")
    clips = sorted((out / "fma_small").glob("*/*.mp3"))
    files = [*clips, out / "fma_metadata" / "tracks.csv", out / "demo_truth.json"]
    stamps = {p: p.stat().st_mtime_ns for p in files}
    content = {p: p.read_bytes() for p in files}
    small_corpus(out)
    assert {p: p.stat().st_mtime_ns for p in files} == stamps  # nothing rewritten: reused as it is
    clips[3].unlink()  # as a run killed before this clip was rendered leaves it
    small_corpus(out)
    assert {p: p.read_bytes() for p in files} == content  # the same corpus
    assert all(p.stat().st_mtime_ns == stamps[p] for p in clips if p != clips[3])  # only the missing one made
    small_corpus(out, seed=1)  # other settings: every clip is made again
    assert all(p.stat().st_mtime_ns != stamps[p] for p in (out / "fma_small").glob("*/*.mp3") if p in stamps)
    assert json.loads((out / "demo_truth.json").read_text())["seed"] == 1


@pytest.mark.parametrize("command", ["make-demo", "demo"])
@pytest.mark.parametrize(("flag", "value", "says"), [
    ("--tracks-per-artist", "0", "must be at least 1, not 0"),
    ("--seconds", "0.5", "must be between 1 and 600 seconds, not 0.5"),
    ("--seconds", "nan", "must be between 1 and 600 seconds, not nan"),
    ("--seconds", "ten", "not a number: 'ten'"),
])
def test_both_demo_commands_refuse_a_bad_corpus_size_before_writing_anything(command, flag, value, says, tmp_path,
                                                                             capsys):
    data = tmp_path / "data"
    where = ["--out", str(data)] if command == "make-demo" else ["--data", str(data), "--out", str(tmp_path / "out")]
    assert main([command, *where, flag, value]) == 2
    assert says in capsys.readouterr().err
    assert not data.exists() and not (tmp_path / "out").exists()


def test_the_demo_commands_default_to_the_library_corpus():
    """make-demo, demo and write_demo_corpus agree on the corpus they make by default, and it has
    the number of artists the help text gives."""
    import inspect

    from melodex.cli import get_parser
    from melodex.constants import DEMO_ARTISTS

    library = inspect.signature(write_demo_corpus).parameters
    for command in ("make-demo", "demo"):
        args = get_parser().parse_args([command])
        assert (args.tracks_per_artist, args.seconds) == (library["tracks_per_artist"].default,
                                                          library["seconds"].default)
        assert args.seed == library["seed"].default
    assert len({t["artist"]["id"] for t in plan_corpus(tracks_per_artist=1, seed=0)}) == DEMO_ARTISTS
