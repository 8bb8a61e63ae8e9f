"""Writing audio files: used by the demo corpus generator and by the tests' fixtures.

wav, flac, ogg (Vorbis) and mp3 go through libsndfile; m4a (AAC) through FFmpeg. The extension,
in any letter case, picks the format.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import soundfile as sf

_SNDFILE = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS"), ".mp3": ("MP3", "MPEG_LAYER_III")}


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
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
