"""Audio named by URIs: listing through ``pyarrow.fs``, reading as bytes, decoding from memory.

A non-local scheme is exercised without a network: ``mdxtest://`` is registered to an fsspec
filesystem over a temporary folder, wrapped in ``pyarrow.fs.PyFileSystem(FSSpecHandler(...))``,
as an fsspec-only store (Azure, HTTP) would be.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from melodex.audio.decode import AudioBytes, load_audio, probe_duration, stream_audio
from melodex.audio.files import find_audio_files, find_audio_sources
from melodex.audio.uris import RemoteFile, read_bytes, register_filesystem
from melodex.cli import main
from melodex.errors import AudioLoadError, MelodexError
from melodex.library.store import path_key, resolved_path

fsspec = pytest.importorskip("fsspec")
pafs = pytest.importorskip("pyarrow.fs")


class _Locked(pafs.FSSpecHandler):
    """An fsspec handler that refuses to open one object, as a bucket without read rights does."""

    def open_input_stream(self, path):
        if path.endswith("locked.wav"):
            raise PermissionError(f"{path}: AccessDenied")
        return super().open_input_stream(path)


@pytest.fixture
def bucket(tmp_path, make_audio):
    """``mdxtest://music/...``: audio in nested folders, extensions in any case, a text file,
    a corrupt mp3, an empty wav and one object nobody may read."""
    from fsspec.implementations.dirfs import DirFileSystem

    music = tmp_path / "root" / "music"
    (music / "live").mkdir(parents=True)
    shutil.move(make_audio("a.wav", seconds=2.0, sr=22050), music / "a.wav")
    shutil.move(make_audio("b.flac", seconds=3.0, sr=44100, freq=550.0), music / "live" / "B.FLAC")
    shutil.copy(music / "a.wav", music / "locked.wav")
    (music / "notes.txt").write_text("not audio")
    (music / "broken.mp3").write_bytes(b"this is not audio" * 10)
    (music / "empty.wav").write_bytes(b"")
    handler = _Locked(DirFileSystem(path=str(tmp_path / "root"), fs=fsspec.filesystem("file")))
    register_filesystem("mdxtest", pafs.PyFileSystem(handler))
    yield music
    register_filesystem("mdxtest", None)


def test_a_folder_uri_lists_its_audio_recursively_in_any_case_sorted(bucket):
    found = find_audio_sources(["mdxtest://music", "mdxtest://music/a.wav"], missing="keep")
    assert all(isinstance(item, RemoteFile) for item in found)
    assert [str(item) for item in found] == [f"mdxtest://music/{name}" for name in
                                             ("a.wav", "broken.mp3", "empty.wav", "live/B.FLAC", "locked.wav")]
    assert found[3].path == "music/live/B.FLAC"


def test_missing_uris_are_kept_or_raised_as_local_paths_are(bucket):
    (kept,) = find_audio_sources(["mdxtest://music/gone.mp3"], missing="keep")
    with pytest.raises(AudioLoadError, match=r"^mdxtest://music/gone.mp3: no such file$"):
        read_bytes(kept)
    with pytest.raises(FileNotFoundError, match="gone.mp3: no such file"):
        find_audio_sources(["mdxtest://music/gone.mp3"], missing="raise")


def test_read_failures_carry_the_local_decoders_reasons(bucket):
    by_name = {Path(str(item)).name: item for item in find_audio_sources(["mdxtest://music"], missing="keep")}
    with pytest.raises(AudioLoadError, match=r"locked.wav: permission denied$"):
        read_bytes(by_name["locked.wav"])
    with pytest.raises(AudioLoadError, match=r"empty.wav: the file is empty \(0 bytes\)$"):
        read_bytes(by_name["empty.wav"])
    data = read_bytes(by_name["broken.mp3"])
    with pytest.raises(AudioLoadError) as remote:
        load_audio(AudioBytes(str(by_name["broken.mp3"]), data))
    with pytest.raises(AudioLoadError) as local:
        load_audio(bucket / "broken.mp3")
    assert remote.value.reason == local.value.reason


@pytest.mark.parametrize("name", ["a.wav", "live/B.FLAC"])
def test_bytes_decode_like_the_file(bucket, name):
    audio = AudioBytes(f"mdxtest://music/{name}", (bucket / name).read_bytes())
    np.testing.assert_array_equal(load_audio(audio, duration=1.0), load_audio(bucket / name, duration=1.0))
    np.testing.assert_array_equal(np.concatenate(list(stream_audio(audio))),
                                  np.concatenate(list(stream_audio(bucket / name))))
    assert probe_duration(audio) == pytest.approx(probe_duration(bucket / name))


def test_unknown_schemes_and_remote_hosts_are_one_line_errors(bucket):
    with pytest.raises(MelodexError, match=r"^nosuch://x/y: nosuch:// URIs cannot be read \(") as caught:
        find_audio_sources(["nosuch://x/y"])
    assert "\n" not in str(caught.value)
    with pytest.raises(MelodexError, match="names a file on this machine"):
        find_audio_files(["file://otherhost/music"])


def test_file_uris_are_local_paths_with_one_spelling_in_the_store(bucket):
    uri = bucket.as_uri()
    assert find_audio_files([uri]) == find_audio_files([bucket])
    assert resolved_path(f"{uri}/a.wav") == str((bucket / "a.wav").resolve())
    assert path_key(f"{uri}/a.wav") == path_key(bucket / "a.wav")
    assert resolved_path("s3://bucket/a.mp3") == "s3://bucket/a.mp3"


def test_the_local_engine_says_in_one_line_that_other_schemes_need_ray(bucket, tiny_checkpoint_factory,
                                                                          tmp_path, capsys):
    model = str(tiny_checkpoint_factory())
    for argv in (["infer", "--model", model, "--output", str(tmp_path / "r.jsonl")],
                 ["index", "--model", model, "--store", str(tmp_path / "store")]):
        assert main([*argv, "--audio", "mdxtest://music"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--engine ray" in err[0] and "mdxtest://music" in err[0]


def test_the_local_engine_reads_file_uris(bucket, tiny_checkpoint_factory, tmp_path):
    model = str(tiny_checkpoint_factory())
    out = tmp_path / "r.csv"
    assert main(["infer", "--model", model, "--audio", f"{bucket.as_uri()}/a.wav", "--output", str(out),
                 "--format", "csv", "-q"]) == 0
    assert str(bucket / "a.wav") in out.read_text()


def test_uris_of_one_bucket_share_one_filesystem():
    """pyarrow's own ``mock://`` scheme: one filesystem is started for the bucket, not one per URI."""
    first, second = find_audio_sources(["mock:///music/a.mp3", "mock:///music/b.mp3"], missing="keep")
    assert first.filesystem is second.filesystem
    assert (first.path, second.path) == ("music/a.mp3", "music/b.mp3")
