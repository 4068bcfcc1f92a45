"""tutor.flags: flags and environment variables from a dataclass's fields (written once)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tutor.flags import add_flags, env_values, flag


@dataclass
class Args:
    out: Path = field(metadata=flag("output file", shown=False))
    seed: int = field(default=0, metadata=flag("seed, a count", metavar="S"))
    rate: float | None = field(default=None, metadata=flag("per second", name="--per-s"))
    fast: bool = field(default=True, metadata=flag("go fast"))
    quiet: bool = field(default=False, metadata=flag("say less"))
    progress: bool = field(default=True, metadata=flag("hide it", name="--no-progress", order=1))
    files: list[Path] = field(default_factory=list, metadata=flag("more files", group="g"))
    keys: tuple[str, ...] = ()
    internal: str = "x"  # no flag


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="t")
    add_flags(p, Args, groups={"g": ("more", "the group")})
    return p


def test_flags_take_type_default_and_action_from_the_field() -> None:
    ns = parser().parse_args(["--out", "o", "--per-s", "2.5", "--no-fast", "--quiet"])
    assert ns.out == Path("o") and ns.seed == 0 and ns.rate == 2.5
    assert (ns.fast, ns.quiet, ns.progress, ns.files) == (False, True, True, [])
    ns = parser().parse_args(["--out", "o", "--seed", "3", "--no-progress", "--files", "a", "b"])
    assert (ns.seed, ns.progress, ns.files) == (3, False, [Path("a"), Path("b")])
    assert not hasattr(ns, "internal") and not hasattr(ns, "keys")
    with pytest.raises(SystemExit):
        parser().parse_args([])  # --out has no default: required


def test_help_shows_each_default_from_the_field_in_order() -> None:
    text = " ".join(parser().format_help().split())
    for part in (
        "--out OUT output file --seed S seed, a count (default: 0)",
        "--per-s RATE per second (default: none)",
        "go fast (default: on)",
        "--quiet say less (default: off)",
        "--no-progress hide it (default: on) more: the group --files [FILES ...] more files (default: none)",
    ):
        assert part in text


def test_env_values_convert_by_type_and_name_the_variable() -> None:
    env = {"SEED": "4", "RATE": "0.5", "FAST": "off", "QUIET": "yes", "KEYS": "a, b,,c", "OUT": ""}
    values = env_values(Args, env, ValueError, skip=("quiet",))
    assert values == {"seed": 4, "rate": 0.5, "fast": False, "keys": ("a", "b", "c")}
    with pytest.raises(KeyError, match="SEED: expected a number, got 'x'"):
        env_values(Args, {"SEED": "x"}, KeyError)
