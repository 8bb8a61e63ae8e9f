"""Writing audio files: used by the demo corpus generator and by the tests' fixtures.

wav, flac, ogg (Vorbis) and mp3 go through libsndfile; m4a (AAC) through FFmpeg. The extension,
in any letter case, picks the format.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
        import soundfile as sf

        fmt, default_subtype = _SNDFILE[ext]
        sf.write(str(path), audio, sr, format=fmt, subtype=subtype or default_subtype)
    elif ext == ".m4a":
        _write_aac(path, audio, sr)
    else:
        raise ValueError(f"{path}: cannot write {ext or 'extensionless'} files")
    return path


def _write_aac(path: Path, audio: np.ndarray, sr: int) -> None:
    import av

    channels = 1 if audio.ndim == 1 else audio.shape[1]
    layout = "mono" if channels == 1 else "stereo"
    planar = np.ascontiguousarray(np.atleast_2d(audio) if audio.ndim == 1 else audio.T)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=sr, layout=layout)
        frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=layout)
        frame.sample_rate = sr
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
