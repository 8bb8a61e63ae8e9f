"""The result writers on hand-made results: fields, streaming, atomic JSON, sidecars."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from melodex.errors import OutputError
from melodex.inference.results import FileResult, SegmentPrediction
from melodex.inference.writers import errors_path, format_from_path, get_writer, jsonl_record
from melodex.util.atomic import cannot_write, output_errors
from melodex.util.csvlog import AppendLog, csv_line, read_csv_lines


def result(name: str, probs, *, labels=("Folk", "Pop", "Rock"), mode="first-30s", segments=1, emb=True):
    probs = np.asarray(probs, np.float32)
    segs = tuple(SegmentPrediction(i, 30.0 * i, 30.0 * (i + 1), probs) for i in range(segments))
    embedding = np.arange(512, dtype=np.float32) / 512 if emb else None
    return FileResult(name, mode, tuple(labels), 30.0 * segments, segs, probs, embedding)


def failed(name: str, mode="first-30s") -> FileResult:
    return FileResult.failed(name, mode, ("Folk", "Pop", "Rock"), "cannot decode (bad header)")


def write(fmt, path, results, **kw):
    with get_writer(fmt)(path, **kw) as writer:
        for r in results:
            writer.write_result(r)
    return writer


def test_top_and_probabilities_follow_the_labels():
    r = result("x.mp3", [0.2, 0.5, 0.3])
    assert r.top(3) == [("Pop", pytest.approx(0.5)), ("Rock", pytest.approx(0.3)), ("Folk", pytest.approx(0.2))]
    assert r.all_probabilities() == pytest.approx({"Folk": 0.2, "Pop": 0.5, "Rock": 0.3})
    two = result("y.mp3", [0.9, 0.1], labels=("A", "B"))
    assert [label for label, _ in two.top(3)] == ["A", "B"]  # fewer labels than k
    assert failed("z.mp3").top(3) == [] and not failed("z.mp3").ok


def test_jsonl_lines_are_flushed_as_results_arrive(tmp_path):
    out = tmp_path / "r.jsonl"
    with get_writer("jsonl")(out, mode="full-file") as writer:
        writer.write_result(result("a.mp3", [0.1, 0.2, 0.7], mode="full-file", segments=2))
        assert out.read_text().count("\n") == 1  # already on disk, whole
        writer.write_result(failed("b.mp3", "full-file"))
    first, second = (json.loads(line) for line in out.read_text().splitlines())
    assert first["total_segments"] == 2 and first["global_prediction"]["top_labels"] == ["Rock", "Pop", "Folk"]
    assert [s["segment_index"] for s in first["segments"]] == [0, 1]
    assert len(first["embedding"]) == 512
    assert second == {"audio_file": "b.mp3", "error": "cannot decode (bad header)"}
    assert "embedding" not in jsonl_record(result("a.mp3", [0.1, 0.2, 0.7]), embeddings=False)


def test_json_is_written_whole_at_the_end_and_keeps_the_old_file_on_failure(tmp_path):
    out = tmp_path / "r.json"
    out.write_text('{"old": true}')
    with pytest.raises(RuntimeError), get_writer("json")(out, mode="first-30s") as writer:
        writer.write_result(result("a.mp3", [0.1, 0.2, 0.7]))
        assert json.loads(out.read_text()) == {"old": True}
        raise RuntimeError("interrupted")
    assert json.loads(out.read_text()) == {"old": True}
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind
    write("json", out, [result("a.mp3", [0.1, 0.2, 0.7]), failed("b.mp3"), result("c.mp3", [0.6, 0.3, 0.1])],
          mode="first-30s")
    doc = json.loads(out.read_text())
    assert doc["audio_files"] == ["a.mp3", "c.mp3"] and doc["mode"] == "first-30s"
    assert [p["predicted_label"] for p in doc["predictions"]] == ["Rock", "Folk"]
    assert doc["errors"] == [{"audio_file": "b.mp3", "error": "cannot decode (bad header)"}]
    assert np.asarray(doc["embeddings"]).shape == (2, 512)


@pytest.mark.parametrize("mode", ["first-30s", "full-file"])
def test_json_without_results_or_embeddings_is_still_valid(tmp_path, mode):
    out = tmp_path / "r.json"
    write("json", out, [], mode=mode, embeddings=False)
    assert json.loads(out.read_text()) == {"audio_files": [], "mode": mode, "predictions": []}  # no "errors": none failed


@pytest.mark.parametrize("mode", ["first-30s", "full-file"])
def test_pandas_reads_the_json_output_with_and_without_failed_files(tmp_path, mode):
    out = tmp_path / "r.json"
    ok = [result("a.mp3", [0.1, 0.2, 0.7], mode=mode), result("c.mp3", [0.6, 0.3, 0.1], mode=mode)]
    write("json", out, ok, mode=mode)
    frame = pd.read_json(out)  # one row per file: every list has the same length
    assert list(frame["audio_files"]) == ["a.mp3", "c.mp3"] and set(frame["mode"]) == {mode}
    assert [p["audio_file"] for p in frame["predictions"]] == ["a.mp3", "c.mp3"]
    assert np.asarray(frame["embeddings"].tolist()).shape == (2, 512)
    assert "errors" not in json.loads(out.read_text())
    write("json", out, [ok[0], failed("b.mp3", mode=mode), ok[1]], mode=mode)
    doc = pd.read_json(out, typ="series")  # "errors" has its own length: read the document as a series
    assert list(pd.DataFrame(doc["predictions"])["audio_file"]) == ["a.mp3", "c.mp3"]
    assert pd.DataFrame(doc["errors"]).to_dict("records") == [{"audio_file": "b.mp3", "error": "cannot decode (bad header)"}]


def test_json_and_jsonl_to_stdout(capsys):
    write("json", None, [result("a.mp3", [0.1, 0.2, 0.7])], mode="first-30s", embeddings=False)
    assert json.loads(capsys.readouterr().out)["audio_files"] == ["a.mp3"]
    write("jsonl", None, [failed("b.mp3")], mode="first-30s")
    assert json.loads(capsys.readouterr().out)["audio_file"] == "b.mp3"


def test_csv_quotes_odd_names_and_keeps_failures_in_a_sidecar(tmp_path):
    out = tmp_path / "r.csv"
    errors_path(out).write_text("audio_file,error\nstale.mp3,old\n")
    odd = 'dir, with "quotes"/song.mp3'
    write("csv", out, [result(odd, [0.1, 0.2, 0.7])], mode="first-30s")
    frame = pd.read_csv(out)
    assert frame["audio_file"].tolist() == [odd] and frame["predicted_label"].tolist() == ["Rock"]
    assert json.loads(frame["embedding"][0]) == pytest.approx((np.arange(512) / 512).tolist())
    assert not errors_path(out).exists()  # a stale sidecar is removed; none made without failures
    write("csv", out, [failed("b.mp3"), result("c.mp3", [0.5, 0.3, 0.2])], mode="full-file", embeddings=False)
    assert list(pd.read_csv(out).columns) == ["audio_file", "rank", "predicted_label", "probability"]
    assert pd.read_csv(errors_path(out)).to_dict("records") == [
        {"audio_file": "b.mp3", "error": "cannot decode (bad header)"}]
    assert errors_path(out).name == "r.errors.csv"


def test_table_is_aligned_and_ends_with_a_summary(capsys):
    rows = [result("a.mp3", [0.1, 0.2, 0.7]), failed("much/longer/name.mp3"), result("b.mp3", [0.6, 0.3, 0.1])]
    write("table", None, rows, mode="first-30s")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("file") and lines[-1] == "3 files: 2 ok, 1 failed"
    assert "ERROR: cannot decode" in lines[2]
    assert lines[1].index("%") == lines[3].index("%")
    assert "Rock" in lines[1] and "70.0%" in lines[1]


def test_format_names_and_refusals(tmp_path):
    assert format_from_path("x.JSONL") == "jsonl" and format_from_path("a/b.Csv") == "csv"
    assert format_from_path("r.json") == "json"
    with pytest.raises(OutputError, match="--format"):
        format_from_path("results.txt")
    with pytest.raises(OutputError, match="unknown output format"):
        get_writer("xml")
    with pytest.raises(OutputError, match="cannot be appended"):
        get_writer("json")(tmp_path / "r.json", mode="first-30s", append=True)
    with pytest.raises(ValueError, match="mode"):
        get_writer("jsonl")(tmp_path / "r.jsonl", mode="everything")


def test_unwritable_output_is_an_output_error(tmp_path):
    (tmp_path / "file").write_text("")
    for fmt in ("jsonl", "json", "csv"):
        with pytest.raises(OutputError, match="cannot write"):
            get_writer(fmt)(tmp_path / "file" / f"r.{fmt}", mode="first-30s").open()  # before any inference


def test_cannot_write_is_one_line_naming_the_file_and_the_reason(tmp_path):
    full = OSError(errno.ENOSPC, "No space left on device (errno 28)")
    assert str(cannot_write(Path("out/r.csv"), full)) == "out/r.csv: cannot write (no space left on device)"
    assert str(cannot_write(None, OSError(errno.EPIPE, "Broken pipe"))) == "stdout: cannot write (Broken pipe)"
    assert str(cannot_write("r.json", "not a writable file location")) == "r.json: cannot write (not a writable file location)"
    with pytest.raises(OutputError, match=r"^x\.log: cannot write \(Permission denied\)$") as caught, \
            output_errors("x.log"):
        raise PermissionError(errno.EACCES, "Permission denied")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="file/log.csv: cannot write"):
        AppendLog(tmp_path / "file" / "log.csv", ("a", "b"))


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "table"])
def test_a_full_disk_mid_run_is_an_output_error_naming_the_file(fmt):
    with pytest.raises(OutputError, match=r"^/dev/full: cannot write \(no space left on device\)$"):
        write(fmt, "/dev/full", [result("a.mp3", [0.1, 0.2, 0.7])], mode="first-30s")


def test_a_lone_carriage_return_is_quoted_in_every_csv(tmp_path):
    name, error = "odd\rname.mp3", "bad\rheader"
    assert csv_line(name, 1) == '"odd\rname.mp3",1\n' and csv_line("a", "b,c") == 'a,"b,c"\n'
    out = tmp_path / "r.csv"
    write("csv", out, [result(name, [0.1, 0.2, 0.7]), FileResult.failed(name, "first-30s", ("A",), error)],
          mode="first-30s", embeddings=False)
    rows = list(csv.reader(io.StringIO(out.read_bytes().decode())))
    assert rows[1][0] == name and len(rows) == 2
    assert list(csv.reader(io.StringIO(errors_path(out).read_bytes().decode()))) == [["audio_file", "error"],
                                                                                     [name, error]]
    with AppendLog(tmp_path / "log.csv", ("key", "reason")) as log:
        log.append(name, error)
    assert read_csv_lines(tmp_path / "log.csv", ("key", "reason")) == [[name, error]]


def test_a_failed_run_leaves_streamed_rows_and_no_document(tmp_path):
    out = tmp_path / "r.jsonl"
    with pytest.raises(RuntimeError), get_writer("jsonl")(out, mode="first-30s") as writer:
        writer.write_result(failed("a.mp3"))
        raise RuntimeError("interrupted")
    assert json.loads(out.read_text()) == {"audio_file": "a.mp3", "error": "cannot decode (bad header)"}
    write("jsonl", out, [failed("b.mp3")], mode="first-30s", append=True)
    assert [json.loads(line)["audio_file"] for line in out.read_text().splitlines()] == ["a.mp3", "b.mp3"]
