"""The interactive map page: one self-contained HTML file (plotly.js inline, data as JSON).

The page reads its data from ``<script type="application/json" id="map-data">`` (strings from
tags are never pasted into HTML or JavaScript source) and inserts text into the page with
``textContent`` only. Plotly draws hover labels and legend names from a small tag language
(``<b>``, ``<br>``), so those strings are entity-escaped in ``esc()`` and show literally.

Controls: a colour selector (genre, predicted genre, artist, year, folder) with a legend that has a title
and counts each entry; an artist search that draws the artist's dated tracks in date order as a
path with arrows, a start and an end marker; a click on a point plays the track in the page's
``<audio>`` element and lists its most similar tracks (precomputed into the data), each playable,
an instant mix from it (a walk over those neighbours, two per artist at most, never two in a row)
and its whole group (genre, artist) as a selection. A lasso/box selection or such a group downloads
as an M3U8 of absolute URLs. A searched artist lists its nearest artists (energy distance).
The plotly toolbar sits in the top margin and the legend below it, right of the points, so
neither covers the other nor any point. ``window.melodexMap`` exposes the data and the graph to tests.
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
  </select></label>
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

APP_JS = r"""
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
    var base = baseTraces(mode);
    baseCount = base.length;
    for (var k = 0; k < base.length; k++) base[k].opacity = pathTraces.length ? 0.3 : 1;
    layout.legend.title.text = "<b>" + LEGEND_TITLES[mode] + "</b> (" + N + " tracks)";
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

  // ---- the clicked track's most similar tracks, each playable ----------------------------------
  var similarBox = document.getElementById("similar");
  var similarTitle = document.getElementById("similar-title");
  var similarList = document.getElementById("similar-list");
  var mixButton = document.getElementById("play-mix");
  var groupButton = document.getElementById("select-group");
  var clicked = -1, queued = [], queuePos = -1;
  document.getElementById("similar-close").addEventListener("click", function () { similarBox.hidden = true; });

  function showList(title, rows, notes) {
    while (similarList.firstChild) similarList.removeChild(similarList.firstChild);
    similarTitle.textContent = title;
    for (var k = 0; k < rows.length; k++) {
      var li = document.createElement("li"), b = document.createElement("button"), d = document.createElement("span");
      b.type = "button"; b.textContent = label(rows[k]); b.dataset.row = rows[k];
      b.title = "play " + label(rows[k]);
      b.addEventListener("click", function (ev) { queued = []; play(Number(ev.currentTarget.dataset.row)); });
      d.className = "dist"; d.textContent = notes[k];
      li.appendChild(b); li.appendChild(d); similarList.appendChild(li);
    }
    similarBox.hidden = false;
  }

  function showSimilar(i) {
    clicked = i;
    var mode = colorSel.value, group = groupOf(i, mode);
    groupButton.hidden = group === null;
    if (group !== null) groupButton.textContent = "select its " + GROUP_NAMES[mode] + " (" + group.length + ")";
    mixButton.disabled = !D.similar;
    if (!D.similar) { showList("No similar tracks listed for " + label(i) + " (too many tracks)", [], []); return; }
    var rows = D.similar[i], dists = D.similarDist[i];
    showList("Most similar to " + label(i), rows, dists.map(function (d) { return "distance " + d.toFixed(3); }));
  }

  // ---- an instant mix from a track: a walk over the precomputed neighbours -----------------------
  var MIX_LENGTH = 20, MAX_PER_ARTIST = 2;
  function artistKey(i) { return D.artist[i] >= 0 ? "a" + D.artist[i] : "t" + i; }
  function sameRecording(a, b, dist) {  // as melodex duplicates: close embeddings, durations that agree
    if (dist > D.nearDuplicate) return false;
    var x = D.duration[a], y = D.duration[b];
    if (!known(x) || !known(y)) return true;
    return Math.abs(x - y) <= D.durationTolerance;
  }
  function instantMix(seed) {
    var picked = [seed], used = {}, count = {};
    used[seed] = true; count[artistKey(seed)] = 1;
    while (picked.length < MIX_LENGTH) {
      var prev = picked[picked.length - 1], next = -1;
      // the previous track's neighbours first, then the seed's, then those of earlier picks
      var sources = [prev, seed].concat(picked.slice(0, -1).reverse());
      for (var s = 0; s < sources.length && next < 0; s++) {
        var rows = D.similar[sources[s]], dists = D.similarDist[sources[s]];
        for (var k = 0; k < rows.length; k++) {
          var j = rows[k], a = artistKey(j);
          if (used[j] || (count[a] || 0) >= MAX_PER_ARTIST || a === artistKey(prev)) continue;
          if (picked.some(function (p) { return D.similar[p].indexOf(j) >= 0 &&
              sameRecording(p, j, D.similarDist[p][D.similar[p].indexOf(j)]); })) continue;
          next = j; break;
        }
      }
      if (next < 0) break;
      picked.push(next); used[next] = true; count[artistKey(next)] = (count[artistKey(next)] || 0) + 1;
    }
    return picked;
  }
  function markPlaying() {
    var items = similarList.children;
    for (var k = 0; k < items.length; k++) items[k].className = k === queuePos ? "playing" : "";
  }
  function playMix(seed) {
    queued = instantMix(seed); queuePos = 0;
    showList("Instant mix from " + label(seed) + " (" + queued.length + " tracks)", queued,
      queued.map(function (r, k) { return k === 0 ? "seed" : orUnknown(artistOf(r)); }));
    markPlaying();
    play(queued[0]);
    return queued;
  }
  player.addEventListener("ended", function () {
    if (queuePos >= 0 && queuePos + 1 < queued.length) { queuePos += 1; markPlaying(); play(queued[queuePos]); }
  });
  mixButton.addEventListener("click", function () { if (clicked >= 0) playMix(clicked); });

  // ---- a selection (lasso, box, or a clicked track's group) downloads as an M3U8 -----------------
  var GROUP_NAMES = { genre: "genre", predicted: "predicted genre", artist: "artist", folder: "folder" };
  var selectButton = document.getElementById("download-selection");
  var selection = [];
  function groupOf(i, mode) {
    var codes = { genre: D.genre, predicted: D.pred, artist: D.artist, folder: D.folder }[mode] || null;
    if (codes === null || codes[i] < 0) return null;
    var out = [];
    for (var j = 0; j < N; j++) if (codes[j] === codes[i]) out.push(j);
    return out;
  }
  function setSelection(rows) {
    var seen = {}, out = [];
    for (var k = 0; k < rows.length; k++) if (!seen[rows[k]]) { seen[rows[k]] = true; out.push(rows[k]); }
    selection = out;
    selectButton.disabled = !out.length;
    selectButton.textContent = "download selection as M3U8 (" + out.length + ")";
    return out;
  }
  function oneLine(text) { return String(text).replace(/[\r\n]+/g, " "); }
  function absoluteUrl(i) { var u = audioUrl(i); return u === null ? null : new URL(u, document.baseURI).href; }
  function selectionM3U8(rows) {
    var lines = ["#EXTM3U", "#PLAYLIST:" + oneLine(D.pageTitle + " selection")];
    for (var k = 0; k < rows.length; k++) {
      var i = rows[k], url = absoluteUrl(i), d = D.duration[i];
      if (url === null) continue;
      var who = [artistOf(i), D.title[i]].filter(known).join(" - ") || orUnknown(D.file[i]);
      lines.push("#EXTINF:" + (known(d) ? Math.round(d) : -1) + "," + oneLine(who));
      lines.push(url);
    }
    return lines.join("\n") + "\n";
  }
  selectButton.addEventListener("click", function () {
    var blob = new Blob([selectionM3U8(selection)], { type: "audio/x-mpegurl" });
    var link = document.createElement("a");
    link.href = URL.createObjectURL(blob); link.download = "selection.m3u8";
    document.body.appendChild(link); link.click(); link.remove();
    setTimeout(function () { URL.revokeObjectURL(link.href); }, 1000);
  });
  groupButton.addEventListener("click", function () {
    if (clicked >= 0) setSelection(groupOf(clicked, colorSel.value) || []);
  });

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
    statusEl.textContent = name + ": " + (dated.length + undated.length) + " tracks, " + dated.length + " dated";
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
    searchBox.value = lastQuery = ""; statusEl.textContent = ""; showArtistNear(-1); clearPath();
  });

  var ready = draw(colorSel.value).then(function () {
    gd.on("plotly_click", function (ev) {
      if (ev && ev.points && ev.points.length) { queued = []; play(ev.points[0].customdata); showSimilar(ev.points[0].customdata); }
    });
    gd.on("plotly_selected", function (ev) {
      setSelection(ev && ev.points ? ev.points.map(function (p) { return p.customdata; }) : []);
    });
    gd.on("plotly_deselect", function () { setSelection([]); });
    return gd;
  });
  queue = ready;

  window.melodexMap = { data: D, graph: gd, ready: ready, search: search, play: play, showSimilar: showSimilar,
    instantMix: instantMix, playMix: playMix, setSelection: setSelection, selectionM3U8: selectionM3U8,
    selection: function () { return selection.slice(); },
    baseTraceCount: function () { return baseCount; } };
})();
"""
