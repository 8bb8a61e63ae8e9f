#!/usr/bin/env python3
"""Build /tmp/realmusic2: a held-out real-music corpus from Debian game-music packages.

Run with /tmp/rm-venv/bin/python (needs mutagen + soundfile).
Assumes the .debs are in /tmp/realmusic2/debs and were extracted with
`dpkg -x <deb> /tmp/realmusic2/extract/<pkg>` (see PROVENANCE.txt).

Artist resolution, per file, in order:
  1. ARTIST tag, else COMPOSER tag (mutagen, easy tags)   -> source "tag:artist"/"tag:composer"
  2. a package credits file that maps this file to one person unambiguously
     (naev SOUND_LICENSE.yaml, etr music/readme, fretsonfire song.ini,
      lincity-ng file names "NN - Artist - Title.ogg")
  3. a package whose debian/copyright names a single music author for all of its music
     (pushover-data: Roberto Lorenz; asc-music: Michael Kievernagel, sole holder of
      a package that holds only the 3 mp3s)
  Tracks with no artist are dropped. Artist tags that are URLs are treated as missing.
Album = ALBUM tag (unless empty / placeholder / URL), else the package name.
"""
import csv, hashlib, os, re, shutil, sys, collections
import mutagen, soundfile as sf

ROOT = '/tmp/realmusic2'
EX = f'{ROOT}/extract'
CORPUS = f'{ROOT}/corpus'
MINDUR = 20.0
EXT = re.compile(r'\.(ogg|oga|opus|mp3|flac|wav)$', re.I)

# package -> list of music directories (relative to the package extract root).
# Only these folders are searched, to keep sound effects / ambience out.
SOURCES = {
    'colobot-common-sounds': ['usr/share/games/colobot/music'],
    'openclonk-data': ['usr/share/games/openclonk/Music.ocg'],
    'naev-data': ['usr/share/naev/dat/snd/music'],
    'widelands-data': ['usr/share/games/widelands/data/music'],
    'supertux-data': ['usr/share/games/supertux2/music'],
    'freedroidrpg-data': ['usr/share/freedroidrpg/data/sound/music'],
    'extremetuxracer-data': ['usr/share/games/etr/music'],
    'xmoto-data': ['usr/share/games/xmoto/Textures/Musics'],
    'fretsonfire-songs-muldjord': ['usr/share/games/fretsonfire/data/songs/muldjord'],
    'fretsonfire-songs-sectoid': ['usr/share/games/fretsonfire/data/songs/sectoid'],
    'pushover-data': ['usr/share/pushover/themes'],
    'asc-music': ['usr/share/games/asc/music'],
    'lincity-ng-data': ['usr/share/games/lincity-ng/music'],
    'hedgewars-data': ['usr/share/games/hedgewars/Data/Music'],
    'flare-game': ['usr/share/games/flare/mods/fantasycore/music'],
}
# explicit exclusions (relative basename per package) with reason
EXCLUDE = {
    ('flare-game', 'wind_ambient.ogg'): 'wind ambience, not music',
}
# whole-package single-composer attributions taken from debian/copyright
PKG_ARTIST = {
    'pushover-data': ('Roberto Lorenz', 'debian/copyright: "2008-2018 Roberto Lorenz (Music compositon and arrangement)" (only music credit)'),
    'asc-music': ('Michael Kievernagel', 'debian/copyright: package holds only the 3 mp3s; "Files: * Copyright: 2002 Michael Kievernagel"'),
}

# alias merges: lower-case raw name -> canonical
ALIASES = {
    'nikola whallon (saturn)': 'Nikola Whallon',
    'martin strohmeier (k-pone)': 'Martin Strohmeier',
    'klaus halfmann aka hasi50': 'Klaus Halfmann',
    'christian picon': 'Kristian Picon',
    'k. schroeder': 'Karl Schroeder',
    'jason lavallée': 'Jason Lavallee',
    'pronobozo': 'Pronobozo',
    'muldjord - www.muldjord.com': 'Muldjord',
    'composed and performed by sectoid': 'Sectoid',
    'iamoneabe': 'ONE ABE',
    'mortimer twang': 'Lukas Nystrand',   # supertux credits: "Lukas Nystrand (as Mortimer Twang)"
    'bart k.': 'Bart Kelsey',
}
BAD_ALBUM = {'', '???', 'none', 'non'}
ALBUM_CASE = {}


def is_url(s):
    return bool(re.search(r'https?://|www\.|\.(com|org|net)(\.|/|$)', s, re.I))


def canon(name):
    n = re.sub(r'\s*<[^>]*>\s*', ' ', name).strip()       # strip e-mail / url in <>
    n = re.sub(r'\s+', ' ', n)
    return ALIASES.get(n.lower(), n)


# ---------- credits-file mappings ----------
def naev_map():
    """SOUND_LICENSE.yaml: '- Author:' blocks with 'music:' lists. 'Vega Strike' is a project, not a person -> skipped."""
    p = f'{EX}/naev-data/usr/share/naev/dat/snd/SOUND_LICENSE.yaml'
    m, author, section = {}, None, None
    for line in open(p, encoding='utf-8'):
        if re.match(r'^- ', line):
            author = line[2:].strip().rstrip(':'); section = None
        elif re.match(r'^\s+music:', line):
            section = 'music'
        elif re.match(r'^\s+\w+:', line):
            section = None
        elif section == 'music' and re.match(r'^\s+- ', line):
            f = line.strip()[2:].strip()
            if author and author != 'Vega Strike':
                m[f] = (author, 'naev dat/snd/SOUND_LICENSE.yaml')
    return m


def etr_map():
    p = f'{EX}/extremetuxracer-data/usr/share/games/etr/music/readme'
    m, author = {}, None
    for line in open(p, encoding='utf-8', errors='replace'):
        mm = re.match(r'^(\S.*?)\s*(<[^>]*>)?\s*composed:', line)
        if mm:
            author = mm.group(1)
        elif line.strip().endswith('.ogg') and author:
            m[line.strip()] = (author, 'etr music/readme')
    return m


def fof_artist(path):
    ini = os.path.join(os.path.dirname(path), 'song.ini')
    if os.path.exists(ini):
        for line in open(ini, encoding='utf-8', errors='replace'):
            if line.lower().startswith('artist'):
                return (line.split('=', 1)[1].strip(), 'fretsonfire song.ini artist=')
    return None


def lincity_artist(path):
    mm = re.match(r'^\d+ - (.+?) - .+\.ogg$', os.path.basename(path))
    return (mm.group(1), 'lincity-ng file name "NN - Artist - Title"') if mm else None


def pkg_version(pkg):
    for f in os.listdir(f'{ROOT}/debs'):
        if f.startswith(pkg + '_'):
            return f.split('_')[1].replace('%3a', ':')
    return '?'


def main():
    naev, etr = naev_map(), etr_map()
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    os.makedirs(CORPUS)
    rows, dropped, seen_md5, used = [], [], {}, set()
    for pkg, dirs in SOURCES.items():
        for d in dirs:
            for root, _, files in os.walk(os.path.join(EX, pkg, d)):
                for f in sorted(files):
                    if not EXT.search(f):
                        continue
                    src = os.path.join(root, f)
                    rel = os.path.relpath(src, os.path.join(EX, pkg))
                    if (pkg, f) in EXCLUDE:
                        dropped.append((pkg, rel, EXCLUDE[(pkg, f)])); continue
                    if pkg.startswith('fretsonfire') and f != 'song.ogg':
                        dropped.append((pkg, rel, 'fretsonfire stem other than song.ogg')); continue
                    try:
                        info = sf.info(src)
                    except Exception as e:
                        dropped.append((pkg, rel, f'sf.info failed: {e}')); continue
                    if info.duration < MINDUR:
                        dropped.append((pkg, rel, f'short {info.duration:.1f}s')); continue
                    try:
                        m = mutagen.File(src, easy=True)
                        tags = dict(m.tags) if (m is not None and m.tags) else {}
                    except Exception:
                        tags = {}
                    first = lambda k: (tags.get(k) or [''])[0].strip()
                    artist, how = None, None
                    for k in ('artist', 'composer'):
                        v = first(k)
                        if v and not is_url(v):
                            artist, how = v, f'tag:{k}'; break
                    if not artist:
                        cand = None
                        if pkg == 'naev-data': cand = naev.get(f)
                        elif pkg == 'extremetuxracer-data': cand = etr.get(f)
                        elif pkg.startswith('fretsonfire'): cand = fof_artist(src)
                        elif pkg == 'lincity-ng-data': cand = lincity_artist(src)
                        elif pkg in PKG_ARTIST: cand = PKG_ARTIST[pkg]
                        if cand:
                            artist, how = cand
                    if not artist:
                        why = 'no artist'
                        if first('artist'): why += f' (artist tag is URL: {first("artist")})'
                        dropped.append((pkg, rel, why)); continue
                    raw = artist
                    artist = canon(artist)
                    album = first('album')
                    if album.lower() in BAD_ALBUM or is_url(album):
                        album = pkg
                    # an album tag that is just the game's name == the package default
                    if re.sub(r'[^a-z0-9]', '', album.lower()) == re.sub(r'[^a-z0-9]', '', re.sub(r'-(data|game)$', '', pkg)):
                        album = pkg
                    # case-only variants of one album string are merged (first seen wins)
                    album = ALBUM_CASE.setdefault((artist, album.lower()), album)
                    h = hashlib.md5(open(src, 'rb').read()).hexdigest()
                    if h in seen_md5:
                        dropped.append((pkg, rel, f'byte-identical to {seen_md5[h]}')); continue
                    base = f
                    if pkg.startswith('fretsonfire'):
                        base = os.path.basename(root) + '_' + f
                    base = re.sub(r'[^A-Za-z0-9._-]+', '_', base).strip('_')
                    name = f'{pkg}__{base}'
                    while name in used:
                        name = f'{pkg}__{os.path.basename(root)}_{base}'
                    used.add(name)
                    dst = os.path.join(CORPUS, name)
                    shutil.copy2(src, dst)
                    try:
                        sf.info(dst)
                    except Exception as e:
                        os.remove(dst); dropped.append((pkg, rel, f'copy fails sf.info: {e}')); continue
                    seen_md5[h] = f'{pkg}/{rel}'
                    rows.append(dict(path=dst, artist=artist, album=album, pkg=pkg, src=rel, how=how,
                                     raw=raw, dur=info.duration, fmt=f.rsplit('.', 1)[1].lower(),
                                     sr=info.samplerate, ch=info.channels))
    rows.sort(key=lambda r: r['path'])
    with open(f'{ROOT}/manifest.csv', 'w', newline='') as fh:
        w = csv.writer(fh); w.writerow(['path', 'artist', 'album'])
        for r in rows: w.writerow([r['path'], r['artist'], r['album']])
    with open(f'{ROOT}/tracks_detail.csv', 'w', newline='') as fh:
        keys = ['path', 'artist', 'album', 'pkg', 'src', 'how', 'raw', 'dur', 'fmt', 'sr', 'ch']
        w = csv.DictWriter(fh, keys); w.writeheader(); w.writerows(rows)
    with open(f'{ROOT}/dropped.tsv', 'w') as fh:
        for d in dropped: fh.write('\t'.join(d) + '\n')
    return rows, dropped


def provenance(rows, dropped):
    C = collections.Counter
    L = []
    L.append('realmusic2 -- held-out real-music corpus built from Debian bookworm packages')
    L.append('Built by /tmp/realmusic2/build.py (apt-get download -> dpkg -x -> tag/credit resolution -> copy).')
    L.append('First corpus (/tmp/realmusic) packages deliberately NOT used: wesnoth-*-music, singularity-music, '
             'hyperrogue-music, warzone2100-music, nexuiz-music, ufoai-music.\n')
    L.append(f'TOTAL tracks={len(rows)}  artists={len(C(r["artist"] for r in rows))}  '
             f'albums={len(C((r["artist"], r["album"]) for r in rows))} (artist,album pairs) / '
             f'{len(C(r["album"] for r in rows))} distinct album strings  '
             f'hours={sum(r["dur"] for r in rows)/3600:.2f}')
    L.append(f'formats: {dict(C(r["fmt"] for r in rows))}  samplerates: {dict(C(r["sr"] for r in rows))}  '
             f'channels: {dict(C(r["ch"] for r in rows))}\n')
    L.append('== Packages used (version, tracks kept)')
    for pkg, n in sorted(C(r['pkg'] for r in rows).items()):
        L.append(f'  {pkg} {pkg_version(pkg)}: {n}')
    L.append('\n== Tracks per artist (how the artist was found)')
    for a, n in C(r['artist'] for r in rows).most_common():
        hows = C(r['how'] for r in rows if r['artist'] == a)
        pk = sorted(set(r['pkg'] for r in rows if r['artist'] == a))
        L.append(f'  {n:3d}  {a}   [{", ".join(pk)}]  {dict(hows)}')
    L.append('\n== Tracks per album (artist | album)')
    for (a, al), n in sorted(C((r['artist'], r['album']) for r in rows).items()):
        L.append(f'  {n:3d}  {a} | {al}')
    L.append('\n== Artist sources')
    L.append('  tag:artist / tag:composer = mutagen easy tags (ARTIST preferred, COMPOSER if no ARTIST; URL-valued tags ignored)')
    L.append('  naev dat/snd/SOUND_LICENSE.yaml = per-file author list shipped in naev-data (the "Vega Strike" block is a project, not a person: not used)')
    L.append('  etr music/readme = "Music Authors List" shipped in extremetuxracer-data')
    L.append('  fretsonfire song.ini artist= = per-song ini in the fretsonfire-songs-* packages')
    L.append('  lincity-ng file name = "NN - Artist - Title.ogg"')
    for pkg, (a, why) in PKG_ARTIST.items():
        L.append(f'  {pkg}: {a} -- {why}')
    L.append('\n== Alias merges applied (raw -> canonical), with counts')
    for (raw, a), n in sorted(C((r['raw'], r['artist']) for r in rows if r['raw'] != r['artist']).items()):
        L.append(f'  {n:3d}  "{raw}" -> "{a}"')
    L.append('  Cross-package: Nikola Whallon appears in naev-data and widelands-data (as "Nikola Whallon (saturn)").')
    L.append('  Album: ALBUM tag unless empty/"???"/"none"/"non"/URL, else package name.')
    L.append('\n== Dropped files (in the searched music folders), reason counts')
    for (pkg, why), n in sorted(C((d[0], re.sub(r'[\d.]+s$', '<20s', d[2]) if d[2].startswith('short') else d[2]) for d in dropped).items()):
        L.append(f'  {n:3d}  {pkg}: {why}')
    L.append('  (full list in dropped.tsv; per-track detail incl. source path and artist source in tracks_detail.csv)')
    L.append('\n== Packages downloaded and inspected but not used')
    L.append('  hedgewars-data (only 1 tagged track kept: Tiyuri; others untagged and no per-file music credits),')
    L.append('  flare-game (music untagged, no per-file credits), frozen-bubble-data, fillets-ng-data (untagged, no credits),')
    L.append('  planetblupi-music-ogg (untagged; copyright names two people: Daniel Roux & Denis Dumoulin -> ambiguous),')
    L.append('  megaglest-data (romans.ogg tag "Eliminator" contradicts AUTHORS.data.txt which credits Mattias Westlund; rest ambient/unclear),')
    L.append('  drascula-music (per-language copies of the same 31 tracks, no composer info), lugaru-data, boswars-data,')
    L.append('  scorched3d-data, endless-sky-data, minetest-data, pokerth-data, pingus-data, tecnoballz-data, chromium-bsu-data,')
    L.append('  kobodeluxe-data, xblast-tnt-musics, tomatoes-data, neverball-data, trigger-rally-data (no music in allowed formats, or SFX only).')
    L.append('  Not downloaded: supertuxkart-data (628 MB), 0ad-data (1.4 GB).')
    d = sorted(r['dur'] for r in rows)
    L.append('\n== Notes / oddities')
    L.append(f'  durations: min {d[0]:.1f}s, median {d[len(d)//2]:.1f}s, max {d[-1]:.1f}s; tracks 20-40 s: {sum(x < 40 for x in d)} (short game jingles/loops)')
    L.append('  Nikola Whallon dominates (32 tracks, 2 packages); 18 artists have >= 3 tracks.')
    L.append('  fretsonfire: only song.ogg kept per song (Frets on Fire convention: song.ogg = backing mix, guitar.ogg = guitar stem);')
    L.append('    corpus names are <pkg>__<songdir>_song.ogg.')
    L.append('  pushover-data and asc-music artists come from package-level debian/copyright, not per-file credits.')
    L.append('  asc-music mp3s are 22050 Hz; all files are stereo. Byte-identical duplicates are dropped (none found);')
    L.append('    a spectral near-duplicate check over same-length pairs found no duplicates (max corr 0.66).')
    L.append('  No artist overlaps with /tmp/realmusic/manifest.csv (case-insensitive).')
    open(f'{ROOT}/PROVENANCE.txt', 'w').write('\n'.join(L) + '\n')
    print('\n'.join(L))


if __name__ == '__main__':
    rows, dropped = main()
    provenance(rows, dropped)
