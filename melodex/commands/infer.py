"""Classify and embed audio files with a trained model (melodex infer, or python inference.py).

Examples:
  melodex infer --model training_outputs/latest --audio music/ --output results.jsonl
  melodex infer --model run/model_weights.pth --audio a.mp3 b.flac          # table on stdout
  melodex infer --model m.pth --audio music/ --full --output full.csv --no-embeddings
  melodex infer --model m.pth --audio music/ --output results.jsonl --resume  # after a crash
  melodex infer --model m.pth --audio /mnt/music --output r.jsonl --engine ray --address auto  # on a Ray cluster

Files are processed in sorted-path order; directories are searched recursively for
.mp3 .wav .flac .m4a .ogg .opus (any letter case). By default each file's first 30 s is analysed
(zero-padded when shorter); --full slides 30-s windows over the whole file. A file's
probabilities are the mean of its segments' softmax outputs, its embedding the mean of its
segments' 512-d embeddings.

Output: --format json|jsonl|csv (default: from the --output extension; without --output, a
table on stdout, or the chosen format on stdout). JSONL and CSV rows are written as files
finish; JSON is written atomically at the end. README.md ("Inference") lists every field.

A model without a genre head (trained without labels, e.g. contrastively) gives embeddings and
no predictions; every format keeps its fields and columns: JSONL has empty "predictions" {},
"top_labels" [], "probabilities" [] and "all_probabilities" {}; JSON has "predicted_label" and
"confidence" null, "all_probabilities" {} and, with --full, "top_predictions" []; CSV leaves
predicted_label, confidence (or rank and probability) empty, one row per file also with --full;
the table lists each file's duration and says "no genre head".

Files that cannot be read do not stop the run. They are recorded: JSONL gets
{"audio_file", "error"} lines, JSON an "errors" list, CSV a sidecar <stem>.errors.csv
(audio_file,error) beside the output. A summary on stderr counts successes and failures (the
table on stdout ends with that count instead). Ctrl-C stops the run (exit 130) and says how many
results the output holds; a JSONL output is then continued with --resume.

--resume (JSONL only) keeps the successful lines of an existing output, skips those files and
appends the rest. Error lines are dropped and their files retried; an unfinished last line
(from a killed run) is cut away first, so every file ends up exactly once.

Exit status: 0 all files ok, 1 some files failed, 130 Ctrl-C, 2 the run could not start (model missing,
not a Melodex checkpoint or unsafe to load, --device cuda without a GPU, bad options).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from melodex.commands import EXIT_INTERRUPTED
from melodex.commands.options import (
    add_batch_size,
    add_device,
    add_engine,
    add_model,
    add_num_workers,
    make_predictor,
    positive_seconds,
)
from melodex.constants import AUDIO_EXTENSIONS, DECODE_WORKERS, MIN_LAST_SECONDS, SEGMENT_BATCH
from melodex.errors import MelodexError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model(parser, required=True)
    parser.add_argument("--audio", required=True, nargs="+", metavar="PATH",
                        help="audio files and/or directories (searched recursively); with --engine ray also "
                             "URIs (s3://bucket/music, gs://, hdfs://)")
    add_device(parser)
    out = parser.add_argument_group("output")
    out.add_argument("--output", "-o", metavar="FILE",
                     help="results file (default: a readable table on stdout)")
    out.add_argument("--format", choices=("json", "jsonl", "csv"),
                     help="output format (default: from the --output extension)")
    out.add_argument("--no-embeddings", dest="embeddings", action="store_false",
                     help="leave the 512-d embeddings out of the output")
    out.add_argument("--resume", action="store_true",
                     help="with a JSONL --output: skip files already in it, append the rest")
    seg = parser.add_argument_group("segments")
    seg.add_argument("--full", action="store_true",
                     help="analyse the whole file in sliding 30-s windows (default: the first 30 s)")
    seg.add_argument("--hop", type=positive_seconds, metavar="SECONDS",
                     help="with --full: seconds between window starts (default: 30, no overlap)")
    seg.add_argument("--last", choices=("pad", "align", "drop"), default=None,
                     help="with --full: the tail after the last full window: pad it (default), "
                     "align a window to the end, or drop it; under pad and align a tail shorter "
                     f"than {MIN_LAST_SECONDS:g} s gets no window and is dropped")
    perf = parser.add_argument_group("performance")
    add_batch_size(perf, default=SEGMENT_BATCH)
    add_num_workers(perf, default=DECODE_WORKERS,
                    what=f"decoding worker processes, capped at the CPU cores (default: {DECODE_WORKERS}; 0 decodes "
                         "in-process)")
    add_engine(perf)
    perf.add_argument("--use-legacy", "--use_legacy", dest="use_legacy", action="store_true",
                      help="the reference path: decode and run one file at a time in this process")


def _choose_format(args: argparse.Namespace) -> str:
    from melodex.inference.writers import format_from_path

    if args.format:
        return args.format
    if args.output:
        return format_from_path(args.output)
    return "table"


def run(args: argparse.Namespace) -> int:
    from melodex.audio.files import find_audio_files, find_audio_sources
    from melodex.inference.jsonl import prepare_resume, resume_key
    from melodex.inference.results import MODE_FIRST, MODE_FULL
    from melodex.inference.writers import TableWriter, get_writer

    fmt = _choose_format(args)
    if (args.hop is not None or args.last is not None) and not args.full:
        raise MelodexError("--hop and --last apply to --full only")
    if args.resume and (fmt != "jsonl" or not args.output):
        raise MelodexError("--resume needs a JSONL --output (it appends to that file)")
    mode = MODE_FULL if args.full else MODE_FIRST

    files = (find_audio_sources if args.engine == "ray" else find_audio_files)(args.audio, missing="keep")  # URIs: Ray
    if not files:
        raise MelodexError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) "
                           f"found in {' '.join(args.audio)}")
    predictor = make_predictor(args, args.model)
    done: set[str] = set()
    if args.resume:
        done = prepare_resume(Path(args.output), mode)
        before = len(files)
        files = [f for f in files if resume_key(str(f)) not in done]
        log.info("resuming %s: %d of %d files already done", args.output, before - len(files), before)

    if fmt == "table":
        writer = TableWriter(None, mode=mode, name_width=max(len(str(f)) for f in files) if files else 8,
                             label_width=max((len(label) for label in predictor.labels), default=5),
                             headless=not predictor.labels)
    else:
        writer = get_writer(fmt)(args.output, mode=mode, embeddings=args.embeddings, append=args.resume)
        if not predictor.labels:
            log.info("%s has no genre head: the output's prediction fields stay empty%s", args.model,
                     "" if args.embeddings else " and --no-embeddings leaves out the embeddings too")
    log.debug("%d files, mode %s, device %s, %d workers, batch %d", len(files), mode, predictor.device,
              predictor.num_workers, predictor.batch_size)

    results = predictor.predict(files, full=args.full, hop_seconds=args.hop, last=args.last or "pad",
                                embeddings=args.embeddings, legacy=args.use_legacy)
    failed: list[tuple[str, str]] = []
    try:
        with writer:
            _write_all(args, fmt, writer, results, len(files), failed)
    except KeyboardInterrupt:
        getattr(results, "close", lambda: None)()
        log.warning(_interrupted(args, fmt, writer.n_ok + writer.n_failed, len(done)))
        return EXIT_INTERRUPTED
    return _report(args, fmt, writer.n_ok, failed, len(done))


def _write_all(args: argparse.Namespace, fmt: str, writer, results, n_files: int,
               failed: list[tuple[str, str]]) -> None:
    """Write every result as it comes, under a progress bar on stderr that never lands inside
    the table on stdout (the bar is cleared while a row is printed). A failed file is reported
    once: in its table row, or else as one warning line."""
    from tqdm import tqdm

    with tqdm(total=n_files, unit="file", disable=True if args.quiet else None, leave=False) as bar:
        for result in results:
            if fmt == "table":
                with tqdm.external_write_mode(file=sys.stdout):
                    writer.write_result(result)
            else:
                writer.write_result(result)
            if not result.ok:
                failed.append((result.audio_file, result.error))
                if fmt != "table":
                    with tqdm.external_write_mode(file=sys.stderr):
                        log.warning("failed: %s: %s", result.audio_file, result.error)
            bar.update()


def _interrupted(args: argparse.Namespace, fmt: str, written: int, already: int) -> str:
    """What a Ctrl-C left behind, and how to go on."""
    if not args.output:
        return f"interrupted after {written} file(s)"
    if fmt == "jsonl":
        return (f"interrupted: {already + written} result(s) are in {args.output}; "
                "run the same command with --resume to continue")
    if fmt == "json":
        return (f"interrupted: nothing written to {args.output} (JSON is written at the end); "
                "for long runs use a .jsonl --output, which --resume continues")
    return (f"interrupted: {written} result(s) are in {args.output}; only a .jsonl --output "
            "can be resumed (--resume)")


def _report(args: argparse.Namespace, fmt: str, ok: int, failed: list[tuple[str, str]], already: int) -> int:
    """Log the run's one-line summary and return its exit status (1 when a file failed)."""
    where = f" -> {args.output}" if args.output else ""
    summary = f"{ok + len(failed)} file(s): {ok} ok, {len(failed)} failed{where}"
    if already:
        summary += f" ({already} already done)"
    if fmt == "table":  # the table on stdout ends with the same count, and lists the failures
        return 1 if failed else 0
    if failed:
        if fmt == "csv" and args.output:
            from melodex.inference.writers import errors_path

            summary += f"; failures listed in {errors_path(args.output)}"
        log.warning(summary)
        return 1
    log.info(summary)
    return 0
