"""Training augmentation: what makes an embedding stay put when a clip is re-encoded.

Old libraries hold 22.05 kHz mono mp3s at 48 kbit/s and Vorbis at low quality: their codecs cut
everything above 7-11 kHz, and with a per-segment floor (``top_db`` below the maximum) those mel
bands drop from music to the floor, which moves an MFCC a long way. So training shows the model
clips that went through what such files went through:

* **crop** the segment start by a random 0 to ``crop_seconds`` (codecs shift audio by their
  delay, and a model should not care which frame grid a clip falls on);
* **low-pass** at a random cutoff in ``lowpass_hz`` (a steep FFT-domain cut, as a codec's
  low-pass is), with probability ``lowpass_prob``;
* **codec**: re-encode through one of ``codecs`` (see :data:`melodex.audio.encode.CODECS`),
  with probability ``codec_prob``;
* **noise**: white noise at a random ``noise_snr_db`` below the clip, with probability ``noise_prob``;
* **gain**: a random level change within +-``gain_db``.

After each augmented epoch, with ``clean_batchnorm``, the BatchNorm statistics are re-estimated on
the clean training clips with dropout off (:func:`melodex.training.variants.clean_batchnorm`): the
model is validated, kept and used on clips as they come, not on the augmented mixture it trained on.

The schedule: the first ``clean_epochs`` epochs train on the clean clips alone (a warm-up, exactly
as ``--no-augment`` trains them); from then on each item is one of its clip's variants with
probability ``prob``, and the model kept is the best on validation among the augmented epochs
only. A genre run's default (:data:`DEFAULT_AUGMENT`) is 4 clean epochs, then ``prob`` 0.5. On the
default demo (12 epochs, training seeds 0-4, ``OMP_NUM_THREADS=1``) the test split's 42 clips came
out right 205 times of 210 with it, as without augmentation (205), against 202 with ``prob`` 0.7 and
no warm-up, 202 with the warm-up at 0.7 and 201 at 0.5 without it (default threads: 203, against 205
without augmentation and 201 with ``prob`` 0.7 and no warm-up): differences of a clip or two, always
on the clips that mix two styles about 2:1. Robustness (``bench_robustness.py``, the 42
test clips) is that of ``prob`` 0.7 without the warm-up: mean cosine between versions 0.995-0.997
for every seed, nearest neighbour the same clip for >= 99.6% of files; the lowest cosine (one
clip's low-rate ogg) varies with the seed, 0.83-0.97 (0.90-0.97 without the warm-up), 0.96 for seed 0.
These figures date from when the AAC views came out 1024 samples late (a shift within the crop's).

The first four need the waveform; they make ``variants`` MFCCs per training clip once (see
:mod:`melodex.training.variants`). Gain is applied to the MFCC itself, where it is exact: a level
change of ``g`` dB adds ``g`` to every log-mel value and moves the ``top_db`` floor with them, so only
``c0`` changes, by ``g`` times the DCT's first row sum (:func:`gain_mfcc`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from melodex.audio.encode import CODECS, TRAINING_CODECS, roundtrip
from melodex.features.mfcc import FeatureConfig, dct_matrix
from melodex.util.settings import known_fields


@dataclass(frozen=True)
class AugmentConfig:
    """The augmentation of a training run; recorded in its ``params.json``."""

    variants: int = 4  # augmented MFCCs made once per training clip
    prob: float = 0.7  # chance that a training item is an augmented variant rather than the clean clip
    crop_seconds: float = 1.0
    lowpass_hz: tuple[float, float] = (4000.0, 11000.0)
    lowpass_prob: float = 0.6
    codecs: tuple[str, ...] = TRAINING_CODECS
    codec_prob: float = 0.3
    noise_snr_db: tuple[float, float] = (30.0, 50.0)
    noise_prob: float = 0.5
    gain_db: float = 6.0
    clean_batchnorm: bool = True  # validate and keep the model with BatchNorm statistics of clean clips
    clean_epochs: int = 0  # epochs trained on clean clips alone before augmentation starts (a warm-up)

    def __post_init__(self):
        if self.clean_epochs < 0:
            raise ValueError(f"clean_epochs must be 0 or more, not {self.clean_epochs}")
        unknown = [c for c in self.codecs if c not in CODECS]
        if unknown:
            raise ValueError(f"unknown codecs {unknown}; known: {sorted(CODECS)}")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AugmentConfig:
        """The settings ``to_dict`` wrote; a field missing from an older record takes its field
        default, which is what runs did before the field existed."""
        fields = known_fields(cls, data, "augmentation settings")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})

    @classmethod
    def recorded(cls, section: dict[str, Any]) -> AugmentConfig | None:
        """The settings of a run's ``params.json`` ``augmentation`` section (which also says whether it
        was on and what its variant bank held); None when it records none."""
        settings = {k: v for k, v in section.items() if k not in RUN_RECORD}
        return cls.from_dict(settings) if settings else None

    def augments(self, epoch: int) -> bool:
        """Whether training epoch ``epoch`` (from 1) shows augmented clips (after the clean warm-up)."""
        return epoch > self.clean_epochs


# A genre run's default (the module docstring gives the measurements); contrastive runs keep the
# settings they were measured with, the field defaults, which are also what a run recorded before a
# field existed did.
DEFAULT_AUGMENT = AugmentConfig(prob=0.5, clean_epochs=4)
CONTRASTIVE_AUGMENT = AugmentConfig()
RUN_RECORD = ("enabled", "bank_dir", "clips", "made", "kept", "failed", "seconds")  # beside the settings in params.json


def lowpass(audio: np.ndarray, sr: int, cutoff_hz: float) -> np.ndarray:
    """``audio`` [shape=(n,)] with every frequency above ``cutoff_hz`` removed (a brick-wall cut
    in the FFT domain, 0 from the cutoff up); float32, same shape."""
    spectrum = np.fft.rfft(audio.astype(np.float64))
    freqs = np.fft.rfftfreq(audio.shape[-1], d=1.0 / sr)
    spectrum[freqs >= cutoff_hz] = 0.0
    return np.fft.irfft(spectrum, n=audio.shape[-1]).astype(np.float32)


def add_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``audio`` plus white noise ``snr_db`` below its RMS level (nothing added to silence)."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    noise = rng.standard_normal(audio.shape) * (rms * 10.0 ** (-snr_db / 20.0))
    return (audio + noise).astype(np.float32)


def crop_start(audio: np.ndarray, offset: int, length: int) -> np.ndarray:
    """``length`` samples of ``audio`` from ``offset`` on, zero-padded at the end when it runs out."""
    out = np.zeros(length, dtype=np.float32)
    piece = audio[offset: offset + length]
    out[: piece.shape[0]] = piece
    return out


def gain_mfcc(mfcc: np.ndarray, gain_db: float, features: FeatureConfig) -> np.ndarray:
    """The MFCC [shape=(n_mfcc, n_frames)] of the same audio ``gain_db`` louder (exact while the
    quietest kept mel value is above ``amin``, i.e. always but for near-digital silence)."""
    shift = dct_matrix(features.n_mels, features.n_mfcc).sum(axis=1) * gain_db
    return (mfcc + shift[:, None].astype(mfcc.dtype)).astype(mfcc.dtype)


def augment_waveform(audio: np.ndarray, sr: int, length: int, config: AugmentConfig,
                     rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """One random augmentation of ``audio`` (the clip's first ``length`` samples and up to
    ``crop_seconds`` more): crop, low-pass, codec and noise, each drawn from ``rng``.

    Returns the augmented segment [shape=(length,), float32] and what was done to it.
    """
    done: dict[str, Any] = {}
    spare = max(0, min(audio.shape[0] - length, int(config.crop_seconds * sr)))
    done["offset_s"] = (offset := int(rng.integers(0, spare + 1))) / sr
    segment = crop_start(audio, offset, length)
    real = max(1, min(length, audio.shape[0] - offset))  # the rest is padding: leave it silent
    if rng.random() < config.lowpass_prob:
        done["lowpass_hz"] = float(rng.uniform(*config.lowpass_hz))
        segment[:real] = lowpass(segment[:real], sr, done["lowpass_hz"])
    if config.codecs and rng.random() < config.codec_prob:
        done["codec"] = config.codecs[int(rng.integers(len(config.codecs)))]
        segment[:real] = roundtrip(segment[:real], sr, done["codec"])
    if rng.random() < config.noise_prob:
        done["snr_db"] = float(rng.uniform(*config.noise_snr_db))
        segment[:real] = add_noise(segment[:real], done["snr_db"], rng)
    return segment, done
