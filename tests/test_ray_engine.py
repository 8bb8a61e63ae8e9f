"""``--engine ray`` on a two-node Ray cluster in this machine, tested the way Ray tests itself.

One module-scoped :class:`ray.cluster_utils.Cluster` (a head and a worker node, one CPU each:
two CPUs in all, the setting where an actor pool that takes every CPU starves the decode tasks)
serves every test. The commands run as a user runs them (``melodex infer|index --engine ray
--address ...``), and their outputs are compared with the local engine's: the same files in the
same order, the same failures with the same reasons, embeddings within 1e-4.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from _helpers_trainer import BROKEN_KEY, make_fma_fixture

from melodex.audio.uris import register_filesystem
from melodex.cli import main
from melodex.features.cache import FeatureCache
from melodex.library.schema import EMBEDDING_KEY, MODEL_KEY
from melodex.library.store import LibraryStore

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")


@pytest.fixture(scope="module")
def cluster():
    """A head node and a worker node, one CPU each, joined by this test process."""
    nodes = cluster_utils.Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    nodes.add_node(num_cpus=1)
    nodes.wait_for_nodes()
    ray.init(address=nodes.address, include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield nodes
    finally:
        ray.shutdown()
        nodes.shutdown()


@pytest.fixture
def clips(make_audio, tmp_path) -> Path:
    """Three short clips (one of 35 s: two segments in --full), a corrupt file and an empty one."""
    folder = tmp_path / "music"
    folder.mkdir()
    for name, seconds, freq in (("a.wav", 2.0, 330.0), ("b.flac", 4.0, 550.0), ("c.wav", 35.0, 440.0)):
        shutil.move(make_audio(name, seconds=seconds, sr=22050, freq=freq), folder / name)
    (folder / "broken.mp3").write_bytes(b"this is not audio" * 10)
    (folder / "empty.wav").write_bytes(b"")
    return folder


@pytest.fixture
def bucket(clips) -> str:
    """``mdxtest://music``: the clips behind a non-local scheme (an fsspec filesystem over their
    folder, in pyarrow's PyFileSystem), read as bytes by the nodes without any network."""
    fsspec = pytest.importorskip("fsspec")
    from fsspec.implementations.dirfs import DirFileSystem
    from pyarrow import fs as pafs

    register_filesystem("mdxtest", pafs.PyFileSystem(pafs.FSSpecHandler(
        DirFileSystem(path=str(clips.parent), fs=fsspec.filesystem("file")))))
    yield "mdxtest://music"
    register_filesystem("mdxtest", None)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _assert_same_results(local: list[dict], remote: list[dict]) -> None:
    assert [r["audio_file"] for r in remote] == [r["audio_file"] for r in local]
    for mine, theirs in zip(local, remote):
        assert theirs.get("error") == mine.get("error"), mine["audio_file"]
        if mine.get("error"):
            continue
        assert theirs["duration"] == pytest.approx(mine["duration"])
        assert [s["start_time"] for s in theirs["segments"]] == [s["start_time"] for s in mine["segments"]]
        np.testing.assert_allclose(theirs["embedding"], mine["embedding"], atol=1e-4)
        probs = theirs["global_prediction"]["all_probabilities"]
        assert probs == pytest.approx(mine["global_prediction"]["all_probabilities"], abs=1e-4)


def test_infer_on_the_cluster_gives_the_local_engine_results(cluster, clips, tiny_checkpoint_factory, tmp_path):
    model = str(tiny_checkpoint_factory())
    outputs = {}
    for engine in ("local", "ray"):
        outputs[engine] = tmp_path / f"{engine}.jsonl"
        status = main(["infer", "--model", model, "--audio", str(clips), "--full", "--output", str(outputs[engine]),
                       "--engine", engine, *(["--address", cluster.address] if engine == "ray" else []), "-q"])
        assert status == 1, engine  # two files fail, in both engines
    local, remote = _lines(outputs["local"]), _lines(outputs["ray"])
    assert len(remote) == 5  # rows out equal files in, failures included
    assert sum(1 for r in remote if r.get("error")) == 2
    assert next(r for r in remote if r["audio_file"].endswith("c.wav"))["total_segments"] == 2
    _assert_same_results(local, remote)


def test_infer_reads_uris_on_the_nodes_and_resumes_by_uri(cluster, clips, bucket, tiny_checkpoint_factory, tmp_path):
    model = str(tiny_checkpoint_factory())
    local, remote = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    assert main(["infer", "--model", model, "--audio", str(clips), "--output", str(local), "-q"]) == 1
    ray_run = ["infer", "--model", model, "--audio", bucket, "--output", str(remote), "--engine", "ray",
               "--address", cluster.address, "-q"]
    assert main(ray_run) == 1
    rows = _lines(remote)
    assert [r["audio_file"] for r in rows] == [f"{bucket}/{Path(r['audio_file']).name}" for r in _lines(local)]
    _assert_same_results([{**r, "audio_file": Path(r["audio_file"]).name} for r in _lines(local)],
                         [{**r, "audio_file": Path(r["audio_file"]).name} for r in rows])
    shutil.copy(clips / "a.wav", clips / "d.wav")  # only the new object and the two failures are read again
    assert main([*ray_run, "--resume"]) == 1
    assert sorted(r["audio_file"] for r in _lines(remote) if not r.get("error")) == \
        [f"{bucket}/{name}" for name in ("a.wav", "b.flac", "c.wav", "d.wav")]


def test_index_on_the_cluster_stores_what_the_local_engine_stores_and_resumes(
        cluster, clips, tiny_checkpoint_factory, tmp_path, capsys):
    model = str(tiny_checkpoint_factory())
    base = ["index", "--audio", str(clips), "--model", model, "--no-tags"]
    assert main([*base, "--store", str(tmp_path / "local"), "-q"]) == 1
    ray_run = [*base, "--store", str(tmp_path / "ray"), "--engine", "ray", "--address", cluster.address]
    capsys.readouterr()
    assert main([*ray_run, "-q"]) == 1
    failed = sorted(line for line in capsys.readouterr().err.splitlines() if line.startswith("failed: "))
    assert [Path(line.split(": ")[1]).name for line in failed] == ["broken.mp3", "empty.wav"]
    assert failed[1].endswith(": the file is empty (0 bytes)")
    local, remote = LibraryStore(tmp_path / "local"), LibraryStore(tmp_path / "ray")
    assert len(remote) == len(local) == 3
    order_l, order_r = local.tracks()["path"].tolist(), remote.tracks()["path"].tolist()
    assert sorted(order_r) == sorted(order_l)
    np.testing.assert_allclose(remote.embeddings()[[order_r.index(p) for p in order_l]], local.embeddings(),
                               atol=1e-4)
    shutil.copy(clips / "a.wav", clips / "d.wav")  # the folder grows: only what is new goes to the cluster
    assert main(ray_run) == 1  # the two bad files are tried again, and fail again
    assert "3 new audio file(s) to index (3 already in the store)" in capsys.readouterr().err
    assert len(LibraryStore(tmp_path / "ray")) == 4


def test_index_reads_uris_on_the_nodes_and_commits_the_parts_they_write(
        cluster, clips, bucket, tiny_checkpoint_factory, tmp_path, capsys, monkeypatch):
    model = str(tiny_checkpoint_factory())
    base = ["index", "--model", model, "--no-tags"]
    capsys.readouterr()
    assert main([*base, "--audio", str(clips), "--store", str(tmp_path / "local")]) == 1
    local_failed = _failures(capsys.readouterr().err)
    store = tmp_path / "ray"
    leftover = store / "_staging" / "killed-run" / "0123.parquet.staged"  # what a killed run leaves
    leftover.parent.mkdir(parents=True)
    shutil.copy(LibraryStore(tmp_path / "local").part_files()[0], leftover)
    monkeypatch.setattr(LibraryStore, "add_batches", None)  # the driver writes no rows: the workers do
    ray_run = [*base, "--store", str(store), "--engine", "ray", "--address", cluster.address, "--part-size", "2",
               "--audio", bucket, f"{bucket}/missing.wav", (clips / "a.wav").as_uri()]
    assert main(ray_run) == 1
    failed = _failures(capsys.readouterr().err)
    assert failed == {f"{bucket}/{name}": reason for name, reason in local_failed.items()} | \
        {f"{bucket}/missing.wav": "no such file"}
    remote, local = LibraryStore(store), LibraryStore(tmp_path / "local")
    paths = remote.tracks()["path"].tolist()
    assert sorted(paths) == sorted([f"{bucket}/a.wav", f"{bucket}/b.flac", f"{bucket}/c.wav",
                                    str((clips / "a.wav").resolve())])  # a file:// URI is the local path
    by_name = {Path(p).name: row for row, p in zip(local.embeddings(), local.tracks()["path"])}
    for row, path in zip(remote.embeddings(), paths):
        np.testing.assert_allclose(row, by_name[Path(path).name], atol=1e-4)
    assert not (store / "_staging").exists()
    ours, theirs = (pq.read_schema(LibraryStore(s).part_files()[0]).metadata for s in (store, tmp_path / "local"))
    assert (ours[EMBEDDING_KEY], ours[MODEL_KEY]) == (theirs[EMBEDDING_KEY], theirs[MODEL_KEY])
    assert main([*ray_run, "-q"]) == 1  # resume: only the three that failed go to the cluster again
    assert len(LibraryStore(store)) == 4


def _failures(err: str) -> dict[str, str]:
    """The ``failed: FILE: REASON`` lines of a run, as {file (its name for local files): reason}."""
    found = {}
    for line in err.splitlines():
        if line.startswith("failed: "):
            name, reason = line[len("failed: "):].split(": ", 1)
            found[name if "://" in name else Path(name).name] = reason
    return found


def test_preprocess_on_the_cluster_fills_the_cache_as_the_local_engine_does(cluster, tmp_path, capsys):
    data_dir = make_fma_fixture(tmp_path / "fma")
    argv = ["preprocess", "--data_dir", str(data_dir)]
    assert main([*argv, "--cache-dir", str(tmp_path / "local"), "-q"]) == 1
    ray_run = [*argv, "--cache-dir", str(tmp_path / "ray"), "--engine", "ray", "--address", cluster.address]
    assert main([*ray_run, "-q"]) == 1
    local, remote = FeatureCache(tmp_path / "local"), FeatureCache(tmp_path / "ray")
    assert remote.seconds() == pytest.approx(local.seconds())
    for key in local.seconds():
        np.testing.assert_array_equal(np.load(remote.path_for(key)), np.load(local.path_for(key)))
    assert [(f.key, f.reason) for f in remote.failures().values()] == \
        [(f.key, f.reason) for f in local.failures().values()]
    assert BROKEN_KEY in remote.failures()
    capsys.readouterr()
    assert main(ray_run) == 1  # again: nothing is left to do (the broken file is skipped, still failed)
    assert "0 written now" in capsys.readouterr().err


def test_engine_ray_without_ray_says_how_to_install_it(monkeypatch, clips, tiny_checkpoint_factory, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    status = main(["infer", "--model", str(tiny_checkpoint_factory()), "--audio", str(clips), "--engine", "ray"])
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'melodex[ray]'" in err[0]


def test_address_without_the_ray_engine_is_a_usage_error(clips, tiny_checkpoint_factory, capsys):
    status = main(["infer", "--model", str(tiny_checkpoint_factory()), "--audio", str(clips), "--address", "auto"])
    assert status == 2
    assert "--address applies to --engine ray only" in capsys.readouterr().err
