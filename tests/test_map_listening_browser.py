"""The map page's listening tools in a real headless chromium (as tests/test_map_browser.py).

A box or lasso drawn with plotly's own toolbar, or a clicked track's genre, becomes a selection
that downloads as an M3U8 the ``m3u8`` parser loads, with the selected tracks' absolute URLs
(``file://`` beside the page, ``http://`` under ``melodex serve``); a clicked track plays an
instant mix that respects the artist caps and moves on when a track ends; a searched artist
lists the artists ``melodex similar --artist`` names.
"""

from __future__ import annotations

import html
from itertools import pairwise
from pathlib import Path

import pytest

from tests import test_map_browser as browser_page
from tests._helpers_playlists import load_m3u8
from tests.test_map_browser import click_and_wait_for_play, open_map, point_xy
from tests.test_serve import serving

pytestmark = browser_page.pytestmark
site, browser, page = browser_page.site, browser_page.browser, browser_page.page  # the same fixtures


def rows_inside(tab, n: int, box: tuple[float, float, float, float]) -> list[int]:
    left, top, right, bottom = box
    inside = []
    for i in range(n):
        x, y = point_xy(tab, i)
        if left < x < right and top < y < bottom:
            inside.append(i)
    return inside


def drag_selection(tab, tool: str, box: tuple[float, float, float, float]) -> None:
    """Pick plotly's box ("select") or lasso tool in its toolbar and draw ``box`` with the mouse."""
    left, top, right, bottom = box
    tab.hover("#map")
    tab.click(f".modebar-btn[data-val='{tool}']")
    tab.mouse.move(left, top)
    tab.mouse.down()
    corners = [(right, top), (right, bottom), (left, bottom), (left, top + 1)] if tool == "lasso" else [(right, bottom)]
    for x, y in corners:
        tab.mouse.move(x, y, steps=8)
    tab.mouse.up()


def download_selection(tab) -> Path:
    with tab.expect_download() as info:
        tab.click("#download-selection")
    return Path(info.value.path())


def right_half(tab) -> tuple[float, float, float, float]:
    box = tab.evaluate("(() => { const r = document.querySelector('#map .nsewdrag').getBoundingClientRect();"
                       " return [r.left, r.top, r.right, r.bottom]; })()")
    left, top, right, bottom = box
    return (left + 0.55 * (right - left), top + 5, right - 5, bottom - 5)


@pytest.mark.parametrize("tool", ["select", "lasso"])
def test_box_or_lasso_selection_downloads_an_m3u8_of_those_tracks(site, page, tool, tmp_path):
    store, html_file = site
    tracks = store.tracks()
    open_map(page, html_file.as_uri())
    area = right_half(page)
    expected = rows_inside(page, len(tracks), area)
    assert 3 <= len(expected) < len(tracks)
    drag_selection(page, tool, area)
    page.wait_for_function("!document.getElementById('download-selection').disabled", timeout=10_000)
    assert sorted(page.evaluate("window.melodexMap.selection()")) == expected
    saved = download_selection(page)
    playlist = load_m3u8(saved.replace(tmp_path / "selection.m3u8"))
    assert sorted(s.uri for s in playlist.segments) == sorted(Path(tracks["path"][i]).as_uri() for i in expected)
    titles = {f"{tracks['artist'][i]} - {tracks['title'][i]}" for i in expected}
    assert {s.title for s in playlist.segments} == titles and all(s.duration == 0 for s in playlist.segments)
    assert page.errors == []


def test_a_clicked_tracks_genre_is_a_selection_and_serve_gives_http_urls(site, page, tmp_path):
    store, _ = site
    tracks = store.tracks()
    with serving(store) as (host, port):
        open_map(page, f"http://{host}:{port}/")
        click_and_wait_for_play(page, 6)
        page.wait_for_selector("#similar:not([hidden])")
        genre = tracks["genre"][6]
        same = [i for i, g in enumerate(tracks["genre"].fillna("").tolist()) if g == genre]
        assert page.text_content("#select-group") == f"select its genre ({len(same)})"
        page.click("#select-group")
        assert sorted(page.evaluate("window.melodexMap.selection()")) == same
        playlist = load_m3u8(download_selection(page).replace(tmp_path / "genre.m3u8"))
        assert sorted(s.uri for s in playlist.segments) == sorted(
            f"http://{host}:{port}/audio/{tracks['track_id'][i]}" for i in same)


def test_instant_mix_from_a_clicked_track_caps_artists_and_plays_on(site, page):
    store, html_file = site
    tracks = store.tracks()
    open_map(page, html_file.as_uri())
    click_and_wait_for_play(page, 11)
    page.wait_for_selector("#similar:not([hidden])")
    page.click("#play-mix")
    page.wait_for_function("document.getElementById('similar-title').textContent.startsWith('Instant mix')")
    rows = [int(r) for r in page.evaluate("[...document.querySelectorAll('#similar-list button')].map(b => b.dataset.row)")]
    artists = [tracks["artist"][r] for r in rows]
    assert rows[0] == 11 and len(rows) == len(set(rows)) >= 10
    assert all(a != b for a, b in pairwise(artists)) and max(artists.count(a) for a in artists) <= 2
    assert page.evaluate("document.getElementById('player').src") == Path(tracks["path"][11]).as_uri()
    page.evaluate("document.getElementById('player').dispatchEvent(new Event('ended'))")  # the track ends
    page.wait_for_function(f"document.getElementById('player').src.endsWith({Path(tracks['path'][rows[1]]).name!r})")
    assert page.evaluate("document.querySelector('#similar-list li.playing button').dataset.row") == str(rows[1])


def test_searched_artist_lists_the_nearest_artists(site, page):
    from melodex.analysis.artists import similar_artists
    from melodex.analysis.collection import Collection

    store, html_file = site
    artist = store.tracks()["artist"][12]
    expected = similar_artists(Collection.from_store(store), artist, 5)
    open_map(page, html_file.as_uri())
    page.fill("#artist-search", artist)
    page.press("#artist-search", "Enter")
    page.wait_for_selector("#artist-near button")
    shown = page.evaluate("[...document.querySelectorAll('#artist-near button')].map(b => b.textContent)")
    assert shown == [f"{a} ({d:.2f})" for a, d in zip(expected["artist"], expected["distance"])]
    page.click("#artist-near button")  # shows that artist in turn
    page.wait_for_function(f"document.getElementById('search-status').textContent.startsWith({expected['artist'][0]!r})")


def test_clusters_colour_the_map_and_a_clicked_tracks_cluster_is_a_selection(site, page):
    import numpy as np

    from melodex.analysis.collection import Collection
    from melodex.analysis.playlists import cluster_labels

    store, html_file = site
    labels = cluster_labels(Collection.from_store(store), None)  # what `melodex playlist --clusters` finds
    open_map(page, html_file.as_uri())
    page.select_option("#color-by", "cluster")
    n_clusters = len(np.unique(labels))
    page.wait_for_function(f"window.melodexMap.baseTraceCount() === {n_clusters}")
    groups = page.evaluate("window.melodexMap.graph.data.map(t => t.customdata.slice().sort((a, b) => a - b))")
    assert sorted(groups) == sorted(np.flatnonzero(labels == c).tolist() for c in np.unique(labels))
    names = page.evaluate("window.melodexMap.graph.data.map(t => t.name)")
    assert all(name.split(". ")[0].isdigit() and ": " in name for name in names)  # "1. Genre: Artist, Artist (n)"
    assert page.evaluate("window.melodexMap.graph.layout.legend.title.text").startswith(
        "<b>cluster (as playlist --clusters auto)</b>")

    click_and_wait_for_play(page, 7)
    page.wait_for_selector("#similar:not([hidden])")
    same = np.flatnonzero(labels == labels[7]).tolist()
    assert page.text_content("#select-group") == f"select its cluster ({len(same)})"
    page.click("#select-group")
    assert sorted(page.evaluate("window.melodexMap.selection()")) == same
    assert page.errors == []


def test_artist_view_shows_artists_as_points_with_their_nearest_artists(site, page):
    from melodex.analysis.artists import similar_artists
    from melodex.analysis.collection import Collection

    store, html_file = site
    tracks = store.tracks()
    collection = Collection.from_store(store)
    open_map(page, html_file.as_uri())
    page.check("#artist-view")
    page.wait_for_function("window.melodexMap.graph.data[0].customdata[0] < 0")
    points = page.evaluate("window.melodexMap.graph.data[0]")
    names = page.evaluate("window.melodexMap.data.artists")
    shown = [names[-1 - c] for c in points["customdata"]]
    assert sorted(shown) == sorted(tracks["artist"].dropna().unique()) and page.evaluate(
        "window.melodexMap.graph.data.length") == 1
    for k, artist in enumerate(shown):  # each at the centre of its tracks on the map
        mine = page.evaluate(f"(() => {{ const D = window.melodexMap.data; const c = D.artists.indexOf({artist!r});"
                             " return D.x.map((x, i) => [x, D.y[i], D.artist[i] === c]).filter(p => p[2]); })()")
        assert points["x"][k] == pytest.approx(sum(p[0] for p in mine) / len(mine))
        assert points["y"][k] == pytest.approx(sum(p[1] for p in mine) / len(mine))

    artist = tracks["artist"][12]
    expected = similar_artists(collection, artist, 5)
    assert points["text"] == [html.escape(name, quote=False) for name in shown]  # named on the map, as plain text
    hover = points["hovertext"][shown.index(artist)]
    assert [line.split("• ")[1] for line in hover.split("<br>") if "• " in line] == [
        f"{a} {d:.2f}" for a, d in zip(expected["artist"], expected["distance"])]

    k = shown.index(artist)  # a real click on the artist's point
    xy = page.evaluate(f"""(() => {{ const gd = window.melodexMap.graph, L = gd._fullLayout,
        box = gd.getBoundingClientRect(), t = gd.data[0];
        return [box.left + L._size.l + L.xaxis.l2p(t.x[{k}]), box.top + L._size.t + L.yaxis.l2p(t.y[{k}])]; }})()""")
    page.mouse.move(xy[0] - 20, xy[1] - 20)
    page.mouse.move(*xy, steps=3)  # plotly clicks the point its hover picked
    page.wait_for_function(f"(document.querySelector('.hoverlayer .hovertext') || {{}}).textContent"
                           f" && document.querySelector('.hoverlayer .hovertext').textContent.includes({artist!r})")
    page.mouse.click(*xy)
    page.wait_for_selector("#artist-near button")
    assert page.inner_text("#search-status").startswith(f"{artist}: ")
    assert page.evaluate("[...document.querySelectorAll('#artist-near button')].map(b => b.textContent)") == [
        f"{a} ({d:.2f})" for a, d in zip(expected["artist"], expected["distance"])]
    labels = page.evaluate("window.melodexMap.graph.data[window.melodexMap.graph.data.length - 1].text")
    assert labels == [f"{a} {d:.2f}" for a, d in zip(expected["artist"], expected["distance"])]
    page.uncheck("#artist-view")  # back to the tracks
    page.wait_for_function(f"window.melodexMap.graph.data.reduce((n, t) => n + t.x.length, 0) === {len(tracks)}")
    assert page.errors == []


def test_under_serve_the_instant_mix_comes_from_api_playlist(site, page):
    from melodex.analysis.collection import Collection
    from melodex.analysis.serve_api import ListeningAPI

    store, _ = site
    tracks = store.tracks()
    seed = str(tracks["track_id"][11])
    _, expected = ListeningAPI(Collection.from_store(store)).answer(
        "/api/playlist", f"length=20&max_per_artist=2&seed={seed}")
    asked = []
    with serving(store) as (host, port):
        page.on("request", lambda r: asked.append(r.url) if "/api/" in r.url else None)
        open_map(page, f"http://{host}:{port}/")
        click_and_wait_for_play(page, 11)
        page.wait_for_selector("#similar:not([hidden])")
        page.click("#play-mix")
        page.wait_for_function("document.getElementById('similar-title').textContent.includes('from the server')")
        rows = [int(r) for r in page.evaluate(
            "[...document.querySelectorAll('#similar-list button')].map(b => b.dataset.row)")]
        assert asked == [f"http://{host}:{port}/api/playlist?length=20&max_per_artist=2&seed={seed}"]
        assert [str(tracks["track_id"][r]) for r in rows] == [t["track_id"] for t in expected["tracks"]]
        assert page.evaluate("document.getElementById('player').src") == f"http://{host}:{port}/audio/{seed}"
    assert page.errors == []
