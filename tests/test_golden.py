"""Golden-file regression tests: today's numbers and bytes, pinned while modules move.

In the style of spotify/basic-pitch (``tests/resources/*.npz`` compared with
``assert_allclose``). Inputs are made in code (see ``tests/_golden.py``); expected outputs live
in ``tests/resources/golden/``. Only stable entry points are used: top-level ``melodex`` names,
``melodex.cli.main`` / ``melodex.cli.run_command`` and the root script ``inference.py``.

Regenerate (only when a change of output is intended, and say why in the commit)::

    MELODEX_REGEN_GOLDEN=1 python -m pytest tests/test_golden.py

Threads: every test runs with one torch thread and the process pinned to one CPU core (the
CLI sizes its torch threads from the usable cores). Float32 sums in a different thread count
differ in the last bits (measured: embeddings by 1.5e-8 with 4 threads, MFCCs by 3e-5), and so
do they on another CPU type (other SIMD kernels: on an AVX-512 machine the MFCC of the files
made elsewhere differed by up to 3.8e-5, their embeddings by 2e-8). So numbers are compared
within a tolerance: arrays with ``assert_allclose`` (an MFCC, whose values run to hundreds, with
an absolute tolerance of 1e-4, the MFCC's own agreement with librosa), and in the text files
every number written with a decimal point or an exponent within ``RTOL``/``ATOL``; everything
else in a text file (names, keys, order, separators, integers) must be the same byte for byte.

Normalisation: none. Every run works in a directory holding ``clips/`` and ``tiny.pth`` and
passes relative paths, so the ``audio_file`` fields are the same on every run; the outputs
hold no timestamps, versions or absolute paths.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from tests._golden import (
    CHECKPOINT,
    CLIP_DIR,
    CLIPS,
    INFER_CASES,
    LABELS,
    RESOURCES,
    build_model,
    infer_argv,
    read_text,
    regenerating,
    state_arrays,
    write_checkpoint,
    write_clips,
    write_text,
)
from tests.conftest import ROOT, run_script

RTOL, ATOL = 1e-5, 1e-6
MFCC_ATOL = 1e-4  # MFCC values run to hundreds; the last bits of float32 sums move them by ~4e-5
FLOAT = re.compile(r"-?(?:\d+\.\d*|\.\d+|\d+(?=[eE]))(?:[eE][-+]?\d+)?")  # a number with a '.' or an exponent


# ----------------------------------------------------------------------------- helpers


def check_arrays(name: str, actual: dict[str, np.ndarray], *, rtol: float = RTOL, atol: float = ATOL) -> None:
    """Compare ``actual`` with ``resources/golden/<name>.npz`` (or write it when regenerating)."""
    path = RESOURCES / f"{name}.npz"
    if regenerating():
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **actual)
    with np.load(path) as expected:
        assert sorted(expected.files) == sorted(actual), f"{name}.npz: array names differ"
        for key in expected.files:
            assert actual[key].shape == expected[key].shape, f"{name}.npz[{key}]: shape"
            assert actual[key].dtype == expected[key].dtype, f"{name}.npz[{key}]: dtype"
            assert_allclose(actual[key], expected[key], rtol=rtol,
                            atol=MFCC_ATOL if key.endswith("_mfcc") else atol, err_msg=f"{name}.npz[{key}]")


def same_line(actual: str, expected: str) -> bool:
    """The same text, except that each number with a '.' or an exponent may differ within RTOL/ATOL."""
    if actual == expected:
        return True
    if FLOAT.split(actual) != FLOAT.split(expected):  # the text around the numbers, byte for byte
        return False
    a, e = (np.array([float(x) for x in FLOAT.findall(text)]) for text in (actual, expected))
    return a.shape == e.shape and bool(np.allclose(a, e, rtol=RTOL, atol=ATOL))


def check_text(name: str, actual: str) -> None:
    """Compare ``actual`` with ``resources/golden/<name>`` (or write it): byte for byte but for the
    last bits of its decimal numbers (see the module docstring)."""
    path = RESOURCES / name
    if regenerating():
        write_text(path, actual)
    expected = read_text(path)
    lines, wanted = actual.splitlines(True), expected.splitlines(True)
    for i, (a, e) in enumerate(zip(lines, wanted), start=1):  # name the first differing line
        if not same_line(a, e):
            pytest.fail(f"{name}: line {i} differs\n  expected: {e[:300]!r}\n  actual:   {a[:300]!r}")
    if len(lines) != len(wanted):
        pytest.fail(f"{name}: {len(lines)} lines, expected {len(wanted)}")


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread and one usable core while a test runs (see the module docstring)."""
    import torch

    threads = torch.get_num_threads()
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    torch.set_num_threads(1)
    if affinity:
        os.sched_setaffinity(0, {min(affinity)})
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if affinity:
            os.sched_setaffinity(0, affinity)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A directory with ``clips/long.wav``, ``clips/short.wav`` and ``tiny.pth``."""
    root = tmp_path_factory.mktemp("golden")
    write_clips(root)
    write_checkpoint(root)
    return root


@pytest.fixture
def in_workdir(workdir, monkeypatch) -> Path:
    """Run the test inside :func:`workdir`, so paths given to infer are relative."""
    monkeypatch.chdir(workdir)
    return workdir


# ----------------------------------------------------------------------------- the model


def test_seeded_init_gives_the_pinned_weights():
    """torch.manual_seed(0) + GenreCNN(...) still gives the same weights (else: a torch change)."""
    check_arrays("weights", state_arrays(build_model()), rtol=0, atol=0)


def test_saved_checkpoint_loads_back_the_same_model(workdir):
    from melodex import load_model

    model, ckpt = load_model(workdir / CHECKPOINT)
    assert list(ckpt.labels) == LABELS
    expected = state_arrays(build_model())
    actual = state_arrays(model)
    assert sorted(actual) == sorted(expected)
    for key in expected:
        assert_allclose(actual[key], expected[key], rtol=0, atol=0, err_msg=key)


# ----------------------------------------------------------------------------- decoding and features


def test_decoded_first_segment_and_mfcc(workdir):
    from melodex import compute_mfcc, first_segment, load_audio

    arrays: dict[str, np.ndarray] = {}
    for name in CLIPS:
        stem = Path(name).stem
        audio = load_audio(workdir / CLIP_DIR / name, duration=30)
        segment = first_segment(audio)
        assert segment.audio.shape == (661500,) and segment.audio.dtype == np.float32
        mfcc = compute_mfcc(segment.audio)
        assert mfcc.shape == (20, 640) and mfcc.dtype == np.float32
        arrays[f"{stem}_n_samples"] = np.array(audio.size)
        arrays[f"{stem}_end_time"] = np.array(segment.end_time)
        arrays[f"{stem}_audio_every_997th"] = segment.audio[::997]  # pins decode + downmix + resampling
        arrays[f"{stem}_mfcc"] = mfcc
    # the 12-s clip is zero-padded to 30 s: its window ends at its real end
    assert float(arrays["short_end_time"]) == pytest.approx(12.0)
    check_arrays("features", arrays)


# ----------------------------------------------------------------------------- the Predictor


def _predictor_arrays(workdir: Path, *, legacy: bool) -> dict[str, np.ndarray]:
    from melodex import Predictor

    predictor = Predictor(str(workdir / CHECKPOINT), device="cpu", num_workers=0)
    assert predictor.labels == tuple(LABELS)
    arrays: dict[str, np.ndarray] = {}
    for mode, full in (("first", False), ("full", True)):
        results = list(predictor.predict([workdir / CLIP_DIR], full=full, legacy=legacy))
        assert [Path(r.audio_file).name for r in results] == sorted(CLIPS)
        for result in results:
            assert result.ok, result.error
            key = f"{Path(result.audio_file).stem}_{mode}"
            arrays[f"{key}_probabilities"] = result.probabilities
            arrays[f"{key}_embedding"] = result.embedding
            arrays[f"{key}_segment_probabilities"] = np.stack([s.probabilities for s in result.segments])
            arrays[f"{key}_segment_times"] = np.array([[s.start_time, s.end_time] for s in result.segments])
            arrays[f"{key}_duration"] = np.array(result.duration)
    return arrays


def test_predictor_probabilities_and_embeddings(workdir):
    arrays = _predictor_arrays(workdir, legacy=True)
    assert arrays["long_full_segment_probabilities"].shape == (2, 3)  # 38 s: a full window + a padded tail
    assert_allclose(arrays["long_first_probabilities"].sum(), 1.0, rtol=1e-6)
    check_arrays("predictor", arrays)


def test_streaming_predictor_matches_the_legacy_golden(workdir):
    """The default (DataLoader) path gives the numbers pinned from the reference path."""
    if regenerating():
        pytest.skip("compares with predictor.npz; regenerated by the legacy test")
    check_arrays("predictor", _predictor_arrays(workdir, legacy=False))


def test_model_on_the_golden_mfcc_gives_the_golden_outputs(workdir):
    """load_model + GenreCNN on features.npz's MFCC reproduce predictor.npz's first-30s numbers."""
    import torch

    from melodex import load_model

    if regenerating():
        pytest.skip("reads features.npz and predictor.npz")
    model, _ = load_model(workdir / CHECKPOINT)
    with np.load(RESOURCES / "features.npz") as feats, np.load(RESOURCES / "predictor.npz") as pred:
        for stem in ("long", "short"):
            with torch.inference_mode():
                emb, logits = model.embed_and_classify(torch.from_numpy(feats[f"{stem}_mfcc"][None]))
            assert_allclose(emb[0].numpy(), pred[f"{stem}_first_embedding"], rtol=RTOL, atol=ATOL)
            assert_allclose(torch.softmax(logits, -1)[0].numpy(), pred[f"{stem}_first_probabilities"],
                            rtol=RTOL, atol=ATOL)


# ----------------------------------------------------------------------------- infer's text


def _run_infer(case: str, out_dir: Path, capsys, entry: str = "run_command") -> str:
    from melodex import cli

    output, argv = infer_argv(case)
    if output is not None:
        argv = [a if a != output else str(out_dir / output) for a in argv]
    capsys.readouterr()
    rc = cli.run_command("infer", argv) if entry == "run_command" else cli.main(["infer", *argv])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return captured.out if output is None else read_text(out_dir / output)


@pytest.mark.parametrize("case", sorted(INFER_CASES))
def test_infer_output_text(case, in_workdir, tmp_path, capsys):
    check_text(case, _run_infer(case, tmp_path, capsys))


def test_cli_main_writes_the_same_text(in_workdir, tmp_path, capsys):
    if regenerating():
        pytest.skip("compares with the files test_infer_output_text writes")
    check_text("full.csv", _run_infer("full.csv", tmp_path, capsys, entry="main"))


def test_root_script_writes_the_same_text(workdir, tmp_path):
    """``python inference.py ...`` (a fresh process) writes exactly the pinned JSONL."""
    if regenerating():
        pytest.skip("compares with the files test_infer_output_text writes")
    output, argv = infer_argv("full.jsonl")
    argv = [a if a != output else str(tmp_path / output) for a in argv]
    proc = run_script([str(ROOT / "inference.py"), *argv], cwd=workdir, timeout=120)
    assert proc.returncode == 0, proc.stderr
    check_text("full.jsonl", read_text(tmp_path / output))


def test_resources_stay_small():
    sizes = {p.name: p.stat().st_size for p in RESOURCES.iterdir()}
    assert set(INFER_CASES) <= set(sizes)
    assert sum(sizes.values()) < 200_000, sizes


def test_workdir_copy_is_independent_of_its_location(workdir, tmp_path, capsys, monkeypatch):
    """The same inputs in another directory give the same bytes: nothing path-dependent leaks."""
    if regenerating():
        pytest.skip("compares with the files test_infer_output_text writes")
    other = tmp_path / "elsewhere"
    shutil.copytree(workdir, other)
    monkeypatch.chdir(other)
    check_text("first.json", _run_infer("first.json", tmp_path, capsys))
