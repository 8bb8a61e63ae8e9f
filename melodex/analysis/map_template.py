"""The interactive map page: one self-contained HTML file (plotly.js inline, data as JSON).

The page reads its data from ``<script type="application/json" id="map-data">`` (strings from
tags are never pasted into HTML or JavaScript source) and inserts text into the page with
``textContent`` only. Plotly draws hover labels and legend names from a small tag language
(``<b>``, ``<br>``), so those strings are entity-escaped in ``esc()`` and show literally.

Controls: a colour selector (genre, predicted genre, artist, year, folder) with a legend that has a title
and counts each entry; an artist search that draws the artist's dated tracks in date order as a
path with arrows, a start and an end marker; a click on a point plays the track in the page's
``<audio>`` element and lists its most similar tracks (precomputed into the data), each playable,
an instant mix from it and its whole group (genre, artist, cluster) as a selection; a lasso/box
selection or such a group downloads as an M3U8 (these listening tools, the clusters and the
artist view live in :mod:`melodex.analysis.map_listening`). A searched artist lists its nearest
artists (energy distance).
The plotly toolbar sits in the top margin and the legend below it, right of the points, so
neither covers the other nor any point. ``window.melodexMap`` exposes the data and the graph to tests.
"""

from __future__ import annotations

from melodex.analysis.map_listening import LISTENING_JS

PAGE_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
html, body { margin: 0; height: 100%; font-family: system-ui, sans-serif; font-size: 14px; }
body { display: flex; flex-direction: column; }
/* the bar wraps onto a second row on narrow windows instead of cutting its text off */
#bar { display: flex; flex-wrap: wrap; gap: 6px 14px; align-items: center; padding: 6px 10px;
       box-sizing: border-box; border-bottom: 1px solid #ddd; flex: 0 0 auto; }
#main { position: relative; flex: 1 1 auto; min-height: 0; }
#map { position: absolute; top: 0; bottom: 0; left: 0; right: 0; }
#now, #search-status { color: #333; overflow-wrap: anywhere; }
#status-row { display: flex; flex-wrap: wrap; gap: 4px 14px; flex: 1 1 100%; min-height: 1.2em; }
#player { height: 30px; }
#similar { position: absolute; right: 8px; bottom: 8px; width: 320px; max-height: 45%; overflow-y: auto;
           background: rgba(255, 255, 255, 0.95); border: 1px solid #ccc; border-radius: 4px;
           padding: 6px 8px; font-size: 13px; box-shadow: 0 1px 4px rgba(0, 0, 0, 0.15); }
#similar[hidden] { display: none; }
#similar h2 { font-size: 13px; margin: 0 0 4px 0; overflow-wrap: anywhere; }
#similar ol { margin: 0; padding-left: 22px; }
#similar button { all: unset; cursor: pointer; color: #0645ad; overflow-wrap: anywhere; }
#similar button:hover { text-decoration: underline; }
#similar .dist { color: #777; margin-left: 4px; }
#similar #similar-close { float: right; color: #444; font-size: 16px; padding: 0 4px; }
#similar-actions { margin: 0 0 4px 0; }
#similar-actions button { margin-right: 10px; }
#similar li.playing button { font-weight: bold; }
#artist-near button { all: unset; cursor: pointer; color: #0645ad; margin-left: 6px; }
</style>
<script type="text/javascript">__PLOTLYJS__</script>
</head>
<body>
<div id="bar">
  <strong id="page-title"></strong>
  <label>Colour by <select id="color-by">
    <option value="genre">genre</option>
    <option value="predicted">predicted genre</option>
    <option value="artist">artist</option>
    <option value="year">year</option>
    <option value="folder">folder</option>
    <option value="cluster">cluster</option>
  </select></label>
  <label title="each artist a point at its tracks' centre; hover or click for its nearest artists"><input
    type="checkbox" id="artist-view"> artists as points</label>
  <label>Artist <input id="artist-search" list="artist-list" placeholder="search, then Enter"
    autocomplete="off" size="22"></label>
  <datalist id="artist-list"></datalist>
  <button id="clear-search" type="button">clear</button>
  <button id="download-selection" type="button" disabled>download selection as M3U8 (0)</button>
  <audio id="player" controls preload="none"></audio>
  <div id="status-row"><span id="search-status"></span><span id="artist-near"></span><span id="now"></span></div>
</div>
<div id="main">
  <div id="map"></div>
  <section id="similar" hidden aria-live="polite"><button id="similar-close" type="button" title="close">×</button><h2 id="similar-title"></h2><div id="similar-actions"><button id="play-mix" type="button">▶ play an instant mix</button> <button id="select-group" type="button"></button></div><ol id="similar-list"></ol></section>
</div>
<script type="application/json" id="map-data">__DATA__</script>
<script type="text/javascript">__APP__</script>
</body>
</html>
"""

_CORE_START = r"""
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("map-data").textContent);
  var N = D.x.length;
  var gd = document.getElementById("map");
  var player = document.getElementById("player");
  var nowEl = document.getElementById("now"), statusEl = document.getElementById("search-status");
  var GREY = D.unknownColor, OTHER = D.otherColor;
  var SIZE = N > 20000 ? 3 : N > 2000 ? 4 : 7;
  var pathTraces = [], baseCount = 0;

  document.getElementById("page-title").textContent = D.pageTitle;
  document.title = D.pageTitle;

  // plotly reads <b>, <br>, &amp; ... in labels: escape so a title shows exactly as written
  function esc(s) { return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }
  function known(v) { return v !== null && v !== undefined && v !== ""; }
  function orUnknown(v) { return known(v) ? String(v) : "unknown"; }
  function category(codes, names, i) { var c = codes[i]; return c >= 0 ? names[c] : null; }
  function artistOf(i) { return category(D.artist, D.artists, i); }

  function label(i) { return orUnknown(D.title[i]) + " \u2014 " + orUnknown(artistOf(i)); }

  var hover = new Array(N);
  for (var i = 0; i < N; i++) {
    var conf = D.conf[i];
    hover[i] = "<b>" + esc(orUnknown(D.title[i])) + "</b><br>" +
      "artist: " + esc(orUnknown(artistOf(i))) + "<br>" +
      "album: " + esc(orUnknown(D.album[i])) + "<br>" +
      "date: " + esc(orUnknown(D.date[i])) + "<br>" +
      "genre: " + esc(orUnknown(category(D.genre, D.genres, i))) + "<br>" +
      (D.hasPredictions === false ? "" : "predicted: " + esc(orUnknown(category(D.pred, D.preds, i))) +
      (known(conf) ? " (confidence " + conf.toFixed(2) + ")" : " (confidence unknown)") + "<br>") +
      "id: " + esc(D.id[i]) + "<br>" +
      "file: " + esc(orUnknown(D.file[i]));
  }

  function pick(arr, idx) { var out = new Array(idx.length); for (var k = 0; k < idx.length; k++) out[k] = arr[idx[k]]; return out; }

  function pointTrace(idx, name, color, extra) {
    var t = { type: "scattergl", mode: "markers", name: esc(name), x: pick(D.x, idx), y: pick(D.y, idx),
      customdata: idx, text: pick(hover, idx), hoverinfo: "text",
      marker: { size: SIZE, color: color, opacity: 0.85 } };
    for (var key in extra) t[key] = extra[key];
    return t;
  }

  // One trace per category, largest first, named "name (count)"; categories drawn in the "other"
  // colour (artists past the palette) are gathered into one "other" entry that says how many.
  function categoricalTraces(codes, names, colors, otherName) {
    var groups = {}, order = [], other = [], otherNames = {};
    for (var i = 0; i < N; i++) {
      var c = codes[i];
      if (c >= 0 && colors[c] === OTHER) { other.push(i); otherNames[c] = true; continue; }
      if (!(c in groups)) { groups[c] = []; order.push(c); }
      groups[c].push(i);
    }
    order.sort(function (a, b) { return (a < 0) - (b < 0) || groups[b].length - groups[a].length || a - b; });
    var traces = order.map(function (c) {
      var name = c >= 0 ? names[c] : "unknown";
      return pointTrace(groups[c], name + " (" + groups[c].length + ")", c >= 0 ? colors[c] : GREY, {});
    });
    if (other.length) {
      var count = Object.keys(otherNames).length;
      var entry = pointTrace(other, otherName + " (" + count + ", " + other.length + " tracks)", OTHER, {});
      traces.splice(traces.length && order[order.length - 1] < 0 ? traces.length - 1 : traces.length, 0, entry);
    }
    return traces;
  }

  function yearTraces() {
    var dated = [], undated = [], years = [];
    for (var i = 0; i < N; i++) { if (known(D.year[i])) { dated.push(i); years.push(D.year[i]); } else undated.push(i); }
    var traces = [];
    if (undated.length) traces.push(pointTrace(undated, "year unknown", GREY, {}));
    if (dated.length) traces.push(pointTrace(dated, "year known", years, {
      marker: { size: SIZE, color: years, colorscale: "Viridis", showscale: true, opacity: 0.85,
        colorbar: { title: { text: "year" }, thickness: 12, len: 0.5, y: 0, yanchor: "bottom" } } }));
    return traces;
  }

  function baseTraces(mode) {
    if (mode === "predicted") return categoricalTraces(D.pred, D.preds, D.predColors, "other predicted genres");
    if (mode === "artist") return categoricalTraces(D.artist, D.artists, D.artistColors, "other artists");
    if (mode === "year") return yearTraces();
    if (mode === "folder") return categoricalTraces(D.folder, D.folders, D.folderColors, "other folders");
    if (mode === "cluster" && D.cluster) return clusterTraces();
    return categoricalTraces(D.genre, D.genres, D.genreColors, "other genres");
  }

  var LEGEND_TITLES = { genre: "genre (tag)", predicted: "predicted genre", artist: "artist", year: "year", folder: "folder" };

  // The toolbar lives in the top margin; the legend starts below it, right of the points: the
  // toolbar never covers the legend and the legend never covers a point, at any width.
  var layout = {
    margin: { l: 10, r: 10, t: 36, b: 10 }, hovermode: "closest", uirevision: "map", dragmode: "pan",
    xaxis: { visible: false }, yaxis: { visible: false, scaleanchor: "x" },
    legend: { itemsizing: "constant", x: 1.01, xanchor: "left", y: 1, yanchor: "top", title: { text: "" } },
    plot_bgcolor: "#ffffff"
  };
  var config = { responsive: true, scrollZoom: true, displaylogo: false };

  function draw(mode) {
    var base = artistView.checked ? artistTraces() : baseTraces(mode);
    baseCount = base.length;
    for (var k = 0; k < base.length; k++) base[k].opacity = pathTraces.length ? 0.3 : 1;
    var title = mode === "cluster" ? "cluster (as " + D.clusterMethod + ")" : LEGEND_TITLES[mode];
    layout.legend.title.text = "<b>" + (artistView.checked ? "artists" : esc(title)) + "</b> (" + N + " tracks)";
    return Plotly.react(gd, base.concat(pathTraces), layout, config);
  }

  // ---- playing a track -------------------------------------------------------------------
  function audioUrl(i) {
    if (known(D.audioBase)) return D.audioBase + encodeURIComponent(D.id[i]);
    return known(D.url[i]) ? D.url[i] : null;
  }

  function play(i) {
    var url = audioUrl(i);
    var what = label(i) + " (" + orUnknown(D.date[i]) + ")";
    if (url === null) { nowEl.textContent = "no audio file for " + what; return; }
    player.src = url;
    nowEl.textContent = "\u25B6 " + what;
    var p = player.play();
    if (p && p.catch) p.catch(function (err) { nowEl.textContent = "cannot play " + what + ": " + err.message; });
  }

"""

_CORE_END = r"""
  // ---- artist search: the artist's tracks in date order as a path ---------------------------
  // The artist named exactly (any case), else every artist whose name holds the query
  // (namesakes are "name [artist_id]", so a shared name finds them all).
  function findArtists(query) {
    var q = query.trim().toLowerCase(), found = [];
    if (!q) return found;
    for (var c = 0; c < D.artists.length; c++) if (D.artists[c].toLowerCase() === q) return [c];
    for (c = 0; c < D.artists.length; c++) if (D.artists[c].toLowerCase().indexOf(q) >= 0) found.push(c);
    return found;
  }

  function search(query) {
    var found = findArtists(query), code = found.length ? found[0] : -1;
    if (code < 0) { statusEl.textContent = known(query.trim()) ? "no artist matches \u201C" + query.trim() + "\u201D" : ""; showArtistNear(-1); return clearPath(); }
    var dated = [], undated = [];
    for (var i = 0; i < N; i++) if (D.artist[i] === code) (known(D.date[i]) ? dated : undated).push(i);
    dated.sort(function (a, b) { return D.date[a] < D.date[b] ? -1 : D.date[a] > D.date[b] ? 1 : a - b; });
    var name = D.artists[code];
    var traces = [];
    // SVG scatter (a handful of points): its markers can be arrows that point along the path
    if (dated.length) traces.push({ type: "scatter", mode: "lines+markers", name: esc(name + " (by date)"),
      x: pick(D.x, dated), y: pick(D.y, dated), customdata: dated, text: pick(hover, dated), hoverinfo: "text",
      line: { color: "#111111", width: 2 },
      marker: { size: SIZE + 7, color: "#111111", symbol: "arrow", angleref: "previous" } });
    if (dated.length) {
      var first = dated[0], last = dated[dated.length - 1];
      traces.push({ type: "scatter", mode: "markers", name: esc("start: " + orUnknown(D.date[first])),
        x: [D.x[first]], y: [D.y[first]], customdata: [first], text: [hover[first]], hoverinfo: "text",
        marker: { size: SIZE + 11, color: "#2ca02c", symbol: "circle", line: { color: "#111111", width: 2 } } });
      traces.push({ type: "scatter", mode: "markers", name: esc("end: " + orUnknown(D.date[last])),
        x: [D.x[last]], y: [D.y[last]], customdata: [last], text: [hover[last]], hoverinfo: "text",
        marker: { size: SIZE + 11, color: "#d62728", symbol: "square", line: { color: "#111111", width: 2 } } });
    }
    if (undated.length) traces.push({ type: "scattergl", mode: "markers", name: esc(name + " (date unknown)"),
      x: pick(D.x, undated), y: pick(D.y, undated), customdata: undated, text: pick(hover, undated), hoverinfo: "text",
      marker: { size: SIZE + 5, color: "#ffffff", line: { color: "#111111", width: 2 } } });
    statusEl.textContent = name + ": " + (dated.length + undated.length) + " tracks, " + dated.length + " dated" +
      (found.length > 1 ? " (the first of " + found.length + " artists matching \u201C" + query.trim() +
        "\u201D; pick one from the list)" : "");
    showArtistNear(code);
    pathTraces = traces;
    return showPath(traces);
  }

  var nearEl = document.getElementById("artist-near");
  function showArtistNear(code) {
    while (nearEl.firstChild) nearEl.removeChild(nearEl.firstChild);
    if (code < 0 || !D.artistNear || !D.artistNear[code].length) return;
    nearEl.appendChild(document.createTextNode("similar artists:"));
    D.artistNear[code].forEach(function (pair) {
      var b = document.createElement("button");
      b.type = "button"; b.textContent = D.artists[pair[0]] + " (" + pair[1].toFixed(2) + ")";
      b.title = "energy distance between the two artists' tracks; click to show " + D.artists[pair[0]];
      b.addEventListener("click", function () { searchBox.value = lastQuery = D.artists[pair[0]]; search(lastQuery); });
      nearEl.appendChild(b);
    });
  }

  function range(from, to) { var out = []; for (var k = from; k < to; k++) out.push(k); return out; }

  // swap only the path traces (addTraces/deleteTraces) and dim the rest: no redraw of 100k points.
  // Changes run one after another so that a quick second search never sees a half-done first.
  var queue = Promise.resolve();
  function showPath(traces) {
    queue = queue.then(function () {
      var old = range(baseCount, gd.data.length);
      var step = old.length ? Plotly.deleteTraces(gd, old) : Promise.resolve(gd);
      if (traces.length) step = step.then(function () { return Plotly.addTraces(gd, traces); });
      return step.then(function () {
        return Plotly.restyle(gd, { opacity: traces.length ? 0.3 : 1 }, range(0, baseCount));
      });
    });
    return queue;
  }

  function clearPath() {
    if (!pathTraces.length) return Promise.resolve(gd);
    pathTraces = [];
    return showPath([]);
  }

  // ---- wiring ---------------------------------------------------------------------------------
  var colorSel = document.getElementById("color-by"), searchBox = document.getElementById("artist-search");
  if (D.hasPredictions === false) colorSel.querySelector('option[value="predicted"]').remove();  // no genre head
  if (!D.cluster) colorSel.removeChild(colorSel.querySelector("option[value=cluster]"));
  colorSel.value = D.colorBy === "cluster" && !D.cluster ? "genre" : D.colorBy;
  var list = document.getElementById("artist-list");
  var frag = document.createDocumentFragment();
  for (var c = 0; c < D.artists.length; c++) { var o = document.createElement("option"); o.value = D.artists[c]; frag.appendChild(o); }
  list.appendChild(frag);

  var lastQuery = "";
  function searchOnce() {  // Enter and the following change event ask for the same search
    if (searchBox.value === lastQuery) return;
    lastQuery = searchBox.value;
    search(lastQuery);
  }
  colorSel.addEventListener("change", function () { queue = queue.then(function () { return draw(colorSel.value); }); });
  searchBox.addEventListener("change", searchOnce);
  searchBox.addEventListener("keydown", function (e) { if (e.key === "Enter") searchOnce(); });
  document.getElementById("clear-search").addEventListener("click", function () {
    searchBox.value = lastQuery = ""; statusEl.textContent = ""; showArtistNear(-1); clearPath();
  });

  var ready = draw(colorSel.value).then(function () {
    gd.on("plotly_click", function (ev) {
      if (!ev || !ev.points || !ev.points.length || ev.points[0].customdata === undefined) return;
      var row = ev.points[0].customdata;
      if (row < 0) { showArtistLinks(-1 - row); return; }  // an artist point (the artist view)
      queued = []; play(row); showSimilar(row);
    });
    gd.on("plotly_selected", function (ev) {
      var rows = ev && ev.points ? ev.points.map(function (p) { return p.customdata; }) : [];
      setSelection(rows.filter(function (r) { return r >= 0; }));  // tracks only, not artist points
    });
    gd.on("plotly_deselect", function () { setSelection([]); });
    return gd;
  });
  queue = ready;

  window.melodexMap = { data: D, graph: gd, ready: ready, search: search, play: play, showSimilar: showSimilar,
    instantMix: instantMix, playMix: playMix, showArtistLinks: showArtistLinks, artistCentres: artistCentres, setSelection: setSelection, selectionM3U8: selectionM3U8,
    selection: function () { return selection.slice(); },
    baseTraceCount: function () { return baseCount; } };
})();
"""

APP_JS = _CORE_START + LISTENING_JS + _CORE_END  # one closure: the listening tools share the map's state
