"""Tags keep every value: several artists and genres, TXXX years, Windows-1252 text, album artists.

Files are written with mutagen (and ffmpeg, through PyAV), indexed with ``melodex index`` and
read back from the store, as a user would see them.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from melodex.audio.encode import write_audio
from melodex.cli import main
from melodex.library.store import LibraryStore, resolved_path

ARTISTS, GENRES = ["Sigur Ros", "Jonsi"], ["Post-Rock", "Ambient"]


def _audio(path: Path, freq: float = 440.0) -> Path:
    t = np.arange(22050) / 22050
    return write_audio(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 22050)


def _id3_frames(path: Path) -> None:
    """Two artists and two genres as real multi-value ID3v2.4 frames (NUL-separated), plus TPE2."""
    from mutagen.id3 import ID3, TALB, TCON, TDRC, TIT2, TPE1, TPE2

    tags = ID3()
    tags.add(TPE1(encoding=3, text=ARTISTS))
    tags.add(TCON(encoding=3, text=GENRES))
    tags.add(TPE2(encoding=3, text=["Sigur Ros"]))
    tags.add(TIT2(encoding=3, text=["Svefn-g-englar"]))
    tags.add(TALB(encoding=3, text=["Agaetis byrjun"]))
    tags.add(TDRC(encoding=3, text=["1999"]))
    tags.save(str(path), v2_version=4)


def _vorbis_or_mp4(path: Path) -> None:
    """Repeated Vorbis comments (flac) or MP4 value lists (m4a), with an album artist."""
    import mutagen

    audio = mutagen.File(str(path))
    if audio.tags is None:
        audio.add_tags()
    if path.suffix == ".m4a":
        values = {"\xa9ART": ARTISTS, "\xa9gen": GENRES, "aART": ["Sigur Ros"], "\xa9alb": ["Agaetis byrjun"],
                  "\xa9day": ["1999"], "\xa9nam": ["Svefn-g-englar"]}
    else:
        values = {"ARTIST": ARTISTS, "GENRE": GENRES, "ALBUMARTIST": ["Sigur Ros"], "ALBUM": ["Agaetis byrjun"],
                  "DATE": ["1999"], "TITLE": ["Svefn-g-englar"]}
    for key, value in values.items():
        audio.tags[key] = value
    audio.save()


def _joined_string(path: Path) -> None:
    """One ``;``-separated value per field, as many taggers write it (EasyID3 here)."""
    from mutagen.easyid3 import EasyID3

    tags = EasyID3()
    tags.update({"artist": "Sigur Ros; Jonsi", "genre": "Post-Rock; Ambient", "albumartist": "Sigur Ros",
                 "album": "Agaetis byrjun", "date": "1999", "title": "Svefn-g-englar"})
    tags.save(str(path))


def _ffmpeg_year_mp3(path: Path) -> Path:
    """An mp3 written by ffmpeg with ``-metadata year=2004 -metadata album_artist=...``: the year
    lands in a ``TXXX:year`` frame, which a reader of TDRC/TYER alone loses."""
    import av

    with av.open(str(path), "w") as container:
        container.metadata.update({"year": "2004", "artist": "Ffmpeg Artist", "album_artist": "Ffmpeg Band",
                                   "album": "Ffmpeg Album"})
        stream = container.add_stream("libmp3lame", rate=22050, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 22050), dtype=np.float32), format="fltp", layout="mono")
        frame.sample_rate = 22050
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def _txxx_date_mp3(path: Path) -> Path:
    from mutagen.id3 import ID3, TPE1, TXXX

    _audio(path, 500.0)
    tags = ID3()
    tags.add(TPE1(encoding=3, text=["Txxx Artist"]))
    tags.add(TXXX(encoding=3, desc="DATE", text=["2011-04-05"]))
    tags.save(str(path))
    return path


def _riff_cp1252_wav(path: Path) -> Path:
    """A wav whose LIST/INFO chunk was written by a Windows tool: Windows-1252 bytes, no encoding named."""
    _audio(path, 600.0)
    fields = {b"IART": "Björk Guðmundsdóttir", b"INAM": "Café ‘Noir’ – €5", b"IPRD": "Débût", b"IGNR": "Électro",
              b"ICRD": "1993"}
    body = b"INFO"
    for key, text in fields.items():
        data = text.encode("cp1252") + b"\x00"
        body += key + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) % 2 else b"")
    raw = bytearray(path.read_bytes())
    raw += b"LIST" + struct.pack("<I", len(body)) + body
    raw[4:8] = struct.pack("<I", len(raw) - 8)
    path.write_bytes(bytes(raw))
    return path


def _latin1_frame_mp3(path: Path) -> Path:
    """An ID3 frame declared Latin-1 that holds Windows-1252 quotes (byte 0x92), as old taggers wrote."""
    from mutagen.id3 import ID3, TIT2, TPE1

    _audio(path, 700.0)
    tags = ID3()
    tags.add(TPE1(encoding=0, text=[b"Sin\xe9ad O\x92Connor".decode("latin-1")]))
    tags.add(TIT2(encoding=0, text=["Nothing Compares"]))
    tags.save(str(path), v2_version=3)
    return path


@pytest.fixture(scope="module")
def tagged_library(tmp_path_factory, tiny_checkpoint_factory) -> tuple[Path, dict[str, dict]]:
    """Every kind of file above, indexed in one run of ``melodex index --audio``."""
    base = tmp_path_factory.mktemp("tags")
    music = base / "music"
    files = {"id3": _audio(music / "frames.mp3", 300.0), "flac": _audio(music / "comments.flac", 320.0),
             "m4a": _audio(music / "atoms.m4a", 340.0), "joined": _audio(music / "joined.mp3", 360.0)}
    _id3_frames(files["id3"])
    _vorbis_or_mp4(files["flac"])
    _vorbis_or_mp4(files["m4a"])
    _joined_string(files["joined"])
    files["ffmpeg"] = _ffmpeg_year_mp3(music / "ffmpeg.mp3")
    files["txxx"] = _txxx_date_mp3(music / "txxx.mp3")
    files["riff"] = _riff_cp1252_wav(music / "riff.wav")
    files["latin1"] = _latin1_frame_mp3(music / "latin1.mp3")
    store = base / "lib"
    assert main(["index", "--store", str(store), "--audio", str(music), "--model",
                 str(tiny_checkpoint_factory(small=True)), "--num-workers", "0", "--device", "cpu", "-q"]) == 0
    tracks = LibraryStore(store).tracks().set_index("path")
    rows = {name: tracks.loc[resolved_path(path)].to_dict() for name, path in files.items()}
    return store, rows


@pytest.mark.parametrize("name", ["id3", "flac", "m4a", "joined"])
def test_every_artist_and_genre_is_kept_with_a_display_string(tagged_library, name):
    row = tagged_library[1][name]
    assert list(row["artists"]) == ARTISTS and list(row["genres"]) == GENRES
    assert row["artist"] == "Sigur Ros; Jonsi" and row["genre"] == "Post-Rock; Ambient"
    assert row["album_artist"] == "Sigur Ros" and row["year"] == 1999
    assert row["release_id"] == "title:agaetis byrjun|sigur ros|1999"  # album + album artist + year


def test_a_txxx_year_written_by_ffmpeg_is_read(tagged_library):
    row = tagged_library[1]["ffmpeg"]
    assert row["year"] == 2004 and row["date"] == "2004" and row["date_source"] == "tags"
    assert row["album_artist"] == "Ffmpeg Band" and list(row["artists"]) == ["Ffmpeg Artist"]
    assert tagged_library[1]["txxx"]["date"] == "2011-04-05"


def test_windows_1252_text_is_decoded_not_replaced(tagged_library):
    riff, latin1 = tagged_library[1]["riff"], tagged_library[1]["latin1"]
    assert riff["artist"] == "Björk Guðmundsdóttir" and riff["title"] == "Café ‘Noir’ – €5"
    assert riff["album"] == "Débût" and list(riff["genres"]) == ["Électro"] and riff["year"] == 1993
    assert latin1["artist"] == "Sinéad O’Connor"
    for row in tagged_library[1].values():
        assert not any("\ufffd" in str(v) for v in row.values() if isinstance(v, str))


def test_the_store_keeps_lists_readable_by_pyarrow(tagged_library):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(next((tagged_library[0] / "parts").glob("*.parquet")), columns=["artists", "genres"])
    kind = table.schema.field("artists").type
    assert pa.types.is_list(kind) and kind.value_type == pa.string()
    assert ARTISTS in table.column("artists").to_pylist()


def test_a_manifest_splits_artists_and_names_the_album(tmp_path, rng):
    from tests._helpers_store import jsonl_line, write_jsonl

    write_jsonl(tmp_path / "r.jsonl", [jsonl_line(f"/m/{i}.mp3", rng.random(512), {"Pop": 1.0}) for i in range(2)])
    (tmp_path / "m.csv").write_text("path,artist,album,album_id,date,genre\n"
                                    "/m/0.mp3,A; B,Live,live-1,2001,Rock; Pop\n/m/1.mp3,A; B,Live,live-2,2001,Rock\n")
    assert main(["index", "--store", str(tmp_path / "lib"), "--from-jsonl", str(tmp_path / "r.jsonl"),
                 "--manifest", str(tmp_path / "m.csv"), "-q"]) == 0
    tracks = LibraryStore(tmp_path / "lib").tracks().set_index("path")
    first, second = tracks.loc[resolved_path("/m/0.mp3")], tracks.loc[resolved_path("/m/1.mp3")]
    assert list(first["artists"]) == ["A", "B"] and list(first["genres"]) == ["Rock", "Pop"]
    assert (first["release_id"], second["release_id"]) == ("manifest:live-1", "manifest:live-2")
