"""Nasty inputs (tests/nasty.py) through infer, preprocess and index in one run each.

Every file gets its own outcome (a result, a zero-padded result, or a per-file error with a
reason) and the others are processed in the same run. Two faults are made here because they
depend on the process: a file that cannot be read (these tests run as root, for whom chmod 000
does not stop reading, so ``os.access`` is patched for the in-process run and a real
``setuid(nobody)`` subprocess checks the decoder's own answer) and a file deleted between the
scan and its decoding. Long files in ``--full`` mode: after a 10-minute file, a 20-minute one
must not raise the peak RSS by a fraction of what holding the extra audio would take (a 2-hour
variant is marked slow).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from melodex.cli import main
from tests import nasty
from tests.conftest import ROOT

LABELS = ["Folk", "Pop", "Rock"]
LOCKED = "locked.wav"  # made unreadable by a patched os.access
VANISHING = "vanishing.wav"  # deleted after the scan, before decoding


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint_factory) -> Path:
    return tiny_checkpoint_factory(LABELS)  # the default model: the records are checked for 512-d embeddings


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("nasty")
    nasty.build_corpus(root)
    return root


@pytest.fixture
def faults(corpus, monkeypatch):
    """Add a locked and a vanishing file to the corpus for one test; patch the scan and os.access."""
    import melodex.inference.predictor

    mix = corpus / nasty.LABEL
    for name in (LOCKED, VANISHING):
        nasty._write(mix / name, nasty.tone(1.0, 22050), 22050)
    real_access, real_collect = os.access, melodex.inference.predictor.find_audio_files

    def access(path, mode, *args, **kwargs):
        if Path(path).name == LOCKED and mode & os.R_OK:
            return False
        return real_access(path, mode, *args, **kwargs)

    def collect(inputs, **options):
        files = real_collect(inputs, **options)
        (mix / VANISHING).unlink(missing_ok=True)  # gone between the scan and the decoder
        return files

    monkeypatch.setattr(os, "access", access)  # forked decoding workers inherit it
    monkeypatch.setattr(melodex.inference.predictor, "find_audio_files", collect)
    yield mix
    for name in (LOCKED, VANISHING):
        (mix / name).unlink(missing_ok=True)


def test_the_corpus_is_as_nasty_as_it_says(corpus):
    import mutagen.mp3
    import soundfile as sf

    mix = corpus / nasty.LABEL
    vbr = mutagen.mp3.MP3(str(mix / "vbr.mp3")).info
    assert vbr.bitrate_mode == mutagen.mp3.BitrateMode.VBR
    cover = mutagen.File(str(mix / "big_id3_cover_art.mp3"))
    assert len(cover.tags.getall("APIC")[0].data) > nasty.COVER_BYTES
    assert sf.info(str(mix / "pcm24.flac")).subtype == "PCM_24" and sf.info(str(mix / "pcm24.wav")).subtype == "PCM_24"
    assert sf.info(str(mix / "float32.wav")).subtype == "FLOAT"
    assert (sf.info(str(mix / "six_channels_96k.wav")).channels, sf.info(str(mix / "six_channels_96k.wav")).samplerate) \
        == (6, 96000)
    assert sf.info(str(mix / "mono_8k.wav")).samplerate == 8000
    assert (mix / "zero_bytes.mp3").stat().st_size == 0
    assert (mix / "loop").resolve() == mix.resolve()


def _by_name(records: list[dict], mix: Path) -> dict[str, dict]:
    return {Path(r["audio_file"]).relative_to(mix).as_posix(): r for r in records}


def test_infer_over_the_whole_nasty_folder_in_one_run(corpus, faults, checkpoint, tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    code = main(["infer", "--model", str(checkpoint), "--audio", str(corpus), "--output", str(out),
                 "--num-workers", "2", "-q"])
    assert code == 1
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    got = _by_name(records, faults)
    # every file exactly once: the symlink loop added nothing and did not hang the scan
    assert sorted(got) == sorted(list(nasty.EXPECTED) + [LOCKED, VANISHING])
    assert len(records) == len(got)
    for name, expect in nasty.EXPECTED.items():
        record = got[name]
        if expect.outcome == "error":
            assert expect.reason in record["error"], (name, record["error"])
            continue
        assert "error" not in record, (name, record.get("error"))
        assert record["total_segments"] == 1 and record["segments"][0]["start_time"] == 0.0
        if expect.seconds is not None:
            assert record["duration"] == pytest.approx(expect.seconds, abs=0.03), name
        assert np.isfinite(record["embedding"]).all() and len(record["embedding"]) == 512
        assert sum(record["global_prediction"]["all_probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert 1.0 < got["truncated_mid_frame.mp3"]["duration"] < 4.0  # the frames before the cut
    assert got[LOCKED]["error"] == "permission denied"
    assert got[VANISHING]["error"] == "no such file"
    err = capsys.readouterr().err
    assert f"{len(nasty.OK)} ok, {len(nasty.BROKEN) + 2} failed" in err


def test_broken_files_get_reasons_a_person_understands(corpus, checkpoint, tmp_path):
    out = tmp_path / "r.json"
    mix = corpus / nasty.LABEL
    paths = [str(mix / name) for name in nasty.BROKEN]
    assert main(["infer", "--model", str(checkpoint), "--audio", *paths, "--output", str(out),
                 "--num-workers", "0", "-q"]) == 1
    errors = {Path(e["audio_file"]).name: e["error"] for e in json.loads(out.read_text())["errors"]}
    assert errors["zero_bytes.mp3"] == "the file is empty (0 bytes)"
    for name in ("random_bytes.mp3", "text_named.flac"):
        assert errors[name].startswith("cannot decode (")
        assert "does not exist" not in errors[name]  # libsndfile's misleading words are not passed on
        assert errors[name].count(str(mix)) == 0  # the path is said once, by the caller
        assert "\n" not in errors[name]


def _drop_privileges_and_load(path: Path) -> subprocess.CompletedProcess:
    code = (
        "import os, sys, soundfile, av, soxr\n"
        "from melodex.audio.decode import load_audio\n"
        "from melodex.errors import AudioLoadError\n"
        "os.setgid(65534); os.setuid(65534)  # everything is imported: nobody may not read the venv\n"
        "try:\n    load_audio(sys.argv[1])\nexcept AudioLoadError as exc:\n    print(exc.reason)\n"
        "else:\n    print('READ')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True, text=True,
                          timeout=120, cwd="/")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to become 'nobody'")
def test_a_really_unreadable_file_is_permission_denied():
    """As root chmod 000 does not stop reading, so the check runs as the user 'nobody'."""
    folder = Path(tempfile.mkdtemp(prefix="melodex-perm-"))
    try:
        folder.chmod(0o755)
        locked = nasty._write(folder / "locked.wav", nasty.tone(0.5, 22050), 22050)
        locked.chmod(0o000)
        done = _drop_privileges_and_load(locked)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "permission denied"
    finally:
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()


def test_preprocess_over_the_nasty_folder(corpus, tmp_path, capsys):
    from melodex.features.cache import FeatureCache

    cache_dir = tmp_path / "cache"
    code = main(["preprocess", "--data_dir", str(corpus), "--kind", "folder", "--cache_dir", str(cache_dir),
                 "--workers", "2", "-q"])
    assert code == 1
    failures = (cache_dir / "failures.csv").read_text(encoding="utf-8")
    for name in nasty.BROKEN:
        assert name in failures
    cache = FeatureCache(cache_dir)
    seconds = cache.seconds()
    assert len(seconds) == len(nasty.OK)  # each decodable file once; the loop added none
    for key in seconds:
        mfcc = cache.get(key)
        assert mfcc is not None and mfcc.shape == (20, 640) and np.isfinite(mfcc).all()
    values = sorted(seconds.values())  # seconds of real audio in each cached segment
    assert values[0] == pytest.approx(0.2, abs=0.01) and values[-1] == pytest.approx(30.0, abs=0.01)
    assert f"{len(nasty.BROKEN)} files failed" in capsys.readouterr().err


def test_index_over_the_nasty_folder(corpus, checkpoint, tmp_path, capsys):
    from melodex.library.store import LibraryStore

    store_dir = tmp_path / "lib"
    args = ["index", "--store", str(store_dir), "--audio", str(corpus), "--model", str(checkpoint),
            "--num-workers", "2", "--device", "cpu", "-q"]
    assert main(args) == 1
    err = capsys.readouterr().err
    for name in nasty.BROKEN:
        assert f"failed: {corpus / nasty.LABEL / name}" in err
    store = LibraryStore(store_dir)
    tracks = store.tracks()
    mix = corpus / nasty.LABEL
    assert sorted(Path(p).relative_to(mix.resolve()).as_posix() for p in tracks["path"]) == nasty.OK
    assert np.isfinite(store.embeddings()).all()
    cover = tracks[tracks["path"].str.endswith("big_id3_cover_art.mp3")].iloc[0]
    assert (cover["title"], cover["artist"]) == ("A title", "An artist")  # tags read despite the 2 MB picture
    assert main(args) == 1  # a second run adds nothing and retries only the broken files
    assert len(LibraryStore(store_dir)) == len(nasty.OK)


# ----------------------------------------------------------------------------- long files

_RSS_SCRIPT = """
import json, resource, sys
from melodex.inference.predictor import Predictor
predictor = Predictor(sys.argv[1], device="cpu", num_workers=0)
peaks, results = [], []
for path in sys.argv[2:]:
    result = predictor.predict_file(path, full=True, legacy=False)
    results.append({"segments": len(result.segments), "duration": result.duration, "error": result.error})
    peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps({"peaks_mb": peaks, "results": results}))
"""


def measure_long_files(checkpoint: Path, folder: Path, minutes: list[float]) -> dict:
    """Peak RSS (MB) after each of ``--full`` runs over WAVs of ``minutes``, in one fresh process."""
    paths = [nasty.write_long_wav(folder / f"long_{m:g}.wav", m) for m in minutes]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(checkpoint), *map(str, paths)], env=env,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr
    for path in paths:
        path.unlink()
    return json.loads(done.stdout.strip().splitlines()[-1])


def _check_flat(measured: dict, minutes: list[float]) -> None:
    for result, m in zip(measured["results"], minutes):
        assert result["error"] is None
        assert result["duration"] == pytest.approx(m * 60, abs=0.1)
        assert result["segments"] == int(np.ceil(m * 2))
    peaks = measured["peaks_mb"]
    extra_minutes = minutes[-1] - minutes[-2]
    held_mb = extra_minutes * 60 * 22050 * 4 / 2**20  # what the extra audio would take as float32
    # The longest file may not raise the peak by more than a fraction of what holding it would take.
    assert peaks[-1] - peaks[-2] < min(30.0, held_mb / 3), measured


def test_twenty_minute_file_streams_in_bounded_memory(checkpoint, tmp_path):
    minutes = [1.0, 10.0, 20.0]  # the peak settles within the first minutes; measured: +0.0 MB from 10 to 30
    _check_flat(measure_long_files(checkpoint, tmp_path, minutes), minutes)


@pytest.mark.slow
def test_two_hour_file_streams_in_bounded_memory(checkpoint, tmp_path):
    minutes = [1.0, 20.0, 120.0]
    _check_flat(measure_long_files(checkpoint, tmp_path, minutes), minutes)
