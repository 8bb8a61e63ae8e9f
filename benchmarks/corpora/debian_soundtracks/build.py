#!/tmp/rm-venv/bin/python
"""Build a small real-music corpus from Debian game-music packages.

Rerun: /tmp/rm-venv/bin/python /tmp/realmusic/build.py
(needs: apt-get download access, dpkg, unzip; venv with mutagen + soundfile)
Outputs: /tmp/realmusic/{corpus/, manifest.csv, PROVENANCE.txt}
"""
import collections, csv, glob, json, os, re, shutil, subprocess, sys, zipfile

import mutagen
import soundfile as sf

ROOT = "/tmp/realmusic"
DEBS, EXTRACT, CORPUS = f"{ROOT}/debs", f"{ROOT}/extract", f"{ROOT}/corpus"
PACKAGES = ["wesnoth-1.16-music", "singularity-music", "hyperrogue-music",
            "warzone2100-music", "nexuiz-music", "ufoai-music"]
AUDIO_EXT = (".ogg", ".opus", ".mp3", ".flac", ".wav")
MIN_SECONDS = 20.0
# Optional (--merge-package-albums): fold the package-name fallback album into the
# game-soundtrack album named by the package's own tags. Off by default.
PACKAGE_ALBUM = {
    "wesnoth-1.16-music": "The Battle for Wesnoth OST",
    "hyperrogue-music": "HyperRogue",
    "nexuiz-music": "Nexuiz",
    "ufoai-music": "UFO: Alien Invasion",
}
MERGE_PACKAGE_ALBUMS = "--merge-package-albums" in sys.argv

# Artist aliases (same person, different spellings) -> canonical name.
ARTIST_ALIASES = {
    "elysis": "Gerd (elysis) Raudenbusch",
    "www.elysis.de": "Gerd (elysis) Raudenbusch",
    "crystan": 'Christian "Crystan" Hoffmann',
    "www.indiedb.com/members/crystan": 'Christian "Crystan" Hoffmann',
}
# Tag values meaning "no artist".
NULL_ARTISTS = {"", "<unknown>", "unknown"}

# Package-level per-track composer credits, taken from the package's own
# copyright/credits file (only packages whose file maps tracks to composers).
# hyperrogue-music: debian/copyright "Files: music/hr-domina-*.ogg  Copyright: Lincoln Domina"
#   and usr/share/hyperrogue/hyperrogue-music.txt "Hunting Grounds and Lost Mountain by Lincoln Domina".
CREDITS = {
    "hyperrogue-music": {
        "hr-domina-hunting.ogg": "Lincoln Domina",
        "hr-domina-mountain.ogg": "Lincoln Domina",
    },
}


def sh(*cmd, cwd=None):
    subprocess.run(cmd, check=True, cwd=cwd)


def fetch_and_extract():
    os.makedirs(DEBS, exist_ok=True)
    have = {p: glob.glob(f"{DEBS}/{p}_*.deb") for p in PACKAGES}
    missing = [p for p, v in have.items() if not v]
    if missing:
        sh("apt-get", "download", *missing, cwd=DEBS)
    versions = {}
    for p in PACKAGES:
        deb = sorted(glob.glob(f"{DEBS}/{p}_*.deb"))[-1]
        versions[p] = subprocess.run(["dpkg-deb", "-f", deb, "Version"], check=True,
                                     capture_output=True, text=True).stdout.strip()
        dest = f"{EXTRACT}/{p}"
        if not os.path.isdir(dest):
            os.makedirs(dest)
            sh("dpkg", "-x", deb, dest)
        for pk3 in glob.glob(f"{dest}/**/*.pk3", recursive=True):
            out = f"{dest}/pk3/{os.path.basename(pk3)}"
            if not os.path.isdir(out):
                with zipfile.ZipFile(pk3) as z:
                    z.extractall(out)
    return versions


def is_music_path(rel):
    """Music lives in music/ or sound/cdtracks/ dirs; everything else is SFX."""
    parts = [x.lower() for x in rel.split("/")]
    return "music" in parts or "cdtracks" in parts


def tag(tags, key):
    if not tags:
        return ""
    for k in (key, key.lower(), key.upper()):
        try:
            v = tags.get(k)
        except Exception:
            v = None
        if v:
            return str(v[0]).strip()
    return ""


def warzone_index(pkgdir):
    idx = {}
    for aj in glob.glob(f"{pkgdir}/**/album.json", recursive=True):
        d = json.load(open(aj))
        for t in d.get("tracks", []):
            idx[os.path.join(os.path.dirname(aj), t["filename"])] = (
                t.get("author") or d.get("author", ""), d.get("title", ""))
    return idx


def junk_album(a):
    """Album tags that are URLs / copyright notices / download notes, not album names."""
    al = a.lower()
    return (not a or al.startswith(("http://", "https://", "www.", "(c)"))
            or "downloaded at" in al)


def main():
    versions = fetch_and_extract()
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    os.makedirs(CORPUS)

    rows, skipped, notes = [], [], []
    album_canon = {}  # lowercase -> first spelling seen (merge case-only variants)
    for p in PACKAGES:
        pkgdir = f"{EXTRACT}/{p}"
        wz = warzone_index(pkgdir) if p == "warzone2100-music" else {}
        files = sorted(f for f in glob.glob(f"{pkgdir}/**/*", recursive=True)
                       if os.path.isfile(f) and f.lower().endswith(AUDIO_EXT))
        for f in files:
            rel = os.path.relpath(f, pkgdir)
            base = os.path.basename(f)
            if not is_music_path(rel):
                skipped.append((p, rel, "not in a music dir (sound effect)"))
                continue
            if "dynamictest" in base.lower():
                skipped.append((p, rel, "engine test file"))
                continue
            m = mutagen.File(f)
            dur = m.info.length
            if dur < MIN_SECONDS:
                skipped.append((p, rel, f"short ({dur:.1f}s)"))
                continue
            try:
                sf.info(f)
            except Exception as e:  # not decodable by libsndfile
                skipped.append((p, rel, f"soundfile cannot read: {e}"))
                continue
            artist = tag(m.tags, "ARTIST")
            album = tag(m.tags, "ALBUM")
            src = "tags"
            if p == "warzone2100-music":
                if f in wz:
                    artist, album = wz[f]
                    src = "album.json"
                else:
                    artist, album, src = "", "", "none (not listed in any album.json)"
            if artist.lower() in NULL_ARTISTS:
                artist = ""
            if not artist and base in CREDITS.get(p, {}):
                artist, src = CREDITS[p][base], "package credits"
            orig_artist = artist
            artist = ARTIST_ALIASES.get(artist.lower(), artist)
            if artist != orig_artist:
                notes.append(f"alias: {p}/{base}: '{orig_artist}' -> '{artist}'")
            if junk_album(album):
                if album:
                    notes.append(f"album tag not an album name: {p}/{base}: '{album}' -> '{p}'")
                album = PACKAGE_ALBUM.get(p, p) if MERGE_PACKAGE_ALBUMS else p
            album = album_canon.setdefault(album.lower(), album)
            ext = os.path.splitext(base)[1].lower()
            name = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.splitext(base)[0]).strip("_")
            out = f"{CORPUS}/{p}__{name}{ext}"
            if not artist:
                skipped.append((p, rel, "no artist (no tag, no per-track credit)"))
                continue
            if os.path.exists(out):
                raise SystemExit(f"name clash: {out}")
            shutil.copy2(f, out)
            rows.append(dict(path=out, artist=artist, album=album, pkg=p,
                             fmt=ext[1:], dur=dur, src=src))

    with open(f"{ROOT}/manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "artist", "album"])
        for r in rows:
            w.writerow([r["path"], r["artist"], r["album"]])

    C = collections.Counter
    by_art, by_alb = C(r["artist"] for r in rows), C(r["album"] for r in rows)
    L = []
    L.append("Real-music corpus built by /tmp/realmusic/build.py\n")
    L.append("Packages (Debian bookworm, apt-get download):")
    for p in PACKAGES:
        L.append(f"  {p} {versions[p]}  tracks={sum(r['pkg'] == p for r in rows)}")
    L.append(f"\nTracks: {len(rows)}  formats: {dict(C(r['fmt'] for r in rows))}"
             f"  artists: {len(by_art)}  albums: {len(by_alb)}"
             f"  total hours: {sum(r['dur'] for r in rows) / 3600:.2f}")
    L.append(f"Artist source: {dict(C(r['src'] for r in rows))}")
    L.append("\nPer artist:")
    L += [f"  {n:4d}  {a}" for a, n in by_art.most_common()]
    L.append("\nPer album:")
    L += [f"  {n:4d}  {a}" for a, n in by_alb.most_common()]
    L.append("\nPer (artist, album):")
    L += [f"  {n:4d}  {a} | {b}" for (a, b), n in C((r['artist'], r['album']) for r in rows).most_common()]
    L.append("\nArtist alias merges applied (rule -> canonical):")
    L += [f"  '{k}' -> '{v}'" for k, v in ARTIST_ALIASES.items()]
    L.append("Album merges: case-only variants merged (e.g. 'nexuiz'->'Nexuiz', "
             "'Ufo: Alien Invasion'->'UFO: Alien Invasion'); album tags that are URLs, "
             "'(c) by ...' notices or download notes replaced by the package name.")
    L.append("Package-level credits used (from the package's copyright/credits file):")
    for p, d in CREDITS.items():
        L += [f"  {p}/{k} -> {v}" for k, v in d.items()]
    L.append("\nNotes:")
    L += ["  NeonCorridor (tag on hr3-*.ogg) is credited as Shawn Parrotte in hyperrogue's "
          "copyright; only the tag name occurs, so it is kept as is (no merge needed).",
          "  Maxstack (tags) = Max McCracken (singularity README); only the tag name occurs.",
          "  warzone2100 aftermath 'track3_enhanced' (LupusMechanicus) is a remake of "
          "original 'track3' (Martin Severn) by its name and equal length (299.1 s); not checked by ear. Different artist label.",
          "  ufoai copyright groups files with several authors per group (no per-track "
          "mapping), so untagged ufoai tracks are excluded although file names hint at authors.",
          "  No byte-identical duplicate audio files among music files (md5sum checked by hand on the first build)."]
    L += ["  " + n for n in notes]
    L.append("\nSkipped music-dir files (sound-effect dirs omitted from this list: "
             f"{sum(1 for s in skipped if s[2].startswith('not in a music dir'))} files):")
    L += [f"  {p}/{r}: {why}" for p, r, why in skipped if not why.startswith("not in a music dir")]
    open(f"{ROOT}/PROVENANCE.txt", "w").write("\n".join(L) + "\n")
    print("\n".join(L[:12]))


if __name__ == "__main__":
    main()
