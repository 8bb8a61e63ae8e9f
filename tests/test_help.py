"""``--help`` explains: each ``melodex`` command says as much as its root script, and no help
text sends a user to read source files."""

from __future__ import annotations

import re

import pytest

from melodex.cli import main
from melodex.commands import COMMANDS, script_main

SCRIPTS = {"infer": "inference.py", "train": "train.py", "preprocess": "preprocess_mfccs.py"}


def _help(call, capsys) -> str:
    assert call() == 0
    return capsys.readouterr().out


def _after_usage(text: str) -> str:
    return text[text.index("\n\n"):]  # the usage block names the program; the rest must agree


@pytest.mark.parametrize("command", sorted(SCRIPTS))
def test_melodex_help_is_as_complete_as_the_root_script(command, capsys):
    ours = _help(lambda: main([command, "--help"]), capsys)
    script = _help(lambda: script_main(command, ["--help"], prog=SCRIPTS[command]), capsys)
    assert _after_usage(ours) == _after_usage(script)
    if command == "infer":
        for part in ("Examples:", "Exit status:", "--format", "--resume", ".errors.csv"):
            assert part in ours


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_no_help_points_at_source_files(command, capsys):
    text = _help(lambda: main([command, "--help"]), capsys)
    assert not re.search(r"\bmelodex(/|\.)[a-z_]+(\.py)?\b", text.replace("melodex.cli", "")), text


def test_last_pad_says_short_tails_are_dropped(capsys):
    text = " ".join(_help(lambda: main(["infer", "--help"]), capsys).split())
    assert "a tail shorter than 5 s gets no window and is dropped" in text


def test_train_flags_default_to_the_library_settings():
    """``melodex train`` with no flags builds the same TrainConfig as ``TrainConfig()``: a default
    changed in one place cannot leave the command and the library training differently."""
    import dataclasses

    from melodex.cli import get_parser
    from melodex.training.config import TrainConfig

    args = get_parser().parse_args(["train"])
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    given = {name: getattr(args, name) for name in fields if hasattr(args, name)}
    assert len(given) >= 25, sorted(given)  # every flag that is a setting, not a few
    given["audio"] = tuple(given["audio"])
    assert given == {name: fields[name] for name in given}


@pytest.mark.parametrize("command", ["infer", "index", "evaluate"])
def test_embedding_commands_default_to_the_predictors_batch_and_workers(command):
    import inspect

    from melodex.cli import get_parser
    from melodex.inference.predictor import Predictor

    sub = get_parser()._subparsers._group_actions[0].choices[command]
    library = inspect.signature(Predictor).parameters
    assert sub.get_default("batch_size") == library["batch_size"].default
    assert sub.get_default("num_workers") == library["num_workers"].default
