"""Which checkpoints can be trusted: a checkpoint is complete only once its marker file exists.

The Trainer writes `checkpoint-<step>/` in place; `CheckpointMarker` (trainer/callbacks.py) writes
the resolved config and then `COMPLETE` after the Trainer has finished saving, so a directory cut
short by a crash or a pod stop is never picked for resume.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from trainer.config import ConfigError

MARKER = "COMPLETE"
_STEP = re.compile(r"^checkpoint-(\d+)$")


def checkpoints(run_dir: str | Path) -> list[tuple[int, Path, bool]]:
    """(step, path, complete) for every `checkpoint-<step>` dir, oldest step first."""
    run = Path(run_dir)
    if not run.is_dir():
        return []
    found = []
    for p in run.iterdir():
        m = _STEP.match(p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p, (p / MARKER).is_file()))
    return sorted(found)


def latest_complete(run_dir: str | Path) -> Path | None:
    done = [p for _, p, ok in checkpoints(run_dir) if ok]
    return done[-1] if done else None


def mark_complete(ckpt_dir: str | Path, config_yaml: str) -> None:
    """Write the resolved config, then the marker (fsynced) that makes the checkpoint trusted."""
    d = Path(ckpt_dir)
    (d / "config.yaml").write_text(config_yaml, encoding="utf-8")
    tmp = d / f".{MARKER}.tmp"
    with open(tmp, "w") as f:
        f.write("ok\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(d / MARKER)


def check_resume(resume: str) -> None:
    """`train.resume` is auto, never or a complete checkpoint dir; checked before any loading.

    Not a config validator: a saved run config must still load (for export) after its resume
    checkpoint was rotated away.
    """
    if resume in ("auto", "never"):
        return
    p = Path(resume)
    if not p.is_dir():
        raise ConfigError(
            f"train.resume: {resume!r} is neither auto, never nor an existing checkpoint directory"
        )
    if not (p / MARKER).is_file():
        raise ConfigError(f"train.resume: {p} is not a complete checkpoint (no {MARKER} file)")


def resolve_resume(run_dir: str | Path, resume: str) -> Path | None:
    """`auto`: newest complete checkpoint (None = fresh start); `never`: None; else that path.

    Incomplete checkpoints found by `auto` are removed: they cannot be trusted, and left in place
    they would count against the Trainer's retention limit.
    """
    if resume == "never":
        return None
    if resume != "auto":
        check_resume(resume)
        return Path(resume)
    for _, p, ok in checkpoints(run_dir):
        if not ok:
            print(f"resume: removing incomplete checkpoint {p}")
            shutil.rmtree(p, ignore_errors=True)
    return latest_complete(run_dir)
