"""The map page's listening tools in a real headless chromium (as tests/test_map_browser.py).

A box or lasso drawn with plotly's own toolbar, or a clicked track's genre, becomes a selection
that downloads as an M3U8 the ``m3u8`` parser loads, with the selected tracks' absolute URLs
(``file://`` beside the page, ``http://`` under ``melodex serve``); a clicked track plays an
instant mix that respects the artist caps and moves on when a track ends; a searched artist
lists the artists ``melodex similar --artist`` names.
"""

from __future__ import annotations

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
