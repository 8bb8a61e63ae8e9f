"""``melodex infer`` / ``inference.py`` end to end: formats, bad input, resume, refused models."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import torch

from melodex.audio.encode import write_audio
from melodex.cli import main
from melodex.features.mfcc import FeatureConfig
from melodex.inference.predictor import Predictor
from tests.conftest import ROOT, tone

LABELS = ["Folk", "Pop", "Rock"]
# name -> (seconds, sample rate, channels); a mix of formats, cases and folders.
TREE = {
    "a_short.wav": (1.0, 44100, 2),
    "B_UPPER.MP3": (3.0, 44100, 2),
    "long.wav": (40.0, 22050, 1),  # two segments in full-file mode
    "nested/c.flac": (2.0, 48000, 1),
    "nested/deeper/D.Ogg": (2.0, 44100, 2),
    "nested/e.m4a": (2.0, 44100, 2),
}
GOOD = sorted(TREE)
CORRUPT = "nested/corrupt.mp3"


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint_factory) -> Path:
    return tiny_checkpoint_factory(LABELS)  # the default model: check_embedding wants 512 numbers


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("music")
    for i, (name, (seconds, sr, channels)) in enumerate(TREE.items()):
        write_audio(root / name, tone(seconds, sr, 220.0 * (i + 1), channels, seed=i), sr)
    (root / CORRUPT).write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + os.urandom(3000))
    (root / "nested" / "notes.txt").write_text("not audio, ignored inside a directory\n")
    (root / "cover.JPG").write_bytes(b"\xff\xd8\xff\xe0")
    return root


def infer(*args: str | Path) -> int:
    return main(["infer", *map(str, args), "--num-workers", "2", "-q"])


def rel(path: str, root: Path) -> str:
    return Path(path).relative_to(root).as_posix()


def check_probabilities(probs: dict, labels=LABELS) -> None:
    assert list(probs) == labels
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert all(0.0 <= p <= 1.0 for p in probs.values())


def check_embedding(emb) -> None:
    assert isinstance(emb, list) and len(emb) == 512
    assert all(isinstance(x, float) and np.isfinite(x) for x in emb)


def check_jsonl(path: Path, root: Path, mode: str, embeddings: bool) -> None:
    lines = path.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [rel(r["audio_file"], root) for r in records] == sorted(GOOD + [CORRUPT])
    frame = pd.read_json(path, lines=True)
    assert len(frame) == len(records)
    for r in records:
        name = rel(r["audio_file"], root)
        if name == CORRUPT:
            assert set(r) == {"audio_file", "error"} and r["error"]
            continue
        expected = {"audio_file", "mode", "duration", "total_segments", "segments", "global_prediction"}
        assert set(r) == expected | ({"embedding"} if embeddings else set())
        assert r["mode"] == mode
        seconds = TREE[name][0]
        assert r["duration"] == pytest.approx(seconds, abs=0.05)
        n = 2 if (mode == "full-file" and seconds > 30) else 1
        assert r["total_segments"] == n == len(r["segments"])
        for i, seg in enumerate(r["segments"]):
            assert set(seg) == {"segment_index", "start_time", "end_time", "predictions"}
            assert seg["segment_index"] == i
            assert seg["start_time"] == pytest.approx(30.0 * i)
            assert seg["end_time"] == pytest.approx(min(seconds, 30.0 * (i + 1)), abs=0.05)
            check_probabilities(seg["predictions"])
        g = r["global_prediction"]
        assert set(g) == {"top_labels", "probabilities", "all_probabilities"}
        check_probabilities(g["all_probabilities"])
        mean = {lab: np.mean([s["predictions"][lab] for s in r["segments"]]) for lab in LABELS}
        assert g["all_probabilities"] == pytest.approx(mean, abs=1e-6)
        assert sorted(g["top_labels"]) == sorted(LABELS)  # three labels, all of them
        assert g["probabilities"] == sorted(g["probabilities"], reverse=True)
        assert g["probabilities"] == pytest.approx([g["all_probabilities"][lab] for lab in g["top_labels"]])
        if embeddings:
            check_embedding(r["embedding"])


def check_json(path: Path, root: Path, mode: str, embeddings: bool) -> None:
    doc = json.loads(path.read_text())
    keys = {"audio_files", "mode", "predictions", "errors"} | ({"embeddings"} if embeddings else set())
    assert set(doc) == keys
    assert doc["mode"] == mode
    assert [rel(f, root) for f in doc["audio_files"]] == GOOD
    assert [rel(e["audio_file"], root) for e in doc["errors"]] == [CORRUPT]
    assert all(set(e) == {"audio_file", "error"} and e["error"] for e in doc["errors"])
    frame = pd.DataFrame(doc["predictions"])
    assert list(frame["audio_file"]) == doc["audio_files"]
    for p in doc["predictions"]:
        if mode == "first-30s":
            assert set(p) == {"audio_file", "predicted_label", "confidence", "all_probabilities", "duration"}
            check_probabilities(p["all_probabilities"])
            assert p["confidence"] == max(p["all_probabilities"].values())
            assert p["all_probabilities"][p["predicted_label"]] == p["confidence"]
        else:
            assert set(p) == {"audio_file", "top_predictions", "duration"}
            top = p["top_predictions"]
            assert len(top) == 3 and all(set(t) == {"label", "probability"} for t in top)
            assert sorted(t["label"] for t in top) == LABELS
            assert sum(t["probability"] for t in top) == pytest.approx(1.0, abs=1e-5)
    if embeddings:
        assert len(doc["embeddings"]) == len(doc["audio_files"])
        for emb in doc["embeddings"]:
            check_embedding(emb)


def check_csv(path: Path, root: Path, mode: str, embeddings: bool) -> None:
    frame = pd.read_csv(path)
    if mode == "first-30s":
        columns = ["audio_file", "predicted_label", "confidence"]
        assert [rel(f, root) for f in frame["audio_file"]] == GOOD
    else:
        columns = ["audio_file", "rank", "predicted_label", "probability"]
        assert [rel(f, root) for f in frame["audio_file"]] == [g for g in GOOD for _ in range(3)]
        assert list(frame["rank"]) == [1, 2, 3] * len(GOOD)
        for _, rows in frame.groupby("audio_file"):
            assert sorted(rows["predicted_label"]) == LABELS
            assert list(rows["probability"]) == sorted(rows["probability"], reverse=True)
            if embeddings:
                assert rows["embedding"].isna().tolist() == [False, True, True]
    assert list(frame.columns) == columns + (["embedding"] if embeddings else [])
    assert set(frame["predicted_label"]) <= set(LABELS)
    if embeddings:
        for cell in frame["embedding"].dropna():
            assert cell.startswith("[") and cell.endswith("]")
            check_embedding(json.loads(cell))
    errors = pd.read_csv(path.with_name(path.stem + ".errors.csv"))
    assert list(errors.columns) == ["audio_file", "error"]
    assert [rel(f, root) for f in errors["audio_file"]] == [CORRUPT]


CHECKS = {"jsonl": check_jsonl, "json": check_json, "csv": check_csv}


@pytest.mark.parametrize("embeddings", [True, False], ids=["emb", "no-emb"])
@pytest.mark.parametrize("full", [False, True], ids=["first", "full"])
@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_every_format_mode_and_embedding_choice(fmt, full, embeddings, tree, checkpoint, tmp_path, capsys):
    out = tmp_path / f"results.{fmt}"
    extra = (["--full"] if full else []) + ([] if embeddings else ["--no-embeddings"])
    code = infer("--model", checkpoint, "--audio", tree, "--output", out, *extra)
    assert code == 1  # the corrupt mp3 failed; every other file is in the output
    err = capsys.readouterr().err
    assert "6 ok, 1 failed" in err and "corrupt.mp3" in err
    CHECKS[fmt](out, tree, "full-file" if full else "first-30s", embeddings)


def test_format_flag_overrides_the_extension(tree, checkpoint, tmp_path):
    out = tmp_path / "results.txt"
    assert infer("--model", checkpoint, "--audio", tree / "nested" / "c.flac", "--output", out, "--format", "jsonl") == 0
    assert json.loads(out.read_text())["mode"] == "first-30s"
    assert infer("--model", checkpoint, "--audio", tree, "--output", out) == 2  # cannot tell the format


def test_table_on_stdout_without_output(tree, checkpoint, capsys, monkeypatch):
    monkeypatch.chdir(tree)
    assert infer("--model", checkpoint, "--audio", ".") == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["file", "top"]
    rows = {line.split()[0]: line for line in out[1:-1]}
    assert sorted(rows) == sorted(GOOD + [CORRUPT])
    assert "ERROR:" in rows[CORRUPT]
    for name in GOOD:
        assert rows[name].count("%") == 3 and any(label in rows[name] for label in LABELS)
    widths = {line.index("%") for line in out[1:-1] if "ERROR" not in line}
    assert len(widths) == 1  # aligned columns
    assert out[-1] == "7 files: 6 ok, 1 failed"


def test_short_file_is_padded_and_silence_gives_finite_numbers(checkpoint, tmp_path):
    write_audio(tmp_path / "one_second.wav", tone(1.0, 44100, 330.0, 2), 44100)
    write_audio(tmp_path / "silence.flac", np.zeros(3 * 22050, np.float32), 22050)
    out = tmp_path / "r.jsonl"
    for full in (False, True):
        assert infer("--model", checkpoint, "--audio", tmp_path, "--output", out, *(["--full"] if full else [])) == 0
        one, silence = [json.loads(line) for line in out.read_text().splitlines()]
        assert one["total_segments"] == 1 and one["duration"] == pytest.approx(1.0)
        assert one["segments"][0]["end_time"] == pytest.approx(1.0)
        assert silence["duration"] == pytest.approx(3.0)
        assert np.isfinite(silence["embedding"]).all()
        check_probabilities(silence["global_prediction"]["all_probabilities"])


@pytest.mark.parametrize("full", [False, True], ids=["first", "full"])
def test_streaming_equals_the_legacy_path(full, tree, checkpoint, tmp_path):
    runs = {}
    for legacy in (False, True):
        out = tmp_path / f"{legacy}.jsonl"
        args = ["--model", checkpoint, "--audio", tree, "--output", out, "--batch-size", "3"]
        assert infer(*args, *(["--full", "--hop", "20"] if full else []), *(["--use-legacy"] if legacy else [])) == 1
        runs[legacy] = [json.loads(line) for line in out.read_text().splitlines()]
    stream, legacy = runs[False], runs[True]
    assert [r["audio_file"] for r in stream] == [r["audio_file"] for r in legacy]
    for a, b in zip(stream, legacy):
        assert ("error" in a) == ("error" in b)
        if "error" in a:
            continue
        assert a["total_segments"] == b["total_segments"] and a["duration"] == b["duration"]
        np.testing.assert_allclose(a["embedding"], b["embedding"], atol=1e-5, rtol=1e-5)
        for sa, sb in zip(a["segments"], b["segments"]):
            assert (sa["start_time"], sa["end_time"]) == (sb["start_time"], sb["end_time"])
            np.testing.assert_allclose(list(sa["predictions"].values()), list(sb["predictions"].values()), atol=1e-5)


@pytest.mark.parametrize("full", [False, True], ids=["first", "full"])
def test_the_model_in_the_workers_gives_the_main_process_results(full, tree, checkpoint, monkeypatch, caplog):
    """On the CPU with every core taken by workers, the workers run the model themselves; the
    files, order, errors and numbers are those of the model run in the main process."""
    import melodex.inference.predictor as predictor_module

    assert predictor_module.model_in_workers(torch.device("cpu"), predictor_module.usable_cores())
    assert not predictor_module.model_in_workers(torch.device("cpu"), 0)
    assert not predictor_module.model_in_workers(torch.device("cuda"), predictor_module.usable_cores())
    options = {"full": full, "hop_seconds": 20.0 if full else None}
    runs = {}
    for in_workers in (True, False):
        monkeypatch.setattr(predictor_module, "model_in_workers", lambda device, workers, flag=in_workers: flag)
        predictor = Predictor(checkpoint, device="cpu", batch_size=3, num_workers=2)
        assert predictor.num_workers == min(2, os.cpu_count() or 1)
        caplog.clear()
        with caplog.at_level("DEBUG", logger="melodex.inference.predictor"):
            runs[in_workers] = list(predictor.predict([tree], **options))
        where = "the workers" if in_workers else "this process"
        assert any(f"on cpu in {where}" in record.getMessage() for record in caplog.records)
    workers, main_process = runs[True], runs[False]
    assert [r.audio_file for r in workers] == [r.audio_file for r in main_process]
    assert [r.error for r in workers] == [r.error for r in main_process]
    assert sum(r.error is not None for r in workers) == 1  # the corrupt mp3, as a result
    for a, b in zip(workers, main_process):
        if a.ok:
            assert [(s.index, s.start_time, s.end_time) for s in a.segments] == \
                [(s.index, s.start_time, s.end_time) for s in b.segments]
            assert a.duration == b.duration
            np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-5, rtol=1e-5)
            np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-6)


def test_predictor_api(tree, checkpoint):
    from melodex.model.checkpoint import load_model

    predictor = Predictor(load_model(checkpoint), device="cpu", batch_size=2, num_workers=2)
    results = list(predictor.predict([tree / "nested", tree / "a_short.wav", tree / "missing.wav"]))
    names = [rel(r.audio_file, tree) for r in results]
    assert names == sorted(names) == ["a_short.wav", "missing.wav", "nested/c.flac", CORRUPT,
                                      "nested/deeper/D.Ogg", "nested/e.m4a"]
    by_name = dict(zip(names, results))
    assert "no such file" in by_name["missing.wav"].error and not by_name["missing.wav"].ok
    assert by_name[CORRUPT].error and by_name[CORRUPT].probabilities is None
    one = predictor.predict_file(tree / "long.wav", full=True, embeddings=False)
    assert one.ok and len(one.segments) == 2 and one.embedding is None and one.duration == pytest.approx(40.0)
    assert [label for label, _ in one.top(2)] == [label for label, _ in one.top(3)][:2]
    np.testing.assert_allclose(one.probabilities, np.mean([s.probabilities for s in one.segments], axis=0), atol=1e-6)


def test_stopping_early_ends_the_workers_and_restores_torch_threads(tree, checkpoint):
    threads = torch.get_num_threads()
    before = set(psutil.Process().children())
    predictor = Predictor(checkpoint, device="cpu", batch_size=1, num_workers=2)
    results = predictor.predict([tree])
    first = next(results)
    assert first.ok and rel(first.audio_file, tree) == GOOD[0]
    workers = set(psutil.Process().children()) - before
    assert len(workers) == 2  # the decoding workers
    results.close()  # the caller stops after one file
    gone, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive
    assert torch.get_num_threads() == threads


def test_a_slow_file_holds_up_its_worker_only(checkpoint, tmp_path, monkeypatch):
    """Workers take the next file when they are free (one shared counter), not a fixed share each:
    while one worker is stuck on file 0, the other takes every other file, each file is decoded
    once, and the results come out complete and in order."""
    from melodex.inference import stream

    files = []
    for i in range(10):
        files.append(tmp_path / f"{i:02d}.wav")
        write_audio(files[-1], tone(1.0, 22050, 220.0 + 20 * i), 22050)
    taken = tmp_path / "taken.txt"
    real = stream.file_items

    def file_items(index, path, settings):
        with open(taken, "a") as log:
            log.write(f"{os.getpid()} {index}\n")
        if index == 0:
            time.sleep(3.0)  # the other worker decodes the nine other files meanwhile
        return real(index, path, settings)

    monkeypatch.setattr(stream, "file_items", file_items)  # forked workers inherit it
    predictor = Predictor(checkpoint, device="cpu", batch_size=1, num_workers=2)
    results = list(predictor.predict(files))
    assert [r.audio_file for r in results] == [str(f) for f in files] and all(r.ok for r in results)
    by_worker: dict[str, list[int]] = {}
    for line in taken.read_text().splitlines():
        pid, index = line.split()
        by_worker.setdefault(pid, []).append(int(index))
    assert sorted(i for indices in by_worker.values() for i in indices) == list(range(10))
    slow = next(indices for indices in by_worker.values() if 0 in indices)
    assert slow == [0], by_worker  # a fixed share (0, 2, 4, ...) would have waited behind file 0


FAULTS_PER_CYCLE = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from melodex.util.processes import keep_freed_memory
    keep_freed_memory()

def faults():  # page faults to fill and free a 20-MiB array, as a worker does with each file's audio
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    np.ones(5 << 20, np.float32)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

print(*(faults() for _ in range(3)))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
                    reason="glibc's malloc")
def test_workers_keep_freed_memory_for_the_next_file():
    """A worker's second file reuses the memory its first one freed instead of faulting it in again."""
    counts = {}
    for mode in ("default", "keep"):
        out = subprocess.run([sys.executable, "-c", FAULTS_PER_CYCLE, mode], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
        counts[mode] = [int(n) for n in out.split()]
    assert counts["default"][1] > 200, counts  # freed to the kernel, then taken back page by page
    assert counts["keep"][1] < 50 and counts["keep"][2] < 50, counts


# ----------------------------------------------------------------------------- resume


def test_resume_cuts_a_broken_line_and_retries_errors(tree, checkpoint, tmp_path):
    out = tmp_path / "r.jsonl"
    assert infer("--model", checkpoint, "--audio", tree, "--output", out) == 1
    lines = out.read_text().splitlines(keepends=True)
    first, corrupt_line = lines[0], next(line for line in lines if "corrupt" in line)
    assert '"error"' in corrupt_line
    out.write_text(first + corrupt_line + lines[2][: len(lines[2]) // 2])  # as if killed mid-line
    (tree / CORRUPT).rename(tree / "corrupt.bak")
    write_audio(tree / CORRUPT, tone(2.0, 44100, 500.0, 2), 44100)  # now a good file
    try:
        assert infer("--model", checkpoint, "--audio", tree, "--output", out, "--resume") == 0
    finally:
        (tree / CORRUPT).unlink()
        (tree / "corrupt.bak").rename(tree / CORRUPT)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(rel(r["audio_file"], tree) for r in records) == sorted(GOOD + [CORRUPT])
    assert records[0] == json.loads(first)  # kept as it was
    assert not any("error" in r for r in records)


def test_resume_refuses_other_formats_and_modes(tree, checkpoint, tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    assert infer("--model", checkpoint, "--audio", tree / "a_short.wav", "--output", out) == 0
    assert infer("--model", checkpoint, "--audio", tree, "--output", out, "--resume", "--full") == 2
    assert infer("--model", checkpoint, "--audio", tree, "--output", tmp_path / "r.csv", "--resume") == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "--resume needs a JSONL --output" in err


def test_resume_after_sigkill_gives_every_file_once(checkpoint, tmp_path):
    music = tmp_path / "many"
    for i in range(60):
        write_audio(music / f"{i:02d}.wav", tone(0.5, 22050, 100.0 + 20 * i, 1), 22050)
    out = tmp_path / "killed.jsonl"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, str(ROOT / "inference.py"), "--model", str(checkpoint), "--audio", str(music),
           "--output", str(out), "--num-workers", "2", "--batch-size", "1", "-q"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    workers = []
    try:
        while proc.poll() is None and (not out.exists() or out.read_bytes().count(b"\n") < 3):
            with contextlib.suppress(psutil.Error):
                workers = psutil.Process(proc.pid).children() or workers
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        gone, alive = psutil.wait_procs(workers, timeout=30)
        assert not alive, "the decoding workers outlived the killed run"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # never leave a worker behind, even when the test fails
    before = out.read_bytes().count(b"\n")
    assert 3 <= before < 60, "the run was killed after some files and before the last"
    resumed = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    lines = out.read_text().splitlines()
    names = [Path(json.loads(line)["audio_file"]).name for line in lines]
    assert sorted(names) == [f"{i:02d}.wav" for i in range(60)]  # each file exactly once
    assert out.read_text().endswith("\n")


# ----------------------------------------------------------------------------- refusals


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("kind", ["missing", "not-a-checkpoint", "plain-dict", "pickle-payload", "raw-pickle"])
def test_refused_models_exit_2_with_one_line(kind, tree, tmp_path, capsys):
    model = tmp_path / "model.pth"
    if kind == "not-a-checkpoint":
        model.write_bytes(os.urandom(512))
    elif kind == "plain-dict":
        torch.save({"weights": torch.zeros(3)}, model)
    elif kind == "pickle-payload":
        torch.save({"format": "melodex-checkpoint", "x": _Payload()}, model)
    elif kind == "raw-pickle":
        model.write_bytes(pickle.dumps(_Payload()))
    assert infer("--model", model, "--audio", tree / "a_short.wav") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.pth" in err[0] and "Traceback" not in err[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_device_cuda_without_a_gpu_is_a_clear_error(tree, checkpoint, capsys):
    assert infer("--model", checkpoint, "--audio", tree / "a_short.wav", "--device", "cuda") == 2
    err = capsys.readouterr().err
    assert "cuda" in err and "no CUDA GPU" in err and "Traceback" not in err


def test_no_audio_found_and_bad_options_exit_2(checkpoint, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert infer("--model", checkpoint, "--audio", tmp_path / "empty") == 2
    assert infer("--model", checkpoint, "--audio", tmp_path / "empty", "--hop", "10") == 2
    err = capsys.readouterr().err
    assert "no audio files" in err and "--hop and --last apply to --full" in err


def test_unreadable_files_are_recorded_and_the_rest_processed(checkpoint, tmp_path):
    write_audio(tmp_path / "good.wav", tone(1.0, 22050, 440.0, 1), 22050)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.ogg").write_text("this is not audio\n" * 20)
    out = tmp_path / "r.jsonl"
    assert infer("--model", checkpoint, "--audio", tmp_path, tmp_path / "vanished.mp3", "--output", out) == 1
    records = {Path(r["audio_file"]).name: r for r in map(json.loads, out.read_text().splitlines())}
    assert sorted(records) == ["empty.wav", "good.wav", "text.ogg", "vanished.mp3"]
    assert "empty" in records["empty.wav"]["error"]
    assert "no such file" in records["vanished.mp3"]["error"]
    assert records["text.ogg"]["error"] and "error" not in records["good.wav"]


def test_the_checkpoints_feature_config_drives_decoding(tmp_path, tiny_checkpoint_factory):
    """A model trained on 10-s windows of 16 MFCCs at 16 kHz gets exactly those features."""
    features = FeatureConfig(sample_rate=16000, segment_seconds=10.0, n_mfcc=16, n_frames=150, fmax=8000.0)
    ckpt = tiny_checkpoint_factory(["A", "B"], small=True, features=features, n_mfcc=16, n_frames=150)
    write_audio(tmp_path / "song.wav", tone(25.0, 44100, 300.0, 2), 44100)
    predictor = Predictor(ckpt, num_workers=0)
    (full,) = predictor.predict([tmp_path / "song.wav"], full=True)
    assert [(s.start_time, s.end_time) for s in full.segments] == [(0.0, 10.0), (10.0, 20.0), (20.0, 25.0)]
    assert full.duration == pytest.approx(25.0) and full.top(3) == full.top(2)  # two labels only
    first = predictor.predict_file(tmp_path / "song.wav")
    assert [(s.start_time, s.end_time) for s in first.segments] == [(0.0, 10.0)]
    np.testing.assert_allclose(first.probabilities, full.segments[0].probabilities, atol=1e-5)
