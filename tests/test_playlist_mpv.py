"""A written M3U8 loads in a real media player: mpv, headless, plays every entry in order.

``melodex playlist`` writes paths relative to the playlist's folder; mpv resolves them from the
playlist's own folder (run here from another folder), opens each file, and exits 0 only when
every entry could be played. mpv comes from Debian (``make test`` installs it as root); without
it the test is skipped with the reason.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from melodex.cli import main

MPV = shutil.which("mpv")


@pytest.mark.skipif(MPV is None, reason="mpv is not installed (apt-get install mpv; 'make test' installs it as root)")
def test_mpv_plays_every_entry_of_the_written_m3u8_in_order(small_demo, tmp_path):
    from melodex.library.store import LibraryStore

    status, _, out = small_demo
    assert status == 0
    tracks = LibraryStore(out / "library").tracks()
    mix = tmp_path / "lists" / "mix"
    assert main(["playlist", "--store", str(out / "library"), "--seed", str(tracks["track_id"][5]),
                 "--length", "6", "--out", str(mix), "--format", "m3u8", "-q"]) == 0
    playlist = mix.with_name("mix.m3u8")
    entries = [line for line in playlist.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    assert len(entries) == 6 and not any(Path(e).is_absolute() for e in entries)

    run = subprocess.run(
        [MPV, "--no-config", "--no-video", "--ao=null", "--ao-null-untimed", "--end=0.3", "--quiet",
         "--term-playing-msg=PLAYING|${path}|${duration}", f"--playlist={playlist}"],
        check=False, cwd=tmp_path, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stdout + run.stderr  # 2 when an entry cannot be played
    played = [line.split("|")[1:] for line in run.stdout.splitlines() if line.startswith("PLAYING|")]
    assert [Path(p).resolve() for p, _ in played] == [(playlist.parent / e).resolve() for e in entries]
    assert all(duration == "00:00:10" for _, duration in played)  # mpv decoded each 10-s demo clip
