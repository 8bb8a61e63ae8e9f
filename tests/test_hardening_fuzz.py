"""Property-based fuzzing of what Melodex parses and writes (hypothesis).

Targets: the dataset manifest (:func:`melodex.datasets.manifest.load_manifest`), FMA's
``tracks.csv`` (:func:`melodex.datasets.fma.load_tracks`), the metadata manifest and date
normalisation (:mod:`melodex.library.metadata`), tags read from files carrying random tag values
(:func:`melodex.library.metadata.read_tags`), and the result writers (:mod:`melodex.inference.writers`): any label
or file name, quotes, commas, newlines and unicode included, round-trips through pandas.

The promise checked everywhere: a parser returns a result or raises the documented
``MelodexError`` subclass (one line, naming the file), never anything else.

CI runs few examples (``MELODEX_FUZZ_EXAMPLES``, default 30, ``deadline=None``). For a longer
hunt::

    MELODEX_FUZZ_EXAMPLES=5000 python -m pytest tests/test_hardening_fuzz.py -p no:cacheprovider

Crashes found are fixed where they were and kept below as ``@example`` regressions.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from melodex.errors import DatasetError

EXAMPLES = int(os.environ.get("MELODEX_FUZZ_EXAMPLES", "30"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 100,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Text as it turns up in user files: anything printable plus the characters that break naive CSV.
nasty_text = st.text(alphabet=st.one_of(st.characters(blacklist_categories=("Cs",)), st.sampled_from(',"\n\r\'\\;<>&\x00')),
                     max_size=40)


@pytest.fixture(scope="module")
def scratch():
    folder = Path(tempfile.mkdtemp(prefix="melodex-fuzz-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _one_line(exc: BaseException, path: Path) -> None:
    text = str(exc)
    assert str(path) in text
    assert len(text) < 2000


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def _parse_or_explain(parse, path: Path):
    """``parse(path)``, or None after checking that its DatasetError is one line naming the file."""
    try:
        return parse(path)
    except DatasetError as exc:
        _one_line(exc, path)
        return None


# ----------------------------------------------------------------------------- dataset manifest

_COLUMNS = ["path", "label", "artist", "date", "split", "title", "PATH", "Label", "extra", ""]


@FUZZ
@given(header=st.lists(st.sampled_from(_COLUMNS), min_size=0, max_size=6),
       rows=st.lists(st.lists(st.one_of(nasty_text, st.sampled_from(["a.wav", "b.wav", "2004-05-06", "train",
                                                                      "validation", "test", "Rock"])),
                              max_size=7), max_size=6))
@example(header=["path", "label"], rows=[["a.wav", "Rock"], ["a.wav", "Pop"]])  # listed twice
@example(header=["path", "label", "split"], rows=[["a.wav", "Rock", "nope"]])
@example(header=["path", "label"], rows=[["\x00", "Rock"]])
def test_dataset_manifest_parses_or_names_the_problem(header, rows, scratch):
    from melodex.datasets.manifest import load_manifest

    (scratch / "a.wav").write_bytes(b"RIFF")  # only existence matters to the manifest reader
    (scratch / "b.wav").write_bytes(b"RIFF")
    path = _write_csv(scratch / "m.csv", header, rows)
    dataset = _parse_or_explain(load_manifest, path)
    if dataset is None:
        return
    assert dataset.tracks and all(t.path.is_file() and t.label for t in dataset.tracks)
    assert all(t.split in ("training", "validation", "test") for t in dataset.tracks)
    assert len({t.key for t in dataset.tracks}) == len(dataset.tracks)


# ----------------------------------------------------------------------------- tracks.csv

_CELL = st.one_of(st.none(), nasty_text, st.sampled_from(["2008-11-26 01:44:45", "2010", "[1, 2]", "[]", "nan",
                                                           "small", "medium", "training", "test"]))


@FUZZ
@given(ids=st.lists(st.one_of(st.integers(-3, 10**7), st.sampled_from(["x", "1.5", ""])), min_size=1, max_size=5),
       titles=st.lists(_CELL, min_size=5, max_size=5), dates=st.lists(_CELL, min_size=5, max_size=5),
       tags=st.lists(_CELL, min_size=5, max_size=5), subsets=st.lists(_CELL, min_size=5, max_size=5),
       splits=st.lists(_CELL, min_size=5, max_size=5))
@example(ids=[2, 2], titles=[None] * 5, dates=[None] * 5, tags=[None] * 5, subsets=["small"] * 5,
         splits=["training"] * 5)
@example(ids=[5], titles=["x"] * 5, dates=["2008-13-45"] * 5, tags=["[1, 2"] * 5, subsets=["small"] * 5,
         splits=["test"] * 5)
def test_tracks_csv_parses_or_names_the_track(ids, titles, dates, tags, subsets, splits, scratch):
    from melodex.datasets.fma import ALL_COLUMNS, load_tracks

    columns = pd.MultiIndex.from_tuples(ALL_COLUMNS)
    frame = pd.DataFrame(index=pd.Index(ids, name="track_id"), columns=columns, dtype=object)
    n = len(ids)
    frame["track", "title"] = titles[:n] + [None] * (n - len(titles[:n]))
    frame["album", "date_released"] = (dates * 2)[:n]
    frame["track", "tags"] = (tags * 2)[:n]
    frame["set", "subset"] = (subsets * 2)[:n]
    frame["set", "split"] = (splits * 2)[:n]
    frame["track", "genre_top"] = "Rock"
    path = scratch / "tracks.csv"
    frame.to_csv(path)
    try:
        tracks = load_tracks(path)
    except DatasetError as exc:
        _one_line(exc, path)
        return
    assert tracks.index.is_unique and (tracks.index >= 0).all()
    assert all(isinstance(v, list) for v in tracks["track", "tags"])
    assert set(tracks["set", "subset"].dropna()) <= {"small", "medium", "large"}


# ----------------------------------------------------------------------------- dates and tags

_ISO = re.compile(r"^\d{4}(-\d{2}-\d{2})?$")


@FUZZ
@given(value=st.one_of(nasty_text, st.integers(), st.floats(allow_nan=True), st.none(),
                       st.from_regex(r"\A\s*\d{4}[-/.]\d{1,2}[-/.]\d{1,2}.{0,10}\Z")))
@example(value="2004-02-30")
@example(value="0999-01-01")
@example(value=" 2004/5/6T10:00")
def test_normalize_date_gives_iso_or_none_and_is_stable(value):
    import datetime

    from melodex.library.metadata import normalize_date

    out = normalize_date(value)
    if out is None:
        return
    assert _ISO.match(out), out
    if len(out) == 10:
        datetime.date.fromisoformat(out)  # a real calendar day
    assert normalize_date(out) == out


@FUZZ
@given(rows=st.lists(st.lists(nasty_text, max_size=8), max_size=5),
       header=st.lists(st.sampled_from(["path", "artist", "title", "album", "date", "genre", "x", ""]), max_size=7))
@example(rows=[["a.wav", "x", "y"]], header=["path", "artist"])
def test_metadata_manifest_parses_or_names_the_problem(rows, header, scratch):
    from melodex.library.metadata import FIELDS, read_manifest

    path = _write_csv(scratch / "meta.csv", header, rows)
    out = _parse_or_explain(read_manifest, path)
    if out is None:
        return
    for fields in out.values():
        assert set(fields) <= set(FIELDS) | {"date_source"}
        assert all(isinstance(v, str) and v and "\x00" not in v for v in fields.values())


@pytest.fixture(scope="module")
def tagged_template(scratch) -> tuple[Path, Path]:
    from tests import nasty

    mp3 = nasty._write(scratch / "t.mp3", nasty.tone(0.3, 22050), 22050)
    flac = nasty._write(scratch / "t.flac", nasty.tone(0.3, 22050), 22050)
    return mp3, flac


_TAG_VALUE = st.text(st.characters(blacklist_categories=("Cs",)), max_size=600)


@FUZZ
@given(values=st.fixed_dictionaries({}, optional={k: _TAG_VALUE for k in ("artist", "title", "album", "date", "genre")}),
       fmt=st.sampled_from(["mp3", "flac"]))
@example(values={"date": "\x00\x00", "title": "\x00<script>"}, fmt="mp3")
@example(values={"artist": " " * 600}, fmt="flac")
@example(values={"genre": "0"}, fmt="mp3")  # found by the long run: ID3 genre numbers
def test_tags_with_any_values_read_back_clean(values, fmt, tagged_template, scratch):
    import mutagen

    from melodex.library.metadata import MAX_TAG_CHARS, read_tags

    template = tagged_template[0] if fmt == "mp3" else tagged_template[1]
    path = scratch / f"fuzzed.{fmt}"
    shutil.copyfile(template, path)
    audio = mutagen.File(str(path), easy=True)
    if audio.tags is None:
        audio.add_tags()
    for key, value in values.items():
        try:
            audio[key] = value
        except (ValueError, KeyError):  # the tag format itself refuses the value
            return
    try:
        audio.save()
    except Exception:  # mutagen refused to write it: nothing to read back
        return
    tags = read_tags(path)
    for key, value in tags.items():
        assert isinstance(value, str) and value == value.strip() and "\x00" not in value
        assert 0 < len(value) <= MAX_TAG_CHARS
    if "date" in tags:
        assert _ISO.match(tags["date"]) and tags["date_source"] == "tags"
    for key in ("artist", "title", "album", "genre"):
        if key == "genre" and fmt == "mp3":
            continue  # ID3 reads a numeric genre as an ID3v1 genre number ("0" is "Blues"): mutagen's rule
        wanted = values.get(key, "").replace("\x00", " ").strip()
        if key in tags and "\x00" not in values.get(key, ""):
            assert tags[key] == wanted[:MAX_TAG_CHARS].strip()


# ----------------------------------------------------------------------------- writers

_NAME = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/"), min_size=1, max_size=30)


@FUZZ
@given(labels=st.lists(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=15), min_size=1,
                       max_size=4, unique=True),
       names=st.lists(_NAME, min_size=1, max_size=4, unique=True),
       errors=st.lists(nasty_text, min_size=1, max_size=4),
       full=st.booleans(), seed=st.integers(0, 1000))
@example(labels=['a,"b"', "c\nd", "NaN"], names=["x,\"y\"\n.wav", "nan", "1"], errors=["", "a\nb"], full=False, seed=0)
@example(labels=["null", "True", " "], names=["None", " lead", "é\u2028"], errors=["\r"], full=True, seed=1)
def test_writers_round_trip_any_label_and_file_name(labels, names, errors, full, seed, scratch):
    from melodex.inference.results import MODE_FIRST, MODE_FULL, FileResult, SegmentPrediction
    from melodex.inference.writers import errors_path, get_writer

    rng = np.random.default_rng(seed)
    mode = MODE_FULL if full else MODE_FIRST
    results = []
    for i, name in enumerate(names):
        if i % 3 == 2:
            results.append(FileResult.failed(name, mode, tuple(labels), errors[i % len(errors)] or "x"))
            continue
        probs = rng.dirichlet(np.ones(len(labels))).astype(np.float32)
        results.append(FileResult(audio_file=name, mode=mode, labels=tuple(labels), duration=1.0,
                                  segments=(SegmentPrediction(0, 0.0, 1.0, probs),), probabilities=probs,
                                  embedding=rng.random(4).astype(np.float32)))
    ok = [r for r in results if r.ok]
    failed = [r for r in results if not r.ok]
    for fmt in ("jsonl", "json", "csv"):
        out = scratch / f"out.{fmt}"
        errors_path(out).unlink(missing_ok=True)
        with get_writer(fmt)(out, mode=mode) as writer:
            for result in results:
                writer.write_result(result)
        if fmt == "jsonl":
            frame = pd.read_json(out, lines=True, dtype=False)
            assert list(frame["audio_file"]) == names
            for record, result in zip(map(json.loads, out.read_text(encoding="utf-8").splitlines()), results):
                if result.ok:
                    assert list(record["global_prediction"]["all_probabilities"]) == labels
                else:
                    assert record["error"] == result.error
        elif fmt == "json":
            doc = json.loads(out.read_text(encoding="utf-8"))
            assert doc["audio_files"] == [r.audio_file for r in ok]
            assert ("errors" in doc) == bool(failed)  # written only when a file failed
            assert [e["audio_file"] for e in doc.get("errors", [])] == [r.audio_file for r in failed]
            assert [e["error"] for e in doc.get("errors", [])] == [r.error for r in failed]
            frame = pd.DataFrame(doc["predictions"])
            if ok:
                assert list(frame["audio_file"]) == [r.audio_file for r in ok]
        else:
            frame = pd.read_csv(out, dtype=str, keep_default_na=False)
            per_file = 3 if full else 1
            expected = [r.audio_file for r in ok for _ in range(min(per_file, len(labels)))]
            assert list(frame["audio_file"]) == expected
            assert set(frame["predicted_label"]) <= set(labels)
            if failed:
                side = pd.read_csv(errors_path(out), dtype=str, keep_default_na=False)
                assert list(side["audio_file"]) == [r.audio_file for r in failed]
                assert list(side["error"]) == [r.error for r in failed]


def test_a_file_name_with_undecodable_bytes_does_not_stop_a_run(tmp_path, capsys, tiny_checkpoint_factory):
    """Linux file names are bytes; one that is not UTF-8 reaches Python as surrogate escapes."""
    from melodex.cli import main
    from melodex.library.store import LibraryStore
    from tests import nasty

    model = tiny_checkpoint_factory(["A", "B"], small=True)
    music = tmp_path / "music"
    nasty._write(music / "cafe.wav", nasty.tone(0.5, 8000), 8000)
    os.rename(bytes(music / "cafe.wav"), bytes(music) + b"/caf\xe9.wav")  # latin-1 bytes in a name
    nasty._write(music / "plain.wav", nasty.tone(0.5, 8000, freq=400), 8000)
    for fmt in ("csv", "jsonl", "json"):
        out = tmp_path / f"r.{fmt}"
        assert main(["infer", "--model", str(model), "--audio", str(music), "--output", str(out),
                     "--num-workers", "0", "-q"]) == 0
        text = out.read_text(encoding="utf-8")  # still valid UTF-8
        assert "caf\\udce9.wav" in text and "plain.wav" in text
    records = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert os.fsencode(records[0]["audio_file"]).endswith(b"caf\xe9.wav")  # JSON keeps the exact name
    assert main(["index", "--store", str(tmp_path / "lib"), "--audio", str(music), "--model", str(model),
                 "--num-workers", "0", "-q"]) == 1
    assert "not valid UTF-8" in capsys.readouterr().err
    assert [Path(p).name for p in LibraryStore(tmp_path / "lib").tracks()["path"]] == ["plain.wav"]
