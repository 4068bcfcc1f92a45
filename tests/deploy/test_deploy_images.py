"""docker/check_images.py, the offline image check, as part of make test.

Covered: every image (cpu, serve, train and the runpodctl project set) resolves with pip for its
base's Python and platform, all wheels, all pinned, COPY sources and entry points in place (the
real check, cached in .cache/image-check/ by input hash); a copy of the repository with one pin
dropped from constraints.txt fails, naming the image, the step and the package; .dockerignore
read with Docker's rules (last match wins, parents count, `!` re-includes); a COPY of a missing
or ignored file and a non-executable entry point are reported. Skipped only when PyPI cannot be
reached and CI is not set.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHECK = REPO / "docker" / "check_images.py"
sys.path.insert(0, str(REPO / "docker"))
import check_images  # noqa: E402
import image_files  # noqa: E402


@pytest.fixture(scope="module")
def pypi():
    try:
        urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=20)
    except OSError as e:
        if os.environ.get("CI"):
            pytest.fail(f"PyPI cannot be reached under CI: {e}")
        pytest.skip(f"PyPI cannot be reached: {e}")


def run_check(*args: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, str(CHECK), "--cache", str(REPO / ".cache" / "image-check"), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=3600, cwd=REPO)


@pytest.mark.timeout(3600)  # cold: about 8 minutes on 2 idle cores; cached: seconds
def test_every_image_resolves_pinned_wheels(pypi):
    done = run_check()
    print(done.stdout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for image in check_images.IMAGES:
        assert re.search(rf"^{image} \(", done.stdout, re.M), image
    assert len(re.findall(r"^  download: [\d.]+ MB", done.stdout, re.M)) == len(check_images.IMAGES)
    assert "download: " in done.stdout and "over the base" in done.stdout  # train: base torch


@pytest.mark.timeout(1800)  # one cold resolution of the serving image's set
def test_a_dropped_pin_fails_naming_image_and_package(pypi, tmp_path):
    for name in ("docker", "scripts"):
        shutil.copytree(REPO / name, tmp_path / name)
    for name in ("pyproject.toml", "README.md", "constraints.txt", ".dockerignore"):
        shutil.copy2(REPO / name, tmp_path / name)
    (tmp_path / "server" / "webui").mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(REPO / "server" / "webui" / name, tmp_path / "server" / "webui" / name)
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(re.sub(r"^uvicorn==.*\n", "", constraints.read_text(), flags=re.M))
    done = run_check("--root", str(tmp_path), "--image", "serve")
    assert done.returncode == 1, done.stdout + done.stderr
    line = next(x for x in done.stderr.splitlines() if "uvicorn" in x)
    assert re.match(r"image-check: serve: step 1 \(docker/serve.Dockerfile:\d+\): uvicorn ", line)
    assert line.endswith("is not pinned in constraints.txt"), line


def test_dockerignore_follows_dockers_rules():
    rules = image_files.ignore_rules(REPO)
    assert image_files.ignored("tests/server/test_x.py", rules)
    assert image_files.ignored("server/__pycache__/x.pyc", rules)
    assert image_files.ignored(".env", rules) and image_files.ignored("a/b/.env", rules)
    assert image_files.ignored("data/leak/x.jsonl", rules)
    assert not image_files.ignored("data/sample/dialogues.jsonl", rules)  # ! re-includes
    assert not image_files.ignored("server/gateway.py", rules)
    assert image_files.ignored("server/webui/static/vendor/marked.umd.js", rules)


def test_missing_copy_sources_and_entry_points_are_reported(tmp_path):
    shutil.copy2(REPO / ".dockerignore", tmp_path / ".dockerignore")
    shutil.copy2(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "entry.sh").write_text("#!/bin/sh\n")  # not executable
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.py").write_text("")
    info = {"path": "docker/x.Dockerfile", "scripts": ["scripts/build_webui.sh"],
            "copies": [("x:3", "constraints.txt"), ("x:4", "tests/t.py")],
            "entrypoint": ("x:9", ["/app/docker/entry.sh"])}  # fmt: skip
    problems = image_files.check_files(info, tmp_path)
    assert "x:3: COPY source constraints.txt does not exist" in problems
    assert "x:4: COPY source tests/t.py is excluded by .dockerignore" in problems
    assert "x:9: entry point /app/docker/entry.sh is not executable" in problems
    assert "docker/x.Dockerfile: scripts/build_webui.sh is missing or not executable" in problems
