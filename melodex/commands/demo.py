"""Run the whole pipeline on the generated demo corpus: the main job, no download needed.

Steps, each the real command with its own flags (so what you see is what you would type):

1. ``make-demo``   a synthetic corpus in FMA's layout under ``--data`` (default ``demo_data``);
2. ``preprocess``  its MFCCs into ``<data>/fma_mfccs_precomputed``, on every core;
3. ``train``       the CNN for ``--epochs`` epochs into ``<out>/training_outputs/<timestamp>``;
4. ``infer``       a few test-split clips classified, results in ``<out>/predictions.jsonl``;
5. ``index``       the whole corpus embedded into the library store ``<out>/library`` (``--reembed``:
                   a rerun whose training made another model re-embeds the stored tracks);
6. ``map``         the UMAP map as ``<out>/map.html`` (interactive) and ``<out>/map.png``;
7. ``evolution``   every artist's drift report in ``<out>/evolution/``.

A second run reuses the corpus and the MFCC cache (both are resumable) and trains a new run.

``--unlabeled`` runs the same job without labels, into ``<out>/unlabeled/``: ``train --objective
contrastive`` on the corpus's audio (its genre labels hidden; the FMA metadata names artists only for
the run's retrieval report), then ``infer``, ``index``, ``map`` and ``evolution`` with that headless
model, and ``evaluate``: the share of each track's 10 nearest neighbours by the same artist, album
and style, against chance and MFCC statistics, printed beside the supervised demo's store
(``<out>/library``) when it exists (run ``melodex demo`` with the same ``--out`` first for that).
Exit status: 0 when every step succeeded, otherwise the first failing step's status.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import time
from collections.abc import Callable
from pathlib import Path

from melodex.commands.make_demo import add_corpus_arguments
from melodex.commands.options import add_device, positive_int
from melodex.constants import DEFAULT_DEMO_DATA, DEFAULT_DEMO_OUT, DEFAULT_STORE

log = logging.getLogger(__name__)

EPOCHS, UNLABELED_EPOCHS = 12, 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=DEFAULT_DEMO_DATA, metavar="DIR",
                        help="where the demo corpus is written (default: %(default)s)")
    parser.add_argument("--out", default=DEFAULT_DEMO_OUT, metavar="DIR",
                        help=f"where runs, predictions, the store, the map and reports go (default {DEFAULT_DEMO_OUT})")
    parser.add_argument("--epochs", type=positive_int, default=None,
                        help=f"training epochs (default {EPOCHS}; with --unlabeled {UNLABELED_EPOCHS})")
    add_corpus_arguments(parser, seed_help="seeds the corpus, training and the map (default: %(default)s)")
    parser.add_argument("--unlabeled", action="store_true",
                        help="the main job without labels: contrastive training with the styles hidden, outputs in "
                             "OUT/unlabeled, retrieval figures beside the supervised demo's")
    add_device(parser)


def _steps(args: argparse.Namespace) -> list[tuple[str, Callable[[], list[str]]]]:
    """(command, argv maker) pairs; argv is made when the step starts, after earlier steps ran."""
    if args.unlabeled:
        return _unlabeled_steps(args)
    data, out = Path(args.data), Path(args.out)
    audio, cache, runs = data / "fma_small", data / "fma_mfccs_precomputed", out / "training_outputs"
    model, store, seed = str(runs / "latest"), str(out / "library"), str(args.seed)
    return [
        ("make-demo", lambda: ["--out", str(data), "--tracks-per-artist", str(args.tracks_per_artist),
                               "--seconds", str(args.seconds), "--seed", seed]),
        ("preprocess", lambda: ["--data_dir", str(audio), "--cache_dir", str(cache)]),
        ("train", lambda: ["--data_dir", str(audio), "--cache_dir", str(cache), "--epochs", str(args.epochs or EPOCHS),
                           "--output_dir", str(runs), "--seed", seed, "--device", args.device]),
        ("infer", lambda: ["--model", model, "--audio", *_test_clips(audio, 8),
                           "--output", str(out / "predictions.jsonl"), "--device", args.device]),
        ("index", lambda: ["--store", store, "--model", model, "--reembed", "--audio", str(audio),
                           "--fma-metadata", str(data / "fma_metadata"), "--device", args.device]),
        ("map", lambda: ["--store", store, "--out", str(out / "map.html"), "--png", str(out / "map.png"),
                         "--seed", str(42 + args.seed), "--title", "Melodex demo corpus"]),
        ("evolution", lambda: ["--store", store, "--all", "--out", str(out / "evolution")]),
    ]


def _unlabeled_steps(args: argparse.Namespace) -> list[tuple[str, Callable[[], list[str]]]]:
    """The main job without labels, into ``<out>/unlabeled`` (the supervised demo's files stay)."""
    data, out = Path(args.data), Path(args.out) / "unlabeled"
    audio, cache, runs = data / "fma_small", data / "fma_mfccs_precomputed", out / "training_outputs"
    model, store, seed, meta = str(runs / "latest"), str(out / "library"), str(args.seed), str(data / "fma_metadata")
    supervised = Path(args.out) / "library"
    steps = [
        ("make-demo", lambda: ["--out", str(data), "--tracks-per-artist", str(args.tracks_per_artist),
                               "--seconds", str(args.seconds), "--seed", seed]),
        ("preprocess", lambda: ["--data_dir", str(audio), "--cache_dir", str(cache)]),
        ("train", lambda: ["--objective", "contrastive", "--audio", str(audio), "--cache_dir", str(cache),
                           "--metadata_dir", meta, "--epochs", str(args.epochs or UNLABELED_EPOCHS),
                           "--output_dir", str(runs), "--seed", seed, "--device", args.device]),
        ("infer", lambda: ["--model", model, "--audio", *_test_clips(audio, 8),
                           "--output", str(out / "predictions.jsonl"), "--device", args.device]),
        ("index", lambda: ["--store", store, "--model", model, "--reembed", "--audio", str(audio),
                           "--fma-metadata", meta, "--device", args.device]),
        ("map", lambda: ["--store", store, "--out", str(out / "map.html"), "--png", str(out / "map.png"),
                         "--seed", str(42 + args.seed), "--title", "Melodex demo corpus, trained without labels"]),
        ("evolution", lambda: ["--store", store, "--all", "--out", str(out / "evolution")]),
        ("evaluate", lambda: ["--store", store, "--out", str(out / "retrieval.json")]),
    ]
    if supervised.is_dir():  # the supervised demo's store, scored on the same tracks for the comparison
        steps.append(("evaluate", lambda: ["--store", str(supervised), "--no-baseline",
                                           "--out", str(out / "retrieval_supervised.json")]))
    return steps


def _test_clips(audio_dir: Path, n: int) -> list[str]:
    """The first ``n`` test-split clips of the corpus."""
    from melodex.datasets import load_dataset

    return [str(t.path) for t in load_dataset(audio_dir).split("test")[:n]]


def run(args: argparse.Namespace) -> int:
    from melodex.commands import run_command
    from melodex.util.device import resolve_device
    from melodex.util.logs import setup_logging

    resolve_device(args.device)  # --device cuda on a CPU machine fails now, not after the corpus is made
    _drop_stale_cache(Path(args.data) / "fma_mfccs_precomputed")
    out = Path(args.out)
    timings: list[tuple[str, float]] = []
    start = time.perf_counter()
    for name, make_argv in _steps(args):
        argv = make_argv() + (["--quiet"] if args.quiet else [])
        log.info("\n== %s", shlex.join(["melodex", name, *argv]))
        t0 = time.perf_counter()
        status = run_command(name, argv)
        setup_logging(args.quiet, args.verbose)  # each step configures logging for itself
        timings.append((name, time.perf_counter() - t0))
        if status != 0:
            log.error("demo: step '%s' ended with status %d; stopping", name, status)
            return status
    if args.unlabeled:
        _unlabeled_summary(args, out, timings, time.perf_counter() - start)
    else:
        _summary(args, out, timings, time.perf_counter() - start)
    return 0


def _drop_stale_cache(cache_dir: Path) -> None:
    """Remove the demo's own MFCC cache when it was made with other feature parameters (an earlier
    Melodex's defaults), so that ``preprocess`` recomputes it; outside the demo such a cache is refused."""
    import shutil

    from melodex.errors import CacheMismatchError
    from melodex.features.cache import FeatureCache

    cache = FeatureCache(cache_dir)
    try:
        saved = cache.saved_config()
    except CacheMismatchError:
        return  # not a Melodex cache: preprocess reports it, nothing is removed
    if saved is None or saved == cache.config:
        return
    log.warning("demo: %s was made with other feature parameters (%s); recomputing it", cache_dir,
                cache.differences(saved))
    shutil.rmtree(cache_dir)


def _summary(args: argparse.Namespace, out: Path, timings: list[tuple[str, float]], total: float) -> None:
    run_dir = (out / "training_outputs" / "latest").resolve()
    params = json.loads((run_dir / "params.json").read_text())
    result = params.get("result", {})
    labels = params.get("labels") or []
    lines = [
        "",
        "Melodex demo finished in %.0f s (%s)." % (total, ", ".join(f"{n} {t:.0f}s" for n, t in timings)),
        f"  test accuracy   {result.get('test_accuracy', float('nan')):.3f} on {len(labels)} styles "
        f"(chance {1 / max(len(labels), 1):.3f}); best epoch {result.get('best_epoch')}",
        f"  training run    {run_dir}",
        f"  predictions     {out / 'predictions.jsonl'}",
        f"  library store   {out / 'library'}",
        f"  map (open it)   {out / 'map.html'}",
        f"  map figure      {out / 'map.png'}",
        f"  evolution       {out / 'evolution'}",
        "Next (each line can be pasted as it is):",
        *(f"  {line}" for line in _next_commands(args, out, run_dir)),
    ]
    log.info("\n".join(lines))


def _next_commands(args: argparse.Namespace, out: Path, run_dir: Path) -> list[str]:
    """Commands to try on the demo's results, quoted for the shell. They need no --store when the
    demo wrote to its default --out and no default store exists (``open_store`` then uses the demo's)."""
    from melodex.demo.plan import DRIFTER
    from melodex.library.store import LibraryStore

    store = out / "library"
    implicit = args.out == DEFAULT_DEMO_OUT and not Path(DEFAULT_STORE).exists()
    where = [] if implicit else ["--store", str(store)]
    first = LibraryStore(store).tracks().iloc[0]
    commands = [
        ["melodex", "similar", str(first["track_id"]), "-k", "5", *where],
        ["melodex", "similar", str(first["path"]), "--model", str(run_dir), *where],
        ["melodex", "map", "--color-by", "artist", *where],
        ["melodex", "evolution", "--artist", DRIFTER[0], *where],
        ["melodex", "serve", *where],
    ]
    return [shlex.join(c) for c in commands]


def _unlabeled_summary(args: argparse.Namespace, out: Path, timings: list[tuple[str, float]], total: float) -> None:
    """The retrieval figures of the model trained without labels, beside the supervised demo's."""
    from melodex.demo.retrieval import comparison_table

    mine = out / "unlabeled"
    supervised = mine / "retrieval_supervised.json"
    lines = [
        "",
        (f"Melodex demo without labels finished in {total:.0f} s "
         f"({', '.join(f'{n} {t:.0f}s' for n, t in timings)})."),
        "Top-10 neighbour agreement on the whole corpus (share of each track's 10 nearest by the same label):",
        *(f"  {line}" for line in comparison_table(mine / "retrieval.json",
                                                    supervised if supervised.is_file() else None).splitlines()),
    ]
    if not supervised.is_file():
        lines.append(f"  (no supervised demo in {out}: run {shlex.join(['melodex', 'demo', '--out', str(out)])} "
                     "and this again to see its figures beside these)")
    run_dir = (mine / "training_outputs" / "latest").resolve()
    lines += [f"  training run    {run_dir} (retrieval_report.txt: its validation tracks)",
              f"  library store   {mine / 'library'}", f"  map (open it)   {mine / 'map.html'}",
              f"  evolution       {mine / 'evolution'}"]
    log.info("\n".join(lines))
