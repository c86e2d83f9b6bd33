"""Where `-S key=value` lands: params files (JSON/TOML/YAML, nested keys), command-line
flags, a positional argument holding the recorded value, else `gitml.log_param`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from gitml.runs import overrides as ov
from gitml.runs.errors import ParamsError


def test_values_are_typed() -> None:
    assert ov.parse_assignments(["a=6", "b=0.5", "c=true", "d=rbf", "e=[1, 2]", "f.g=x=y"]) == {
        "a": 6, "b": 0.5, "c": True, "d": "rbf", "e": [1, 2], "f.g": "x=y"}
    with pytest.raises(ParamsError, match="invalid -S"):
        ov.parse_assignments(["novalue"])


def test_files_in_their_own_format_with_nested_keys(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text(json.dumps({"model": {"depth": 3, "lr": 0.1}}))
    (tmp_path / "p.toml").write_text("[train]\nepochs = 5\nname = 'x'\n")
    (tmp_path / "p.yaml").write_text("opt:\n  beta: 0.9\n")
    applied = ov.apply(tmp_path, ".", ["p.json", "p.toml", "p.yaml:opt.beta"], ["python", "t.py"],
                       {"model.depth": 6, "train.epochs": 9, "opt.beta": 0.5})
    assert json.loads((tmp_path / "p.json").read_text()) == {"model": {"depth": 6, "lr": 0.1}}
    assert tomllib.loads((tmp_path / "p.toml").read_text()) == {"train": {"epochs": 9, "name": "x"}}
    assert yaml.safe_load((tmp_path / "p.yaml").read_text()) == {"opt": {"beta": 0.5}}
    assert applied.files == {"p.json": ["model.depth"], "p.toml": ["train.epochs"], "p.yaml": ["opt.beta"]}
    assert applied.env == {} and applied.python == {}


def test_command_line_flags_and_positional_values(tmp_path: Path) -> None:
    cmd = ["python", "train.py", "1.0", "--depth", "3", "--max-iter=100", "alpha=0.1"]
    applied = ov.apply(tmp_path, ".", [], cmd, {"depth": 5, "max_iter": 50, "alpha": 0.2, "C": 0.5},
                       recorded={"C": 1.0})
    assert applied.cmd == ["python", "train.py", "0.5", "--depth", "5", "--max-iter=50", "alpha=0.2"]
    assert sorted(applied.on_cmd) == ["C", "alpha", "depth", "max_iter"]
    # an ambiguous positional value is not guessed: it goes to log_param instead
    amb = ov.apply(tmp_path, ".", [], ["python", "t.py", "1", "1"], {"n": 2}, recorded={"n": 1})
    assert amb.cmd == ["python", "t.py", "1", "1"] and amb.python == {"n": 2}


def test_log_param_returns_the_override_and_unused_ones_are_named(tmp_path: Path) -> None:
    applied = ov.apply(tmp_path, ".", [], ["python", "s.py"], {"C": 2.5, "typo": 1})
    script = ("import gitml, json\n"
              "print(json.dumps([gitml.log_param('C', 1.0), gitml.log_param('k', 7)]))\n")
    tracking = tmp_path / "track.jsonl"
    env = {**os.environ, **applied.env, "GITML_TRACKING_FILE": str(tracking)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) == [2.5, 7]
    rows = [json.loads(line) for line in tracking.read_text().splitlines()]
    assert [(r["name"], r["value"], r.get("override", False)) for r in rows] == [
        ("C", 2.5, True), ("k", 7, False)]
    assert ov.unused(applied, {"C": 2.5, "k": 7}) == ["typo"]
