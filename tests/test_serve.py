"""``melodex serve``: the map page and only the indexed audio, with Range requests, on loopback."""

from __future__ import annotations

import http.client
import logging
import threading
from contextlib import contextmanager
from urllib.parse import quote

import pytest

from melodex.analysis.serve import DEFAULT_HOST, make_server, parse_range
from melodex.cli import get_parser, main
from melodex.errors import ServeError
from tests._helpers_maps import make_library, save_plain_map


@contextmanager
def serving(store, **kwargs):
    """A running server for ``store`` on 127.0.0.1 with a free port; yields (host, port)."""
    server = make_server(store, port=0, **kwargs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[:2]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def fetch(address, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """GET ``path`` exactly as written (no client-side normalisation of ``..``)."""
    conn = http.client.HTTPConnection(*address, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def served_store(tmp_path_factory):
    base = tmp_path_factory.mktemp("serve")
    store, *_ = make_library(base / "library", n_styles=2, per_style=4, audio_dir=base / "audio")
    save_plain_map(store)
    return store


@pytest.fixture(scope="module")
def address(served_store):
    with serving(served_store) as addr:
        yield addr


def test_serves_the_page_and_indexed_audio_with_ranges(served_store, address):
    tracks = served_store.tracks()
    track_id, path = tracks["track_id"][2], tracks["path"][2]
    wanted = open(path, "rb").read()
    assert address[0] == "127.0.0.1"
    status, headers, body = fetch(address, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'id="map-data"' in body and b'"audioBase":"/audio/"' in body

    status, headers, body = fetch(address, f"/audio/{track_id}")
    assert status == 200 and body == wanted and headers["Accept-Ranges"] == "bytes"
    assert headers["Content-Type"] in ("audio/x-wav", "audio/wav")

    status, headers, body = fetch(address, f"/audio/{track_id}", {"Range": "bytes=10-19"})
    assert status == 206 and body == wanted[10:20]
    assert headers["Content-Range"] == f"bytes 10-19/{len(wanted)}"
    status, _, body = fetch(address, f"/audio/{track_id}", {"Range": "bytes=-7"})
    assert status == 206 and body == wanted[-7:]
    status, headers, _ = fetch(address, f"/audio/{track_id}", {"Range": f"bytes={len(wanted) + 5}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(wanted)}"


@pytest.mark.parametrize("path", [
    "/audio/t99999",                                   # an id the store does not hold
    "/audio/../../etc/passwd",
    "/audio/..%2F..%2F..%2Fetc%2Fpasswd",
    "/audio/%2e%2e/%2e%2e/etc/passwd",
    "/audio/t00001/../t00002",
    "/audio//etc/passwd",
    "/etc/passwd",
    "/audio/",
    "/map.html",
])
def test_anything_but_an_indexed_track_is_404(address, path):
    status, _, body = fetch(address, path)
    assert status == 404 and b"root:" not in body


def test_a_file_path_in_the_url_is_not_served(served_store, address):
    indexed = served_store.tracks()["path"][0]
    status, _, _ = fetch(address, "/audio/" + quote(indexed, safe=""))
    assert status == 404


def test_binds_to_loopback_by_default_and_warns_otherwise(served_store, caplog):
    args = get_parser().parse_args(["serve"])
    assert args.host == DEFAULT_HOST == "127.0.0.1"
    with caplog.at_level(logging.WARNING, logger="melodex.analysis.serve"):
        server = make_server(served_store, host="0.0.0.0", port=0)
        server.server_close()
    assert "anyone who can reach" in caplog.text


def test_a_store_without_a_map_cannot_be_served(tmp_path, capsys):
    store, *_ = make_library(tmp_path / "library", n_styles=1, per_style=3)
    with pytest.raises(ServeError, match="no map yet"):
        make_server(store, port=0)
    assert main(["serve", "--store", str(tmp_path / "nowhere"), "--port", "0"]) == 2
    assert "no library store" in capsys.readouterr().err


@pytest.mark.parametrize("header, size, expected", [
    (None, 100, None),
    ("bytes=0-9", 100, (0, 9)),
    ("bytes=90-", 100, (90, 99)),
    ("bytes=90-1000", 100, (90, 99)),
    ("bytes=-10", 100, (90, 99)),
    ("bytes=-1000", 100, (0, 99)),
    ("bytes=100-", 100, "unsatisfiable"),
    ("bytes=5-2", 100, "unsatisfiable"),
    ("bytes=0-1,5-6", 100, None),   # multiple ranges: the whole file
    ("items=0-1", 100, None),
])
def test_parse_range(header, size, expected):
    assert parse_range(header, size) == expected
