"""``melodex index``: from an inference JSONL and from audio; dedupe, resume, metadata, exit codes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from melodex.cli import main
from melodex.library.store import LibraryStore, path_key, resolved_path
from tests._helpers_store import jsonl_line, write_jsonl


def _lines(tmp_path, rng, n, start=0):
    return [jsonl_line(str(tmp_path / f"song{i}.mp3"), rng.random(512), {"Folk": 0.7, "Pop": 0.2, "Rock": 0.1})
            for i in range(start, start + n)]


def test_index_from_jsonl_counts_errors_and_exits_1(tmp_path, rng, capsys):
    lines = _lines(tmp_path, rng, 4) + [{"audio_file": "bad.mp3", "error": "cannot decode"}]
    jsonl = write_jsonl(tmp_path / "r.jsonl", lines)
    with open(jsonl, "a") as handle:
        handle.write("{not json\n")
    store_dir = tmp_path / "lib"
    assert main(["index", "--store", str(store_dir), "--from-jsonl", str(jsonl), "-q"]) == 1
    store = LibraryStore(store_dir)
    tracks = store.tracks()
    assert len(tracks) == 4 and store.embeddings().shape == (4, 512)
    assert set(tracks["track_id"]) == {path_key(tmp_path / f"song{i}.mp3") for i in range(4)}
    assert (tracks["source"] == "inference").all() and tracks["artist"].isna().all()
    assert tracks.loc[0, "predicted_label"] == "Folk" and tracks.loc[0, "prob:Folk"] == pytest.approx(0.7)
    np.testing.assert_allclose(store.embeddings()[0], lines[0]["embedding"], rtol=1e-6)
    err = capsys.readouterr().err
    assert "failed: bad.mp3: cannot decode" in err and "r.jsonl:6: unparsable line" in err


def test_rerun_adds_only_new_lines(tmp_path, rng):
    store_dir = tmp_path / "lib"
    first = write_jsonl(tmp_path / "a.jsonl", _lines(tmp_path, rng, 3))
    assert main(["index", "--store", str(store_dir), "--from-jsonl", str(first), "-q"]) == 0
    both = write_jsonl(tmp_path / "b.jsonl", _lines(tmp_path, rng, 5))  # 3 old + 2 new
    assert main(["index", "--store", str(store_dir), "--from-jsonl", str(both), "-q"]) == 0
    assert len(LibraryStore(store_dir)) == 5
    assert len(list((store_dir / "parts").glob("part-*.parquet"))) == 1  # the two runs' parts, compacted


def test_interrupted_index_keeps_finished_parts_and_resumes(tmp_path, rng):
    from melodex.library.indexing import IndexSummary, MetadataSources, index_records, records_from_jsonl

    lines = _lines(tmp_path, rng, 10)
    store = LibraryStore(tmp_path / "lib")

    def dying():
        yield from lines[:7]
        raise KeyboardInterrupt  # the user presses Ctrl-C while line 8 is being processed

    with pytest.raises(KeyboardInterrupt):
        index_records(store, records_from_jsonl(dying(), MetadataSources(), set(), IndexSummary()), part_size=3)
    assert len(LibraryStore(store.root)) == 6  # two complete parts; the third was in flight
    jsonl = write_jsonl(tmp_path / "all.jsonl", lines)
    assert main(["index", "--store", str(store.root), "--from-jsonl", str(jsonl), "--part-size", "3", "-q"]) == 0
    assert len(LibraryStore(store.root)) == 10


def test_manifest_supplies_metadata(tmp_path, rng):
    jsonl = write_jsonl(tmp_path / "r.jsonl", _lines(tmp_path, rng, 2))
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,artist,title,album,date,genre\nsong1.mp3,Nina,Blue <b>,LP,1998-03-02,Pop\n")
    assert main(["index", "--store", str(tmp_path / "lib"), "--from-jsonl", str(jsonl),
                 "--manifest", str(manifest), "-q"]) == 0
    tracks = LibraryStore(tmp_path / "lib").tracks().set_index("path")
    row = tracks.loc[resolved_path(tmp_path / "song1.mp3")]
    assert (row["artist"], row["title"], row["date"], row["year"], row["genre"], row["source"]) == \
        ("Nina", "Blue <b>", "1998-03-02", 1998, "Pop", "manifest")
    assert row["date_source"] == "manifest"
    other = tracks.loc[resolved_path(tmp_path / "song0.mp3")]
    assert other["artist"] is pd.NA and other["year"] is pd.NA and other["source"] == "inference"


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main(["index", "--store", str(tmp_path / "lib")]) == 2
    assert "either --audio" in capsys.readouterr().err
    assert main(["index", "--store", str(tmp_path / "lib"), "--audio", str(tmp_path)]) == 2
    assert "--audio needs --model" in capsys.readouterr().err
    assert main(["index", "--store", str(tmp_path / "lib"), "--from-jsonl", str(tmp_path / "none.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_index_from_audio_processes_only_new_files(tmp_path, make_audio, tiny_checkpoint, monkeypatch):
    import mutagen

    music = tmp_path / "music"
    for i, ext in enumerate((".wav", ".flac")):
        make_audio(f"music/s{i}{ext}", seconds=2.0, freq=300 + 200 * i)
    tagged = mutagen.File(str(music / "s1.flac"), easy=True)
    tagged["artist"], tagged["date"] = "Tag Artist", "2011"
    tagged.save()
    (music / "broken.mp3").write_bytes(b"not audio at all")
    store_dir = tmp_path / "lib"
    args = ["index", "--store", str(store_dir), "--audio", str(music), "--model", str(tiny_checkpoint),
            "--num-workers", "0", "--device", "cpu", "-q"]
    assert main(args) == 1  # broken.mp3 failed
    tracks = LibraryStore(store_dir).tracks().set_index("path")
    assert len(tracks) == 2 and set(tracks["predicted_label"]) <= {"Folk", "Pop", "Rock"}
    flac = tracks.loc[resolved_path(music / "s1.flac")]
    assert (flac["artist"], flac["year"], flac["source"]) == ("Tag Artist", 2011, "tags")

    import melodex.inference.predictor

    seen = []
    original = melodex.inference.predictor.Predictor.predict

    def spy(self, paths, **kw):
        seen.extend(str(p) for p in paths)
        return original(self, paths, **kw)

    monkeypatch.setattr(melodex.inference.predictor.Predictor, "predict", spy)
    make_audio("music/s2.ogg", seconds=2.0, freq=900)
    (music / "broken.mp3").unlink()
    assert main(args) == 0
    assert seen == [str(music / "s2.ogg")]  # the two indexed files were not decoded again
    assert len(LibraryStore(store_dir)) == 3
