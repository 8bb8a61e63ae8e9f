"""A model without a genre head (``n_classes == 0``, as label-free training makes) through every command.

``infer`` keeps each format's schema with its prediction fields empty (JSONL: empty lists and
objects; JSON: ``null`` label and confidence, empty lists and objects; CSV: empty cells, one row
per file) and the embeddings present; ``index`` stores null predictions, no ``prob:`` columns, the
embeddings and the model's fingerprint; ``map`` colours by tag genre, artist, year or folder and
offers no predicted genre; ``similar``, ``evolution`` and ``serve`` work and print no predicted
genre. The checkpoint is the session's tiny factory's, with no labels and normalisation buffers set
(random weights: these are schema tests).
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from melodex.analysis.serve import make_server
from melodex.audio.encode import write_audio
from melodex.cli import main
from melodex.library.store import LibraryStore
from melodex.model.checkpoint import load_checkpoint, model_fingerprint
from tests.conftest import run_script, tone
from tests.test_map_browser import CHROMIUM, browser, open_map, page  # noqa: F401 (fixtures for the browser test)
from tests.test_serve import fetch, serving

# folder/file, artist, date, tag genre (None: no genre tag)
TRACKS = (("Alpha/one.wav", "Alpha", "2001-01-01", "Rock"), ("Alpha/two.wav", "Alpha", "2004-05-01", "Rock"),
          ("Alpha/three.wav", "Alpha", "2009-03-01", None), ("Beta/four.wav", "Beta", "2003-01-01", "Jazz"),
          ("Beta/five.wav", "Beta", "2010-01-01", None), ("Gamma/six.wav", "Gamma", None, None))
DIM = 64  # the small tiny model's embedding


@pytest.fixture(scope="module")
def headless(tiny_checkpoint_factory) -> str:
    """A headless checkpoint: the tiny factory's small model with no labels."""
    path = tiny_checkpoint_factory((), small=True, normalized=True)
    assert load_checkpoint(path).headless
    return str(path)


@pytest.fixture(scope="module")
def supervised(tiny_checkpoint_factory) -> str:
    """The same small model with three labels: the schema the headless outputs must keep."""
    return str(tiny_checkpoint_factory(small=True, normalized=True))


@pytest.fixture(scope="module")
def music(tmp_path_factory) -> tuple[Path, Path]:
    """(a folder of six short clips in three sub-folders, a manifest giving their artist, date and genre)."""
    root = tmp_path_factory.mktemp("headless")
    rows = ["path,artist,title,album,date,genre"]
    for k, (name, artist, date, genre) in enumerate(TRACKS):
        path = root / "music" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_audio(path, tone(2.0 + k, 22050, 220.0 * (k + 1), 1, seed=k), 22050)
        rows.append(f"{path},{artist},T{k},Album {k},{date or ''},{genre or ''}")
    manifest = root / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return root / "music", manifest


@pytest.fixture(scope="module")
def store(music, headless, tmp_path_factory) -> LibraryStore:
    """The clips indexed with the headless model (metadata from the manifest), with a map."""
    folder, manifest = music
    root = tmp_path_factory.mktemp("headless-store") / "library"
    assert main(["index", "--store", str(root), "--audio", str(folder), "--model", headless,
                 "--manifest", str(manifest), "--num-workers", "0", "-q"]) == 0
    assert main(["map", "--store", str(root), "--out", str(root.parent / "map.html"), "--no-png", "-q"]) == 0
    return LibraryStore(root)


def _infer(model: str, folder: Path, out: Path, *extra: str) -> int:
    return main(["infer", "--model", model, "--audio", str(folder), "--output", str(out), "--num-workers", "0",
                 "-q", *extra])


def _csv_rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


# ----------------------------------------------------------------------------------------- infer
@pytest.mark.parametrize("full", [False, True], ids=["first-30s", "full-file"])
def test_infer_jsonl_keeps_its_fields_with_empty_predictions(music, headless, supervised, tmp_path, full):
    flag = ["--full"] if full else []
    assert _infer(headless, music[0], tmp_path / "h.jsonl", *flag) == 0
    assert _infer(supervised, music[0], tmp_path / "s.jsonl", *flag) == 0
    heads = [json.loads(line) for line in (tmp_path / "h.jsonl").read_text().splitlines()]
    sups = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert len(heads) == len(TRACKS) and [h["audio_file"] for h in heads] == [s["audio_file"] for s in sups]
    for h, s in zip(heads, sups):
        assert h.keys() == s.keys() and h["global_prediction"].keys() == s["global_prediction"].keys()
        assert h["global_prediction"] == {"top_labels": [], "probabilities": [], "all_probabilities": {}}
        assert len(h["segments"]) == h["total_segments"] == s["total_segments"] >= 1
        assert all(seg["predictions"] == {} and seg.keys() == s["segments"][0].keys() for seg in h["segments"])
        assert len(h["embedding"]) == DIM and np.isfinite(h["embedding"]).all() and h["duration"] == s["duration"]


def test_infer_json_has_null_labels_and_every_embedding(music, headless, supervised, tmp_path):
    for full in (False, True):
        flag = ["--full"] if full else []
        assert _infer(headless, music[0], tmp_path / "h.json", *flag) == 0
        assert _infer(supervised, music[0], tmp_path / "s.json", *flag) == 0
        doc, ref = json.loads((tmp_path / "h.json").read_text()), json.loads((tmp_path / "s.json").read_text())
        assert doc.keys() == ref.keys() and doc["audio_files"] == ref["audio_files"]
        assert [p.keys() for p in doc["predictions"]] == [p.keys() for p in ref["predictions"]]
        for entry in doc["predictions"]:
            if full:
                assert entry["top_predictions"] == []
            else:
                assert entry["predicted_label"] is None and entry["confidence"] is None
                assert entry["all_probabilities"] == {}
        assert [len(e) for e in doc["embeddings"]] == [DIM] * len(TRACKS)
        assert len(pd.read_json(tmp_path / "h.json")) == len(TRACKS)  # still one row per file


def test_infer_says_once_that_the_model_has_no_genre_head(music, headless, tmp_path, capsys):
    assert main(["infer", "--model", headless, "--audio", str(music[0]), "--output", str(tmp_path / "h.jsonl"),
                 "--num-workers", "0"]) == 0
    err = capsys.readouterr().err
    assert err.count(f"{headless} has no genre head: the output's prediction fields stay empty\n") == 1


def test_infer_csv_has_empty_prediction_cells_and_one_row_per_file(music, headless, supervised, tmp_path):
    for full, header in ((False, "audio_file,predicted_label,confidence,embedding"),
                         (True, "audio_file,rank,predicted_label,probability,embedding")):
        flag = ["--full"] if full else []
        assert _infer(headless, music[0], tmp_path / "h.csv", *flag) == 0
        assert _infer(supervised, music[0], tmp_path / "s.csv", *flag) == 0
        for out in ("h.csv", "s.csv"):
            assert (tmp_path / out).read_text().splitlines()[0] == header
        rows = _csv_rows(tmp_path / "h.csv")
        assert len(rows) == len(TRACKS)  # full-file too: one row, not three, each with its embedding
        for row in rows:
            assert row["predicted_label"] == "" and row.get("confidence", "") == row.get("probability", "") == ""
            assert row.get("rank", "") == "" and len(json.loads(row["embedding"])) == DIM
        assert not (tmp_path / "h.errors.csv").exists()


def test_the_ray_engine_gives_the_local_engines_headless_results(music, headless, tmp_path):
    """``--engine ray`` (its own local Ray instance, in a process of its own) writes what the local engine writes."""
    pytest.importorskip("ray")
    assert _infer(headless, music[0], tmp_path / "local.jsonl", "--full") == 0
    done = run_script(["-m", "melodex", "infer", "--model", headless, "--audio", str(music[0]), "--full", "--output",
                       str(tmp_path / "ray.jsonl"), "--engine", "ray", "--address", "local", "-q"])
    assert done.returncode == 0, done.stderr[-2000:]
    local, remote = ([json.loads(line) for line in (tmp_path / name).read_text().splitlines()]
                     for name in ("local.jsonl", "ray.jsonl"))
    assert [r["audio_file"] for r in remote] == [r["audio_file"] for r in local]
    for r, ref in zip(remote, local):
        assert r["global_prediction"] == ref["global_prediction"] and r["segments"] == ref["segments"]
        np.testing.assert_allclose(r["embedding"], ref["embedding"], atol=1e-4)


def test_infer_table_says_the_model_has_no_genre_head(music, headless, capsys):
    assert main(["infer", "--model", headless, "--audio", str(music[0]), "--num-workers", "0", "-q"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["file", "duration"] and "top label" not in out[0]
    assert len(out) == len(TRACKS) + 2 and out[1].rstrip().endswith("2.0 s")
    assert out[-1].startswith(f"{len(TRACKS)} files: {len(TRACKS)} ok, 0 failed; no genre head")


def test_the_seed_inference_script_runs_a_headless_model(music, headless, tmp_path):
    out = tmp_path / "seed.jsonl"
    done = run_script(["inference.py", "--model", headless, "--audio", str(music[0]), "--output", str(out),
                       "--num_workers", "0"])
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == len(TRACKS) and all(line["global_prediction"]["top_labels"] == [] for line in lines)


def test_infer_help_documents_the_headless_outputs(capsys):
    assert main(["infer", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "without a genre head" in text and "embeddings" in text


# ----------------------------------------------------------------------------------------- index
def test_index_stores_embeddings_and_fingerprint_with_null_predictions(store, headless):
    tracks = store.tracks()
    assert len(tracks) == len(TRACKS) and store.embeddings().shape == (len(TRACKS), DIM)
    assert tracks["predicted_label"].isna().all() and tracks["confidence"].isna().all()
    assert store.labels() == [] and not [c for c in tracks.columns if c.startswith("prob:")]
    fingerprint = model_fingerprint(load_checkpoint(headless))
    assert set(tracks["model_fingerprint"]) == {fingerprint}
    (stamp,) = store.models().values()
    assert stamp.fingerprint == fingerprint and stamp.labels == ()
    assert set(tracks["artist"]) == {"Alpha", "Beta", "Gamma"}


def test_index_from_a_headless_jsonl_matches_indexing_the_audio(music, store, headless, tmp_path):
    assert _infer(headless, music[0], tmp_path / "h.jsonl") == 0
    root = tmp_path / "from-jsonl"
    assert main(["index", "--store", str(root), "--from-jsonl", str(tmp_path / "h.jsonl"), "--model", headless,
                 "--manifest", str(music[1]), "-q"]) == 0
    got, ref = LibraryStore(root), store
    order = got.tracks()["path"].argsort().to_numpy(), ref.tracks()["path"].argsort().to_numpy()
    np.testing.assert_allclose(got.embeddings()[order[0]], ref.embeddings()[order[1]], rtol=1e-5, atol=1e-6)
    tracks = got.tracks()
    assert tracks["predicted_label"].isna().all() and got.labels() == []
    assert set(tracks["model_fingerprint"]) == set(ref.tracks()["model_fingerprint"])


def test_reembed_with_a_headless_model_drops_the_old_predictions(music, supervised, headless, tmp_path):
    root = tmp_path / "lib"
    args = ["index", "--store", str(root), "--audio", str(music[0]), "--num-workers", "0", "-q"]
    assert main([*args, "--model", supervised]) == 0
    assert LibraryStore(root).tracks()["predicted_label"].notna().all()
    assert main([*args, "--model", headless, "--reembed"]) == 0
    again = LibraryStore(root)
    assert again.labels() == [] and again.tracks()["predicted_label"].isna().all()
    assert again.embeddings().shape == (len(TRACKS), DIM)


# ------------------------------------------------------------------------------------------ map
def _page_data(path: Path) -> dict:
    match = re.search(r'<script type="application/json" id="map-data">(.*?)</script>', path.read_text(), re.DOTALL)
    assert match, "the page has no data block"
    return json.loads(match.group(1))


@pytest.mark.parametrize("color", ["genre", "artist", "year", "folder"])
def test_map_colours_by_tag_genre_artist_year_and_folder(store, tmp_path, color):
    page, figure = tmp_path / "map.html", tmp_path / "map.svg"
    assert main(["map", "--store", str(store.root), "--out", str(page), "--png", str(figure),
                 "--color-by", color, "-q"]) == 0
    data = _page_data(page)
    assert data["colorBy"] == color and data["hasPredictions"] is False and data["preds"] == []
    assert data["folders"] == ["Alpha", "Beta", "Gamma"]  # each file's parent folder
    by_id = dict(zip(data["id"], (data["folders"][c] for c in data["folder"])))
    tracks = store.tracks()
    assert all(by_id[t] == Path(p).parent.name for t, p in zip(tracks["track_id"], tracks["path"]))
    svg = figure.read_text()
    legend = {"genre": "Rock (2)", "artist": "Alpha (3)", "folder": "Alpha (3)", "year": "year"}[color]
    assert legend in svg and "predicted" not in svg


def test_map_without_predictions_offers_no_predicted_colouring(store, tmp_path, capsys):
    page = tmp_path / "map.html"
    assert main(["map", "--store", str(store.root), "--out", str(page), "--no-png"]) == 0
    assert _page_data(page)["colorBy"] == "genre"  # the default: tag genres exist here
    assert "predicted" not in capsys.readouterr().err
    assert main(["map", "--store", str(store.root), "--out", str(page), "--png", str(tmp_path / "map.png"),
                 "--color-by", "predicted"]) == 0
    assert _page_data(page)["colorBy"] == "genre"
    err = capsys.readouterr().err  # said once, for the page and the figure
    assert err.count("no predicted genres to colour by (the store's model has no genre head); "
                     "colouring by genre\n") == 1
    text = page.read_text()  # the page drops the option and the hover line when there are no predictions
    assert 'if (D.hasPredictions === false) colorSel.querySelector(\'option[value="predicted"]\').remove()' in text
    assert '(D.hasPredictions === false ? "" : "predicted: "' in text


def test_map_default_colour_falls_back_to_artist_then_folder(music, headless, tmp_path):
    """Without tag genres or predictions the map is coloured by artist; without artists, by folder."""
    assert _infer(headless, music[0], tmp_path / "h.jsonl") == 0
    plain = tmp_path / "plain.csv"  # artists only
    plain.write_text("path,artist\n" + "".join(f"{music[0] / n},{a}\n" for n, a, _, _ in TRACKS))
    for name, extra, expected in (("artists", ["--manifest", str(plain)], "artist"), ("bare", [], "folder")):
        root = tmp_path / name
        assert main(["index", "--store", str(root), "--from-jsonl", str(tmp_path / "h.jsonl"), "--no-tags",
                     *extra, "-q"]) == 0
        figure = tmp_path / f"{name}.svg"
        assert main(["map", "--store", str(root), "--out", str(tmp_path / f"{name}.html"), "--png", str(figure),
                     "-q"]) == 0
        assert _page_data(tmp_path / f"{name}.html")["colorBy"] == expected
        assert ("Alpha (3)" in figure.read_text()) and "unknown" not in figure.read_text()


# ------------------------------------------------------------------------------- similar, evolution
def test_similar_finds_neighbours_by_track_file_and_artist(store, music, headless, capsys):
    first = store.tracks()["track_id"][0]
    assert main(["similar", str(first), "--store", str(store.root), "-k", "3", "--json"]) == 0
    neighbours = json.loads(capsys.readouterr().out)["neighbours"]
    assert len(neighbours) == 3 and first not in {n["track_id"] for n in neighbours}
    outside = music[0].parent / "outside.wav"  # not in the store: embedded with the headless model
    shutil.copy(music[0] / TRACKS[0][0], outside)
    assert main(["similar", str(outside), "--store", str(store.root), "--model", headless, "-k", "1", "--json"]) == 0
    (nearest,) = json.loads(capsys.readouterr().out)["neighbours"]
    assert nearest["title"] == "T0" and nearest["distance"] < 1e-5
    assert main(["similar", "--artist", "Alpha", "--store", str(store.root), "-k", "2"]) == 0
    assert "artists like Alpha" in capsys.readouterr().out


def test_evolution_reports_have_no_genre_parts_without_predictions(store, tmp_path, capsys):
    out = tmp_path / "evo"
    assert main(["evolution", "--store", str(store.root), "--artist", "Alpha", "--out", str(out), "-q"]) == 0
    html = (out / "artist-alpha.html").read_text()
    assert "predicted genre" not in html and "Tracks in date order" in html and "T2" in html
    from PIL import Image

    width, height = Image.open(out / "artist-alpha.png").size
    assert width / height < 3.8  # two panels (drift, map): no empty genre panel (three would be ~4.6)
    assert main(["evolution", "--store", str(store.root), "--all", "--out", str(out / "all"), "-q"]) == 0
    years = pd.read_csv(out / "all" / "collection_years.csv")
    assert list(years["year"]) == [2001, 2003, 2004, 2009, 2010] and not any(c.startswith("prob:") for c in years)
    assert "predicted genre" not in (out / "all" / "evolution.html").read_text()


# ------------------------------------------------------------------------------------------ serve
def test_serve_answers_the_page_and_the_api(store):
    tracks = store.tracks()
    with serving(store) as address:
        status, _, body = fetch(address, "/")
        assert status == 200 and b'"hasPredictions":false' in body and b'"colorBy":"genre"' in body
        status, _, body = fetch(address, f"/api/similar/{tracks['track_id'][0]}?k=2")
        answer = json.loads(body)
        assert status == 200 and len(answer["similar"]) == 2
        assert {row["genre"] for row in answer["similar"] + [answer["track"]]} <= {"Rock", "Jazz", None}
        status, _, body = fetch(address, f"/api/playlist?seed={tracks['track_id'][1]}&length=4")
        assert status == 200 and json.loads(body)["tracks"]
    server = make_server(store, port=0, color_by="predicted")  # falls back, as map does
    try:
        assert server.RequestHandlerClass.page.count(b'"colorBy":"genre"') == 1
    finally:
        server.server_close()


# ---------------------------------------------------------------------------------------- browser
@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install -y chromium)")
def test_the_page_offers_folder_and_no_predicted_genre(store, page):  # noqa: F811 (the browser test's fixture)
    open_map(page, (store.root.parent / "map.html").as_uri())
    options = page.eval_on_selector_all("#color-by option", "els => els.map(e => e.value)")
    assert options == ["genre", "artist", "year", "folder"]
    page.select_option("#color-by", "folder")
    page.wait_for_function("document.querySelector('.legendtitletext').textContent.startsWith('folder')")
    entries = page.evaluate("[...document.querySelectorAll('.legend .traces .legendtext')].map(e => e.textContent)")
    assert sorted(entries) == ["Alpha (3)", "Beta (2)", "Gamma (1)"]
    hovers = page.evaluate("window.melodexMap.graph.data.flatMap((t) => t.text)")
    assert len(hovers) == len(TRACKS) and not [h for h in hovers if "predicted" in h or "confidence" in h]
    assert all("genre: " in h for h in hovers) and not page.errors
