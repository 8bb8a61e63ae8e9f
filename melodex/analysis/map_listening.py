"""The map page's listening tools, as a part of the page's script (:data:`LISTENING_JS`).

:mod:`melodex.analysis.map_template` puts this inside the page's one closure, so these tools share
the map's data (``D``), its drawing and its player:

* a clicked track lists its most similar tracks (precomputed into the data), each playable;
* an instant mix from it: under ``melodex serve`` (``D.api`` set) it comes from ``/api/playlist?seed=``,
  the same mix as ``melodex playlist --seed``; the offline page walks its embedded neighbours
  (two tracks per artist at most, never two in a row, no near-duplicates);
* a selection (lasso, box, or the clicked track's genre / artist / cluster group) downloads as an M3U8
  of absolute URLs;
* clusters: the clustering ``melodex playlist --clusters`` uses (``D.clusterMethod`` says which),
  as a colouring and a group;
* the artist view: each artist a point at the centre of its tracks, sized by their number; hovering
  lists its nearest artists by energy distance (:mod:`melodex.analysis.artists`), a click draws
  lines to them labelled with the distances.
"""

from __future__ import annotations

LISTENING_JS = r"""
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
    mixButton.disabled = !D.similar && !known(D.api);
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
  function startMix(seed, rows, source) {
    queued = rows; queuePos = 0;
    showList("Instant mix from " + label(seed) + " (" + queued.length + " tracks" + source + ")", queued,
      queued.map(function (r, k) { return k === 0 ? "seed" : orUnknown(artistOf(r)); }));
    markPlaying();
    play(queued[0]);
    return queued;
  }
  // Under `melodex serve` the mix comes from /api/playlist (the whole store, flow order, near-duplicates
  // removed as `melodex playlist` does); the offline page walks its embedded neighbours instead.
  var rowOfId = null;
  function playMix(seed) {
    if (!known(D.api)) return Promise.resolve(startMix(seed, instantMix(seed), ""));
    if (rowOfId === null) { rowOfId = {}; for (var i = 0; i < N; i++) rowOfId[D.id[i]] = i; }
    var url = D.api + "playlist?length=" + MIX_LENGTH + "&max_per_artist=" + MAX_PER_ARTIST +
      "&seed=" + encodeURIComponent(D.id[seed]);
    return fetch(url).then(function (r) {
      return r.json().then(function (doc) { if (!r.ok) throw new Error(doc.error || r.statusText); return doc; });
    }).then(function (doc) {
      var rows = doc.tracks.map(function (t) { return rowOfId[t.track_id]; }).filter(function (r) { return r !== undefined; });
      return startMix(seed, rows, ", from the server");
    }).catch(function (err) { nowEl.textContent = "no instant mix for " + label(seed) + ": " + err.message; return []; });
  }
  player.addEventListener("ended", function () {
    if (queuePos >= 0 && queuePos + 1 < queued.length) { queuePos += 1; markPlaying(); play(queued[queuePos]); }
  });
  mixButton.addEventListener("click", function () { if (clicked >= 0) playMix(clicked); });

  // ---- a selection (lasso, box, or a clicked track's group) downloads as an M3U8 -----------------
  var GROUP_NAMES = { genre: "genre", predicted: "predicted genre", artist: "artist", folder: "folder",
    cluster: "cluster" };
  var selectButton = document.getElementById("download-selection");
  var selection = [];
  function groupOf(i, mode) {
    var codes = mode === "genre" ? D.genre : mode === "predicted" ? D.pred : mode === "artist" ? D.artist :
      mode === "folder" ? D.folder : mode === "cluster" ? D.cluster : null;
    if (!codes || codes[i] < 0) return null;
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

  // ---- clusters: the clustering of `melodex playlist --clusters` as a colouring and a selectable group ----
  function clusterTraces() { return categoricalTraces(D.cluster, D.clusters, D.clusterColors, "other clusters"); }

  // ---- the artist view: each artist a point at its tracks' centre, linked to its nearest artists ----
  var artistView = document.getElementById("artist-view");
  var centres = null;
  function artistCentres() {  // mean map position and track count of each artist code
    if (centres !== null) return centres;
    var A = D.artists.length, x = new Array(A).fill(0), y = new Array(A).fill(0), n = new Array(A).fill(0);
    for (var i = 0; i < N; i++) { var c = D.artist[i]; if (c >= 0) { x[c] += D.x[i]; y[c] += D.y[i]; n[c] += 1; } }
    for (var a = 0; a < A; a++) if (n[a]) { x[a] /= n[a]; y[a] /= n[a]; }
    centres = { x: x, y: y, n: n };
    return centres;
  }
  function nearText(code) {
    if (!D.artistNear || !D.artistNear[code].length) return "";
    return "<br>nearest artists (energy distance):" + D.artistNear[code].map(function (p) {
      return "<br>\u2022 " + esc(D.artists[p[0]]) + " " + p[1].toFixed(2); }).join("");
  }
  function artistTraces() {
    var C = artistCentres(), codes = [];
    for (var a = 0; a < D.artists.length; a++) if (C.n[a]) codes.push(a);
    var named = codes.length <= 60;  // a few artists: their names on the map too
    return [{ type: codes.length > 2000 ? "scattergl" : "scatter", mode: named ? "markers+text" : "markers",
      name: esc("artists (" + codes.length + ")"),
      x: pick(C.x, codes), y: pick(C.y, codes), customdata: codes.map(function (a) { return -1 - a; }),
      hovertext: codes.map(function (a) { return "<b>" + esc(D.artists[a]) + "</b><br>" + C.n[a] + " tracks" + nearText(a); }),
      text: named ? codes.map(function (a) { return esc(D.artists[a]); }) : undefined,
      textposition: "bottom center", textfont: { size: 11, color: "#444444" }, hoverinfo: "text", marker: { size: codes.map(function (a) { return 8 + 3 * Math.sqrt(C.n[a]); }),
        color: pick(D.artistColors, codes), opacity: 0.85, line: { color: "#333333", width: 1 } } }];
  }
  // A clicked artist: lines to its nearest artists, each end labelled with the energy distance.
  function showArtistLinks(code) {
    var C = artistCentres(), near = D.artistNear ? D.artistNear[code] : [], x = [], y = [], ends = [];
    near.forEach(function (p) { x.push(C.x[code], C.x[p[0]], null); y.push(C.y[code], C.y[p[0]], null); ends.push(p[0]); });
    statusEl.textContent = D.artists[code] + ": " + C.n[code] + " tracks" +
      (near.length ? "; lines to its " + near.length + " nearest artists" : "; no artist distances on this page");
    showArtistNear(code);
    pathTraces = !near.length ? [] : [
      { type: "scatter", mode: "lines", name: esc("nearest to " + D.artists[code]), x: x, y: y, hoverinfo: "skip",
        line: { color: "#111111", width: 2 } },
      { type: "scatter", mode: "markers", name: esc(D.artists[code]), x: [C.x[code]], y: [C.y[code]], hoverinfo: "skip",
        marker: { size: 18, symbol: "circle-open", color: "#111111", line: { width: 3 } } },
      { type: "scatter", mode: "markers+text", name: esc("distances"), x: pick(C.x, ends), y: pick(C.y, ends),
        customdata: ends.map(function (a) { return -1 - a; }), textposition: "top center", hoverinfo: "skip",
        text: near.map(function (p) { return esc(D.artists[p[0]]) + " " + p[1].toFixed(2); }),
        marker: { size: 6, color: "#111111" } }];
    return showPath(pathTraces);
  }
  artistView.addEventListener("change", function () {
    pathTraces = []; statusEl.textContent = ""; showArtistNear(-1);
    queue = queue.then(function () { return draw(colorSel.value); });
  });

"""
