"""Tags from every format (.opus too), FMA track fields, manifests, dates; broken tags never crash."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from melodex.audio.encode import write_audio
from melodex.errors import DatasetError
from melodex.library.metadata import merge, normalize_date, read_manifest, read_tags, track_metadata
from melodex.library.store import resolved_path

TAGS = {"artist": "Ana Ödön", "title": "Song <One>", "album": "First", "date": "2004-05-06", "genre": "Folk"}


def _audio(path: Path) -> Path:
    sr = 48000 if path.suffix == ".opus" else 22050  # Opus takes 8, 12, 16, 24 or 48 kHz
    t = np.arange(sr) / sr
    return write_audio(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr)


def _tag_easy(path: Path, tags: dict[str, str]) -> None:
    import mutagen

    audio = mutagen.File(str(path), easy=True)
    if audio.tags is None:
        audio.add_tags()
    for key, value in tags.items():
        audio[key] = value
    audio.save()


def _tag_wav_id3(path: Path, tags: dict[str, str]) -> None:
    from mutagen.id3 import TALB, TCON, TDRC, TIT2, TPE1
    from mutagen.wave import WAVE

    audio = WAVE(str(path))
    audio.add_tags()
    for frame, key in ((TPE1, "artist"), (TIT2, "title"), (TALB, "album"), (TDRC, "date"), (TCON, "genre")):
        audio.tags.add(frame(encoding=3, text=[tags[key]]))
    audio.save()


@pytest.mark.parametrize("ext", [".mp3", ".flac", ".ogg", ".opus", ".m4a", ".wav"])
def test_tags_are_read_from_every_format(tmp_path, ext):
    path = _audio(tmp_path / f"song{ext}")
    (_tag_wav_id3 if ext == ".wav" else _tag_easy)(path, TAGS)
    assert read_tags(path) == {**TAGS, "date_source": "tags"}


def test_wav_riff_info_chunk_is_read(tmp_path):
    import soundfile as sf

    path = tmp_path / "info.wav"
    with sf.SoundFile(str(path), "w", samplerate=22050, channels=1, format="WAV", subtype="PCM_16") as f:
        f.artist, f.title, f.album, f.date, f.genre = "Riff Artist", "Riff Title", "Riff Album", "1999", "Jazz"
        f.write(np.zeros(2205, dtype=np.float32))
    assert read_tags(path) == {"artist": "Riff Artist", "title": "Riff Title", "album": "Riff Album",
                               "date": "1999", "genre": "Jazz", "date_source": "tags"}


def test_untagged_broken_and_missing_files_give_empty_tags(tmp_path):
    plain = _audio(tmp_path / "plain.flac")
    assert read_tags(plain) == {}
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"ID3\x04\x00\x00\x7f\x7f\x7f\x7f" + b"\xff" * 4000)  # an ID3 header claiming ~256 MB
    assert read_tags(broken) == {}
    assert read_tags(tmp_path / "absent.ogg") == {}
    garbage_wav = tmp_path / "bad.wav"
    garbage_wav.write_bytes(b"RIFF\xff\xff\xff\xffWAVELIST\xff\xff\xff\x7fINFO")
    assert read_tags(garbage_wav) == {}


def test_huge_tag_values_are_cut(tmp_path):
    path = _audio(tmp_path / "long.ogg")
    _tag_easy(path, {"title": "x" * 100_000, "date": "not a date"})
    tags = read_tags(path)
    assert len(tags["title"]) == 500 and "date" not in tags and "date_source" not in tags


@pytest.mark.parametrize("raw, expected", [
    ("2004", "2004"), ("2004-05-06", "2004-05-06"), ("2004-05-06T10:11:12", "2004-05-06"),
    ("2004/5/6", "2004-05-06"), ("2004-05", "2004"), ("2004-13-40", "2004"), ("unknown", None),
    ("", None), (None, None), ("0000", None),
])
def test_dates_are_normalised(raw, expected):
    assert normalize_date(raw) == expected


def test_fma_track_fields_and_date_source():
    from melodex.datasets.base import Track

    released = Track("000002", Path("000/000002.mp3"), "Hip-Hop", artist="AWOL", artist_id="1", title="Food",
                     album="AWOL - A Way Of Life", date="2009-01-05", date_source="album.date_released")
    assert track_metadata(released) == {"artist": "AWOL", "artist_id": "1", "title": "Food",
                                        "album": "AWOL - A Way Of Life", "date": "2009-01-05",
                                        "date_source": "album.date_released", "genre": "Hip-Hop"}
    undated = Track("000003", Path("000/000003.mp3"), None, title="Only title", date_source="album.date_released")
    assert track_metadata(undated) == {"title": "Only title"}


def test_manifest_supplies_and_overrides_fields(tmp_path):
    song = _audio(tmp_path / "music" / "a.flac")
    _tag_easy(song, {"artist": "Tagged", "title": "Tagged title", "date": "2001"})
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,artist,title,album,date,genre\nmusic/a.flac,Manifest Artist,,Album M,2010-02-03,Rock\n")
    fields = read_manifest(manifest)
    assert fields == {resolved_path(song): {"artist": "Manifest Artist", "album": "Album M", "date": "2010-02-03",
                                            "genre": "Rock", "date_source": "manifest"}}
    merged = merge(read_tags(song), fields[resolved_path(song)])
    assert merged["artist"] == "Manifest Artist" and merged["title"] == "Tagged title"
    assert merged["date"] == "2010-02-03" and merged["date_source"] == "manifest"


def test_manifest_without_path_column_is_a_clear_error(tmp_path):
    bad = tmp_path / "m.csv"
    bad.write_text("file,artist\na.mp3,X\n")
    with pytest.raises(DatasetError, match="'path' column"):
        read_manifest(bad)
    with pytest.raises(DatasetError, match="cannot read manifest"):
        read_manifest(tmp_path / "none.csv")


def _tiny_tracks_csv(path: Path) -> Path:
    from melodex.datasets.fma import tracks_frame, write_tracks_csv

    records = {
        2: {("set", "split"): "training", ("set", "subset"): "small", ("track", "genre_top"): "Hip-Hop",
            ("track", "title"): "Food", ("artist", "name"): "AWOL", ("artist", "id"): 1,
            ("album", "title"): "AWOL - A Way Of Life", ("album", "date_released"): "2009-01-05 00:00:00",
            ("track", "date_created"): "2008-11-26 01:48:12"},
        5: {("set", "split"): "test", ("set", "subset"): "small", ("track", "genre_top"): None,
            ("track", "title"): "No album date", ("artist", "name"): "Kurt", ("artist", "id"): 7,
            ("track", "date_created"): "2008-11-26 01:48:56"},
        9: {("set", "split"): "test", ("set", "subset"): "large", ("track", "title"): "Undated"},
    }
    return write_tracks_csv(tracks_frame(records), path)


def test_fma_catalogue_without_audio(tmp_path):
    from melodex.library.metadata import fma_tracks

    csv_path = _tiny_tracks_csv(tmp_path / "fma_metadata" / "tracks.csv")
    by_key = {t.key: t for t in fma_tracks(csv_path.parent)}
    assert set(by_key) == {"000002", "000005", "000009"}
    assert track_metadata(by_key["000002"]) == {"artist": "AWOL", "artist_id": "1", "title": "Food",
                                                "album": "AWOL - A Way Of Life", "date": "2009-01-05",
                                                "date_source": "album.date_released", "genre": "Hip-Hop"}
    assert track_metadata(by_key["000005"]) == {"artist": "Kurt", "artist_id": "7", "title": "No album date",
                                                "date": "2008-11-26", "date_source": "track.date_created"}
    assert track_metadata(by_key["000009"]) == {"title": "Undated"}
    with pytest.raises(DatasetError, match="not found"):
        fma_tracks(tmp_path / "nowhere")


def test_index_with_fma_metadata_uses_fma_ids(tmp_path, rng):
    from melodex.cli import main
    from melodex.library.store import LibraryStore
    from tests._helpers_store import jsonl_line, write_jsonl

    csv_path = _tiny_tracks_csv(tmp_path / "fma_metadata" / "tracks.csv")
    lines = [jsonl_line(f"/elsewhere/fma_small/000/{name}.mp3", rng.random(512), {"Hip-Hop": 0.9, "Rock": 0.1})
             for name in ("000002", "000005", "my_song")]
    write_jsonl(tmp_path / "r.jsonl", lines)
    assert main(["index", "--store", str(tmp_path / "lib"), "--from-jsonl", str(tmp_path / "r.jsonl"),
                 "--metadata", str(csv_path), "-q"]) == 0
    tracks = LibraryStore(tmp_path / "lib").tracks().set_index("track_id")
    assert tracks.loc["000002", "artist"] == "AWOL" and tracks.loc["000002", "year"] == 2009
    assert tracks.loc["000002", "source"] == "fma" and tracks.loc["000002", "genre"] == "Hip-Hop"
    assert tracks.loc["000005", "genre"] is pd.NA and tracks.loc["000005", "date_source"] == "track.date_created"
    other = tracks[tracks["source"] == "inference"]
    assert len(other) == 1 and other.index[0].startswith("p")  # not in the catalogue: a path key
