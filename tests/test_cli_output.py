"""What the commands print in a terminal: tables free of progress bars, one report per failure,
Ctrl-C that says what was kept, short summaries, and commands that can be pasted back.

The terminal tests run the real command on a pseudo-terminal (stdout and stderr both on it, as
in a shell) and replay what it wrote the way a terminal shows it.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import shlex
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from melodex.cli import main
from melodex.library.store import LibraryStore
from tests import nasty
from tests._helpers_store import synthetic_store
from tests.conftest import ROOT, signal_when

N_CLIPS = 40


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """``N_CLIPS`` short clips, one of them broken."""
    root = tmp_path_factory.mktemp("clips")
    for i in range(N_CLIPS - 1):
        nasty._write(root / f"{i:02d}.wav", nasty.tone(0.5, 8000, freq=150 + 15 * i, seed=i), 8000)
    (root / "99_broken.mp3").write_bytes(b"this is not audio")
    return root


@pytest.fixture(scope="module")
def model(tiny_checkpoint_factory) -> Path:
    return tiny_checkpoint_factory()


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1")


def on_a_terminal(args: list[str], timeout: float = 300) -> tuple[int, str]:
    """Run ``python -m melodex *args`` with stdout and stderr on one pseudo-terminal; returns
    (exit status, everything it wrote, as bytes decoded)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))  # 50 rows, 160 columns
    proc = subprocess.Popen([sys.executable, "-m", "melodex", *args], stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=slave, env=_env(), cwd=ROOT)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the command closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


def screen(text: str) -> list[str]:
    """The lines a terminal shows after ``text``: carriage returns and cursor-up rewrite lines."""
    lines, row, col = [""], 0, 0
    for token in re.findall(r"\x1b\[(\d*)([A-Za-z])|(\r\n|\n|\r)|([^\x1b\r\n]+)", text):
        count, code, newline, chars = token
        if code == "A":
            row = max(0, row - int(count or 1))
        elif code:  # other escapes (erase, colours) change no text here
            continue
        elif newline in ("\n", "\r\n"):
            row, col = row + 1, 0
            if row == len(lines):
                lines.append("")
        elif newline == "\r":
            col = 0
        else:
            line = lines[row].ljust(col)
            lines[row] = line[:col] + chars + line[col + len(chars):]
            col += len(chars)
    return [line.rstrip() for line in lines if line.strip()]


# ---------------------------------------------------------------------------- infer's table
def test_infer_table_in_a_terminal_has_no_progress_bar_inside(clips, model):
    args = ["infer", "--model", str(model), "--audio", str(clips), "--num-workers", "0", "--device", "cpu"]
    piped = subprocess.run([sys.executable, "-m", "melodex", *args], capture_output=True, text=True, env=_env(),
                           cwd=ROOT, timeout=300, check=False)
    assert piped.returncode == 1 and piped.stderr == ""  # the broken file is in the table, once
    table = piped.stdout.splitlines()
    assert len(table) == N_CLIPS + 2 and table[-1] == f"{N_CLIPS} files: {N_CLIPS - 1} ok, 1 failed"

    status, shown = on_a_terminal(args)
    assert status == 1
    assert "%|" in shown  # a progress bar was drawn while the table was printed
    assert screen(shown) == table  # ... and the terminal ends up showing the table alone


def test_infer_reports_a_failed_file_once_and_one_summary(clips, model, tmp_path, capsys):
    args = ["infer", "--model", str(model), "--audio", str(clips), "--num-workers", "0"]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert captured.err == ""  # the table holds the failure and the count; nothing repeats them
    broken = [line for line in captured.out.splitlines() if "99_broken.mp3" in line]
    assert len(broken) == 1 and "ERROR: " in broken[0]

    out = tmp_path / "r.jsonl"
    assert main([*args, "--output", str(out)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0].startswith(f"failed: {clips / '99_broken.mp3'}: ")
    assert err[1] == f"{N_CLIPS} file(s): {N_CLIPS - 1} ok, 1 failed -> {out}"


# ---------------------------------------------------------------------------------- Ctrl-C
def interrupt_when(args: list[str], ready: Callable[[], bool]) -> tuple[int, str]:
    """Run ``melodex *args`` and press Ctrl-C once ``ready()``; returns (exit status, stderr)."""
    return signal_when(["-m", "melodex", *args], ready, signal.SIGINT)


def _count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_ctrl_c_during_infer_says_what_was_written_and_how_to_resume(clips, model, tmp_path):
    out = tmp_path / "results.jsonl"
    args = ["infer", "--model", str(model), "--audio", str(clips), "--output", str(out), "--num-workers", "1",
            "--batch-size", "1", "--device", "cpu", "-q"]
    status, err = interrupt_when(args, lambda: _count_lines(out) >= 3)
    written = _count_lines(out)
    assert status == 130 and 3 <= written < N_CLIPS, err
    assert err.splitlines() == [(f"interrupted: {written} result(s) are in {out}; "
                                 "run the same command with --resume to continue")]
    assert main([*args, "--resume"]) == 1  # the broken clip fails again; every other one is there once
    files = [json.loads(line)["audio_file"] for line in out.read_text().splitlines()]
    assert len(files) == len(set(files)) == N_CLIPS


def test_ctrl_c_during_index_keeps_what_was_embedded(clips, model, tmp_path):
    store = tmp_path / "library"
    args = ["index", "--store", str(store), "--model", str(model), "--audio", str(clips), "--num-workers", "1",
            "--batch-size", "1", "--device", "cpu", "--part-size", "4", "-q"]
    status, err = interrupt_when(args, lambda: len(list(store.glob("parts/*.parquet"))) >= 2)
    kept = len(LibraryStore(store))
    assert status == 130 and 8 <= kept < N_CLIPS, err
    assert err.splitlines() == [(f"interrupted: the {kept} track(s) embedded so far are kept in {store}; "
                                 "run the same command again to add the rest")]
    assert main(args) == 1  # the rest (the broken clip fails)
    assert len(LibraryStore(store)) == N_CLIPS - 1


def test_ctrl_c_keeps_the_tracks_of_a_part_not_yet_full(clips, model, tmp_path, monkeypatch, capsys):
    """Ctrl-C after 7 files with parts of 100: the 7 are written, not lost with the unfinished part."""
    from melodex.inference.predictor import Predictor

    real = Predictor.predict

    def seven_then_ctrl_c(self, *args, **kwargs):
        for i, result in enumerate(real(self, *args, **kwargs)):
            if i == 7:
                raise KeyboardInterrupt
            yield result

    monkeypatch.setattr(Predictor, "predict", seven_then_ctrl_c)
    store = tmp_path / "library"
    assert main(["index", "--store", str(store), "--model", str(model), "--audio", str(clips),
                 "--num-workers", "0", "--part-size", "100", "-q"]) == 130
    assert len(LibraryStore(store)) == 7
    assert capsys.readouterr().err == (f"interrupted: the 7 track(s) embedded so far are kept in {store}; "
                                       "run the same command again to add the rest\n")


def test_ctrl_c_while_a_part_is_written_finishes_that_part(clips, model, tmp_path, monkeypatch, capsys):
    """A Ctrl-C that lands while the store writes a part waits for the write, then stops the run."""
    import os
    import signal

    from melodex.library.store import LibraryStore as Store

    real = Store._write_part
    calls = []

    def write_with_ctrl_c(self, batch, *args, **kwargs):
        calls.append(len(batch))
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # arrives in the middle of the first part's write
        return real(self, batch, *args, **kwargs)

    monkeypatch.setattr(Store, "_write_part", write_with_ctrl_c)
    store = tmp_path / "library"
    assert main(["index", "--store", str(store), "--model", str(model), "--audio", str(clips),
                 "--num-workers", "0", "--part-size", "4", "-q"]) == 130
    assert calls == [4] and len(LibraryStore(store)) == 4  # the part in flight is whole; nothing after it
    assert capsys.readouterr().err == (f"interrupted: the 4 track(s) embedded so far are kept in {store}; "
                                       "run the same command again to add the rest\n")


# ---------------------------------------------------------------------------- map, Checkpoint
def test_map_says_fitting_a_new_map_once(tmp_path, capsys):
    synthetic_store(tmp_path / "library", np.random.default_rng(0), n_per=6)
    args = ["map", "--store", str(tmp_path / "library"), "--out", str(tmp_path / "m.html"), "--no-png"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert err.count("fitting a new map") == 1 and "fitted" not in err
    assert main(args) == 0
    assert capsys.readouterr().err.splitlines() == ["map: up to date, no new tracks to place"]


def test_printing_a_checkpoint_shows_a_summary(model):
    from melodex.model.checkpoint import load_checkpoint

    ckpt = load_checkpoint(model)
    text = repr(ckpt)
    assert str(ckpt) == text and len(text) < 400 and "tensor(" not in text
    assert text.startswith(f"Checkpoint({model}: 3 labels [Folk, Pop, Rock], ")
    assert "512-d embedding" in text and "metadata keys ['note']" in text


# ------------------------------------------------------------------------------------ demo
@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> tuple[Path, str, str]:
    """``melodex demo`` (tiny) run in a fresh folder, its corpus in a folder with a space in its name."""
    cwd = tmp_path_factory.mktemp("demo cwd")
    run = subprocess.run([sys.executable, "-m", "melodex", "demo", "--data", "demo data", "--tracks-per-artist", "4",
                          "--seconds", "5", "--epochs", "1", "--device", "cpu"],
                         cwd=cwd, env=_env(), capture_output=True, text=True, timeout=900, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    return cwd, run.stderr, run.stdout


def test_every_command_the_demo_prints_can_be_pasted(demo_dir, monkeypatch, capsys):
    cwd, log, printed = demo_dir
    steps = [shlex.split(line[3:]) for line in log.splitlines() if line.startswith("== melodex ")]
    assert [s[1] for s in steps] == ["make-demo", "preprocess", "train", "infer", "index", "map", "evolution"]
    assert steps[0][2:4] == ["--out", "demo data"] and steps[1][2:4] == ["--data_dir", "demo data/fma_small"]
    assert steps[5][-2:] == ["--title", "Melodex demo corpus"]
    assert "train with: melodex train --data_dir 'demo data/fma_small'" in printed.splitlines()

    after = log.splitlines()[log.splitlines().index("Next (each line can be pasted as it is):") + 1:]
    commands = [shlex.split(line) for line in after]
    assert [c[:2] for c in commands] == [["melodex", "similar"]] * 2 + [["melodex", "map"], ["melodex", "evolution"],
                                                                       ["melodex", "serve"]]
    monkeypatch.chdir(cwd)
    for argv in commands[:-1]:  # serve runs until stopped: see the next test
        assert main(argv[1:]) == 0, argv
    assert "Drift Machine" in capsys.readouterr().err


def test_the_readme_commands_work_after_the_demo(demo_dir, monkeypatch, capsys):
    """`melodex map`, `melodex similar <id>` and `melodex serve`, as the README writes them, use
    the demo's store when no other store exists."""
    from melodex.analysis import serve

    cwd, *_ = demo_dir
    monkeypatch.chdir(cwd)
    track = LibraryStore(cwd / "demo_outputs" / "library").tracks()["track_id"].iloc[0]
    assert main(["map", "--color-by", "genre"]) == 0
    assert capsys.readouterr().out.splitlines() == ["melodex_outputs/map.html", "melodex_outputs/map.png"]
    assert (cwd / "melodex_outputs" / "map.html").is_file() and (cwd / "melodex_outputs" / "map.png").is_file()
    assert main(["similar", str(int(track)), "-k", "10"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 11

    served = []
    monkeypatch.setattr(serve.ThreadingHTTPServer, "serve_forever",
                        lambda self, poll_interval=0.5: served.append(self))
    assert main(["serve", "--port", "0"]) == 0 and len(served) == 1
    assert "demo_outputs/library" in capsys.readouterr().err
