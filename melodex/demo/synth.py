"""Synthetic music in five made-up styles, for the demo corpus.

Each style differs from the others in rhythm (tempo, beat pattern, onset density), timbre
(waveforms, harmonics, noise, envelopes) and pitch (register, scale):

================  ========  ==============================================================
style             tempo     character
================  ========  ==============================================================
Synth Pulse       116-130   four-on-the-floor kick, off-beat hats, sawtooth bass + arpeggio
Drone Ambient     56-76     no drums; slow-attack detuned pads over a low drone, sparse bells
Chip Bounce       138-162   square-wave 16th arpeggios in a high register, noise snare on 2/4
Noise Beat        82-100    loud noise breakbeat, saturated, sub bass, crackle bed
Pluck Folk        92-116    plucked-string triplet arpeggios, mid register, no drums
================  ========  ==============================================================

An artist has its own preferred tempo, key and brightness inside its style; each track varies
around them (tempo, key, pattern, levels, seeds), so genre classification is learnable but not
trivial. :func:`render_track` mixes styles with weights (the drifting artist of the demo moves
from one style to another); every layer is normalised to the same loudness before mixing.
Everything is a pure function of the numpy Generator passed in, so a seed fixes the audio.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

_TWO_PI = 2.0 * np.pi
_DULL_TAPS = 8  # length of the moving average that darkens a "dull" recording


@dataclass(frozen=True)
class Style:
    """One synthetic style: its name (the genre label), tempo range (BPM) and register (MIDI)."""

    name: str
    description: str
    tempo: tuple[float, float]
    root: tuple[int, int]  # MIDI note range of the key's root
    scale: tuple[int, ...]  # semitone steps from the root


# ----------------------------------------------------------------------------- building blocks


def midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69.0) / 12.0)


def _partials(kind: str, count: int) -> np.ndarray:
    k = np.arange(1, count + 1, dtype=np.float64)
    if kind == "saw":
        return 1.0 / k
    if kind == "square":
        return np.where(k % 2 == 1, 1.0 / k, 0.0)
    if kind == "triangle":
        sign = np.where((k - 1) % 4 == 0, 1.0, -1.0)
        return np.where(k % 2 == 1, sign / k**2, 0.0)
    return (k == 1).astype(np.float64)  # sine


def _tone(
    freq: float, n: int, sr: int, amps: np.ndarray, decay: np.ndarray | None = None, detune: float = 0.0
) -> np.ndarray:
    """Additive tone [shape=(n,)]: partial k at k*freq with amplitude amps[k-1], band-limited."""
    t = np.arange(n) / sr
    out = np.zeros(n)
    for k, amp in enumerate(amps, start=1):
        fk = freq * k * (1.0 + detune)
        if amp == 0.0:
            continue
        if fk >= 0.45 * sr:
            break
        partial = amp * np.sin(_TWO_PI * fk * t)
        if decay is not None:
            partial *= np.exp(-t * decay[k - 1])
        out += partial
    return out


def _envelope(n: int, sr: int, attack: float, release: float, decay: float | None = None) -> np.ndarray:
    """Linear attack, optional exponential decay (time constant in s), linear release."""
    env = np.ones(n)
    a = min(n, max(1, int(attack * sr)))
    env[:a] = np.linspace(0.0, 1.0, a, endpoint=False)
    if decay is not None:
        env *= np.exp(-np.arange(n) / sr / decay)
    r = min(n, max(1, int(release * sr)))
    env[n - r :] *= np.linspace(1.0, 0.0, r)
    return env


def _add(buf: np.ndarray, start: int, sig: np.ndarray, gain: float = 1.0) -> None:
    if start >= buf.size or start + sig.size <= 0:
        return
    lo = max(0, start)
    hi = min(buf.size, start + sig.size)
    buf[lo:hi] += gain * sig[lo - start : hi - start]


def _kick(sr: int, f0: float = 150.0, f1: float = 45.0, length: float = 0.3) -> np.ndarray:
    n = int(length * sr)
    t = np.arange(n) / sr
    freq = f1 + (f0 - f1) * np.exp(-t / 0.04)
    return np.sin(_TWO_PI * np.cumsum(freq) / sr) * np.exp(-t / 0.09)


def _noise_hit(rng: np.random.Generator, sr: int, length: float, tau: float, bright: bool) -> np.ndarray:
    n = int(length * sr)
    noise = rng.standard_normal(n + 1)
    noise = np.diff(noise) * 0.6 if bright else noise[:n]  # a first difference tilts it toward the highs
    return noise * np.exp(-np.arange(n) / sr / tau)


def _scale_note(style: Style, root: int, degree: int) -> int:
    steps = style.scale
    octave, idx = divmod(degree, len(steps))
    return root + 12 * octave + steps[idx]


# ----------------------------------------------------------------------------- the styles


def _synth_pulse(rng: np.random.Generator, n: int, sr: int, p: Mapping) -> np.ndarray:
    style, beat = STYLES["Synth Pulse"], 60.0 / p["tempo"]
    buf = np.zeros(n)
    kick = _kick(sr)
    hat = _noise_hit(rng, sr, 0.06, 0.015, bright=True)
    saw = _partials("saw", p["harmonics"])
    pattern = rng.integers(0, 5, size=8)
    length = int(beat * sr / 2)
    bass_env, lead_env = _envelope(length, sr, 0.005, 0.02, 0.12), _envelope(length, sr, 0.01, 0.03, 0.2)
    tones: dict[tuple[str, int], np.ndarray] = {}

    def voice(kind: str, note: int) -> np.ndarray:
        if (kind, note) not in tones:
            tones[kind, note] = (
                _tone(midi_hz(note), length, sr, saw) * bass_env
                if kind == "bass"
                else _tone(midi_hz(note), length, sr, saw[:6], detune=0.003) * lead_env
            )
        return tones[kind, note]

    for i in range(int(n / sr / beat) + 1):
        start = int(i * beat * sr)
        _add(buf, start, kick, 0.9)
        _add(buf, start + int(beat * sr / 2), hat, 0.25 * rng.uniform(0.7, 1.0))
        for half in range(2):  # eighth-note bass and arpeggio
            s = start + half * length
            _add(
                buf,
                s,
                voice("bass", _scale_note(style, p["root"] - 12, int(pattern[(2 * i + half) % 8]) % 3 * 2)),
                0.35,
            )
            _add(
                buf,
                s,
                voice("lead", _scale_note(style, p["root"] + 12, int(pattern[(2 * i + half + 3) % 8]))),
                0.18,
            )
    return buf


def _drone_ambient(rng: np.random.Generator, n: int, sr: int, p: Mapping) -> np.ndarray:
    style, bar = STYLES["Drone Ambient"], 4 * 60.0 / p["tempo"]
    t = np.arange(n) / sr
    drone_hz = midi_hz(p["root"] - 12)
    buf = 0.4 * np.sin(_TWO_PI * drone_hz * t) * (1.0 + 0.2 * np.sin(_TWO_PI * 0.07 * t))
    buf += 0.1 * np.sin(_TWO_PI * 2 * drone_hz * t + 0.5)
    chord_len = int(2 * bar * sr)
    pad = _partials("triangle", 3)
    env = _envelope(min(chord_len + sr, n), sr, 1.5, 1.5)
    tp = np.arange(env.size) / sr
    voices: dict[int, np.ndarray] = {}
    for c, start in enumerate(range(0, n, chord_len)):
        degree = int(rng.choice([0, 3, 4, 5])) + (c % 2)
        for voice in (0, 2, 4):
            note = _scale_note(style, p["root"], degree + voice)
            if note not in voices:  # a detuned pair: the sum beats slowly at 0.8 % of the pitch
                freq = midi_hz(note)
                voices[note] = 2 * _tone(freq, env.size, sr, pad) * np.cos(_TWO_PI * 0.004 * freq * tp) * env
            _add(buf, start, voices[note], 0.12)
    bell_partials = np.array([1.0, 0.0, 0.0, 0.5])  # partial 4 stands in for a bell's bright overtone
    length = int(2.5 * sr)
    bell_env = _envelope(length, sr, 0.003, 0.1)
    bells: dict[int, np.ndarray] = {}
    for _ in range(rng.poisson(p["density"] * n / sr)):
        start = int(rng.uniform(0, n))
        note = _scale_note(style, p["root"] + 24, int(rng.integers(0, 7)))
        if note not in bells:
            decay = np.array([1.2, 0, 0, 4.0])
            bells[note] = _tone(midi_hz(note), length, sr, bell_partials, decay=decay) * bell_env
        _add(buf, start, bells[note], 0.15)
    return buf


def _chip_bounce(rng: np.random.Generator, n: int, sr: int, p: Mapping) -> np.ndarray:
    style, beat = STYLES["Chip Bounce"], 60.0 / p["tempo"]
    buf = np.zeros(n)
    square = _partials("square", p["harmonics"])
    step = int(beat * sr / 4)
    snare = _noise_hit(rng, sr, 0.1, 0.03, bright=False)
    chords = rng.integers(0, 5, size=4)
    length = int(step * 0.6)
    lead_env, bass_env = _envelope(length, sr, 0.002, 0.005), _envelope(2 * step, sr, 0.002, 0.01)
    tones: dict[tuple[str, int], np.ndarray] = {}
    for s in range(n // step + 1):
        beat_i, sub = divmod(s, 4)
        chord = int(chords[(beat_i // 4) % 4])
        note = _scale_note(style, p["root"], chord + ((0, 2, 4, 7) if p["up"] else (7, 4, 2, 0))[sub])
        if ("lead", note) not in tones:
            tones["lead", note] = _tone(midi_hz(note), length, sr, square) * lead_env
        _add(buf, s * step, tones["lead", note], 0.16)
        if sub == 0:
            bass = _scale_note(style, p["root"] - 24, chord)
            if ("bass", bass) not in tones:
                tones["bass", bass] = _tone(midi_hz(bass), 2 * step, sr, square[:5]) * bass_env
            _add(buf, s * step, tones["bass", bass], 0.2)
            if beat_i % 2 == 1:
                _add(buf, s * step, snare, 0.35)
    return buf


def _noise_beat(rng: np.random.Generator, n: int, sr: int, p: Mapping) -> np.ndarray:
    step = int(60.0 / p["tempo"] * sr / 4)
    buf = 0.02 * rng.standard_normal(n)  # the crackle bed
    clicks = rng.integers(0, n, size=int(3 * n / sr))
    buf[clicks] += rng.uniform(-0.6, 0.6, clicks.size)
    kick = _kick(sr, 110.0, 40.0, 0.35)
    kicks = {0, 6, 10} | ({14} if p["variant"] else {3})
    for s in range(n // step + 1):
        pos = s % 16
        if pos in kicks:
            _add(buf, s * step, kick, 1.0)
        if pos in (4, 12) or (rng.random() < p["ghosts"] and pos % 2 == 1):
            gain = 0.9 if pos in (4, 12) else 0.3
            _add(buf, s * step, _noise_hit(rng, sr, 0.25, 0.07, bright=False), gain)
        _add(buf, s * step, _noise_hit(rng, sr, 0.05, 0.012, bright=True), 0.3 * rng.uniform(0.4, 1.0))
    t = np.arange(n) / sr
    bar = 16 * step / sr
    sub_notes = np.array([0, 0, 3, 5])[(t // bar).astype(int) % 4] + p["root"] - 24
    buf += 0.35 * np.sin(_TWO_PI * np.cumsum(440.0 * 2.0 ** ((sub_notes - 69) / 12)) / sr)
    return np.tanh(p["drive"] * buf)


def _pluck_folk(rng: np.random.Generator, n: int, sr: int, p: Mapping) -> np.ndarray:
    style, beat = STYLES["Pluck Folk"], 60.0 / p["tempo"]
    buf = np.zeros(n)
    step = int(beat * sr / 3)  # triplets
    k = np.arange(1, p["harmonics"] + 1)
    amps = np.abs(np.sin(np.pi * k * p["pluck"])) / k  # a string plucked at a fraction of its length
    decay = 1.0 / (1.2 / k**0.7)
    progression = (0, 3, 4, 0) if p["up"] else (0, 5, 3, 4)
    length = int(0.8 * sr)
    env = _envelope(length, sr, 0.002, 0.05)
    plucks: dict[int, np.ndarray] = {}
    for s in range(n // step + 1):
        bar_i, sub = divmod(s, 9)
        chord = progression[bar_i % 4]
        offset = (0, 2, 4, 7, 4, 2, 0, 4, 7)[sub]
        note = _scale_note(style, p["root"], chord + offset)
        if note not in plucks:
            plucks[note] = (
                _tone(midi_hz(note), length, sr, amps, decay=decay, detune=rng.normal(0, 0.0015)) * env
            )
        _add(buf, s * step + int(abs(rng.normal(0, 0.008)) * sr), plucks[note], 0.25 * rng.uniform(0.6, 1.0))
    return buf


STYLES: dict[str, Style] = {
    s.name: s
    for s in (
        Style(
            "Synth Pulse",
            "four-on-the-floor kick, off-beat hats, sawtooth bass and arpeggio",
            (116, 130),
            (52, 60),
            (0, 3, 5, 7, 10),
        ),
        Style(
            "Drone Ambient",
            "no drums; slow detuned pads over a low drone, sparse bells",
            (56, 76),
            (45, 53),
            (0, 2, 4, 6, 7, 9, 11),
        ),
        Style(
            "Chip Bounce",
            "square-wave 16th-note arpeggios in a high register, noise snare",
            (138, 162),
            (72, 80),
            (0, 2, 4, 5, 7, 9, 11),
        ),
        Style(
            "Noise Beat",
            "saturated noise breakbeat with sub bass and crackle",
            (82, 100),
            (48, 55),
            (0, 3, 5, 7, 10),
        ),
        Style(
            "Pluck Folk",
            "plucked-string triplet arpeggios in a mid register, no drums",
            (92, 116),
            (55, 62),
            (0, 2, 3, 5, 7, 9, 10),
        ),
    )
}

_RENDER: dict[str, Callable[[np.random.Generator, int, int, Mapping], np.ndarray]] = {
    "Synth Pulse": _synth_pulse,
    "Drone Ambient": _drone_ambient,
    "Chip Bounce": _chip_bounce,
    "Noise Beat": _noise_beat,
    "Pluck Folk": _pluck_folk,
}


# ----------------------------------------------------------------------------- parameters and mixing


def artist_signature(style: str, rng: np.random.Generator) -> dict:
    """An artist's own place inside a style: preferred tempo, key, brightness."""
    s = STYLES[style]
    return {
        "tempo": float(rng.uniform(*s.tempo)),
        "root": int(rng.integers(s.root[0], s.root[1] + 1)),
        "brightness": float(rng.uniform(0.6, 1.0)),
    }


def track_params(style: str, signature: Mapping, rng: np.random.Generator) -> dict:
    """One track's parameters for ``style``: the artist's signature plus per-track variation."""
    s = STYLES[style]
    lo, hi = s.tempo
    return {
        "tempo": float(np.clip(signature["tempo"] + rng.normal(0, 3.0), lo, hi)),
        "root": int(signature["root"] + rng.integers(-2, 3)),
        "harmonics": int(round(4 + 10 * signature["brightness"] * rng.uniform(0.8, 1.2))),
        "density": float(rng.uniform(0.15, 0.5)),
        "ghosts": float(rng.uniform(0.1, 0.5)),
        "drive": float(rng.uniform(1.5, 3.5)),
        "pluck": float(rng.uniform(0.12, 0.3)),
        "up": bool(rng.random() < 0.5),
        "variant": bool(rng.random() < 0.5),
    }


def render_track(
    mix: Mapping[str, float],
    params: Mapping[str, Mapping],
    *,
    seconds: float,
    sr: int,
    rng: np.random.Generator,
    loudness: float = 0.1,
    noise_db: float | None = None,
    dull: float = 0.0,
) -> np.ndarray:
    """Render a weighted mix of styles to mono float32 [shape=(round(seconds * sr),)].

    ``mix`` maps a style name to its weight (weights need not sum to 1; zero weights are not
    rendered); ``params[style]`` are that style's :func:`track_params`. Each layer is scaled to
    the same RMS before mixing. ``dull`` in [0, 1] blends in a low-pass near 1.2 kHz (a
    darker recording), ``noise_db`` adds white noise that many dB below the music (a noisier
    one). The result has RMS ``loudness`` with peaks kept below 0.99.
    """
    n = int(round(seconds * sr))
    total = sum(w for w in mix.values() if w > 0)
    out = np.zeros(n)
    for style, weight in mix.items():
        if weight <= 0:
            continue
        layer = _RENDER[style](rng, n, sr, params[style])
        out += (weight / total) * layer / _rms(layer)
    if dull > 0:  # blend in an 8-sample moving average: a low-pass at about 1.2 kHz, O(n)
        total = np.cumsum(np.concatenate([np.zeros(_DULL_TAPS), out]))
        out = (1.0 - dull) * out + dull * (total[_DULL_TAPS:] - total[:-_DULL_TAPS]) / _DULL_TAPS
    if noise_db is not None:
        out += rng.standard_normal(n) * _rms(out) * 10.0 ** (noise_db / 20.0)
    out *= loudness / _rms(out)
    peak = np.max(np.abs(out))
    if peak > 0.99:
        out *= 0.99 / peak
    return out.astype(np.float32)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2))) + 1e-9
