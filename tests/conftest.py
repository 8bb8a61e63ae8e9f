"""Shared fixtures: a seeded rng, generated audio files, and a tiny model built in code."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def tone(seconds: float, sr: int = 44100, freq: float = 440.0, channels: int = 2, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a little noise, (n,) or (n, channels), amplitude below 0.5."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    mono = 0.3 * np.sin(2 * np.pi * freq * t) + 0.1 * np.sin(2 * np.pi * 2 * freq * t)
    mono += 0.02 * rng.standard_normal(t.size)
    if channels == 1:
        return mono.astype(np.float32)
    return np.stack([mono * (1 - 0.1 * c) for c in range(channels)], axis=1).astype(np.float32)


@pytest.fixture
def make_audio(tmp_path):
    """make_audio(name, seconds=3, sr=44100, ...) writes a file under tmp_path and returns its path."""
    from melodex.audio.encode import write_audio

    def _make(name: str, seconds: float = 3.0, sr: int = 44100, freq: float = 440.0, channels: int = 2, **kw) -> Path:
        return write_audio(tmp_path / name, tone(seconds, sr, freq, channels), sr, **kw)

    return _make


TINY_LABELS = ("Folk", "Pop", "Rock")
# Small conv channels and embedding for tests that do not look at the default widths (256, 512).
SMALL_MODEL = {"channels": (8, 16, 16, 32), "embedding_dim": 64}
# (mean, std) of the MFCC's coefficient 0, then of every other coefficient, roughly as for music
TINY_MFCC_STATS = ((-300.0, 100.0), (0.0, 30.0))


@pytest.fixture(scope="session")
def tiny_checkpoint_factory(tmp_path_factory):
    """``make(labels=TINY_LABELS, *, small=False, features=None, n_mfcc=None, n_frames=None, normalized=False)``
    -> a checkpoint.

    An untrained :class:`GenreCNN` (``torch.manual_seed(0)``; ``n_classes`` is ``len(labels)``, so
    ``labels=()`` gives a headless model, as label-free training does: no genre head, an empty label
    list), saved the real way with metadata ``{"note": "test"}``. ``normalized`` sets the feature
    normalisation buffers to :data:`TINY_MFCC_STATS` (as training sets them from its data), so that
    random weights tell clips apart by more than rounding. ``small`` uses :data:`SMALL_MODEL`;
    otherwise the default channels and 512-d embedding. ``features`` (a ``FeatureConfig``,
    default ``FeatureConfig()``) is saved with it, and the model takes its ``n_mfcc`` and
    ``n_frames`` from there unless given. Each variant is built once per session (per xdist
    worker) and shared: treat the file as read-only, and copy it into ``tmp_path`` to change it.
    """
    import torch

    from melodex.features.mfcc import FeatureConfig
    from melodex.model.checkpoint import save_checkpoint
    from melodex.model.cnn import GenreCNN, ModelConfig

    built: dict[tuple, tuple[Path, bytes]] = {}

    def _make(labels=TINY_LABELS, *, small: bool = False, features=None, n_mfcc: int | None = None,
              n_frames: int | None = None, normalized: bool = False) -> Path:
        labels = tuple(labels)
        features = FeatureConfig() if features is None else features
        n_mfcc = features.n_mfcc if n_mfcc is None else n_mfcc
        n_frames = features.n_frames if n_frames is None else n_frames
        key = (labels, small, features, n_mfcc, n_frames, normalized)
        if key not in built:
            config = ModelConfig(n_classes=len(labels), n_mfcc=n_mfcc, n_frames=n_frames,
                                 **(SMALL_MODEL if small else {}))
            with torch.random.fork_rng(devices=[]):  # the same weights every time; the caller's rng untouched
                torch.manual_seed(0)
                model = GenreCNN(config)
            if normalized:
                mean, std = (torch.full((n_mfcc,), float(v)) for v in TINY_MFCC_STATS[1])
                mean[0], std[0] = TINY_MFCC_STATS[0]
                model.set_normalization(mean, std)
            folder = tmp_path_factory.mktemp("tiny-model")
            path = save_checkpoint(folder / "tiny.pth", model, list(labels), features, {"note": "test"})
            built[key] = path, path.read_bytes()
        path, content = built[key]
        assert path.is_file() and path.read_bytes() == content, f"a test changed the shared {path}; copy it first"
        return path

    return _make


@pytest.fixture
def tiny_checkpoint(tiny_checkpoint_factory, tmp_path) -> Path:
    """This test's own copy of the default tiny checkpoint (three labels, 512-d embeddings)."""
    import shutil

    return Path(shutil.copyfile(tiny_checkpoint_factory(), tmp_path / "tiny.pth"))


def run_script(args: list[str], cwd: Path | None = None, timeout: float = 600):
    """Run a command line through this Python (``python -m melodex ...`` or a root script)."""
    import subprocess

    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def signal_when(args: list[str], ready, sig: int, timeout: float = 240) -> tuple[int, str]:
    """Start ``python *args`` in a process group of its own; once ``ready()`` holds, send ``sig`` to
    the whole group (as a terminal's Ctrl-C does, decoding workers included); returns
    (exit status, stderr). Fails when the run ended before it could be signalled.

    The child starts with Ctrl-C's default disposition, as a program started from a terminal does:
    a test run started in the background (``nohup make test &``) has SIGINT ignored, which every
    descendant inherits and Python keeps, so the run would never see the signal."""
    import contextlib
    import signal
    import subprocess
    import time

    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1")
    # the default disposition is set by a prelude that then execs the run (not preexec_fn, which is
    # unsafe in a process with threads); a disposition of SIG_DFL survives exec
    prelude = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
               "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")
    proc = subprocess.Popen([sys.executable, "-c", prelude, *args], env=env, cwd=ROOT, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while proc.poll() is None and not ready() and time.monotonic() < deadline:
            time.sleep(0.002)
        assert proc.poll() is None, f"the run ended before it could be signalled: {proc.stderr.read()[-500:]}"
        os.killpg(proc.pid, sig)
        _, err = proc.communicate(timeout=120)
        return proc.returncode, err
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # never leave a worker behind


SMALL_DEMO_ARGS = ["--tracks-per-artist", "8", "--seconds", "10", "--epochs", "8"]


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory) -> tuple[int, Path, Path]:
    """``melodex demo`` on a small corpus (128 clips of 10 s), run once for the whole test session,
    also across xdist workers (a file lock in their shared base folder); returns (exit status,
    corpus folder, outputs folder). Tests only read it."""
    from filelock import FileLock

    from melodex.cli import main

    base = tmp_path_factory.getbasetemp()
    # xdist workers get base/../popen-gwN: share their parent (this run's folder); a plain run has its
    # own base (its parent, /tmp/pytest-of-USER, outlives the run and would serve an older run's demo)
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    root = shared / "small-demo"
    data, out, done = root / "demo_data", root / "demo_outputs", root / "status"
    with FileLock(str(shared / "small-demo.lock")):
        if not done.exists():
            status = main(["demo", "--data", str(data), "--out", str(out), *SMALL_DEMO_ARGS, "--quiet"])
            done.write_text(str(status))
    return int(done.read_text()), data, out


@pytest.fixture(scope="session")
def small_demo_mfcc(small_demo, tmp_path_factory) -> Path:
    """The small demo's corpus indexed with ``melodex index --features mfcc-stats`` (no model),
    once per session (per xdist worker); returns the store folder. Tests only read it."""
    from melodex.cli import main

    status, data, _ = small_demo
    assert status == 0
    store = tmp_path_factory.mktemp("small-demo-mfcc") / "library"
    assert main(["index", "--store", str(store), "--features", "mfcc-stats", "--audio", str(data / "fma_small"),
                 "--fma-metadata", str(data / "fma_metadata"), "--num-workers", "0", "--quiet"]) == 0
    return store
