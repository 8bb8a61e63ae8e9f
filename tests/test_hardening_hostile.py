"""Hostile files: pickled code in a model, malformed metadata, HTML in tags, paths in URLs.

* a ``.pth`` whose pickle would run a command is refused by ``infer``, ``index`` and ``similar``
  (and a ``train_state.pth`` by ``train --resume``) with exit 2 and one line, and the command
  never runs (its marker file does not appear);
* a manifest (dataset or metadata) or ``tracks.csv`` with malformed rows, missing columns, wrong
  types or a huge field is a one-line error naming the line or the track;
* tags holding ``<script>`` go through ``index`` -> ``map`` -> ``evolution`` -> ``serve`` and are
  only ever shown as text;
* ``serve`` answers on 127.0.0.1 and never serves a file it did not index, whatever the URL or a
  symlink in the music folder says.
"""

from __future__ import annotations

import html
import http.client
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from melodex.cli import main
from tests import nasty

LABELS = ["Folk", "Pop", "Rock"]


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint_factory) -> Path:
    return tiny_checkpoint_factory(LABELS, small=True)  # nothing here looks at the embedding's width


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


# ----------------------------------------------------------------------------- pickled code


class _Touch:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("command", ["infer", "index", "similar"])
def test_a_model_carrying_a_pickle_payload_never_runs(command, tmp_path, capsys, rng):
    from tests._helpers_store import synthetic_store

    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pth"
    torch.save({"format": "melodex-checkpoint", "config": _Touch(marker)}, evil)
    song = nasty._write(tmp_path / "song.wav", nasty.tone(1.0, 22050), 22050)
    store, _ = synthetic_store(tmp_path / "lib", rng)
    argv = {
        "infer": ["infer", "--model", str(evil), "--audio", str(song), "--num-workers", "0"],
        "index": ["index", "--store", str(tmp_path / "lib"), "--audio", str(song), "--model", str(evil),
                  "--num-workers", "0"],
        "similar": ["similar", str(song), "--store", str(tmp_path / "lib"), "--model", str(evil)],
    }[command]
    assert main(argv + ["-q"]) == 2
    line = _one_line(capsys)
    assert "evil.pth" in line and "refused" in line
    assert not marker.exists()
    assert len(store) == 60  # the store is as it was


# ----------------------------------------------------------------------------- malformed metadata

HUGE = "x" * 200_000  # over csv's own field limit (131072)


def _manifest(folder: Path, body: str) -> Path:
    nasty._write(folder / "a.wav", nasty.tone(0.5, 8000), 8000)
    nasty._write(folder / "b.wav", nasty.tone(0.5, 8000, freq=500), 8000)
    path = folder / "manifest.csv"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize("body, expected", [
    ("path,label\na.wav,Rock\nb.wav,Pop,extra\n", "line 3: 3 fields, the header has 2"),
    ("path,genre\na.wav,Rock\n", "line 1: missing column label"),
    ("path,label,date\na.wav,Rock,2001\nb.wav,Pop,last tuesday\n", "line 3: date 'last tuesday'"),
    ("path,label,split\na.wav,Rock,training\nb.wav,Pop,42\n", "line 3: split '42'"),
    ("path,label\na.wav,Rock\nb.wav," + "y" * 5000 + "\n", "line 3: field 'label' is 5000 characters"),
    ("path,label\na.wav,Rock\nb.wav," + HUGE + "\n", "line 3"),
    ("path,label\na.wav,Rock\n\"b.wav,Pop\n", "line"),  # an unclosed quote swallows the rest
    ("path,label\na.wav,\n", "line 2: empty label"),
], ids=["extra-field", "no-label-column", "bad-date", "bad-split", "long-field", "huge-field", "open-quote",
        "empty-label"])
def test_a_malformed_dataset_manifest_is_one_line_naming_the_row(body, expected, tmp_path, capsys):
    manifest = _manifest(tmp_path, body)
    assert main(["preprocess", "--data_dir", str(manifest), "--cache_dir", str(tmp_path / "c"), "--workers", "1",
                 "-q"]) == 2
    line = _one_line(capsys)
    assert str(manifest) in line and expected in line, line
    assert len(line) < 600  # a huge field is not echoed


@pytest.mark.parametrize("body, expected", [
    ("path,artist\na.wav,Someone\nb.wav,Other,extra\n", "line 3"),
    ("artist,title\nSomeone,Song\n", "'path' column"),
    ("path,artist\na.wav,Someone\nb.wav," + HUGE + "\n", "line 3"),
    ("path,artist\na.wav,Someone\n\xff\n", "not"),
], ids=["extra-field", "no-path-column", "huge-field", "not-utf8"])
def test_a_malformed_metadata_manifest_is_one_line_naming_the_row(body, expected, tmp_path, capsys, rng):
    from tests._helpers_store import jsonl_line, write_jsonl

    manifest = _manifest(tmp_path, "")
    if body.endswith("\xff\n"):
        manifest.write_bytes(body[:-2].encode() + b"\xff\n")
    else:
        manifest.write_text(body, encoding="utf-8")
    results = write_jsonl(tmp_path / "r.jsonl", [jsonl_line(str(tmp_path / "a.wav"), rng.random(512),
                                                            {"Folk": 0.2, "Pop": 0.3, "Rock": 0.5})])
    assert main(["index", "--store", str(tmp_path / "lib"), "--from-jsonl", str(results), "--manifest",
                 str(manifest), "-q"]) == 2
    line = _one_line(capsys)
    assert str(manifest) in line and expected in line, line
    assert len(line) < 600
    assert not (tmp_path / "lib").exists()  # nothing written from a half-read manifest


def _tracks_csv(folder: Path) -> Path:
    from melodex.datasets.fma import tracks_frame, write_tracks_csv

    records = {tid: {("set", "split"): "training", ("set", "subset"): "small", ("track", "genre_top"): "Rock",
                     ("track", "title"): f"T{tid}", ("album", "date_released"): "2010-01-01 00:00:00"}
               for tid in (2, 3, 5)}
    return write_tracks_csv(tracks_frame(records), folder / "fma_metadata" / "tracks.csv")


def _replace_in_row(path: Path, track_id: str, old: str, new: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith(f"{track_id},"):
            assert old in line
            lines[i] = line.replace(old, new, 1)
    path.write_text("".join(lines), encoding="utf-8")


@pytest.mark.parametrize("mutate, expected", [
    (lambda p: _replace_in_row(p, "3", "2010-01-01 00:00:00", "the day after"), "track 3: column ('album', 'date_released')"),
    (lambda p: _replace_in_row(p, "5", "[]", "[1 2]"), "track 5: column"),
    (lambda p: _replace_in_row(p, "5", "[]", "[1, 2]"), "line 6"),  # an unquoted comma: one field too many
    (lambda p: _replace_in_row(p, "3", "3,", "three,"), "track_id 'three'"),
    (lambda p: _replace_in_row(p, "5", "small", "tiny"), "track 5: ('set', 'subset') is 'tiny'"),
    (lambda p: p.write_text("\n".join(p.read_text().splitlines()[:2] + ["2,x"]) + "\n"), "tracks.csv"),
    (lambda p: p.write_text(p.read_text().replace("genre_top", "genre_tip")), "missing required column ('track', 'genre_top')"),
], ids=["bad-date", "bad-list", "extra-field", "bad-id", "bad-subset", "no-third-header", "missing-column"])
def test_a_malformed_tracks_csv_is_one_line_naming_the_track(mutate, expected, tmp_path, capsys):
    tracks = _tracks_csv(tmp_path)
    mutate(tracks)
    jsonl = tmp_path / "empty.jsonl"
    jsonl.write_text("")
    assert main(["index", "--store", str(tmp_path / "lib"), "--from-jsonl", str(jsonl), "--metadata", str(tracks),
                 "-q"]) == 2
    line = _one_line(capsys)
    assert expected in line, line
    assert len(line) < 600


def test_a_huge_field_in_tracks_csv_is_cut_not_trusted(tmp_path):
    from melodex.library.metadata import MAX_TAG_CHARS, fma_tracks

    tracks = _tracks_csv(tmp_path)
    _replace_in_row(tracks, "5", "T5", HUGE)
    by_key = {t.key: t for t in fma_tracks(tracks)}
    assert len(by_key["000005"].title) == MAX_TAG_CHARS and by_key["000003"].title == "T3"


# ----------------------------------------------------------------------------- HTML in tags

SCRIPT = "<script>alert(1)</script>"
HOSTILE = {"artist": SCRIPT, "title": '"><img src=x onerror=alert(2)>', "album": "</script><script>alert(3)//",
           "genre": "<svg onload=alert(4)>"}


def _tagged_mp3(path: Path, year: int, freq: float) -> Path:
    from mutagen.easyid3 import EasyID3

    nasty._write(path, nasty.tone(1.0, 22050, 1, freq), 22050)
    tags = EasyID3()
    for key, value in HOSTILE.items():
        tags[key] = value
    tags["date"] = str(year)
    tags.save(str(path))
    return path


def _no_live_markup(page: str) -> None:
    """No hostile string appears where a browser would parse it as markup or script."""
    for needle in ("<script>alert", "<img src=x", "<svg onload", "</script><script>alert(3)"):
        assert needle not in page, needle
    # the page's own scripts are the only ones: each <script ...> is one the writer put there
    opened = re.findall(r"<script\b[^>]*>", page)
    assert all(tag in ('<script type="text/javascript">', '<script type="application/json" id="map-data">')
               for tag in opened), opened


@pytest.fixture(scope="module")
def hostile_library(tmp_path_factory, checkpoint):
    base = tmp_path_factory.mktemp("hostile")
    music = base / "music"
    for i in range(4):
        _tagged_mp3(music / f"evil{i}.mp3", 2001 + i, 200 + 80 * i)
    for i in range(8):
        nasty._write(music / f"plain{i}.wav", nasty.tone(1.0, 22050, 1, 900 + 50 * i, seed=i), 22050)
    secret = base / "secret.txt"
    secret.write_text("root:x:0:0 secret\n")
    (music / "link_to_secret.mp3").symlink_to(secret)  # not audio: never indexed, so never served
    store = base / "lib"
    assert main(["index", "--store", str(store), "--audio", str(music), "--model", str(checkpoint),
                 "--num-workers", "0", "--device", "cpu", "-q"]) == 1  # the symlinked secret fails
    from melodex.library.store import LibraryStore
    from tests._helpers_maps import save_plain_map

    save_plain_map(LibraryStore(store))  # coordinates without UMAP: 'map' only writes the page
    return base


def test_tags_with_markup_are_text_in_the_map_page(hostile_library, capsys):
    from melodex.library.store import LibraryStore

    store = hostile_library / "lib"
    tracks = LibraryStore(store).tracks()
    assert (tracks["artist"] == SCRIPT).sum() == 4  # stored exactly as tagged
    out = hostile_library / "map.html"
    assert main(["map", "--store", str(store), "--out", str(out), "--no-png", "-q"]) == 0
    page = out.read_text(encoding="utf-8")
    _no_live_markup(page)
    data = page.split('id="map-data">', 1)[1].split("</script>", 1)[0]
    assert "\\u003cscript\\u003ealert(1)" in data  # the value is there, as JSON escapes


def test_tags_with_markup_are_text_in_the_evolution_report(hostile_library):
    out = hostile_library / "evolution"
    assert main(["evolution", "--store", str(hostile_library / "lib"), "--artist", SCRIPT, "--out", str(out),
                 "--min-tracks", "3", "-q"]) == 0
    pages = list(out.rglob("*.html"))
    assert pages
    for page in pages:
        text = page.read_text(encoding="utf-8")
        _no_live_markup(text)
        assert html.escape(SCRIPT) in text  # shown, as text
    for name in (p.name for p in out.rglob("*")):
        assert "<" not in name and "/" not in name  # file names made from the artist are safe


def _get(address, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(*address, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_serve_shows_markup_as_text_and_serves_only_indexed_files(hostile_library):
    from urllib.parse import quote

    from melodex.analysis.serve import make_server
    from melodex.library.store import LibraryStore

    store = LibraryStore(hostile_library / "lib")
    server = make_server(store, port=0)
    assert server.server_address[0] == "127.0.0.1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        address = server.server_address[:2]
        status, page = _get(address, "/")
        assert status == 200
        _no_live_markup(page.decode("utf-8"))
        tracks = store.tracks()
        track_id, path = tracks["track_id"][0], tracks["path"][0]
        status, body = _get(address, f"/audio/{track_id}")
        assert status == 200 and body == Path(path).read_bytes()
        secret = hostile_library / "secret.txt"
        music = hostile_library / "music"
        attempts = [
            f"/audio/{track_id}/../../secret.txt", "/audio/..%2F..%2Fsecret.txt", "/audio/%2e%2e/%2e%2e/secret.txt",
            "/audio/%2E%2E%2Fsecret.txt", "/audio/" + quote(str(secret), safe=""), "/audio/" + str(secret),
            "/audio/" + quote(str(music / "link_to_secret.mp3"), safe=""), "/audio/link_to_secret.mp3",
            "/" + str(secret), "/..%2fsecret.txt", "/audio/%00", "/audio/" + quote(path, safe=""),
            f"/audio/{track_id}%00.txt", f"/audio/{track_id}/", "/audio/.", "/audio/~root",
        ]
        for attempt in attempts:
            status, body = _get(address, attempt)
            assert status == 404 and b"secret" not in body, attempt
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_serve_listens_on_loopback_unless_told_otherwise():
    from melodex.cli import get_parser

    args = get_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1"
    np.testing.assert_equal(args.port, 8000)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_training_state_carrying_a_pickle_payload_never_runs(tmp_path, capsys):
    run = tmp_path / "out" / "2026-01-01_00-00-00"
    run.mkdir(parents=True)
    (run / "params.json").write_text('{"hyperparameters": {"epochs": 2, "batch_size": 4}}')
    marker = tmp_path / "PWNED"
    torch.save({"format": "melodex-train-state", "model": _Touch(marker)}, run / "train_state.pth")
    assert main(["train", "--resume", str(run), "-q"]) == 2
    line = _one_line(capsys)
    assert "train_state.pth" in line and "refused" in line
    assert not marker.exists()
