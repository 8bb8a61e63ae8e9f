"""The signal chain in one place.

Every number that shapes a feature lives here; derived values are computed, not retyped.
A checkpoint records these values (see :mod:`melodex.model.checkpoint`), so a model trained with
one set of constants is never fed features made with another.
"""

from __future__ import annotations

SAMPLE_RATE = 22050  # Hz, what every file is decoded and resampled to
SEGMENT_SECONDS = 30.0  # one analysis segment
SEGMENT_SAMPLES = int(SAMPLE_RATE * SEGMENT_SECONDS)  # 661500 samples

N_FFT = 2048  # STFT window, samples (~93 ms)
HOP_LENGTH = 1024  # STFT hop, samples (~46 ms)
N_MELS = 128  # mel bands before the DCT
N_MFCC = 20  # cepstral coefficients kept
FMIN = 0.0  # Hz
# Hz. Not the Nyquist frequency (11025): the old files of real libraries are low-pass filtered
# near 10 kHz (22.05 kHz mono mp3 at 48 kbit/s cuts above ~10.2 kHz), and mel bands above the cut
# fall by 60-68 dB, which the DCT spreads over every MFCC (benchmarks/bench_codec_features.py).
# Every checkpoint, MFCC cache and store records the value it was made with, so models and stores
# made with the earlier default (11025) keep computing their features with it.
FMAX = 10000.0
# dB below each segment's maximum that power_to_db keeps (the floor). Not 80 (librosa's example
# value, Melodex's earlier default): low-quality Vorbis drops quiet detail under its masking threshold,
# and an 80 dB range still sees that; with 60 dB the demo model's embeddings of real 22.05 kHz mono
# ogg files stay at cosine >= 0.97 to their flac (0.90-0.96 with 80 dB, bench_robustness.py).
# Recorded like FMAX: what was made with 80 keeps computing with 80.
TOP_DB = 60.0
AMIN = 1e-10  # floor of the power spectrum before the log

# librosa (center=True) gives 1 + SEGMENT_SAMPLES // HOP_LENGTH = 646 frames for 30 s;
# the model takes a fixed 640 (the first 29.7 s), as the original Melodex did.
N_FRAMES = 640
FRAMES_PER_SEGMENT = 1 + SEGMENT_SAMPLES // HOP_LENGTH  # 646

AUDIO_EXTENSIONS = (".mp3", ".wav", ".flac", ".m4a", ".ogg", ".opus")  # .opus: Ogg Opus, read by libsndfile

DEFAULT_DATA_DIR = "data/fma_small"  # preprocess and train read it when --data_dir is not given
DEFAULT_CACHE_DIR = "data/fma_mfccs_precomputed"
DEFAULT_OUTPUT_ROOT = "training_outputs"
WEIGHTS_NAME = "model_weights.pth"  # a run's model, beside its params.json

# Where outputs go and what the commands do by default. The commands show these in --help
# and the library uses them as defaults, so each is written here once.
DEFAULT_STORE = "melodex_outputs/library"
DEFAULT_DEMO_DATA = "demo_data"  # where make-demo and demo write the demo corpus
DEMO_ARTISTS = 16  # in the demo corpus: 5 styles x 3, and one whose style drifts
DEMO_TRACKS_PER_ARTIST = 18  # so 288 tracks
DEMO_SECONDS = 30.0  # its clips' length
DEMO_SECONDS_RANGE = (1.0, 600.0)  # the lengths make-demo accepts
DEFAULT_DEMO_OUT = "demo_outputs"  # melodex demo's outputs; its store, <out>/library, stands in for a missing default
DEFAULT_MAP_HTML = "melodex_outputs/map.html"
DEFAULT_MAP_FIGURE = "melodex_outputs/map.png"
MAP_FIGURE_EXTENSIONS = (".png", ".svg", ".pdf")  # the static map's formats, by extension
DEFAULT_EVOLUTION_DIR = "melodex_outputs/evolution"
DEFAULT_RETRIEVAL_REPORT = "melodex_outputs/retrieval.json"  # melodex evaluate's report (and .csv beside it)
MAP_COLOR_CHOICES = ("genre", "predicted", "artist", "year", "folder")
UMAP_DEFAULTS = {"n_neighbors": 15, "min_dist": 0.1, "metric": "cosine", "seed": 42}
SEGMENT_BATCH = 8  # segments per forward pass when embedding (infer, index, evaluate's baseline)
DECODE_WORKERS = 4  # decoding worker processes, at most the usable cores
DEFAULT_PART_SIZE = 256  # tracks per appended store part while indexing
DEFAULT_EPOCHS = 50
# A contrastive run without --epochs trains at least DEFAULT_EPOCHS, and on a small collection as many
# more as show it CONTRASTIVE_PAIRS training pairs (295 epochs of 119 tracks), at most CONTRASTIVE_MAX_EPOCHS:
# on real music the embedding kept improving well past 50 epochs there (README, "Benchmarks")
CONTRASTIVE_PAIRS = 35_000
CONTRASTIVE_MAX_EPOCHS = 600
DEFAULT_HOST = "127.0.0.1"  # serve binds to loopback unless told otherwise
DEFAULT_PORT = 8000
DEVICE_CHOICES = ("auto", "cpu", "cuda")  # and cuda:N for one GPU of several
DEVICE_PATTERN = r"^(auto|cpu|cuda(:\d+)?)$"  # what --device accepts
ACCEPTED_DEVICES = "auto, cpu, cuda or cuda:N"  # the same, in words for messages
MIN_LAST_SECONDS = 5.0  # --full: a tail shorter than this after the last full window gets no window
# melodex duplicates: the largest cosine distance between copies of one recording, and how many
# seconds their durations may differ (codec padding, trimmed silence; see melodex/analysis/duplicates.py)
DUPLICATE_DISTANCE = 0.005
# duplicates: embedding distance within which a pair is a candidate that the audio fingerprint then
# judges (a copy with 3 s cut off a 10-s clip lies 0.014 away; the fingerprint rejects the rest)
DUPLICATE_CANDIDATE_DISTANCE = 0.05
# duplicates: Cohen's kappa of the fingerprint bits from which a candidate pair is one recording
# (see melodex.analysis.fingerprint_match for what copies and different clips score)
DUPLICATE_MATCH_AGREEMENT = 0.88
DURATION_TOLERANCE = 1.0
DEFAULT_ARTIST_PAGES = 500  # evolution --all: artists with a page of figures (the most drifting first)
