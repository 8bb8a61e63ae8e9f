"""Decoding audio files to mono float32 at :data:`SAMPLE_RATE`.

Two maintained decoders sit behind one function:

* **libsndfile** (through ``soundfile``, with mpg123 for mp3) reads wav, flac, ogg,
  opus (Ogg Opus) and mp3.
  It seeks exactly and reads only the frames asked for. Where the shared libmpg123 is
  installed, an mp3 that libsndfile has opened is then read through it directly, mixed to mono
  inside the decoder (:mod:`melodex.audio.mpg123`): the same samples, about 10% less CPU.
* **FFmpeg** (through PyAV) reads everything else (m4a/AAC/ALAC, odd wav codecs) and is the
  fallback when libsndfile refuses a file.

Both run in-process: no process is spawned per file. Downmixing is the mean of the channels
and resampling uses soxr's "HQ" setting, which is what ``librosa.load`` does, so a clip decoded
here matches ``librosa.load(path, sr=22050)`` sample for sample on libsndfile formats.

Bad input never escapes as a decoder's own exception: it becomes an
:class:`~melodex.errors.AudioLoadError` that names the file and the reason.
"""

from __future__ import annotations

import io
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import av
import numpy as np
import soundfile as sf
import soxr

from melodex.audio import mpg123
from melodex.audio.av_frames import frame_to_mono, mp4_samples
from melodex.audio.chatter import decoder_chatter
from melodex.constants import SAMPLE_RATE
from melodex.errors import AudioLoadError

log = logging.getLogger(__name__)

# Formats libsndfile decodes well; the rest go straight to FFmpeg.
_SNDFILE_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".opus", ".mp3"})
_BLOCK_SECONDS = 10.0  # native-rate block size when streaming a whole file
# an opened file: native rate, its mono blocks, and its length in seconds from libsndfile's header
_Opened = tuple[int, Iterator[np.ndarray], float | None]


@dataclass(frozen=True)
class AudioBytes:
    """A whole audio file held in memory (read from object storage, say), decoded like a file.

    :func:`load_audio`, :func:`stream_audio` and :func:`probe_duration` take it wherever they
    take a path; ``name`` (a URI) is what errors name and what ``str()`` gives, and its
    extension picks the decoder as a file's does. Failures carry the reasons a file's would.
    """

    name: str
    data: bytes

    def __str__(self) -> str:
        return self.name


def load_audio(
    path: str | Path | AudioBytes,
    *,
    duration: float | None = None,
    sr: int = SAMPLE_RATE,
) -> np.ndarray:
    """Decode ``path`` to mono float32 at ``sr`` Hz.

    Parameters
    ----------
    path : str or Path
        An audio file in any format libsndfile or FFmpeg reads.
    duration : float, optional
        Decode at most this many seconds from the start; the rest of the file is not decoded.
    sr : int
        Target sample rate in Hz.

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float32]
        The samples, NaN and infinity replaced by 0. ``n`` may be less than
        ``duration * sr`` for a short file; it is never 0.

    Raises
    ------
    AudioLoadError
        The file is missing, unreadable, not audio, or holds no samples.
    """
    return load_audio_and_length(path, duration=duration, sr=sr)[0]


def load_audio_and_length(path: str | Path | AudioBytes, *, duration: float | None = None,
                          sr: int = SAMPLE_RATE) -> tuple[np.ndarray, float | None]:
    """:func:`load_audio`, and the file's length in seconds from its header as
    :func:`probe_duration` reads it (None when the decoder gives none), without a second open."""
    native_sr, blocks, length = _open_blocks(path, duration=duration)
    parts = list(blocks)
    audio = parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if audio.size == 0:
        raise AudioLoadError(path, "the file holds no audio samples")
    return _finish(_resample(audio, native_sr, sr)), length


def stream_audio(path: str | Path | AudioBytes, *, sr: int = SAMPLE_RATE) -> Iterator[np.ndarray]:
    """Decode a whole file block by block, yielding mono float32 chunks at ``sr`` Hz.

    Memory stays bounded by the block size (about ten seconds of audio) however long the
    file is. The resampler keeps its state across blocks, so the concatenated chunks equal a
    one-shot decode up to the resampler's edge effects at the very end.

    Raises
    ------
    AudioLoadError
        As :func:`load_audio`; raised before the first chunk when the file cannot be opened.
    """
    native_sr, blocks, _ = _open_blocks(path, duration=None)
    return _stream(path, native_sr, blocks, sr)


def _stream(path, native_sr: int, blocks: Iterator[np.ndarray], sr: int) -> Iterator[np.ndarray]:
    total = 0
    if native_sr == sr:
        for block in blocks:
            total += block.size
            yield _finish(block)
    else:
        resampler = soxr.ResampleStream(native_sr, sr, 1, dtype="float32", quality="HQ")
        for block in blocks:
            total += block.size
            out = resampler.resample_chunk(block, last=False)
            if out.size:
                yield _finish(out)
        out = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
        if out.size:
            yield _finish(out)
    if total == 0:
        raise AudioLoadError(path, "the file holds no audio samples")


def _finish(audio: np.ndarray) -> np.ndarray:
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    # The sum of squares is NaN or infinite whenever a sample is; a huge finite sample can
    # overflow it too, which only costs a needless pass below (finite samples stay as they
    # are). One BLAS dot is ~5x cheaper than a float64 sum and ~1.3x than np.isfinite().all().
    if not math.isfinite(float(np.dot(audio, audio))):
        audio = np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)
    return audio


def _resample(audio: np.ndarray, native_sr: int, sr: int) -> np.ndarray:
    if native_sr == sr:
        return audio

    return soxr.resample(audio, native_sr, sr, quality="HQ")


def _open_blocks(path: str | Path | AudioBytes, *, duration: float | None) -> _Opened:
    """Open ``path`` with the best decoder: its native rate, a block iterator, its header's length."""
    if isinstance(path, AudioBytes):
        return _open_bytes(path, duration)
    path = Path(path)
    if not path.exists():
        raise AudioLoadError(path, "no such file")
    if path.is_dir():
        raise AudioLoadError(path, "is a directory, not an audio file")
    if not os.access(path, os.R_OK):
        raise AudioLoadError(path, "permission denied")
    try:
        if path.stat().st_size == 0:
            raise AudioLoadError(path, "the file is empty (0 bytes)")
    except OSError as exc:
        raise AudioLoadError(path, exc.strerror or str(exc)) from None
    reasons = []
    if path.suffix.lower() in _SNDFILE_EXTENSIONS:
        try:
            return _sndfile_blocks(path, duration)
        except AudioLoadError as exc:
            reasons.append(f"libsndfile: {exc.reason}")
    try:
        return _ffmpeg_blocks(path, duration)
    except AudioLoadError as exc:
        reasons.append(f"ffmpeg: {exc.reason}")
    raise AudioLoadError(path, "cannot decode (" + "; ".join(reasons) + ")")


def _open_bytes(audio: AudioBytes, duration: float | None) -> _Opened:
    """:func:`_open_blocks` for a file held in memory: the same decoders, read from a buffer."""
    if not audio.data:
        raise AudioLoadError(audio.name, "the file is empty (0 bytes)")
    reasons = []
    suffix = Path(urlsplit(audio.name).path).suffix.lower()
    if suffix in _SNDFILE_EXTENSIONS:
        try:
            return _sndfile_blocks(audio.name, duration, io.BytesIO(audio.data))
        except AudioLoadError as exc:
            # a file's mp3 decoder says "not recognised as audio" (see _clean_reason); say the same
            same = "not recognised as audio" if suffix == ".mp3" and exc.reason.startswith("Format not recog") \
                else exc.reason
            reasons.append(f"libsndfile: {same}")
    try:
        return _ffmpeg_blocks(audio.name, duration, io.BytesIO(audio.data))
    except AudioLoadError as exc:
        reasons.append(f"ffmpeg: {exc.reason}")
    raise AudioLoadError(audio.name, "cannot decode (" + "; ".join(reasons) + ")")


def _sndfile_blocks(path: Path | str, duration: float | None,
                    source: io.BytesIO | None = None) -> _Opened:
    try:
        with decoder_chatter(path):
            # bytes: names that are not valid UTF-8 open too; ``source``: a file held in memory
            handle = sf.SoundFile(os.fsencode(path) if source is None else source)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError or TypeError
        raise AudioLoadError(path, _clean_reason(exc)) from None
    native_sr = handle.samplerate
    if native_sr <= 0 or handle.channels <= 0:
        handle.close()
        raise AudioLoadError(path, "invalid sample rate or channel count in the header")
    length = handle.frames / native_sr if handle.frames > 0 else None  # what probe_duration reads
    limit = None if duration is None else int(math.ceil(duration * native_sr))
    # A bounded read happens in one go (no concatenation); a whole file in ~10-s blocks.
    block = limit if limit is not None else int(_BLOCK_SECONDS * native_sr)
    # libsndfile has vetted the file; libmpg123 mixes mp3 to mono itself where it is installed.
    reader = _mpg123_reader(path, native_sr) if handle.format == "MP3" and handle.channels <= 2 else None
    if reader is not None:
        # libsndfile stops at the length it read from the header; so does this path
        if handle.frames > 0 and (limit is None or handle.frames < limit):
            limit = handle.frames
        handle.close()
        return native_sr, _checked_first(path, _mono_blocks(path, reader, block, limit)), length
    return native_sr, _checked_first(path, _sndfile_read_blocks(path, handle, block, limit)), length


def _sndfile_read_blocks(path: Path, handle: sf.SoundFile, block: int, limit: int | None) -> Iterator[np.ndarray]:
    remaining = limit
    with handle:
        while remaining is None or remaining > 0:
            want = block if remaining is None else min(block, remaining)
            try:
                with decoder_chatter(path):
                    data = _read_float(handle, want)
            except Exception as exc:
                raise AudioLoadError(path, f"decoding failed: {_clean_reason(exc)}") from None
            if data.shape[0] == 0:
                break
            yield _downmix(data)
            if remaining is not None:
                remaining -= data.shape[0]
            if data.shape[0] < want:
                break


def _read_float(handle: sf.SoundFile, frames: int) -> np.ndarray:
    """Up to ``frames`` frames [shape=(n, channels), float32] from the current position.

    ``SoundFile.read`` calls ``tell()`` before and ``seek()`` after every read to track the
    position; for mp3 each is a real libmpg123 seek, which restarts decoding without the bit
    reservoir: ~5,000 wrong samples after every block of a whole-file read. So libsndfile's
    ``sf_readf_float`` is called directly (through soundfile's own cffi handle).
    """
    out = np.empty((frames, handle.channels), np.float32)
    try:
        lib, ffi, file = sf._snd, sf._ffi, handle._file
    except AttributeError:  # a soundfile without these internals: its read, seeks and all
        return handle.read(frames=frames, dtype="float32", always_2d=True)
    got = lib.sf_readf_float(file, ffi.cast("float *", out.ctypes.data), frames)
    if lib.sf_error(file):
        raise RuntimeError(ffi.string(lib.sf_strerror(file)).decode("utf-8", "replace"))
    return out[:got]


def _mpg123_reader(path: Path, native_sr: int) -> mpg123.MonoReader | None:
    """libmpg123 opened on ``path`` for mono reading; None (use libsndfile) when it cannot be."""
    if not mpg123.available():
        return None
    with decoder_chatter(path):
        reader = mpg123.open_mono(path)
    if reader is not None and reader.samplerate != native_sr:  # never expected: both parse the same header
        reader.close()
        return None
    return reader


def _mono_blocks(path: Path, reader: mpg123.MonoReader, block: int, limit: int | None) -> Iterator[np.ndarray]:
    """What :func:`_sndfile_read_blocks` yields, read already mixed to mono by libmpg123."""
    remaining = limit
    with reader:
        while remaining is None or remaining > 0:
            want = block if remaining is None else min(block, remaining)
            with decoder_chatter(path):
                data = reader.read(want)
            if data.size == 0:
                break
            yield data
            if remaining is not None:
                remaining -= data.size
            if data.size < want:
                break


def _ffmpeg_blocks(path: Path | str, duration: float | None,
                   source: io.BytesIO | None = None) -> _Opened:
    try:
        container = av.open(str(path) if source is None else source, metadata_errors="ignore")
    except Exception as exc:  # av.error.* all derive from OSError/ValueError
        raise AudioLoadError(path, _clean_reason(exc)) from None
    if not container.streams.audio:
        container.close()
        raise AudioLoadError(path, "no audio stream in the file")
    stream = container.streams.audio[0]
    native_sr = stream.codec_context.sample_rate or stream.rate or 0
    if native_sr <= 0:
        container.close()
        raise AudioLoadError(path, "the audio stream has no sample rate")
    limit = None if duration is None else int(math.ceil(duration * native_sr))
    declared = mp4_samples(container, stream, native_sr)
    if declared is not None and (limit is None or declared < limit):
        limit = declared  # the encoder's padding after the last sample (up to a frame of AAC)

    def blocks() -> Iterator[np.ndarray]:
        got = 0
        bad_packets = 0
        pending: list[np.ndarray] = []
        pending_n = 0
        block = int(_BLOCK_SECONDS * native_sr)
        with container:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.FFmpegError:
                    bad_packets += 1
                    if bad_packets > 100 and got == 0:
                        raise AudioLoadError(path, "no decodable audio packets") from None
                    continue
                for frame in frames:
                    mono = frame_to_mono(frame)
                    if limit is not None and got + mono.size > limit:
                        mono = mono[: limit - got]
                    got += mono.size
                    pending.append(mono)
                    pending_n += mono.size
                    if pending_n >= block:
                        yield np.concatenate(pending)
                        pending, pending_n = [], 0
                    if limit is not None and got >= limit:
                        break
                if limit is not None and got >= limit:
                    break
        if pending:
            yield np.concatenate(pending)

    return native_sr, _checked_first(path, blocks()), None  # probe_duration asks FFmpeg


def _checked_first(path: Path, blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """Decode the first block now so that an undecodable file fails at open time."""
    try:
        first = next(blocks)
    except StopIteration:
        raise AudioLoadError(path, "the file holds no audio samples") from None

    def chain() -> Iterator[np.ndarray]:
        yield first
        yield from blocks

    return chain()


def _downmix(data: np.ndarray) -> np.ndarray:
    """(frames, channels) -> (frames,), the mean of the channels."""
    if data.shape[1] == 1:
        return data[:, 0].copy()
    if data.shape[1] == 2:  # the common case, far faster than a strided mean
        return (data[:, 0] + data[:, 1]) * np.float32(0.5)
    return data.mean(axis=1, dtype=np.float32)


def _clean_reason(exc: BaseException) -> str:
    strerror = getattr(exc, "strerror", None)  # FFmpeg: "[Errno N] reason: '<path>'" -> reason
    if isinstance(strerror, str) and strerror.strip():
        return " ".join(strerror.split())
    text = str(exc).strip() or type(exc).__name__
    # libsndfile prefixes messages with "Error opening '<path>': "; the path is said once already.
    if text.startswith("Error opening"):
        text = text.split(": ", 1)[-1]
    # mpg123 through libsndfile says this of any existing file it cannot parse as mp3
    if text.startswith("File does not exist or is not a regular file"):
        text = "not recognised as audio"
    return " ".join(text.split())


def probe_duration(path: Path | AudioBytes) -> float | None:
    """The file's length in seconds from its header, without decoding; None if unknown."""
    if isinstance(path, AudioBytes):
        return _probe_bytes(path)
    try:
        info = sf.info(os.fsencode(path))
        if info.samplerate > 0 and info.frames > 0:
            return info.frames / info.samplerate
    except Exception:  # not a libsndfile format: ask FFmpeg
        pass
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if container.duration:
                return container.duration / 1_000_000  # AV_TIME_BASE
    except Exception:
        pass
    return None


def _probe_bytes(audio: AudioBytes) -> float | None:
    try:
        with sf.SoundFile(io.BytesIO(audio.data)) as handle:
            if handle.samplerate > 0 and handle.frames > 0:
                return handle.frames / handle.samplerate
    except Exception:  # not a libsndfile format: ask FFmpeg
        pass
    try:
        with av.open(io.BytesIO(audio.data), metadata_errors="ignore") as container:
            if container.duration:
                return container.duration / 1_000_000  # AV_TIME_BASE
    except Exception:
        pass
    return None
