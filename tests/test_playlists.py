"""Playlists, duplicates and artist similarity on small synthetic stores (fast; no model).

The demo-corpus checks of quality live in tests/test_listening.py; these pin the contracts:
exit codes and one-line errors, atomic and parseable files with awkward titles, what the
duplicate finder never does (group unknown durations, delete files).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from melodex.cli import main
from melodex.library.store import LibraryStore, TrackRecord
from tests._helpers_maps import HOSTILE_TITLE, make_library
from tests._helpers_playlists import load_m3u8, validate_xspf


@pytest.fixture
def library(tmp_path):
    store, styles, *_ = make_library(tmp_path / "lib", n_styles=4, per_style=15, audio_dir=tmp_path / "audio",
                                     hostile=True)
    return str(store.root), store.tracks(), styles


@pytest.mark.parametrize(("argv", "message"), [
    (["--seed", "t00001", "--from", "t00002", "--to", "t00003"], "exactly one of --seed, --from/--to or --clusters"),
    (["--from", "t00002"], "a path needs both --from and --to"),
    (["--seed", "nope"], "nope: no such track_id in the store at"),
    (["--from", "t00001", "--to", "t00001"], "a path needs two different tracks"),
    (["--from", "t00001", "--to", "t00002", "--length", "500"], "a path needs a length from 2 to 60"),
    (["--clusters", "99"], "--clusters must be from 1 to 60"),
])
def test_bad_requests_are_one_line_errors_with_exit_2(library, tmp_path, capsys, argv, message):
    store, _, _ = library
    assert main(["playlist", "--store", store, *argv, "--out", str(tmp_path / "x.m3u8")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.m3u8").exists()


def test_hostile_titles_stay_one_entry_and_valid_xml(library, tmp_path):
    store, tracks, _ = library
    out = tmp_path / "ünïcode folder" / "mix"
    assert main(["playlist", "--store", store, "--seed", "t00000", "--length", "6", "--out", str(out),
                 "--format", "m3u8", "xspf", "json", "-q"]) == 0
    m3u = load_m3u8(out.with_name("mix.m3u8"))
    assert len(m3u.segments) == 6 and m3u.segments[0].title == f"<img src=x onerror=alert(1)> - {HOSTILE_TITLE}"
    assert Path(m3u.segments[0].absolute_uri).resolve() == Path(tracks["path"][0]).resolve()
    xspf = validate_xspf(out.with_name("mix.xspf"))
    assert xspf[0]["title"] == HOSTILE_TITLE and xspf[0]["identifier"] == "melodex:track:t00000"
    doc = json.loads(out.with_name("mix.json").read_text(encoding="utf-8"))
    assert doc["kind"] == "mix" and "path" not in doc["tracks"][0] and doc["tracks"][0]["step"] == 0.0
    assert not list(out.parent.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_cluster_playlists_cover_every_track_once_and_match_the_styles(library, tmp_path):
    from sklearn.metrics import adjusted_rand_score

    store, tracks, styles = library
    assert main(["playlist", "--store", store, "--clusters", "4", "--out", str(tmp_path / "c"),
                 "--format", "json", "-q"]) == 0
    found = {}
    for number, file in enumerate(sorted((tmp_path / "c").glob("*.json"))):
        for track in json.loads(file.read_text(encoding="utf-8"))["tracks"]:
            assert track["track_id"] not in found
            found[track["track_id"]] = number
    assert len(found) == len(tracks)
    assert adjusted_rand_score(styles, [found[t] for t in tracks["track_id"]]) == pytest.approx(1.0)


def test_auto_clusters_are_the_same_from_the_distance_matrix_and_from_the_tree_search(monkeypatch, rng):
    from melodex.analysis import playlists
    from melodex.analysis.collection import Collection

    centres = np.abs(rng.standard_normal((6, 512)))
    emb = np.concatenate([c + 0.15 * np.abs(rng.standard_normal((40, 512))) for c in centres]).astype(np.float32)
    frame = pd.DataFrame({"track_id": [f"t{i:03d}" for i in range(len(emb))], "path": "", "title": "t",
                          "artist": "a"})
    collection = Collection.from_frame(frame, emb)
    brute = playlists.cluster_labels(collection, None)  # 240 tracks: the full distance matrix
    monkeypatch.setattr(playlists, "HDBSCAN_BRUTE_MAX", 0)
    tree = playlists.cluster_labels(collection, None)
    assert len(set(brute.tolist())) == 6 and np.array_equal(brute, tree)


def duplicate_store(root: Path, durations: list[float | None], rng, *, same_audio: bool = True) -> LibraryStore:
    """Tracks 0 and 1 share an embedding (plus 1e-4 noise); 2 and 3 are unrelated. Each has a
    fingerprint (30 s of Chromaprint items): track 1's is track 0's with 5 % of the bits flipped
    (a re-encode) when ``same_audio``, else its own (another take that sounds as close)."""
    base = np.abs(rng.standard_normal((3, 64))).astype(np.float32)
    emb = [base[0], base[0] + 1e-4 * rng.standard_normal(64).astype(np.float32), base[1], base[2]]
    prints = rng.integers(0, 2**32, (4, 242), dtype=np.uint64).astype("<u4")
    if same_audio:
        flips = (rng.random((242, 32)) < 0.05).astype(np.uint64) << np.arange(32, dtype=np.uint64)
        prints[1] = prints[0] ^ flips.sum(axis=1).astype("<u4")
    store = LibraryStore(root)
    store.add([TrackRecord(f"d{i}", str(root.parent / f"song{i}.flac"), e, {"A": 1.0}, source="tags", duration=d,
                           chromaprint=prints[i].tobytes())
               for i, (e, d) in enumerate(zip(emb, durations))])
    return store


@pytest.mark.parametrize(("durations", "same_audio", "groups"), [
    ([200.0, 200.4, 200.0, 200.0], True, 1),    # a re-encode: grouped
    ([200.0, 199.2, 200.0, 200.0], True, 1),    # a copy trimmed by 0.8 s: grouped
    ([200.0, 200.0, 200.0, 200.0], False, 0),   # same sound and length, other audio: another take, not grouped
    ([200.0, 215.0, 200.0, 200.0], False, 0),   # same sound, another length: another take, not grouped
    ([200.0, 240.0, 200.0, 200.0], True, 0),    # far longer than any cut the fingerprints are searched for
    ([200.0, None, 200.0, 200.0], True, 0),     # duration unknown: never confirmed
])
def test_duplicates_need_close_embeddings_agreeing_fingerprints_and_durations(tmp_path, rng, capsys, durations,
                                                                             same_audio, groups):
    for i in range(4):
        (tmp_path / f"song{i}.flac").write_bytes(b"audio")
    duplicate_store(tmp_path / "lib", durations, rng, same_audio=same_audio)
    assert main(["duplicates", "--store", str(tmp_path / "lib"), "-q"]) == 0
    assert f"{groups} group(s)" in capsys.readouterr().out
    report = (tmp_path / "lib" / "duplicates.csv").read_text(encoding="utf-8").splitlines()
    assert report[0] == "group,track_id,path,artist,title,duration,distance,agreement,offset"
    assert len(report) == 1 + 2 * groups
    assert sorted(p.name for p in tmp_path.glob("song*.flac")) == [f"song{i}.flac" for i in range(4)]


def test_duplicates_report_that_cannot_be_written_is_one_line(tmp_path, rng, capsys):
    duplicate_store(tmp_path / "lib", [1.0, 1.0, 1.0, 1.0], rng)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["duplicates", "--store", str(tmp_path / "lib"), "--report", str(blocker / "r.csv")]) == 2
    assert str(blocker) in capsys.readouterr().err


def test_similar_artist_needs_a_query_or_an_artist(library, capsys):
    store, _, _ = library
    assert main(["similar", "--store", store]) == 2
    assert "give a query track or --artist NAME" in capsys.readouterr().err
    assert main(["similar", "--store", store, "--artist", "Artist 1-1", "-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "energy distance" in out and "Artist 1-0" in out and "Artist 1-2" in out
