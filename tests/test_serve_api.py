"""``melodex serve``'s JSON API: similar tracks, paths and instant mixes by track id, on loopback.

Answers are compared with the library functions called directly; ids that are not in the store,
malformed parameters and anything that looks like a path get an error, never a file. A bounded
loopback load (200 requests, 8 at once) must answer every request correctly.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest

from melodex.analysis.collection import Collection
from melodex.analysis.playlist_files import playlist_document
from melodex.analysis.playlists import instant_mix, path_between
from melodex.analysis.similarity import similar
from tests._helpers_maps import make_library, save_plain_map
from tests.test_serve import fetch, serving


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A 5-style, 100-track store with audio and a map, served on 127.0.0.1: (store, address)."""
    base = tmp_path_factory.mktemp("serve-api")
    store, *_ = make_library(base / "library", n_styles=5, per_style=20, audio_dir=base / "audio")
    save_plain_map(store)
    with serving(store) as address:
        yield store, address


def get_json(address, path: str) -> tuple[int, dict]:
    status, headers, body = fetch(address, path)
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    return status, json.loads(body)


def expected(store, kind: str, **params) -> dict:
    collection = Collection.from_store(store)
    if kind == "similar":
        table = similar(store, params["track_id"], params.get("k", 10))
        return {"ids": table["track_id"].tolist(), "distances": table["distance"].round(6).tolist()}
    if kind == "path":
        return playlist_document(path_between(collection, params["start"], params["end"], params["length"]),
                                 collection)
    return playlist_document(instant_mix(collection, params["seeds"], params["length"]), collection)


def test_similar_path_and_playlist_answer_what_the_library_computes(served):
    store, address = served
    assert address[0] == "127.0.0.1"
    status, doc = get_json(address, "/api/similar/t00007?k=5")
    want = expected(store, "similar", track_id="t00007", k=5)
    assert status == 200 and doc["track"]["track_id"] == "t00007"
    assert [t["track_id"] for t in doc["similar"]] == want["ids"]
    assert [t["distance"] for t in doc["similar"]] == pytest.approx(want["distances"], abs=1e-5)

    status, doc = get_json(address, "/api/path?from=t00001&to=t00090&length=7")
    assert status == 200 and doc == expected(store, "path", start="t00001", end="t00090", length=7)
    assert doc["tracks"][0]["track_id"] == "t00001" and doc["tracks"][-1]["track_id"] == "t00090"

    status, doc = get_json(address, "/api/playlist?seed=t00003&seed=t00050&length=12")
    assert status == 200 and doc == expected(store, "playlist", seeds=["t00003", "t00050"], length=12)
    assert len(doc["tracks"]) == 12


def test_answers_name_tracks_by_id_and_never_by_path(served):
    store, address = served
    audio_folder = str(store.tracks()["path"][0]).rsplit("/", 1)[0]
    for path in ("/api/similar/t00002", "/api/path?from=t00002&to=t00040", "/api/playlist?seed=t00002"):
        status, _, body = fetch(address, path)
        assert status == 200 and audio_folder.encode() not in body and b".wav" not in body


@pytest.mark.parametrize(("path", "status", "message"), [
    ("/api/similar/nope", 404, "nope: no such track_id"),
    ("/api/similar/" + quote("../../etc/passwd", safe=""), 404, "no such track_id"),
    ("/api/similar/t00001?k=0", 400, "k must be from 1"),
    ("/api/similar/t00001?k=lots", 400, "k must be a whole number"),
    ("/api/path?from=t00001", 400, "the parameter to is missing"),
    ("/api/path?from=t00001&to=/etc/passwd", 404, "/etc/passwd: no such track_id"),
    ("/api/path?from=t00001&to=t00001", 400, "two different tracks"),
    ("/api/path?from=t00001&to=t00002&length=1", 400, "length must be from 2"),
    ("/api/playlist", 400, "seed is missing"),
    ("/api/playlist?seed=t00001&seed=zzz", 404, "zzz: no such track_id"),
    ("/api/elsewhere", 404, "no such API endpoint"),
])
def test_bad_requests_get_one_line_json_errors(served, path, status, message):
    got, doc = get_json(served[1], path)
    assert got == status and message in doc["error"]
    assert "/library" not in doc["error"]  # the store's location stays private


def test_bounded_loopback_load_every_answer_correct(served):
    """200 requests, 8 at once, a mix of the three endpoints: all 200 and equal to the serial answers."""
    store, address = served
    ids = store.tracks()["track_id"].tolist()
    paths = []
    for i in range(200):
        a, b = ids[(7 * i) % len(ids)], ids[(7 * i + 31) % len(ids)]
        paths.append((f"/api/similar/{a}?k=8", f"/api/path?from={a}&to={b}&length=6",
                      f"/api/playlist?seed={a}&length=10")[i % 3])
    want = {p: get_json(address, p) for p in set(paths)}
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda p: get_json(address, p), paths))
    assert all(status == 200 for status, _ in answers)
    assert all(answer == want[p] for p, answer in zip(paths, answers))
