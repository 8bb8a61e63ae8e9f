"""Train the genre CNN on a dataset's MFCCs; every run gets its own timestamped directory.

Features come from the precomputed cache ('melodex preprocess') when it is there and was made
with the same feature parameters; otherwise audio is decoded on the fly every epoch. A file
that cannot be decoded is skipped with a warning. The model is validated every epoch, the best
one on the validation split is kept as model_weights.pth, and the test-split report is written
from it at the end. An interrupted run continues where it stopped with --resume.

Training is augmented by default (--no-augment turns it off): each training clip is decoded once
and a few band-limited, re-encoded, noisy and shifted versions of it are kept next to the cache;
after 4 clean epochs, every epoch shows a clip clean or (half the time) as one of them. params.json
records the settings.

Started by torchrun (torchrun --nproc_per_node N train.py ..., or torchrun ... -m melodex train ...),
it trains with DistributedDataParallel, N processes on shares of the training split; rank 0 alone
writes the run (see "On a cluster" in the README).

Without labels: --objective contrastive --audio DIR [DIR ...] trains the same CNN and 512-d
embedding self-supervised on any folders of audio (mp3, wav, flac, m4a, ogg, opus; no metadata needed):
two windows of --view-seconds cut at random offsets from one track (from up to --segments 30-s
segments spread over it; each window maybe augmented, and if asked mixed with another clip of the
batch underneath (--mix) and masked SpecAugment-style (--spec-mask)) are a positive pair, the other
tracks in the batch are negatives (NT-Xent at --temperature; under torchrun the negatives are
gathered from every process). 10% of the tracks are held out for validation; the last epoch's model
is kept (--keep). A small collection trains for more epochs by default (--epochs). The defaults are
the settings that did best on real music (README, "Benchmarks").
model_weights.pth is then headless (no genre head; infer, index, map, similar, evolution and serve
use its embeddings); the projection head the loss needs stays in train_state.pth. Instead of a
classification report the run writes retrieval_report.txt: for the validation tracks, the share of
each one's 10 nearest neighbours by the same artist (and album) against chance and against MFCC
statistics of the same tracks; artists come from the files' tags, FMA metadata (--metadata_dir, or
found beside an FMA folder) or --manifest. With --cache_dir, the MFCC of every file the cache lacks
is computed first (each file is decoded once, as 'melodex preprocess' does) and read from there.

--init-from RUN starts a run (of either objective) from RUN's backbone and embedding weights with
a new genre head: a contrastive run's, say, before supervised training on a few labelled tracks.

Output: training_outputs/YYYY-MM-DD_HH-MM-SS/ with model_weights.pth, params.json,
history.csv, classification_report.txt (or retrieval_report.txt) and train_state.pth;
training_outputs/latest names the newest run.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math

from melodex.commands.options import (
    add_batch_size,
    add_dataset_arguments,
    add_device,
    add_num_workers,
    positive_int,
)
from melodex.constants import CONTRASTIVE_MAX_EPOCHS, CONTRASTIVE_PAIRS, DEFAULT_EPOCHS
from melodex.training.config import KEEPS, OBJECTIVES, TrainConfig

log = logging.getLogger(__name__)

# Each flag's default is TrainConfig's own, so the command and the library cannot disagree.
_DEFAULT = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser, cache_help="precomputed MFCCs, used when present and made with the same "
                                             "feature parameters (default: %(default)s)")
    group = parser.add_argument_group("training")
    group.add_argument("--epochs", type=positive_int, default=None,
                       help=f"epochs to train (default: {DEFAULT_EPOCHS}; contrastive: at least {DEFAULT_EPOCHS}, on a "
                            f"small collection enough to show {CONTRASTIVE_PAIRS:,} training pairs, at most "
                            f"{CONTRASTIVE_MAX_EPOCHS}: {math.ceil(CONTRASTIVE_PAIRS / 119)} epochs of 119 tracks; with --resume: "
                            "the run's own)")
    add_batch_size(group, default=_DEFAULT["batch_size"], what="tracks per training step")
    group.add_argument("--lr", "--learning_rate", "--learning-rate", type=float, default=_DEFAULT["lr"],
                       help="Adam learning rate (default: %(default)s)")
    group.add_argument("--weight_decay", "--weight-decay", type=float, default=_DEFAULT["weight_decay"],
                       help="Adam weight decay (default: %(default)s)")
    group.add_argument("--seed", type=int, default=_DEFAULT["seed"],
                       help="seeds weights and shuffling; CPU runs repeat exactly (default: %(default)s)")
    group.add_argument("--patience", type=positive_int, default=None, metavar="N",
                       help="stop after N epochs without a better validation accuracy (default: never)")
    group.add_argument("--augment", action=argparse.BooleanOptionalAction, default=_DEFAULT["augment"],
                       help="train on augmented clips too: random crop, low-pass 4-11 kHz, low-rate codecs, "
                            "noise and gain, so embeddings stay put across encodings; variants are made once per "
                            "clip under CACHE_DIR/augmented (default: on; --no-augment: clean MFCCs only)")
    group.add_argument("--init-from", "--init_from", dest="init_from", default=None, metavar="RUN",
                       help="start from RUN's backbone and embedding weights (a run directory, .../latest or a "
                            ".pth), with a new genre head (default: random weights)")
    add_device(group)
    add_num_workers(group, default=None, what="DataLoader workers decoding audio (default: 0 when every track "
                                               "is cached, else up to 4)")
    ssl = parser.add_argument_group("self-supervised (--objective contrastive)")
    ssl.add_argument("--objective", choices=OBJECTIVES, default=_DEFAULT["objective"],
                     help="supervised (default: genre labels from --data_dir) or contrastive (no labels: --audio)")
    ssl.add_argument("--audio", nargs="+", default=(), metavar="PATH",
                     help="with --objective contrastive: audio folders (searched recursively) or files")
    ssl.add_argument("--manifest", default=None, metavar="CSV",
                     help="a CSV path,artist,album,... naming the tracks' artists for the retrieval report "
                          "(tags and FMA metadata are read too)")
    ssl.add_argument("--temperature", type=float, default=_DEFAULT["temperature"],
                     help="NT-Xent temperature (default: %(default)s)")
    ssl.add_argument("--view-seconds", "--view_seconds", dest="view_seconds", type=float,
                     default=_DEFAULT["view_seconds"], metavar="S",
                     help="length of each view cut from a track (default: %(default)s)")
    ssl.add_argument("--projection-dim", "--projection_dim", dest="projection_dim", type=positive_int,
                     default=_DEFAULT["projection_dim"], metavar="N",
                     help="output size of the projection head the loss sees (default: %(default)s)")
    ssl.add_argument("--spec-mask", "--spec_mask", dest="spec_mask", type=float, default=_DEFAULT["spec_mask"],
                     metavar="W",
                     help="SpecAugment-style masking of each training view: 2 blocks of frames and 2 of MFCC "
                          "coefficients, each up to W of its axis, e.g. 0.2 (default: %(default)s, off: it lowered "
                          "same-artist agreement on real music)")
    ssl.add_argument("--mix", type=float, default=_DEFAULT["mix"], metavar="P",
                     help="chance that a training view gets another clip of the batch mixed in 6-18 dB below it, "
                          "e.g. 0.5 (default: %(default)s, off: it lowered same-artist agreement on real music)")
    ssl.add_argument("--segments", type=positive_int, default=_DEFAULT["segments"], metavar="N",
                     help="views come from up to N 30-s segments spread over each track, not only from the "
                          "first; they are read once and kept beside the cache, ~51 kB each (default: %(default)s; "
                          "1: the first segment only)")
    ssl.add_argument("--keep", choices=KEEPS, default=_DEFAULT["keep"],
                     help="the model kept: the last epoch, or the epoch with the best validation pair accuracy "
                          "(default: %(default)s)")
    out = parser.add_argument_group("output")
    out.add_argument("--output_dir", "--output-dir", default=_DEFAULT["output_dir"], metavar="DIR",
                     help="runs are written to DIR/YYYY-MM-DD_HH-MM-SS (default: %(default)s)")
    out.add_argument("--resume", nargs="?", const="latest", default=None, metavar="RUN_DIR",
                     help="continue an interrupted run (default RUN_DIR: latest)")


def run(args: argparse.Namespace) -> int:
    from melodex.training.contrastive import objective_of, train_contrastive
    from melodex.training.trainer import train

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in names}
    values["audio"] = tuple(values.get("audio") or ())
    config = TrainConfig(**values, progress=not getattr(args, "quiet", False))
    if objective_of(config) == "contrastive":
        result = train_contrastive(config, retrieval=retrieval_report)
        log.info("epoch %d kept: validation pair accuracy %.4f", result.best_epoch, result.best_val_accuracy)
    else:
        result = train(config)
        log.info("best epoch %d: validation accuracy %.4f, test accuracy %.4f", result.best_epoch,
                 result.best_val_accuracy, result.test_accuracy)
    log.info("run saved in %s", result.run_dir)
    return 0


def retrieval_report(config, tracks, vectors) -> tuple[str, dict]:
    """A contrastive run's retrieval report on its validation ``tracks``: top-10 same-artist and
    same-album agreement of each embedding in ``vectors`` (the run's, ``mfcc-stats``), with chance.
    Returns (text, scores for params.json)."""
    import pandas as pd

    from melodex.analysis.retrieval import format_table, label_columns, retrieval_table
    from melodex.library.metadata import release_identity

    sources = _metadata_sources(config)
    rows = []
    for track in tracks:
        fields, _ = sources.describe(track.path)
        rows.append({"artist": fields.get("artist"), "artist_id": fields.get("artist_id"),  # namesakes apart
                     "album": release_identity(fields)})
    columns = label_columns(pd.DataFrame(rows), ["artist", "album"])
    if "artist" not in columns:
        return (("The retrieval report needs artist metadata for the validation tracks, and none was found: tag the "
                 "files, or give --metadata_dir (FMA's tracks.csv) or --manifest (path,artist,album,...).\n"),
                {"tracks": len(tracks), "artists_known": 0})
    scores = retrieval_table(vectors, pd.DataFrame(rows), columns)
    lines = [format_table(scores), ""]
    by = {(s.label, s.embedding): s for s in scores}
    for label in columns:
        mine, base = by[(label, "contrastive")], by[(label, "mfcc-stats")]
        ratio = mine.agreement / base.agreement if base.agreement else float("nan")
        lines.append(f"same {label} among the {mine.k} nearest: contrastive {mine.agreement:.3f}, mfcc-stats "
                     f"{base.agreement:.3f} ({ratio:.2f}x), chance {mine.chance:.3f}")
    return "\n".join(lines) + "\n", {"tracks": len(tracks), "scores": [
        {"label": s.label, "embedding": s.embedding, "k": s.k, "tracks": s.tracks, "agreement": s.agreement,
         "chance": s.chance} for s in scores]}


def _metadata_sources(config):
    """Tags, FMA's tracks.csv (--metadata_dir, or fma_metadata beside an FMA audio folder) and --manifest."""
    from pathlib import Path

    from melodex.datasets.fma import default_metadata_dir
    from melodex.library.indexing import MetadataSources, load_fma_tracks
    from melodex.library.metadata import read_manifest

    fma = config.metadata_dir
    if fma is None:
        beside = [default_metadata_dir(a) for a in config.audio if Path(a).is_dir()]
        fma = next((str(d) for d in beside if (Path(d) / "tracks.csv").is_file()), None)
    return MetadataSources(load_fma_tracks(None, fma), read_manifest(config.manifest) if config.manifest else None)
