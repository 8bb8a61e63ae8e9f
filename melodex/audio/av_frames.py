"""FFmpeg's audio (through PyAV) as :mod:`melodex.audio.decode` reads it: a frame as mono
float32 whatever its sample format and layout, and the length an MP4 track declares."""

from __future__ import annotations

import numpy as np

_INT_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


def frame_to_mono(frame) -> np.ndarray:
    """An FFmpeg audio frame as mono float32, whatever its sample format and layout."""
    data = frame.to_ndarray()
    name = frame.format.name.rstrip("p")
    channels = frame.layout.nb_channels if hasattr(frame.layout, "nb_channels") else len(frame.layout.channels)
    if not frame.format.is_planar and channels > 1:
        data = data.reshape(-1, channels).T
    if name in _INT_SCALE:
        data = data.astype(np.float32)
        if name == "u8":
            data -= 128.0
        data /= _INT_SCALE[name]
    else:
        data = data.astype(np.float32, copy=False)
    return data[0].copy() if data.shape[0] == 1 else data.mean(axis=0, dtype=np.float32)


def mp4_samples(container, stream, native_sr: int) -> int | None:
    """The samples an MP4/M4A audio track declares (its edit list's length: FFmpeg decodes the
    last AAC frame whole, up to 1023 padding samples past it), or None for other containers or
    no declared length."""
    if "mp4" not in (container.format.name or "").split(",") or not stream.duration or not stream.time_base:
        return None
    return round(stream.duration * stream.time_base * native_sr)
