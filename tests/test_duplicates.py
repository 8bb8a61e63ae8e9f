"""`melodex duplicates` with audio fingerprints: real re-encodes of one clip are one group; another
take of the piece, and other clips of its artist and style, are not; the demo library has no
false groups; a store indexed without fingerprints is refused in one line that says how to add
them, and ``--fingerprint`` adds them.

Everything runs through the real commands (``index``, ``duplicates``) on the small demo
(tests/conftest.py). The copies are real encodes with FFmpeg's and libsndfile's encoders
(:data:`melodex.audio.encode.CODECS`), as a library holds them.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from melodex.analysis.fingerprint_match import MATCH_AGREEMENT
from melodex.audio.fingerprint import missing_reason
from melodex.cli import main
from tests.test_listening import render_take

needs_chromaprint = pytest.mark.skipif(missing_reason() is not None,
                                       reason=f"{missing_reason()} ('make test' installs it)")

INDEX = ["--num-workers", "0", "--device", "cpu", "--no-tags", "-q"]


@pytest.fixture(scope="module")
def demo(small_demo):
    status, data, out = small_demo
    assert status == 0
    return data, out


def read_report(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@needs_chromaprint
def test_every_reencode_and_a_trimmed_copy_are_one_group_another_take_and_style_mates_are_not(demo, tmp_path,
                                                                                                capsys):
    from melodex.audio.decode import load_audio
    from melodex.audio.encode import CODECS, encode
    from melodex.constants import SAMPLE_RATE
    from melodex.datasets.fma import audio_path
    from melodex.demo.plan import plan_corpus

    data, out = demo
    plan = plan_corpus(tracks_per_artist=8, seed=0)
    piece = plan[0]
    original = load_audio(audio_path(data / "fma_small", piece["id"]))  # 22.05 kHz mono, 10 s
    music = tmp_path / "music"
    music.mkdir()
    for name, spec in CODECS.items():  # flac, mp3 128k, ogg, aac 128k/64k, 22.05 kHz mono mp3 48k / ogg
        encode(music / f"piece-{name}{spec.extension}", original, SAMPLE_RATE, name)
    encode(music / "piece-cut3s-mp3-128k.mp3", original[3 * SAMPLE_RATE:], SAMPLE_RATE, "mp3-128k")
    encode(music / "piece-take2.flac", render_take(piece, 10.0, performance=3), SAMPLE_RATE, "flac")
    mates = [t for t in plan[1:] if t["artist"]["name"] == piece["artist"]["name"] and t["label"] == piece["label"]]
    assert len(mates) >= 3
    for t in mates:  # same artist, same style, same length: close in the genre embedding
        shutil.copyfile(audio_path(data / "fma_small", t["id"]), music / f"mate-{t['id']}.mp3")
    store = tmp_path / "library"
    assert main(["index", "--audio", str(music), "--model", str(out / "training_outputs" / "latest"),
                 "--store", str(store), *INDEX]) == 0
    before = sorted(p.name for p in music.iterdir())

    assert main(["duplicates", "--store", str(store), "--report", str(tmp_path / "dupes.csv")]) == 0
    copies = {f"piece-{name}{spec.extension}" for name, spec in CODECS.items()} | {"piece-cut3s-mp3-128k.mp3"}
    assert f"1 group(s), {len(copies)} tracks" in capsys.readouterr().out
    rows = read_report(tmp_path / "dupes.csv")
    assert {Path(r["path"]).name for r in rows} == copies  # the take and the style mates stay out
    assert {r["group"] for r in rows} == {"1"}
    by_name = {Path(r["path"]).name: r for r in rows}
    assert abs(float(by_name["piece-cut3s-mp3-128k.mp3"]["offset"]) - 3.0) < 0.3  # found 3 s into the original
    assert all(float(r["agreement"]) >= MATCH_AGREEMENT for r in rows)
    assert sorted(p.name for p in music.iterdir()) == before  # nothing deleted or moved


@needs_chromaprint
def test_a_cut_between_two_fingerprint_items_agrees_as_well_as_one_on_the_grid(demo):
    """A cut rarely falls on Chromaprint's item grid (0.124 s): halfway between, the plain share of
    agreeing bits fell to 0.76-0.84 (below the old threshold of 0.78 once re-encoded). Compared on the
    bits the two neighbouring items hold alike, every phase of the cut, through a low-rate codec,
    scores as a copy on the grid does, at the right offset; the clip's style mates stay far below."""
    from melodex.analysis.fingerprint_match import ITEM_SECONDS, agreement
    from melodex.audio.decode import load_audio
    from melodex.audio.encode import roundtrip
    from melodex.audio.fingerprint import chromaprint
    from melodex.constants import SAMPLE_RATE
    from melodex.datasets.fma import audio_path
    from melodex.demo.plan import plan_corpus

    data, _ = demo
    plan = plan_corpus(tracks_per_artist=8, seed=0)
    piece = plan[0]
    original = load_audio(audio_path(data / "fma_small", piece["id"]))
    reference = chromaprint(original, SAMPLE_RATE)
    item = ITEM_SECONDS * SAMPLE_RATE
    for phase in (0.0, 0.25, 0.5, 0.75):
        cut = round((2 + phase) * item)
        for codec in (None, "mp3-48k-22k-mono", "aac-64k"):
            copy = original[cut:] if codec is None else roundtrip(original[cut:], SAMPLE_RATE, codec)
            score, offset = agreement(reference, chromaprint(copy, SAMPLE_RATE), shifts=(-1.0, 2.0))
            assert score >= 0.95, (phase, codec, score)
            assert abs(offset - cut / SAMPLE_RATE) <= 0.55 * ITEM_SECONDS
    mates = [t for t in plan[1:]
             if t["artist"]["name"] == piece["artist"]["name"] and t["label"] == piece["label"]]
    for t in mates:
        other = chromaprint(load_audio(audio_path(data / "fma_small", t["id"])), SAMPLE_RATE)
        assert agreement(reference, other, shifts=(-1.8, 1.8))[0] < MATCH_AGREEMENT - 0.05


def waveform_correlation(a_path: str, b_path: str) -> float:
    import numpy as np

    from melodex.audio.decode import load_audio

    a, b = load_audio(a_path), load_audio(b_path)
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


@needs_chromaprint
def test_demo_library_groups_only_the_same_audio_and_an_old_store_is_refused_until_fingerprinted(demo, tmp_path,
                                                                                                capsys):
    _, out = demo
    # the demo's own library (128 clips of 10 s, 16 per artist): embedding + duration alone made 11-13
    # false groups of 78-81 tracks; what remains is the same audio: the demo renders one artist's drone
    # twice almost identically (waveforms correlate at 0.96, 4 dB apart), which any fingerprint groups
    assert main(["duplicates", "--store", str(out / "library"), "--report", str(tmp_path / "demo.csv"), "-q"]) == 0
    demo_rows = read_report(tmp_path / "demo.csv")
    groups = {r["group"] for r in demo_rows}
    assert len(groups) <= 1 and len(demo_rows) <= 2
    for group in groups:
        first, *rest = [r["path"] for r in demo_rows if r["group"] == group]
        assert all(waveform_correlation(first, other) > 0.9 for other in rest)

    old = tmp_path / "old"
    shutil.copytree(out / "library", old)
    for part in old.rglob("*.parquet"):  # as a store indexed before fingerprints were stored
        table = pq.read_table(part)
        pq.write_table(table.drop_columns(["chromaprint"]), part)
    capsys.readouterr()
    assert main(["duplicates", "--store", str(old)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "128 of 128 tracks have no audio fingerprint" in err and f"duplicates --store {old} --fingerprint" in err

    assert main(["duplicates", "--store", str(old), "--fingerprint", "--report", str(tmp_path / "old.csv"), "-q"]) == 0
    assert "fingerprinted 128 track(s); 0 could not be read" in capsys.readouterr().out
    assert read_report(tmp_path / "old.csv") == demo_rows  # the same fingerprints as indexing stores
    assert main(["duplicates", "--store", str(old), "-q"]) == 0  # stored now: no second pass needed
    assert f"{len(groups)} group(s)" in capsys.readouterr().out


@needs_chromaprint
def test_a_store_indexed_without_a_model_has_fingerprints_too(small_demo_mfcc, tmp_path, capsys):
    """``index --features mfcc-stats`` decodes through the same workers, and stores fingerprints."""
    assert main(["duplicates", "--store", str(small_demo_mfcc), "--report", str(tmp_path / "d.csv"), "-q"]) == 0
    rows = read_report(tmp_path / "d.csv")
    for group in {r["group"] for r in rows}:
        first, *rest = [r["path"] for r in rows if r["group"] == group]
        assert all(waveform_correlation(first, other) > 0.9 for other in rest)


def test_without_libchromaprint_index_warns_and_fingerprint_says_how_to_install_it(demo, tmp_path, monkeypatch,
                                                                                    capsys):
    from melodex.audio import fingerprint

    data, out = demo
    monkeypatch.setattr(fingerprint, "_chromaprint", None)
    music = tmp_path / "music"
    music.mkdir()
    shutil.copyfile(next((data / "fma_small").rglob("*.mp3")), music / "a.mp3")
    store = tmp_path / "library"
    assert main(["index", "--audio", str(music), "--model", str(out / "training_outputs" / "latest"),
                 "--store", str(store), "--num-workers", "0", "--device", "cpu", "--no-tags"]) == 0
    assert "no audio fingerprints will be stored" in capsys.readouterr().err
    assert main(["duplicates", "--store", str(store), "--fingerprint", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "libchromaprint was not found" in err and "apt-get install libchromaprint1" in err
