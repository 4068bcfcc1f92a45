"""The file half of the offline image check (docker/check_images.py): every COPY source exists and
is not excluded by .dockerignore (read with Docker's rules), `COPY . .` carries every tracked file
the code needs, and every entry point and build script exists and is executable.
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

NEEDED = ("tutor/", "datagen/", "trainer/", "server/", "evaluation/", "bench/", "pipeline/", "testkit/",
          "handler.py", "pyproject.toml", "README.md", "constraints.txt", "configs/",
          "data/sample/", "data/eval/", "data/prompts/", "docker/", "scripts/")  # fmt: skip


def ignore_rules(root: Path) -> list[tuple[bool, re.Pattern]]:
    """.dockerignore as (re-include?, regex) in order; the last rule that matches decides."""
    rules = []
    for line in (root / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate, line = line.startswith("!"), line.lstrip("!").strip("/")
        rx = "".join(
            "(.*/)?" if tok == "**/" else ".*" if tok == "**" else "[^/]*" if tok == "*"
            else "[^/]" if tok == "?" else re.escape(tok)
            for tok in re.findall(r"\*\*/|\*\*|\*|\?|[^*?]+", line)
        )  # fmt: skip
        rules.append((negate, re.compile(rx)))
    return rules


def ignored(path: str, rules: list[tuple[bool, re.Pattern]]) -> bool:
    """Docker's rule: a pattern that matches the path or one of its parent folders applies."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    out = False
    for negate, rx in rules:
        if any(rx.fullmatch(p) for p in prefixes):
            out = not negate
    return out


def check_files(info: dict, root: Path) -> list[str]:
    """COPY sources, the build context for `COPY . .`, entry points and scripts the RUNs call."""
    rules, problems = ignore_rules(root), []
    git = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True)
    tracked = (
        git.stdout
        if git.returncode == 0
        else "\n".join(str(f.relative_to(root)) for f in root.rglob("*") if f.is_file())
    )
    for where, src in info["copies"]:
        if src == ".":
            needed = [f for f in tracked.split() if f.startswith(NEEDED)]
            lost = [f for f in needed if ignored(f, rules)]
            problems += [f"{where}: COPY . leaves out {f} (.dockerignore)" for f in lost[:5]]
        elif not (root / src).exists():
            problems.append(f"{where}: COPY source {src} does not exist")
        elif ignored(src, rules):
            problems.append(f"{where}: COPY source {src} is excluded by .dockerignore")
    scripts = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    if info["entrypoint"]:
        where, argv = info["entrypoint"]
        for arg in [a for a in argv if a.startswith("/app/")] or argv[:1]:
            path = root / arg.removeprefix("/app/")
            if arg.startswith("/app/") and not path.is_file():
                problems.append(f"{where}: entry point {arg} does not exist")
            elif arg == argv[0] and arg.startswith("/app/") and not os.access(path, os.X_OK):
                problems.append(f"{where}: entry point {arg} is not executable")
            elif (
                not arg.startswith("/") and arg not in scripts and arg not in ("python", "python3")
            ):
                problems.append(
                    f"{where}: entry point {arg} is no console script of pyproject.toml"
                )
    for script in info["scripts"]:
        path = root / script
        if not path.is_file() or (script.endswith(".sh") and not os.access(path, os.X_OK)):
            problems.append(f"{info['path']}: {script} is missing or not executable")
    return problems
