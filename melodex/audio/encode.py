"""Writing audio files: used by the demo corpus generator, the tests' fixtures, training's codec
augmentation and the robustness benchmark.

wav, flac, ogg (Vorbis) and mp3 go through libsndfile; m4a (AAC) through FFmpeg. The extension,
in any letter case, picks the format. :data:`CODECS` names the lossy versions a library holds
(mp3 128k, ogg q4, aac, 22.05 kHz mono mp3 48k, ...): :func:`encode` writes one, :func:`roundtrip`
passes audio through one in memory.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf
import soxr

_SNDFILE = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS"),
           ".opus": ("OGG", "OPUS"), ".mp3": ("MP3", "MPEG_LAYER_III")}


def write_audio(path: str | Path, audio: np.ndarray, sr: int, *, subtype: str | None = None) -> Path:
    """Write ``audio`` [shape=(n,) or (n, channels)], float in [-1, 1], at ``sr`` Hz to ``path``.

    ``subtype`` overrides libsndfile's sample format (e.g. ``"PCM_24"``, ``"FLOAT"``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower()
    audio = np.asarray(audio, dtype=np.float32)
    if ext in _SNDFILE:
        fmt, default_subtype = _SNDFILE[ext]
        sf.write(str(path), audio, sr, format=fmt, subtype=subtype or default_subtype)
    elif ext == ".m4a":
        _write_aac(path, audio, sr)
    else:
        raise ValueError(f"{path}: cannot write {ext or 'extensionless'} files")
    return path


def _write_aac(path: Path, audio: np.ndarray, sr: int) -> None:
    encode_with_ffmpeg(str(path), audio, sr, container_format="mp4", codec="aac")


def encode_with_ffmpeg(target, audio: np.ndarray, sr: int, *, container_format: str, codec: str,
                       bit_rate: int | None = None, options: dict[str, str] | None = None) -> None:
    """Encode ``audio`` [shape=(n,) or (n, channels)] with FFmpeg's ``codec`` into ``target``.

    ``target`` is a path or a writable binary file object (e.g. from ``atomic_write``).

    The frame is stamped (pts 0 in samples), so the encoder's delay reaches the container as it
    does from the ``ffmpeg`` tool: AAC's 1024 priming samples become an MP4 edit list, and a
    decoder drops them. Unstamped, the file started with them and every decode of it (and
    :func:`roundtrip` through AAC) came out 1024 samples late.
    """

    audio = np.asarray(audio, dtype=np.float32)
    channels = 1 if audio.ndim == 1 else audio.shape[1]
    layout = "mono" if channels == 1 else "stereo"
    planar = np.ascontiguousarray(np.atleast_2d(audio) if audio.ndim == 1 else audio.T)
    with av.open(target, "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=sr, layout=layout)
        if bit_rate is not None:
            stream.bit_rate = bit_rate
        if options:
            stream.codec_context.options = options
        frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=layout)
        frame.sample_rate = sr
        frame.pts, frame.time_base = 0, Fraction(1, sr)
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


@dataclass(frozen=True)
class Lossy:
    """One way to encode audio: a container and codec, at a bit rate or a Vorbis quality.

    ``vorbis_quality`` is Vorbis's 0-10 scale (``ffmpeg -q:a``); ffmpeg's default for libvorbis is 3.
    ``sample_rate`` and ``mono``, when set, convert the audio first (as an old library's files were
    made); otherwise the source's rate and channels are kept.
    """

    extension: str
    codec: str | None = None  # FFmpeg's encoder; None: libsndfile by extension
    bit_rate: int | None = None
    vorbis_quality: float | None = None
    sample_rate: int | None = None
    mono: bool = False


# The versions of a clip that libraries hold: the benchmark encodes each; training re-encodes
# some clips through the low-rate ones (TRAINING_CODECS).
CODECS: dict[str, Lossy] = {
    "flac": Lossy(".flac"),
    "mp3-128k": Lossy(".mp3", "libmp3lame", bit_rate=128_000),
    "ogg-q4": Lossy(".ogg", vorbis_quality=4),
    "aac-128k": Lossy(".m4a", "aac", bit_rate=128_000),
    "mp3-48k-22k-mono": Lossy(".mp3", "libmp3lame", bit_rate=48_000, sample_rate=22050, mono=True),
    "ogg-default-22k-mono": Lossy(".ogg", vorbis_quality=3, sample_rate=22050, mono=True),
    "aac-64k": Lossy(".m4a", "aac", bit_rate=64_000),
}
TRAINING_CODECS = ("mp3-48k-22k-mono", "ogg-default-22k-mono", "aac-64k")


def encode(target, audio: np.ndarray, sr: int, name: str) -> None:
    """Encode ``audio`` [shape=(n,) or (n, channels)] at ``sr`` Hz as ``CODECS[name]`` into ``target``
    (a path or a writable binary file). Raises ``KeyError`` for an unknown name."""
    spec = CODECS[name]
    audio, sr = _conform(np.asarray(audio, dtype=np.float32), sr, spec)
    if spec.codec is not None:
        container = "mp4" if spec.extension == ".m4a" else spec.extension.lstrip(".")
        encode_with_ffmpeg(target, audio, sr, container_format=container, codec=spec.codec, bit_rate=spec.bit_rate)
        return
    fmt, subtype = _SNDFILE[spec.extension]
    extra = {} if spec.vorbis_quality is None else {"compression_level": 1.0 - spec.vorbis_quality / 10.0}
    sf.write(target, np.clip(audio, -1.0, 1.0), sr, format=fmt, subtype=subtype, **extra)


def roundtrip(audio: np.ndarray, sr: int, name: str) -> np.ndarray:
    """``audio`` [shape=(n,)] at ``sr`` Hz encoded as ``CODECS[name]`` in memory and decoded back to
    ``sr`` Hz: shape ``(n,)`` float32, the codec's delay and padding cut to the original length."""
    buffer = io.BytesIO()
    encode(buffer, audio, sr, name)
    buffer.seek(0)
    with av.open(buffer) as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        parts = [frame.to_ndarray().reshape(frame.layout.nb_channels if frame.format.is_planar else 1, -1)
                 for frame in container.decode(stream)]
    decoded = np.concatenate(parts, axis=-1).mean(axis=0).astype(np.float32)
    if rate != sr:
        decoded = soxr.resample(decoded, rate, sr).astype(np.float32)
    n = audio.shape[0]
    return decoded[:n] if decoded.shape[0] >= n else np.pad(decoded, (0, n - decoded.shape[0]))


def _conform(audio: np.ndarray, sr: int, spec: Lossy) -> tuple[np.ndarray, int]:
    if spec.mono and audio.ndim == 2:
        audio = audio.mean(axis=1)
    if spec.sample_rate is not None and spec.sample_rate != sr:
        audio = soxr.resample(audio, sr, spec.sample_rate).astype(np.float32)
        sr = spec.sample_rate
    return audio, sr
