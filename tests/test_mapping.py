"""UMAP maps: quality, reproducibility, placing new tracks, the figures and the ``map`` command."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pandas as pd
import pytest

from melodex.analysis.map_figure import write_static_map
from melodex.analysis.map_page import page_data, render_html_map, write_html_map
from melodex.analysis.mapping import embed_2d, fit_map, place_on_map
from melodex.cli import main
from melodex.errors import MapError, OutputError
from tests._helpers_maps import HOSTILE_TITLE, make_library


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """300 tracks in 5 styles (plus 2 held out per style), fitted once with seed 42."""
    store, styles, held, held_styles = make_library(tmp_path_factory.mktemp("lib") / "library", hold_out=2,
                                                    hostile=True)
    coords = fit_map(store, seed=42)
    return store, styles, held, held_styles, coords


def test_map_is_trustworthy_and_saved(library):
    from sklearn.manifold import trustworthiness

    store, styles, _, _, coords = library
    assert list(coords.columns) == ["track_id", "x", "y"]
    assert coords["track_id"].tolist() == store.tracks()["track_id"].tolist()
    xy = coords[["x", "y"]].to_numpy()
    assert trustworthiness(store.embeddings(), xy, n_neighbors=10, metric="cosine") >= 0.9
    saved = store.coordinates()
    np.testing.assert_allclose(saved[["x", "y"]].to_numpy(), xy, rtol=1e-6)
    info = store.map_info()
    assert info["n_neighbors"] == 15 and info["min_dist"] == 0.1 and info["metric"] == "cosine"
    assert info["seed"] == 42 and info["n_points"] == 300


def test_same_seed_gives_same_map(library):
    store, *_ = library
    emb = store.embeddings()
    first, _ = embed_2d(emb, seed=42)
    again, _ = embed_2d(emb, seed=42)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, library[4][["x", "y"]].to_numpy(dtype=np.float32))


def _centroids(xy: np.ndarray, styles: np.ndarray) -> np.ndarray:
    return np.stack([xy[styles == s].mean(axis=0) for s in range(styles.max() + 1)])


def test_held_out_tracks_land_in_their_own_cluster(library):
    store, styles, held, held_styles, coords = library
    xy = coords[["x", "y"]].to_numpy()
    placed = place_on_map(store, held)
    assert placed.shape == (len(held), 2) and placed.dtype == np.float32
    centroids = _centroids(xy, styles)
    for point, style in zip(placed, held_styles):
        nearest = np.argsort(np.linalg.norm(xy - point, axis=1))[:10]
        assert (styles[nearest] == style).sum() >= 8
        assert np.argmin(np.linalg.norm(centroids - point, axis=1)) == style


def test_a_stored_track_placed_again_lands_on_itself(library):
    store, _, _, _, coords = library
    placed = place_on_map(store, store.embeddings()[[3, 100]])
    np.testing.assert_allclose(placed, coords[["x", "y"]].to_numpy()[[3, 100]], atol=1e-5)


def test_place_on_map_needs_a_map(tmp_path):
    store, *_ = make_library(tmp_path / "lib", n_styles=2, per_style=5)
    with pytest.raises(MapError, match="no map yet"):
        place_on_map(store, store.embeddings()[:1])


@pytest.mark.parametrize("n_tracks", [1, 3, 6])
def test_tiny_stores_get_a_map(tmp_path, n_tracks):
    store, *_ = make_library(tmp_path / "lib", n_styles=1, per_style=n_tracks)
    coords = fit_map(store, n_neighbors=15)
    assert len(coords) == n_tracks and np.isfinite(coords[["x", "y"]].to_numpy()).all()
    info = store.map_info()
    assert info["n_neighbors"] == (n_tracks - 1 if n_tracks >= 4 else None)


def test_static_figures_are_written(library, tmp_path):
    store = library[0]
    png = write_static_map(store, tmp_path / "map.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    svg = write_static_map(store, tmp_path / "fig" / "map.svg", color_by="year")
    text = svg.read_text()
    assert "<svg" in text and "year" in text
    write_static_map(store, tmp_path / "artists.png", color_by="artist")
    with pytest.raises(OutputError, match="must end in"):
        write_static_map(store, tmp_path / "map.gif")


def _embedded_data(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="map-data">(.*?)</script>', page, re.S)
    assert match, "the page has no data block"
    return json.loads(match.group(1))


def test_page_escapes_hostile_strings_and_keeps_missing_fields_missing(library, tmp_path):
    store = library[0]
    written = write_html_map(store, tmp_path / "site" / "map.html", title="<b>My</b> map __DATA__")
    page = written.read_text(encoding="utf-8")
    data_block = page.split('id="map-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data_block and ">" not in data_block and "&" not in data_block
    assert "\\u003c/script\\u003e\\u003cscript\\u003ealert" in data_block
    assert "<title>&lt;b&gt;My&lt;/b&gt; map __DATA__</title>" in page
    data = _embedded_data(page)
    tracks = store.tracks()
    assert data["title"][0] == HOSTILE_TITLE
    assert data["artists"][data["artist"][0]] == "<img src=x onerror=alert(1)>"
    assert len(data["x"]) == len(tracks)
    undated = tracks.index[tracks["date"].isna()].tolist()
    assert undated and all(data["date"][i] is None and data["year"][i] is None for i in undated)
    untagged = tracks.index[tracks["genre"].isna()].tolist()
    assert untagged and all(data["genre"][i] == -1 for i in untagged)
    # audio URLs are relative to the page's folder
    assert data["url"][1] == os.path.relpath("/music/t00001.wav", tmp_path / "site")


def test_page_data_is_compact(tmp_path):
    n = 2000
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"track_id": [f"t{i}" for i in range(n)],
                          "path": [f"/music/a/{i}.mp3" for i in range(n)],
                          "title": [f"Song number {i}" for i in range(n)],
                          "artist": [f"Artist {i % 50}" for i in range(n)],
                          "date": ["2001-02-03"] * n, "year": [2001] * n, "genre": ["Rock"] * n,
                          "predicted_label": ["Pop"] * n, "confidence": rng.random(n),
                          "x": rng.normal(size=n) * 10, "y": rng.normal(size=n) * 10})
    served = render_html_map(frame, audio_base="/audio/")
    from plotly.offline import get_plotlyjs

    per_point = (len(served) - len(get_plotlyjs())) / n
    assert per_point < 150, f"{per_point:.0f} bytes per point"
    data = _embedded_data(served)
    assert data["audioBase"] == "/audio/" and data["url"] is None
    assert data["artists"] == sorted({f"Artist {i % 50}" for i in range(n)}, key=str.casefold)


def test_missing_confidence_is_null_not_invented(tmp_path):
    frame = pd.DataFrame({"track_id": ["a", "b"], "confidence": pd.array([0.91234, None], dtype="Float64"),
                          "x": [0.0, 1.0], "y": [1.0, 0.0]})
    data = page_data(frame, page_dir=tmp_path, audio_base="/audio/", title="t")
    assert data["conf"] == [0.912, None]


def test_frames_without_optional_columns_show_unknown(tmp_path):
    tracks = pd.DataFrame({"track_id": ["a", "b", "c"], "path": [None, "/x/b.wav", "/x/c.wav"]})
    coords = pd.DataFrame({"track_id": ["a", "b"], "x": [0.0, 1.0], "y": [1.0, 0.0]})
    data = page_data(pd.merge(tracks, coords), page_dir=tmp_path, audio_base=None, title="t")
    assert data["title"] == [None, None] and data["conf"] == [None, None] and data["artist"] == [-1, -1]
    assert data["url"][0] is None
    page = write_html_map((tracks, coords), tmp_path / "m.html").read_text()
    assert len(_embedded_data(page)["x"]) == 2  # the track without coordinates is not drawn


def test_map_command_fits_then_places_new_tracks(tmp_path, capsys):
    root = tmp_path / "library"
    store, *_ = make_library(root, n_styles=3, per_style=20)
    out, png = tmp_path / "out" / "map.html", tmp_path / "out" / "map.svg"
    args = ["map", "--store", str(root), "--out", str(out), "--png", str(png), "--color-by", "predicted"]
    assert main(args) == 0
    assert capsys.readouterr().out.split() == [str(out), str(png)]
    assert out.stat().st_size > 1_000_000 and "<svg" in png.read_text()
    first = store.coordinates().set_index("track_id")
    assert store.map_info()["placed"] == 0

    more, *_ = make_library(root, n_styles=3, per_style=2, seed=0, start=100)  # same styles, new ids
    assert len(more) == 66
    assert main([*args, "--no-png"]) == 0
    second = store.coordinates().set_index("track_id")
    assert len(second) == 66 and store.map_info()["placed"] == 6
    pd.testing.assert_frame_equal(second.loc[first.index], first)  # old tracks keep their places

    assert main([*args, "--refit", "--seed", "7"]) == 0
    assert store.map_info()["placed"] == 0 and store.map_info()["seed"] == 7
    assert main([*args, "--n-neighbors", "5"]) == 0  # a setting that differs from the map's: refit
    assert store.map_info()["n_neighbors"] == 5 and store.map_info()["seed"] == 42  # unset: the default


def test_map_command_rejects_contradictory_options(tmp_path, capsys):
    store, *_ = make_library(tmp_path / "library", n_styles=1, per_style=3)
    assert main(["map", "--store", str(tmp_path / "library"), "--fast", "--seed", "3"]) == 2
    assert "--fast" in capsys.readouterr().err
    assert main(["map", "--store", str(tmp_path / "library"), "--n-neighbors", "1"]) == 2


def test_map_command_reports_a_missing_store(tmp_path, capsys):
    assert main(["map", "--store", str(tmp_path / "nowhere")]) == 2
    assert "no library store" in capsys.readouterr().err


def test_one_colour_per_label_on_the_page_its_figure_and_the_evolution_plots(tmp_path):
    """A label's colour depends on the label set only: page, static figure and evolution agree."""
    import matplotlib.colors as mcolors
    import pandas as pd
    from matplotlib.figure import Figure

    from melodex.analysis import map_figure
    from melodex.analysis.map_page import page_data
    from melodex.analysis.palette import PALETTE, label_colors

    labels = ["Rock", "Drone Ambient", "Folk"]
    n = 30
    frame = pd.DataFrame({
        "track_id": [f"t{i}" for i in range(n)], "x": np.arange(n, dtype=float), "y": np.zeros(n),
        "genre": [labels[i % 3] if i % 10 else "Field Recording" for i in range(n)],
        "predicted_label": [labels[(i + 1) % 3] for i in range(n)],
        "artist": [f"A{i % 4}" for i in range(n)], "path": [f"/m/{i}.wav" for i in range(n)],
        **{f"prob:{name}": np.full(n, 1 / 3) for name in labels}})
    data = page_data(frame, page_dir=tmp_path, audio_base=None, title="t")
    colors = label_colors(labels)
    assert colors == {"Drone Ambient": PALETTE[0], "Folk": PALETTE[1], "Rock": PALETTE[2]}
    page_genre = dict(zip(data["genres"], data["genreColors"]))
    page_pred = dict(zip(data["preds"], data["predColors"]))
    for name in labels:  # same in both page modes, and the model's labels keep their palette slots
        assert page_genre[name] == page_pred[name] == colors[name]
    assert page_genre["Field Recording"] == PALETTE[3]  # names the model does not know come after

    drawn = {}
    fig = Figure()
    ax = fig.subplots()
    map_figure._draw_categories(ax, frame, frame["genre"].tolist(), 5.0, page_genre)
    for handle, text in zip(*ax.get_legend_handles_labels()):
        drawn[text.rsplit(" (", 1)[0]] = mcolors.to_hex(handle.get_facecolor()[0])
    assert drawn == {name: page_genre[name] for name in drawn} and set(drawn) == set(page_genre)

    from melodex.analysis.evolution_figures import stack_colors

    assert stack_colors([f"prob:{name}" for name in labels]) == [page_genre[name] for name in labels]


_FIT_AND_PLACE = """
import json, sys
import numpy as np
from umap import layouts, umap_
from melodex.analysis.mapping import MusicMap

emb = np.random.default_rng(7).standard_normal((60, 16)).astype(np.float32)
fitted = MusicMap(n_neighbors=10, random_state=42).fit(emb)
placed = fitted.transform(emb[:5] + 0.05)
kernels = (umap_.smooth_knn_dist, umap_.compute_membership_strengths,
           layouts._nb_optimize_layout_euclidean_single_epoch)
json.dump({"coords": fitted.embedding_.tolist(), "placed": placed.tolist(),
           "hits": [sum(k.stats.cache_hits.values()) for k in kernels],
           "misses": [sum(k.stats.cache_misses.values()) for k in kernels],
           "caches": [k.stats.cache_path for k in kernels]}, sys.stdout)
"""


def test_umaps_kernels_compile_once_and_later_processes_load_them_with_the_same_map():
    import subprocess
    import sys
    from pathlib import Path

    from conftest import ROOT

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("NUMBA_CACHE_DIR", None)  # numba's own place (umap-learn's __pycache__), as users get it
    runs = []
    for _ in range(2):  # the first loads what an earlier process saved, or compiles and saves
        done = subprocess.run([sys.executable, "-c", _FIT_AND_PLACE], env=env, capture_output=True, text=True,
                              timeout=300, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(json.loads(done.stdout))
    first, second = runs
    assert all(second["hits"]) and not any(second["misses"])  # loaded from the cache, nothing compiled
    assert all(any(Path(folder).glob("*.nbi")) for folder in second["caches"])
    assert second["coords"] == first["coords"] and second["placed"] == first["placed"]


def test_an_unreadable_kernel_cache_is_compiled_again_and_replaced(tmp_path, monkeypatch):
    import importlib.util

    from melodex.analysis.umap_kernels import cache_kernel

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)  # the cache beside the source, in tmp_path
    source = tmp_path / "kernels_under_test.py"
    source.write_text("import numba\n\n@numba.njit\ndef twice(x):\n    return 2 * x\n")

    def fresh_kernel(name: str):  # as a new process would load it: a new dispatcher, the same cache
        spec = importlib.util.spec_from_file_location(name, source)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert cache_kernel(module.twice) and not cache_kernel(module.twice)  # once only
        return module.twice

    def run(name: str) -> tuple[int, int]:
        kernel = fresh_kernel(name)
        assert kernel(21) == 42
        return sum(kernel.stats.cache_hits.values()), sum(kernel.stats.cache_misses.values())

    assert run("first") == (0, 1)  # compiled and saved
    assert run("second") == (1, 0)  # loaded
    for suffix in (".nbi", ".nbc"):  # the index, then the machine code
        (saved,) = (tmp_path / "__pycache__").glob(f"*twice*{suffix}")
        saved.write_bytes(b"\xfa not a pickle")
        assert run(f"corrupt{suffix}") == (0, 1)  # compiled again, no error
        assert run(f"healed{suffix}") == (1, 0)  # and saved over the bad entry


def test_an_unreadable_pynndescent_cache_no_longer_breaks_every_map_command(tmp_path):
    """pynndescent (which umap-learn imports) caches its kernels itself and loads some while it is
    imported: one corrupt entry made ``import umap`` raise numba's UnpicklingError in every later
    process. Imported through Melodex, the entry is compiled again and saved over."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import pynndescent
    import umap
    from conftest import ROOT
    from numba.core.caching import UserProvidedCacheLocator

    # the installed caches, copied where $NUMBA_CACHE_DIR puts them, so nothing else is compiled
    cache_dir = tmp_path / "numba-cache"
    for package in (pynndescent, umap):
        source = Path(package.__file__).parent
        target = cache_dir / UserProvidedCacheLocator.get_suitable_cache_subpath(str(source / "x.py"))
        target.mkdir(parents=True)
        for saved in (source / "__pycache__").glob("*.nb[ic]"):
            shutil.copy2(saved, target)
    bad = sorted(cache_dir.glob("*/utils.seed-*.nbi")) + sorted(cache_dir.glob("*/utils.norm-*.nbc"))
    assert len(bad) >= 2, "pynndescent's cache is not where this test expects it"
    for path in bad:
        path.write_bytes(b"\xfa not a pickle")
    env = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_CACHE_DIR=str(cache_dir))
    code = "import melodex.analysis.mapping, pynndescent.utils as u, numpy as np; print(u.norm(np.ones(4, np.float32)))"
    for _ in range(2):  # compiled again and saved, then loaded
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                              check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == "2.0"
        assert all(path.read_bytes()[:1] != b"\xfa" for path in bad if path.exists())
    assert subprocess.run([sys.executable, "-c", "import pynndescent"], env=env, capture_output=True,
                          timeout=300, check=False).returncode == 0  # healed for a plain import too
