"""Typed settings as command-line flags and environment variables. A dataclass field holds the
type and the default; its metadata (`flag(...)`) holds the flag's help with units, so each is
written once, and the help's `(default: ...)` is made from the field's default.

    @dataclass
    class Args:
        seed: int = field(default=0, metadata=flag("seed of the plan", metavar="S"))
    add_flags(parser, Args)                 # --seed S   seed of the plan (default: 0)
    env_values(Args, {"SEED": "3"}, error=ValueError)   # {"seed": 3}

Standard library only: command-line parsers import this at start-up.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

DEFAULT_TEMPLATE = "{help} (default: {shown})"
TYPES: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "Path": Path, "str": str}


def flag(
    help: str, name: str | None = None, *, shown: str | bool | None = None, order: int = 0,
    group: str | None = None, **argparse_kwargs: Any,
) -> dict[str, Any]:  # fmt: skip
    """A field's metadata as a flag: its help (units included), its name when not --field-name,
    how its default reads when not as written (`shown`; False: the help says it itself), its
    place (`order`: later flags come last; `group`: an argument group of `add_flags`) and any
    other `add_argument` keyword (metavar, choices, type, dest, default, action)."""
    return {"flag": name, "help": help, "shown": shown, "order": order, "group": group,
            "argparse": argparse_kwargs}  # fmt: skip


def default_of(f: dataclasses.Field) -> Any:
    """The field's default (a factory's product); None for a required field."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def shown(value: Any) -> str:
    """How a default reads in help: none (unset or empty), on / off, or as written."""
    if value is None or (isinstance(value, (str, tuple, list)) and not value):
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def type_name(f: dataclasses.Field) -> str:
    """The field's annotation without `| None` (`float | None` -> `float`)."""
    name = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    return name.replace(" | None", "").replace("None | ", "").strip()


def convert(f: dataclasses.Field, raw: str) -> Any:
    """An environment string as the field's type: numbers, booleans (1/true/yes/on), tuples
    (comma-separated), else the string. ValueError on a bad number."""
    name = type_name(f)
    if name == "bool":
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if name.startswith("tuple["):
        return tuple(k.strip() for k in raw.split(",") if k.strip())
    if name in ("int", "float"):
        return TYPES[name](raw)
    return raw


def env_values(
    cls: type, env: Mapping[str, str], error: Callable[[str], Exception],
    skip: Iterable[str] = (),
) -> dict[str, Any]:  # fmt: skip
    """The fields of dataclass `cls` set (non-empty) in `env` under their upper-case names,
    converted to their types; `skip` names fields to leave out. `error(message)` is raised on a
    bad number, the message naming the variable."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        raw = env.get(f.name.upper(), "")
        if f.name in skip or raw == "":
            continue
        try:
            values[f.name] = convert(f, raw)
        except ValueError:
            raise error(f"{f.name.upper()}: expected a number, got {raw!r}") from None
    return values


def add_flag(
    parser: Any, f: dataclasses.Field, name: str, help: str, *,
    template: str = DEFAULT_TEMPLATE, show: str | bool | None = None, **kwargs: Any,
) -> argparse.Action:  # fmt: skip
    """Add the flag `name` for field `f` to `parser` (or a group): dest, type, default and
    action from the field (a bool: on/off flags; a list: any number of values), the help
    followed by the field's default as `template` reads it ({help}, {shown}, {env})."""
    kw: dict[str, Any] = {"dest": f.name}
    required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    if required and "default" not in kwargs:
        kw["required"] = True
    else:
        kw["default"] = default_of(f)
    kw.update(kwargs)  # a default given here (not None) is also the one the help shows
    default = default_of(f) if kwargs.get("default") is None else kwargs["default"]
    base = type_name(f)
    if "action" not in kw and base == "bool":
        off = name.startswith("--no-")
        kw["action"] = ("store_false" if off else
                        argparse.BooleanOptionalAction if default else "store_true")  # fmt: skip
    elif "action" not in kw:
        if base.startswith("list["):
            base = base[len("list[") : -1]
            kw.setdefault("nargs", "*")
        if base in TYPES and base != "str":
            kw.setdefault("type", TYPES[base])
    if show is not False:
        text = shown(default) if show is None else show
        help = (template.replace("{help}", help).replace("{shown}", text)
                .replace("{env}", f.name.upper()))  # fmt: skip
    return parser.add_argument(name, help=help, **kw)


def add_flags(
    parser: argparse.ArgumentParser, cls: type, *, template: str = DEFAULT_TEMPLATE,
    groups: Mapping[str, tuple[str, str] | None] | None = None,
) -> None:  # fmt: skip
    """A flag for every field of dataclass `cls` whose metadata is a `flag(...)`, in field order
    (then by `order`). `groups` maps a field's group to (title, description) of an argument
    group, or to None for a mutually exclusive group."""
    made: dict[str, Any] = {}
    flagged = [f for f in dataclasses.fields(cls) if "flag" in f.metadata]
    for f in sorted(flagged, key=lambda f: f.metadata["order"]):
        meta = f.metadata
        where: Any = parser
        if meta["group"] is not None:
            if meta["group"] not in made:
                spec = (groups or {})[meta["group"]]
                made[meta["group"]] = (parser.add_mutually_exclusive_group() if spec is None
                                       else parser.add_argument_group(*spec))  # fmt: skip
            where = made[meta["group"]]
        name = meta["flag"] or "--" + f.name.replace("_", "-")
        add_flag(where, f, name, meta["help"], template=template, show=meta["shown"],
                 **meta["argparse"])  # fmt: skip
