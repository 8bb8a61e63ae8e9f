"""The HTML map in a real headless browser (Debian's chromium driven by Playwright).

Checks what a user sees: the points are drawn with WebGL, hovering shows a track's metadata
(hostile titles as plain text), the artist search draws a path in date order, a click plays the
track in the page, both from file:// and from ``melodex serve``. Leaves a screenshot in
``test-artifacts/map.png``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from melodex.analysis.map_page import write_html_map
from melodex.analysis.serve import make_server
from tests._helpers_maps import HOSTILE_TITLE, make_library, save_plain_map

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--headless=new", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--autoplay-policy=no-user-gesture-required"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"{CHROMIUM} is missing (apt-get install -y chromium)"),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """40 tracks with short WAV files, a map, and the page written beside (not above) the audio."""
    base = tmp_path_factory.mktemp("site")
    store, *_ = make_library(base / "library", n_styles=4, per_style=10, audio_dir=base / "audio",
                             hostile=True)
    save_plain_map(store)
    page = write_html_map(store, base / "maps" / "map.html", title="Browser test map")
    return store, page


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    tab = context.new_page()
    tab.dialogs = []
    tab.errors = []
    tab.on("dialog", lambda d: (tab.dialogs.append(d.message), d.dismiss()))
    tab.on("pageerror", lambda e: tab.errors.append(str(e)))
    yield tab
    context.close()


def open_map(tab, url: str) -> None:
    tab.goto(url)
    tab.wait_for_function("window.melodexMap && document.querySelector('#map canvas')", timeout=30_000)
    tab.evaluate("""window.melodexMap.ready.then((gd) => {
        window.__hovered = null;
        gd.on('plotly_hover', (ev) => { window.__hovered = ev.points[0].customdata; });
        gd.on('plotly_unhover', () => { window.__hovered = null; });
        return true; })""")


def point_xy(tab, index: int) -> tuple[float, float]:
    """Page pixel position of the track at ``index`` (through plotly's own axis conversion)."""
    return tuple(tab.evaluate("""(i) => {
        const gd = window.melodexMap.graph, L = gd._fullLayout, box = gd.getBoundingClientRect();
        const D = window.melodexMap.data;
        return [box.left + L._size.l + L.xaxis.l2p(D.x[i]), box.top + L._size.t + L.yaxis.l2p(D.y[i])];
    }""", index))


def hover_text(tab, index: int) -> str:
    x, y = point_xy(tab, index)
    tab.mouse.move(x - 30, y - 30)
    tab.mouse.move(x, y, steps=3)
    tab.wait_for_function(f"window.__hovered === {index}", timeout=10_000)
    return tab.text_content(".hoverlayer .hovertext")


def test_points_are_drawn_and_hover_shows_metadata(site, page):
    store, html_file = site
    open_map(page, html_file.as_uri())
    canvases = page.evaluate("[...document.querySelectorAll('#map canvas')].map(c => c.className)")
    assert any("gl-canvas" in name for name in canvases), canvases
    assert page.evaluate("window.melodexMap.graph._fullLayout._glcanvas.size()") > 0
    counts = page.evaluate("window.melodexMap.graph.data.map(t => t.x.length)")
    assert sum(counts) == len(store) == 40
    assert all(t == "scattergl" for t in page.evaluate("window.melodexMap.graph.data.map(t => t.type)"))

    tracks = store.tracks()
    text = hover_text(page, 5)
    assert tracks["title"][5] in text and tracks["artist"][5] in text and "artist:" in text

    hostile = hover_text(page, 0)  # shown as the literal characters, not run or rendered
    assert HOSTILE_TITLE in hostile and "<img src=x onerror=alert(1)>" in hostile
    assert page.evaluate("document.querySelectorAll('#map img, body > b').length") == 0
    assert page.dialogs == [] and page.errors == []


def test_unknown_fields_show_as_unknown(site, page):
    store, html_file = site
    open_map(page, html_file.as_uri())
    undated = int(store.tracks().index[store.tracks()["date"].isna()][0])
    assert "date: unknown" in hover_text(page, undated)


def artist_and_dated_rows(tracks, row: int) -> tuple[str, list[int]]:
    """The artist of ``row`` and the rows of that artist's dated tracks in date order."""
    artist = tracks["artist"][row]
    mine = tracks[(tracks["artist"] == artist) & tracks["date"].notna()]
    return artist, mine.assign(i=mine.index).sort_values(["date", "i"]).index.tolist()


def open_and_search(tab, html_file, query: str, *, traces_added: int) -> int:
    """Open the map, search ``query`` as a user types it, wait for the path's traces; returns how
    many traces the map had before."""
    open_map(tab, html_file.as_uri())
    base = tab.evaluate("window.melodexMap.graph.data.length")
    tab.fill("#artist-search", query)
    tab.press("#artist-search", "Enter")
    tab.wait_for_function(f"window.melodexMap.graph.data.length >= {base + traces_added}")
    return base


def test_artist_search_draws_the_path_in_date_order(site, page):
    store, html_file = site
    tracks = store.tracks()
    artist, expected = artist_and_dated_rows(tracks, 12)
    base = open_and_search(page, html_file, artist.lower(), traces_added=1)
    path = page.evaluate("window.melodexMap.graph.data[%d]" % base)
    assert path["mode"] == "lines+markers" and path["customdata"] == expected
    assert page.inner_text("#search-status").startswith(artist)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "map.png"))

    page.select_option("#color-by", "artist")  # recolouring keeps the path on top
    n_artists = tracks["artist"].nunique()
    page.wait_for_function(f"window.melodexMap.baseTraceCount() === {n_artists}")
    assert page.evaluate(f"window.melodexMap.graph.data[{n_artists}].customdata") == expected
    page.click("#clear-search")
    page.wait_for_function(f"window.melodexMap.graph.data.length === {n_artists}")
    assert page.inner_text("#search-status") == ""


def test_colour_selector_recolours(site, page):
    store, html_file = site
    open_map(page, html_file.as_uri())
    page.select_option("#color-by", "year")
    page.wait_for_function("window.melodexMap.graph.data.some(t => t.marker && t.marker.showscale)")
    page.select_option("#color-by", "artist")
    n_artists = store.tracks()["artist"].nunique()
    page.wait_for_function(f"window.melodexMap.graph.data.length === {n_artists}")
    assert sum(page.evaluate("window.melodexMap.graph.data.map(t => t.x.length)")) == len(store)


def click_and_wait_for_play(tab, index: int) -> dict:
    tab.evaluate("""() => { const a = document.getElementById('player'); window.__played = null;
        a.addEventListener('play', () => { window.__played = a.src; }, { once: true }); }""")
    x, y = point_xy(tab, index)
    hover_text(tab, index)
    tab.mouse.click(x, y)
    tab.wait_for_function("window.__played !== null", timeout=10_000)
    return tab.evaluate("""() => { const a = document.getElementById('player');
        return { src: a.src, played: window.__played, paused: a.paused,
                 now: document.getElementById('now').textContent }; }""")


def test_click_plays_the_track_from_file_url(site, page):
    store, html_file = site
    open_map(page, html_file.as_uri())
    state = click_and_wait_for_play(page, 7)
    assert state["src"] == Path(store.tracks()["path"][7]).as_uri()
    assert "Song 7" in state["now"]
    page.wait_for_function("(a => !a.paused || a.ended)(document.getElementById('player'))")
    assert page.evaluate("document.getElementById('player').error") is None


def test_click_plays_the_track_through_melodex_serve(site, page):
    store, _ = site
    server = make_server(store, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        open_map(page, f"http://{host}:{port}/")
        state = click_and_wait_for_play(page, 9)
        assert state["src"] == f"http://{host}:{port}/audio/{store.tracks()['track_id'][9]}"
        page.wait_for_function("document.getElementById('player').readyState >= 2 || "
                               "document.getElementById('player').error", timeout=10_000)
        assert page.evaluate("document.getElementById('player').error") is None
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _box(tab, selector: str) -> dict:
    return tab.evaluate(f"(() => {{ const r = document.querySelector({selector!r}).getBoundingClientRect();"
                        " return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; })()")


def _overlap(a: dict, b: dict) -> bool:
    return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]


@pytest.mark.parametrize("mode", ["genre", "artist"])
def test_legend_has_a_title_and_counts_and_the_toolbar_never_covers_it(site, page, mode):
    store, html_file = site
    tracks = store.tracks()
    open_map(page, html_file.as_uri())
    page.select_option("#color-by", mode)
    page.wait_for_function(f"document.querySelector('.legendtitletext').textContent.startsWith({mode!r})")
    title = page.text_content(".legendtitletext")
    assert f"({len(store)} tracks)" in title
    entries = page.evaluate("[...document.querySelectorAll('.legend .traces .legendtext')].map(e => e.textContent)")
    column = tracks[mode].fillna("unknown")
    expected = {f"{name} ({count})" for name, count in column.value_counts().items()}
    assert set(entries) == expected
    page.hover("#map")  # the toolbar shows on hover
    page.wait_for_selector(".modebar", state="visible")
    assert not _overlap(_box(page, ".legend"), _box(page, ".modebar")), (_box(page, ".legend"), _box(page, ".modebar"))


def test_hover_shows_track_id_album_and_file_name(site, page):
    store, html_file = site
    tracks = store.tracks()
    open_map(page, html_file.as_uri())
    text = hover_text(page, 4)
    assert f"id: {tracks['track_id'][4]}" in text
    assert f"file: {Path(tracks['path'][4]).name}" in text
    assert "album: " in text


def test_click_lists_the_ten_most_similar_tracks_and_each_plays(site, page):
    from melodex.analysis.similarity import similar

    store, html_file = site
    tracks = store.tracks()
    page.set_viewport_size({"width": 900, "height": 700})
    open_map(page, html_file.as_uri())
    click_and_wait_for_play(page, 7)
    page.wait_for_selector("#similar:not([hidden])")
    rows = [int(r) for r in page.evaluate("[...document.querySelectorAll('#similar-list button')].map(b => b.dataset.row)")]
    expected = similar(store, tracks["track_id"][7], k=10)["track_id"].tolist()
    assert [tracks["track_id"][r] for r in rows] == expected
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "map-similar-900px.png"))

    # readable at 900 px: the now-playing and status lines are neither cut off nor outside the window
    for selector in ("#now", "#player"):
        box = _box(page, selector)
        assert box["right"] <= 900 and box["left"] >= 0, (selector, box)
    assert page.evaluate("(e => e.scrollWidth <= e.clientWidth + 1)(document.getElementById('now'))")

    page.evaluate("""() => { const a = document.getElementById('player'); window.__played = null;
        a.addEventListener('play', () => { window.__played = a.src; }, { once: true }); }""")
    page.click(f"#similar-list button[data-row='{rows[2]}']")
    page.wait_for_function("window.__played !== null", timeout=10_000)
    assert page.evaluate("document.getElementById('player').src") == Path(tracks["path"][rows[2]]).as_uri()
    assert tracks["title"][rows[2]] in page.text_content("#now")


def test_artist_path_has_start_and_end_markers_and_arrows(site, page):
    store, html_file = site
    tracks = store.tracks()
    artist, expected = artist_and_dated_rows(tracks, 12)
    base = open_and_search(page, html_file, artist, traces_added=3)
    path, start, end = page.evaluate(f"window.melodexMap.graph.data.slice({base}, {base + 3})")
    assert path["marker"]["symbol"] == "arrow" and path["marker"]["angleref"] == "previous"
    assert start["customdata"] == [expected[0]] and start["name"].startswith("start: ")
    assert end["customdata"] == [expected[-1]] and end["name"].startswith("end: ")
    assert tracks["date"][expected[0]] in start["name"] and tracks["date"][expected[-1]] in end["name"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "map-artist-path.png"))


def test_artist_search_says_when_the_query_matches_several_artists(site, page):
    """Namesakes are "name [artist_id]" on the page, so a shared name matches several artists:
    the path drawn is the first one's, and the status line says there are more to pick from."""
    store, html_file = site
    tracks = store.tracks()
    artist = tracks["artist"][12]
    prefix = artist.rsplit("-", 1)[0] + "-"  # "Artist 1-": its three artists "Artist 1-0" .. "Artist 1-2"
    several = sorted({a for a in tracks["artist"] if a.startswith(prefix)}, key=str.casefold)
    assert len(several) == 3
    base = open_and_search(page, html_file, prefix, traces_added=1)
    first, rows = artist_and_dated_rows(tracks, tracks.index[tracks["artist"] == several[0]][0])
    assert page.evaluate(f"window.melodexMap.graph.data[{base}].customdata") == rows
    status = page.inner_text("#search-status")
    assert status.startswith(first + ":")
    assert status.endswith(f"(the first of 3 artists matching \u201c{prefix}\u201d; pick one from the list)")
    open_and_search(page, html_file, artist, traces_added=1)  # a whole name matches itself alone
    assert "artists matching" not in page.inner_text("#search-status")
