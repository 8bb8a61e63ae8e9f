"""A corpus of nasty audio inputs, generated (nothing binary is committed).

Build it into a folder from the shell::

    python -m tests.nasty DIR            # DIR/mix/<files> plus a symlink loop
    python -m tests.nasty DIR --long 120 # also DIR/long/long.wav, 120 minutes (streams in --full)

or from Python with :func:`build_corpus`. Every file lies in ``DIR/mix/`` (one label folder, so
the same tree is a folder-per-label dataset for ``melodex preprocess``). :data:`EXPECTED` says
what Melodex must do with each file: ``ok`` with the duration it reports (a file shorter than a
segment is zero-padded to 30 s but reports its real length), or ``error`` with a word that the
per-file reason contains. Two entries are not plain files: ``loop`` is a symlink to its own
folder (a scan must end and list nothing twice) and the permission / vanishing cases are made
by the tests themselves (see ``tests/test_hardening_inputs.py``), since they depend on who runs.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LABEL = "mix"


@dataclass(frozen=True)
class Expect:
    """What Melodex does with one nasty file: ``ok`` (``seconds`` long) or ``error`` (``reason`` in it)."""

    outcome: str
    seconds: float | None = None
    reason: str | None = None


# name -> expectation; names are relative to DIR/mix.
EXPECTED: dict[str, Expect] = {
    "zero_bytes.mp3": Expect("error", reason="empty"),
    "truncated_mid_frame.mp3": Expect("ok", seconds=None),  # whatever decodes before the cut
    "random_bytes.mp3": Expect("error", reason="decode"),
    "text_named.flac": Expect("error", reason="decode"),
    "big_id3_cover_art.mp3": Expect("ok", seconds=3.0),
    "vbr.mp3": Expect("ok", seconds=3.0),
    "pcm24.wav": Expect("ok", seconds=2.0),
    "pcm24.flac": Expect("ok", seconds=2.0),
    "float32.wav": Expect("ok", seconds=2.0),
    "mono_8k.wav": Expect("ok", seconds=2.0),
    "six_channels_96k.wav": Expect("ok", seconds=1.0),
    "blip_0.2s.wav": Expect("ok", seconds=0.2),
    "silence_30s.flac": Expect("ok", seconds=30.0),
    "ünïcödé ñame, with spaces & 'quotes'.ogg": Expect("ok", seconds=2.0),
    "sub dir/日本語 トラック.wav": Expect("ok", seconds=1.5),
}
OK = sorted(n for n, e in EXPECTED.items() if e.outcome == "ok")
BROKEN = sorted(n for n, e in EXPECTED.items() if e.outcome == "error")
COVER_BYTES = 2 * 1024 * 1024


def tone(seconds: float, sr: int, channels: int = 1, freq: float = 330.0, seed: int = 0) -> np.ndarray:
    """A tone with some noise, float32 (n,) or (n, channels), peak below 0.5."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    mono = 0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(t.size)
    if channels == 1:
        return mono.astype(np.float32)
    return np.stack([mono * (1 - 0.1 * c) for c in range(channels)], axis=1).astype(np.float32)


def _write(path: Path, audio: np.ndarray, sr: int, subtype: str | None = None) -> Path:
    from melodex.audio.encode import write_audio

    return write_audio(path, audio, sr, subtype=subtype)


def _vbr_mp3(path: Path, audio: np.ndarray, sr: int) -> None:
    import soundfile as sf

    with sf.SoundFile(str(path), "w", samplerate=sr, channels=1, format="MP3", subtype="MPEG_LAYER_III",
                      compression_level=0.5, bitrate_mode="VARIABLE") as handle:
        handle.write(audio)


def _cover_art_mp3(path: Path, audio: np.ndarray, sr: int, seed: int) -> None:
    from mutagen.id3 import APIC, ID3, TIT2, TPE1

    _write(path, audio, sr)
    tags = ID3()
    tags.add(TIT2(encoding=3, text=["A title"]))
    tags.add(TPE1(encoding=3, text=["An artist"]))
    picture = b"\xff\xd8\xff\xe0" + np.random.default_rng(seed).bytes(COVER_BYTES)  # a "JPEG" of noise
    tags.add(APIC(encoding=3, mime="image/jpeg", type=3, desc="cover", data=picture))
    tags.save(str(path))


def build_corpus(root: str | Path) -> Path:
    """Write every file of :data:`EXPECTED` (and the symlink loop) under ``root/mix``; returns that folder."""
    mix = Path(root) / LABEL
    mix.mkdir(parents=True, exist_ok=True)
    (mix / "zero_bytes.mp3").write_bytes(b"")
    whole = _write(mix / "whole.mp3", tone(4.0, 44100, 2, 300.0), 44100)
    data = whole.read_bytes()
    whole.unlink()
    # Cut inside a frame, a little past the middle: the frames before the cut still decode.
    (mix / "truncated_mid_frame.mp3").write_bytes(data[: len(data) // 2 + 137])
    (mix / "random_bytes.mp3").write_bytes(np.random.default_rng(1).bytes(64 * 1024))
    (mix / "text_named.flac").write_text("This is a text file with a .flac name.\n" * 200, encoding="utf-8")
    _cover_art_mp3(mix / "big_id3_cover_art.mp3", tone(3.0, 44100, 2, 440.0), 44100, seed=2)
    _vbr_mp3(mix / "vbr.mp3", tone(3.0, 44100, 1, 520.0), 44100)
    _write(mix / "pcm24.wav", tone(2.0, 48000, 2, 250.0), 48000, "PCM_24")
    _write(mix / "pcm24.flac", tone(2.0, 48000, 2, 260.0), 48000, "PCM_24")
    _write(mix / "float32.wav", tone(2.0, 44100, 2, 270.0), 44100, "FLOAT")
    _write(mix / "mono_8k.wav", tone(2.0, 8000, 1, 280.0), 8000)
    _write(mix / "six_channels_96k.wav", tone(1.0, 96000, 6, 290.0), 96000)
    _write(mix / "blip_0.2s.wav", tone(0.2, 44100, 1, 600.0), 44100)
    _write(mix / "silence_30s.flac", np.zeros(30 * 22050, np.float32), 22050)
    _write(mix / "ünïcödé ñame, with spaces & 'quotes'.ogg", tone(2.0, 44100, 2, 350.0), 44100)
    _write(mix / "sub dir" / "日本語 トラック.wav", tone(1.5, 22050, 1, 370.0), 22050)
    loop = mix / "loop"
    if not loop.is_symlink():
        loop.symlink_to(mix, target_is_directory=True)  # mix/loop/loop/... never ends unless the scan stops it
    return mix


def write_long_wav(path: str | Path, minutes: float, sr: int = 22050, block_seconds: float = 60.0) -> Path:
    """A mono 16-bit WAV of ``minutes`` written block by block (memory stays at one block)."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    block = tone(block_seconds, sr, 1, 200.0)
    total = int(round(minutes * 60 * sr))
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=1, format="WAV", subtype="PCM_16") as handle:
        written = 0
        while written < total:
            n = min(block.size, total - written)
            handle.write(block[:n])
            written += n
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.nasty", description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", help="folder to build the corpus in (created)")
    parser.add_argument("--long", type=float, metavar="MINUTES", help="also write long/long.wav of this length")
    args = parser.parse_args(argv)
    mix = build_corpus(args.dir)
    print(f"{len(EXPECTED)} files in {mix} ({len(OK)} decodable, {len(BROKEN)} broken) and a symlink loop")
    if args.long:
        print(write_long_wav(Path(args.dir) / "long" / "long.wav", args.long))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    raise SystemExit(main())
