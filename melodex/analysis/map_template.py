"""The interactive map page: one self-contained HTML file (plotly.js inline, data as JSON).

The page reads its data from ``<script type="application/json" id="map-data">`` (strings from
tags are never pasted into HTML or JavaScript source) and inserts text into the page with
``textContent`` only. Plotly draws hover labels and legend names from a small tag language
(``<b>``, ``<br>``), so those strings are entity-escaped in ``esc()`` and show literally.

Controls: a colour selector (genre, predicted genre, artist, year), an artist search that draws
the artist's dated tracks in date order as a path, and a click on a point that plays the track
in the page's ``<audio>`` element. ``window.melodexMap`` exposes the data and the graph to tests.
"""

from __future__ import annotations

PAGE_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
html, body { margin: 0; height: 100%; font-family: system-ui, sans-serif; font-size: 14px; }
#bar { display: flex; gap: 14px; align-items: center; padding: 6px 10px; height: 44px;
       box-sizing: border-box; border-bottom: 1px solid #ddd; white-space: nowrap; overflow: hidden; }
#map { position: absolute; top: 44px; bottom: 0; left: 0; right: 0; }
#now, #search-status { color: #444; overflow: hidden; text-overflow: ellipsis; min-width: 0; }
#search-status { max-width: 260px; }
#now { flex: 1 1 auto; }
#player { height: 30px; }
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
  </select></label>
  <label>Artist <input id="artist-search" list="artist-list" placeholder="search, then Enter"
    autocomplete="off" size="22"></label>
  <datalist id="artist-list"></datalist>
  <button id="clear-search" type="button">clear</button>
  <span id="search-status"></span>
  <audio id="player" controls preload="none"></audio>
  <span id="now"></span>
</div>
<div id="map"></div>
<script type="application/json" id="map-data">__DATA__</script>
<script type="text/javascript">__APP__</script>
</body>
</html>
"""

APP_JS = r"""
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("map-data").textContent);
  var N = D.x.length;
  var gd = document.getElementById("map");
  var player = document.getElementById("player");
  var nowEl = document.getElementById("now");
  var statusEl = document.getElementById("search-status");
  var PALETTE = D.palette, GREY = D.unknownColor;
  var SIZE = N > 20000 ? 3 : N > 2000 ? 4 : 7;
  var pathTraces = [];
  var baseCount = 0;

  document.getElementById("page-title").textContent = D.pageTitle;
  document.title = D.pageTitle;

  // plotly reads <b>, <br>, &amp; ... in labels: escape so a title shows exactly as written
  function esc(s) { return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }
  function known(v) { return v !== null && v !== undefined && v !== ""; }
  function orUnknown(v) { return known(v) ? String(v) : "unknown"; }
  function category(codes, names, i) { var c = codes[i]; return c >= 0 ? names[c] : null; }
  function artistOf(i) { return category(D.artist, D.artists, i); }

  var hover = new Array(N);
  for (var i = 0; i < N; i++) {
    var conf = D.conf[i];
    hover[i] = "<b>" + esc(orUnknown(D.title[i])) + "</b><br>" +
      "artist: " + esc(orUnknown(artistOf(i))) + "<br>" +
      "date: " + esc(orUnknown(D.date[i])) + "<br>" +
      "genre: " + esc(orUnknown(category(D.genre, D.genres, i))) + "<br>" +
      "predicted: " + esc(orUnknown(category(D.pred, D.preds, i))) +
      (known(conf) ? " (confidence " + conf.toFixed(2) + ")" : " (confidence unknown)");
  }

  function pick(arr, idx) { var out = new Array(idx.length); for (var k = 0; k < idx.length; k++) out[k] = arr[idx[k]]; return out; }

  function pointTrace(idx, name, color, extra) {
    var t = { type: "scattergl", mode: "markers", name: esc(name), x: pick(D.x, idx), y: pick(D.y, idx),
      customdata: idx, text: pick(hover, idx), hoverinfo: "text",
      marker: { size: SIZE, color: color, opacity: 0.85 } };
    for (var key in extra) t[key] = extra[key];
    return t;
  }

  function categoricalTraces(codes, names) {
    var groups = {}, order = [];
    for (var i = 0; i < N; i++) {
      var c = codes[i];
      if (!(c in groups)) { groups[c] = []; order.push(c); }
      groups[c].push(i);
    }
    order.sort(function (a, b) { return (a < 0) - (b < 0) || groups[b].length - groups[a].length; });
    return order.map(function (c, k) {
      return pointTrace(groups[c], c >= 0 ? names[c] : "unknown", c >= 0 ? PALETTE[k % PALETTE.length] : GREY, {});
    });
  }

  function artistTraces() {
    var all = [], colors = [];
    for (var i = 0; i < N; i++) { all.push(i); colors.push(D.artist[i] >= 0 ? PALETTE[D.artist[i] % PALETTE.length] : GREY); }
    return [pointTrace(all, "tracks", colors, { showlegend: false })];
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
    if (mode === "predicted") return categoricalTraces(D.pred, D.preds);
    if (mode === "artist") return artistTraces();
    if (mode === "year") return yearTraces();
    return categoricalTraces(D.genre, D.genres);
  }

  var layout = {
    margin: { l: 10, r: 10, t: 10, b: 10 }, hovermode: "closest", uirevision: "map", dragmode: "pan",
    xaxis: { visible: false }, yaxis: { visible: false, scaleanchor: "x" },
    legend: { itemsizing: "constant" }, plot_bgcolor: "#ffffff"
  };
  var config = { responsive: true, scrollZoom: true, displaylogo: false };

  function draw(mode) {
    var base = baseTraces(mode);
    baseCount = base.length;
    for (var k = 0; k < base.length; k++) base[k].opacity = pathTraces.length ? 0.3 : 1;
    return Plotly.react(gd, base.concat(pathTraces), layout, config);
  }

  // ---- playing a track -------------------------------------------------------------------
  function audioUrl(i) {
    if (known(D.audioBase)) return D.audioBase + encodeURIComponent(D.id[i]);
    return known(D.url[i]) ? D.url[i] : null;
  }

  function play(i) {
    var url = audioUrl(i);
    var label = orUnknown(D.title[i]) + " \u2014 " + orUnknown(artistOf(i)) + " (" + orUnknown(D.date[i]) + ")";
    if (url === null) { nowEl.textContent = "no audio file for " + label; return; }
    player.src = url;
    nowEl.textContent = "\u25B6 " + label;
    var p = player.play();
    if (p && p.catch) p.catch(function (err) { nowEl.textContent = "cannot play " + label + ": " + err.message; });
  }

  // ---- artist search: the artist's tracks in date order as a path ---------------------------
  function findArtist(query) {
    var q = query.trim().toLowerCase();
    if (!q) return -1;
    for (var c = 0; c < D.artists.length; c++) if (D.artists[c].toLowerCase() === q) return c;
    for (c = 0; c < D.artists.length; c++) if (D.artists[c].toLowerCase().indexOf(q) >= 0) return c;
    return -1;
  }

  function search(query) {
    var code = findArtist(query);
    if (code < 0) { statusEl.textContent = known(query.trim()) ? "no artist matches \u201C" + query.trim() + "\u201D" : ""; return clearPath(); }
    var dated = [], undated = [];
    for (var i = 0; i < N; i++) if (D.artist[i] === code) (known(D.date[i]) ? dated : undated).push(i);
    dated.sort(function (a, b) { return D.date[a] < D.date[b] ? -1 : D.date[a] > D.date[b] ? 1 : a - b; });
    var name = D.artists[code];
    var traces = [];
    if (dated.length) traces.push({ type: "scattergl", mode: "lines+markers", name: esc(name + " (by date)"),
      x: pick(D.x, dated), y: pick(D.y, dated), customdata: dated, text: pick(hover, dated), hoverinfo: "text",
      line: { color: "#111111", width: 2 }, marker: { size: SIZE + 5, color: "#111111", symbol: "circle" } });
    if (undated.length) traces.push({ type: "scattergl", mode: "markers", name: esc(name + " (date unknown)"),
      x: pick(D.x, undated), y: pick(D.y, undated), customdata: undated, text: pick(hover, undated), hoverinfo: "text",
      marker: { size: SIZE + 5, color: "#ffffff", line: { color: "#111111", width: 2 } } });
    statusEl.textContent = name + ": " + (dated.length + undated.length) + " tracks, " + dated.length + " dated";
    pathTraces = traces;
    return showPath(traces);
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
  var colorSel = document.getElementById("color-by");
  var searchBox = document.getElementById("artist-search");
  colorSel.value = D.colorBy;
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
    searchBox.value = lastQuery = ""; statusEl.textContent = ""; clearPath();
  });

  var ready = draw(colorSel.value).then(function () {
    gd.on("plotly_click", function (ev) {
      if (ev && ev.points && ev.points.length) play(ev.points[0].customdata);
    });
    return gd;
  });
  queue = ready;

  window.melodexMap = { data: D, graph: gd, ready: ready, search: search, play: play,
    baseTraceCount: function () { return baseCount; } };
})();
"""
