"""Serve a library's map page and its indexed audio over HTTP, on 127.0.0.1 by default.

``melodex serve --store DIR`` answers three kinds of request and nothing else:

* ``/`` (or ``/index.html``): the interactive map, made from the store when the server starts;
* ``/audio/<track_id>``: the audio file the store records for that track id, with HTTP Range
  support so the page's ``<audio>`` element can seek;
* ``/api/similar/<track_id>``, ``/api/path?from=&to=``, ``/api/playlist?seed=``: JSON for media
  players (see :mod:`melodex.analysis.serve_api`), tracks named by id only;
* anything else: 404.

The URL never names a file: a track id is looked up in the store, so no path traversal is possible
and only files that were indexed can be read. The server has no authentication; binding to an
address other than loopback makes your audio files readable by anyone who can reach it.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import os
import re
import socket
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from threadpoolctl import threadpool_limits

from melodex.analysis.collection import Collection
from melodex.analysis.map_page import render_html_map
from melodex.analysis.serve_api import API_PREFIX, ListeningAPI
from melodex.errors import ServeError

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
AUDIO_PREFIX = "/audio/"
CHUNK = 256 * 1024
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """The inclusive byte range ``(start, end)`` a ``Range`` header asks for.

    Returns None for no (or an unsupported multi-range) header, meaning "send everything", and
    ``"unsatisfiable"`` when the range lies outside a file of ``size`` bytes.
    """
    if not header:
        return None
    match = _RANGE_RE.match(header.strip())
    if not match:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":  # the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - n), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if start >= size or end < start:
        return "unsatisfiable"
    return start, end


class MapRequestHandler(BaseHTTPRequestHandler):
    """Answers ``/``, ``/audio/<track_id>``, ``/api/...`` and 404; set ``page``, ``audio`` and
    ``api`` on a subclass."""

    page: bytes = b""
    audio: dict[str, str] = {}
    api: ListeningAPI | None = None
    server_version = "melodex"

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        url = urlsplit(self.path)
        path = url.path
        if path.startswith(API_PREFIX) and self.api is not None:
            status, document = self.api.answer(path, url.query)
            data = json.dumps(document, ensure_ascii=False).encode("utf-8")
            self._send_bytes(data, "application/json; charset=utf-8", body, status)
        elif path in ("/", "/index.html"):
            self._send_bytes(self.page, "text/html; charset=utf-8", body)
        elif path.startswith(AUDIO_PREFIX) and unquote(path[len(AUDIO_PREFIX):]) in self.audio:
            self._send_file(self.audio[unquote(path[len(AUDIO_PREFIX):])], body)
        else:
            self._send_bytes(b"not found\n", "text/plain; charset=utf-8", body, HTTPStatus.NOT_FOUND)

    def _send_bytes(self, data: bytes, ctype: str, body: bool, status: HTTPStatus = HTTPStatus.OK) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _send_file(self, file_path: str, body: bool) -> None:
        try:
            handle = open(file_path, "rb")  # noqa: SIM115 (closed below)
        except OSError as exc:
            log.warning("%s: cannot read (%s)", file_path, exc.strerror or exc)
            self._send_bytes(b"not found\n", "text/plain; charset=utf-8", body, HTTPStatus.NOT_FOUND)
            return
        with handle:
            size = os.fstat(handle.fileno()).st_size
            wanted = parse_range(self.headers.get("Range"), size)
            if wanted == "unsatisfiable":
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start, end = (0, size - 1) if wanted is None else wanted
            self.send_response(HTTPStatus.OK if wanted is None else HTTPStatus.PARTIAL_CONTENT)
            self.send_header("Content-Type", mimetypes.guess_type(file_path)[0] or "application/octet-stream")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(max(0, end - start + 1)))
            if wanted is not None:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if not body:
                return
            handle.seek(start)
            left = end - start + 1
            try:
                while left > 0:
                    chunk = handle.read(min(CHUNK, left))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)
            except (BrokenPipeError, ConnectionResetError):  # the browser seeked elsewhere
                pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        log.debug("%s %s", self.address_string(), format % args)


class StoreHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server whose listen backlog holds a media player's burst of requests
    (socketserver's default of 5 makes the sixth simultaneous connection wait a second for a
    TCP retransmission)."""

    request_queue_size = 64

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve with one BLAS thread per request: requests run in threads of their own, and
        OpenBLAS's default (a thread per core for every product) made 8 requests at once wait on
        each other: p95 1,110 ms against 44 ms (``benchmarks/bench_serve.py``, 2,000 tracks, 2 cores)."""
        with threadpool_limits(limits=1):
            super().serve_forever(poll_interval)


def make_server(store, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, title: str = "Melodex map",
                color_by: str | None = None) -> ThreadingHTTPServer:
    """A ready (not yet serving) HTTP server for ``store``'s map and audio.

    ``port=0`` picks a free port (read it from ``server.server_address``). Raises
    :class:`ServeError` when the store has no map yet or the address cannot be bound.
    """

    if store.coordinates() is None:
        raise ServeError(f"{store.root}: the store has no map yet; "
                         f"run 'melodex map --store {store.root}' first")
    tracks = store.tracks()
    audio = {str(t): str(p) for t, p in zip(tracks["track_id"], tracks["path"]) if p is not None and p == p}
    page = render_html_map(store, audio_base=AUDIO_PREFIX, title=title, color_by=color_by,
                           api_base=API_PREFIX).encode("utf-8")
    api = ListeningAPI(Collection.from_frame(tracks, store.embeddings(), root=str(store.root)))
    handler = type("StoreHandler", (MapRequestHandler,), {"page": page, "audio": audio, "api": api})
    if host not in _LOOPBACK:
        log.warning("serving on %s: anyone who can reach this address can list the map and play "
                    "every indexed audio file (there is no password)", host)
    server_class = StoreHTTPServer
    if ":" in host:  # an IPv6 address
        server_class = type("StoreHTTPServerV6", (StoreHTTPServer,), {"address_family": socket.AF_INET6})
    try:
        server = server_class((host, port), handler)
    except OSError as exc:
        raise ServeError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from exc
    server.daemon_threads = True
    return server
