"""mp3 through libmpg123's own mono mix: the same samples, reasons and results as libsndfile's
stereo decode averaged in numpy, and the libsndfile path wherever libmpg123 is absent."""

from __future__ import annotations

import ctypes.util
import json

import numpy as np
import pytest
import soundfile as sf

from melodex.audio import mpg123
from melodex.audio.decode import load_audio, stream_audio
from melodex.cli import main
from melodex.errors import AudioLoadError
from tests.nasty import EXPECTED, build_corpus

needs_mpg123 = pytest.mark.skipif(not mpg123.available(), reason="libmpg123 is not installed here")


@pytest.fixture
def decoder(monkeypatch):
    """``decoder("mpg123" | "libsndfile")`` chooses how this process (and workers it forks) read mp3."""

    def choose(which: str) -> None:
        monkeypatch.setenv(mpg123.DISABLE_ENV, "1" if which == "libsndfile" else "0")
        mpg123._library.cache_clear()

    yield choose
    monkeypatch.delenv(mpg123.DISABLE_ENV, raising=False)
    mpg123._library.cache_clear()


def _decode_all(path, full: bool):
    try:
        return np.concatenate(list(stream_audio(path))) if full else load_audio(path, duration=20.0)
    except AudioLoadError as exc:
        return exc.reason


@needs_mpg123
@pytest.mark.parametrize("channels", [1, 2])
def test_mono_mix_equals_decode_then_average(make_audio, channels):
    path = make_audio(f"mix{channels}.mp3", seconds=6.0, channels=channels)
    with sf.SoundFile(path) as f:
        decoded = f.read(dtype="float32", always_2d=True)
    reader = mpg123.open_mono(path)
    assert reader is not None and reader.samplerate == 44100
    with reader:
        mixed = reader.read(decoded.shape[0] + 5000)  # asks past the end: gets exactly the file
        assert reader.read(100).size == 0
    assert mixed.dtype == np.float32 and mixed.shape == (decoded.shape[0],)
    np.testing.assert_allclose(mixed, decoded.mean(axis=1), rtol=0, atol=1e-5)


@needs_mpg123
@pytest.mark.parametrize("full", [False, True], ids=["first-20s", "streamed"])
def test_load_and_stream_agree_with_the_libsndfile_path(make_audio, decoder, full):
    path = make_audio("long.mp3", seconds=25.0)  # streaming spans 10-s blocks
    decoder("mpg123")
    fast = _decode_all(path, full)
    decoder("libsndfile")
    reference = _decode_all(path, full)
    assert fast.shape == reference.shape
    np.testing.assert_allclose(fast, reference, rtol=0, atol=1e-5)


@needs_mpg123
def test_nasty_files_give_the_same_samples_and_reasons(tmp_path, decoder):
    mix = build_corpus(tmp_path)
    for name in EXPECTED:
        got = {}
        for which in ("mpg123", "libsndfile"):
            decoder(which)
            got[which] = _decode_all(mix / name, full=False)
        fast, reference = got["mpg123"], got["libsndfile"]
        if isinstance(reference, str):
            assert fast == reference, name
        else:
            assert fast.shape == reference.shape, name
            np.testing.assert_allclose(fast, reference, rtol=0, atol=1e-5, err_msg=name)


def test_without_libmpg123_mp3_decodes_through_libsndfile(make_audio, monkeypatch):
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    mpg123._library.cache_clear()
    try:
        assert not mpg123.available()
        path = make_audio("plain.mp3", seconds=3.0)
        assert mpg123.open_mono(path) is None
        audio = load_audio(path)
        assert audio.dtype == np.float32 and abs(audio.size / 22050 - 3.0) < 0.1
    finally:
        monkeypatch.undo()
        mpg123._library.cache_clear()


def _infer(checkpoint, folder, out) -> dict[str, dict]:
    assert main(["infer", "--model", str(checkpoint), "--audio", str(folder), "--output", str(out),
                 "--num-workers", "2", "-q"]) == 0
    return {row["audio_file"]: row for row in map(json.loads, out.read_text().splitlines())}


@needs_mpg123
def test_infer_gives_the_same_results_with_and_without_libmpg123(tiny_checkpoint, make_audio, tmp_path, decoder):
    for i, seconds in enumerate((35.0, 8.0, 31.0)):
        make_audio(f"songs/{i}.mp3", seconds=seconds, freq=220.0 * (i + 1))
    decoder("mpg123")
    fast = _infer(tiny_checkpoint, tmp_path / "songs", tmp_path / "fast.jsonl")
    decoder("libsndfile")
    reference = _infer(tiny_checkpoint, tmp_path / "songs", tmp_path / "reference.jsonl")
    assert fast.keys() == reference.keys() and len(fast) == 3
    for name, row in reference.items():
        assert fast[name]["duration"] == row["duration"]
        np.testing.assert_allclose(fast[name]["embedding"], row["embedding"], rtol=0, atol=1e-4)
        np.testing.assert_allclose(fast[name]["global_prediction"]["probabilities"],
                                   row["global_prediction"]["probabilities"], rtol=0, atol=1e-4)


@pytest.mark.parametrize("which", ["mpg123", "libsndfile"])
def test_whole_file_blocks_join_without_a_seam(tmp_path, decoder, which):
    """Reading an mp3 in 10-s blocks gives the samples of one read. (soundfile's read() asks
    tell() first, which for mp3 is a libmpg123 seek: a pure tone, whose frames lean on the bit
    reservoir, came back with ~5,000 wrong samples after each block boundary.)"""
    if which == "mpg123" and not mpg123.available():
        pytest.skip("libmpg123 is not installed here")
    from melodex.audio.encode import write_audio

    t = np.arange(25 * 44100) / 44100
    path = write_audio(tmp_path / "sine.mp3", np.stack([0.3 * np.sin(2 * np.pi * 330 * t)] * 2, axis=1)
                       .astype(np.float32), 44100)
    with sf.SoundFile(path) as f:
        one_read = f.read(dtype="float32", always_2d=True).mean(axis=1)
    decoder(which)
    from melodex.audio.decode import _open_blocks

    native_sr, blocks, length = _open_blocks(path, duration=None)
    joined = np.concatenate(list(blocks))
    assert native_sr == 44100 and joined.shape == one_read.shape
    assert length == one_read.shape[0] / 44100  # the header's length, as probe_duration reads it
    np.testing.assert_allclose(joined, one_read, rtol=0, atol=1e-5)


_ID3V2 = b"ID3\x03\x00\x00\x00\x00\x02\x00" + b"\x00" * 256  # a 256-byte ID3v2.3 tag, no frames
_ID3V1 = b"TAG" + b"x" * 125


@needs_mpg123
@pytest.mark.parametrize("shape", ["id3v2 + id3v1", "junk at the end", "cut mid-frame"])
@pytest.mark.parametrize("full", [False, True], ids=["first-20s", "streamed"])
def test_tagged_and_damaged_mp3s_give_the_same_samples(make_audio, tmp_path, decoder, shape, full):
    """libmpg123 is fed the file's bytes in pieces (no seeking, no look at the file's end):
    tags at either end, trailing junk and a truncated last frame decode as libsndfile decodes them."""
    data = make_audio("base.mp3", seconds=22.0).read_bytes()  # > one 256-kB feed
    edited = {"id3v2 + id3v1": _ID3V2 + data + _ID3V1, "junk at the end": data + bytes(range(256)) * 20,
              "cut mid-frame": data[: len(data) * 2 // 3 + 137]}[shape]
    path = tmp_path / "edited.mp3"
    path.write_bytes(edited)
    decoder("mpg123")
    fast = _decode_all(path, full)
    decoder("libsndfile")
    reference = _decode_all(path, full)
    assert isinstance(reference, np.ndarray) and fast.shape == reference.shape
    np.testing.assert_allclose(fast, reference, rtol=0, atol=1e-5)
