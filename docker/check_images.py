"""The offline image check: what each Dockerfile would install, resolved by pip for the image's own
Python and platform, with no Docker engine. Run from the repository root (make image-check; make
test runs it through tests/deploy/test_deploy_images.py):

    python docker/check_images.py                  # all images, cached by input hash
    python docker/check_images.py --image serve    # one (cpu | serve | train | runpod-project)

For each `pip install` step of each Dockerfile (ARG defaults filled in), and for the `runpodctl
project` set (docker/requirements-runpod-project.txt), pip resolves the packages in dry-run mode:
wheels only, the base's Python version, one `--platform manylinux_2_N_x86_64` per glibc level up
to the base's, no local pip settings; pip PIP_VERSION under an interpreter of the base's Python
version where one is found (pip reads environment markers for the Python that runs it). A step is resolved together with the steps before it, so a
step that would move an earlier step's version fails. Checked: every resolution succeeds (else
pip's reason, with the image and the step); every install is a wheel pinned `==` in the step's
constraints file or on its command line (the train image's base torch, torchvision, triton and its
nvidia-* / cuda-* wheels excepted); every COPY source exists and is not excluded by
.dockerignore (for `COPY . .`: every tracked file the code needs); every entry point exists
and is executable. It prints each image's download size. Results are cached in
.cache/image-check/ by the hash of their inputs, so a rerun takes seconds. Exit 0 when all is
well, 1 with one line per problem, 3 when PyPI cannot be reached.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from image_files import check_files  # docker/image_files.py: COPY sources, entry points

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "image-check"
PYPI = "https://pypi.org/simple"
# What each base image brings: its Python, its glibc (manylinux level) and packages pip keeps.
BASES = {
    "python:3.11-slim-bookworm": ("3.11", 36, ()),  # Debian 12
    "vllm/vllm-openai:v0.32.0": ("3.12", 35, ()),  # Ubuntu 22.04; /opt/socratic is a fresh venv
    "pytorch/pytorch:2.14.1-cuda13.0-cudnn9-runtime": ("3.12", 35, ("torch==2.14.1", "torchvision==0.29.1")),
    "runpod/base:1.0.3-ubuntu2204": ("3.12", 35, ()),
}  # fmt: skip
FROM_BASE = re.compile(r"^(torch|torchvision|triton|nvidia-.*|cuda-.*)$")  # train: the base's
IMAGES = {"cpu": "docker/cpu.Dockerfile", "serve": "docker/serve.Dockerfile",
          "train": "docker/train.Dockerfile", "runpod-project": "docker/requirements-runpod-project.txt"}  # fmt: skip


PIP_VERSION = "26.3"  # one pip for every machine: older ones check Requires-Python wrongly


def clean_env() -> dict[str, str]:
    """The environment without this machine's pip settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return env | {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def pip_command(python: str) -> tuple[list[str], str]:
    """pip PIP_VERSION (a wheel kept in CACHE, run as `python pip.whl/pip`) under an interpreter
    of the image's Python version, which pip needs to evaluate environment markers for it:
    IMAGE_CHECK_PYTHON_<3xx>, `python3.x` on PATH, pyenv's; else this one. (argv, note)."""
    wheel = CACHE / f"pip-{PIP_VERSION}-py3-none-any.whl"
    if not wheel.is_file():
        argv = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                f"pip=={PIP_VERSION}", "-d", str(CACHE)]  # fmt: skip
        subprocess.run(argv, check=True, env=clean_env() | cert_env())
    tag = python.replace(".", "")
    found = [os.environ.get(f"IMAGE_CHECK_PYTHON_{tag}"), shutil.which(f"python{python}")]
    found += sorted(
        str(p)
        for p in Path("~/.pyenv/versions").expanduser().glob(f"{python}.*/bin/python{python}")
    )
    for candidate in filter(None, found):
        done = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"],
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode == 0 and done.stdout.strip() == str(tuple(map(int, python.split(".")))):
            return [candidate, f"{wheel}/pip"], ""
    note = f"no Python {python} found (IMAGE_CHECK_PYTHON_{tag}): markers read for {sys.version_info[0]}.{sys.version_info[1]}"
    return [sys.executable, f"{wheel}/pip"], note


def cert_env() -> dict[str, str]:
    cert = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    return {"PIP_CERT": cert} if cert else {}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Step:
    where: str  # "docker/serve.Dockerfile:51"
    command: str
    requirements: list[str] = field(default_factory=list)
    constraints: list[Path] = field(default_factory=list)
    index: list[str] = field(default_factory=list)  # pip options: --index-url U, ...
    exact: set[str] = field(default_factory=set)  # names pinned == on the command line


def extras(spec: str) -> list[str]:
    """The requirements of the project spec `.[a,b]` (its dependencies plus those extras)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = re.fullmatch(r"\.(?:\[([\w,-]+)\])?", spec)[1] or ""
    out = list(project["dependencies"])
    for name in filter(None, names.split(",")):
        out += project["optional-dependencies"][name]
    return out


def pip_step(where: str, command: str) -> Step | None:
    """The Step of one `pip install ...` command; None for the project's own `--no-deps -e .`."""
    args = shlex.split(command)
    args = args[args.index("install") + 1 :]
    step, i, project, others = Step(where, command), 0, False, False
    while i < len(args):
        arg = args[i]
        if arg in ("-c", "--constraint", "-r", "--requirement"):
            path = REPO / args[i + 1]
            if arg in ("-c", "--constraint"):
                step.constraints.append(path)
            else:
                step.requirements += read_requirements(path, step)
            i += 2
            continue
        if arg in ("--index-url", "--extra-index-url", "-i"):
            step.index += [arg, args[i + 1]]
            i += 2
            continue
        if arg == "-e" or arg.startswith("-"):
            i += 1
            continue
        if arg.startswith("."):
            step.requirements += extras(arg)
            project = True
        else:
            step.requirements.append(arg)
            others = True
        i += 1
    if "--no-deps" in args and project and not others:
        return None  # the project's own code over what earlier steps installed
    step.exact = {norm(m[1]) for r in step.requirements if (m := re.match(r"([\w.-]+)==", r))}
    return step


def read_requirements(path: Path, step: Step) -> list[str]:
    """A requirements file's lines; its -c lines become the step's constraints (paths resolve
    from the file's folder) and `-e .[x]` the project's requirements."""
    out = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-c "):
            step.constraints.append(path.parent / line[3:].strip())
        elif line.startswith("-e "):
            out += extras(line[3:].strip())
        elif line:
            out.append(line)
    return out


def dockerfile(path: str) -> dict:
    """Stages of a Dockerfile: base, pip steps, COPY sources, entry point and scripts it runs."""
    text = (REPO / path).read_text()
    lines, start, buf = [], 0, ""
    for n, raw in enumerate(text.splitlines(), 1):
        if not buf:
            start = n
        if raw.lstrip().startswith("#") and not buf:
            continue
        buf += raw.rstrip("\\") + " " if raw.endswith("\\") else raw
        if not raw.endswith("\\"):
            lines.append((start, buf.strip()))
            buf = ""
    args: dict[str, str] = {}
    info = {"bases": [], "steps": [], "copies": [], "entrypoint": None, "scripts": []}

    def fill(s: str) -> str:
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), s)

    for n, line in lines:
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "ARG" and "=" in rest:
            key, value = rest.split("=", 1)
            args.setdefault(key.strip(), value.strip().strip('"'))
        elif word == "FROM":
            info["bases"].append(fill(rest.split()[0]))
        elif word == "COPY" and "--from=" not in rest:
            parts = [p for p in shlex.split(rest) if not p.startswith("--")]
            info["copies"] += [(f"{path}:{n}", src) for src in parts[:-1]]
        elif word == "RUN":
            for part in fill(rest).split("&&"):
                if re.search(r"\bpip install\b", part):
                    step = pip_step(f"{path}:{n}", part.strip())
                    info["steps"] += [step] if step else []
                info["scripts"] += re.findall(
                    r"(?:^|\s)((?:scripts|docker)/[\w./-]+\.(?:sh|py))", part
                )
        elif word == "ENTRYPOINT":
            info["entrypoint"] = (f"{path}:{n}", json.loads(rest))
    return info


def platforms(glibc: int) -> list[str]:
    tags = ["manylinux1_x86_64", "manylinux2010_x86_64", "manylinux2014_x86_64"]
    return tags + [f"manylinux_2_{n}_x86_64" for n in range(5, glibc + 1)]


def resolve(steps: list[Step], python: str, glibc: int, index_map: dict[str, list[str]]) -> dict:
    """pip's dry-run resolution of all `steps` together: {name: {"version", "url"}} (cached)."""
    reqs = [r for s in steps for r in s.requirements]
    cons = sorted({str(c) for s in steps for c in s.constraints})
    pairs = [s.index[i : i + 2] for s in steps for i in range(0, len(s.index), 2)]
    index = [x for opt, url in pairs for x in index_map.get(url, [opt, url])]
    pip, note = pip_command(python)
    key = json.dumps(
        [reqs, [Path(c).read_text() for c in cons], index, python, glibc, PIP_VERSION, note]
    )
    cached = CACHE / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".json")
    if cached.is_file():
        return json.loads(cached.read_text())
    if note:
        print(f"image-check: {note}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        argv = [*pip, "install", "--dry-run", "--quiet", "--ignore-installed",
                "--report", f"{tmp}/report.json", "--target", f"{tmp}/target",
                "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
                *[x for p in platforms(glibc) for x in ("--platform", p)], *index,
                *[x for c in cons for x in ("-c", c)], *reqs]  # fmt: skip
        done = subprocess.run(
            argv, capture_output=True, text=True, env=clean_env() | cert_env(), cwd=tmp
        )
        if done.returncode != 0:
            reason = [x for x in done.stderr.splitlines() if x.startswith("ERROR")] or [done.stderr]
            raise ValueError(" / ".join(x.removeprefix("ERROR: ") for x in reason[:3]).strip())
        report = json.loads(Path(tmp, "report.json").read_text())
    resolved = {
        norm(i["metadata"]["name"]): {"version": i["metadata"]["version"], "url": i["download_info"]["url"]}
        for i in report["install"]
    }  # fmt: skip
    sizes(resolved)
    CACHE.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(resolved, indent=1, sort_keys=True))
    return resolved


def sizes(resolved: dict) -> None:
    """Each wheel's size in bytes (the index's JSON for PyPI files; a HEAD request or the file)."""

    def size(name: str) -> tuple[str, int | None]:
        url = resolved[name]["url"]
        try:
            if url.startswith("file://"):
                return name, Path(urllib.request.url2pathname(url[7:])).stat().st_size
            if "files.pythonhosted.org" in url:
                req = urllib.request.Request(f"{PYPI}/{name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})  # fmt: skip
                files = json.load(urllib.request.urlopen(req, timeout=60))["files"]
                filename = url.rsplit("/", 1)[-1].split("#")[0]
                return name, next(f["size"] for f in files if f["filename"] == filename)
            head = urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=60)
            return name, int(head.headers["Content-Length"])
        except (OSError, ValueError, KeyError, StopIteration):
            return name, None

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for name, n in pool.map(size, list(resolved)):
            resolved[name]["size"] = n


def pins(step: Step) -> dict[str, str]:
    out = {}
    for path in step.constraints:
        out |= {norm(m[1]): m[2] for m in re.finditer(r"^([\w.-]+)==(\S+)", path.read_text(), re.M)}
    return out


def check_image(name: str, index_map: dict) -> tuple[list[str], list[str]]:
    """(report lines, problems) for one image."""
    path = IMAGES[name]
    if path.endswith(".txt"):  # runpodctl's venv on runpod/base (runpod.toml)
        step = pip_step(f"{path}:1", f"pip install -r {path}")
        info = {"bases": ["runpod/base:1.0.3-ubuntu2204"], "steps": [step], "copies": [],
                "entrypoint": None, "scripts": []}  # fmt: skip
    else:
        info = dockerfile(path)
    info["path"] = path
    base = info["bases"][-1]
    if base not in BASES:
        return [], [f"{path}: base {base} is not in check_images.BASES (its Python, glibc)"]
    python, glibc, provided = BASES[base]
    lines = [f"{name} ({path}; {base}: Python {python}, manylinux_2_{glibc} x86_64)"]
    problems = check_files(info, REPO)
    before: dict = {}
    base_step = [Step(f"{base} (base)", "", list(provided))] if provided else []
    for k, step in enumerate(info["steps"], 1):
        steps = base_step + info["steps"][:k]
        try:
            now = resolve(steps, python, glibc, index_map)
        except ValueError as e:
            problems.append(f"{name}: step {k} ({step.where}: {step.command[:90]}): pip: {e}")
            return lines, problems
        moved = [f"{n} {before[n]['version']} -> {v['version']}" for n, v in now.items()
                 if n in before and before[n]["version"] != v["version"]]  # fmt: skip
        problems += [f"{name}: step {k} ({step.where}) moves {m}" for m in moved]
        pinned = pins(step)
        for n, v in now.items():
            if n in before:
                continue
            if not v["url"].split("#")[0].endswith(".whl"):
                problems.append(f"{name}: step {k}: {n} {v['version']} is not a wheel")
            if provided and FROM_BASE.match(n):
                continue
            if n not in step.exact and pinned.get(n) != v["version"]:
                where = ", ".join(c.name for c in step.constraints) or "a constraints file"
                have = f"pinned {pinned[n]}" if n in pinned else "not pinned"
                problems.append(
                    f"{name}: step {k} ({step.where}): {n} {v['version']} is {have} in {where}"
                )
        new = len(now) - len(before)
        lines.append(
            f"  step {k} ({step.where}): {step.command[:100]}: {len(now)} packages (+{new})"
        )
        before = now
    own = {n: v for n, v in before.items() if not (provided and FROM_BASE.match(n))}
    total = sum(v.get("size") or 0 for v in own.values())
    unknown = [n for n, v in own.items() if v.get("size") is None]
    extra = f" ({len(unknown)} of unknown size)" if unknown else ""
    over = " over the base" if provided else ""
    lines.append(f"  download: {total / 1e6:.1f} MB{over} in {len(own)} wheels{extra}")
    return lines, problems


def index_fallbacks() -> dict[str, list[str]]:
    """Indexes other than PyPI that the Dockerfiles name and that cannot be reached from here are
    replaced by this machine's pip find-links (PIP_FIND_LINKS), when it has some."""
    out = {}
    for url in ("https://download.pytorch.org/whl/cpu",):
        try:
            urllib.request.urlopen(
                urllib.request.Request(url + "/torch/", method="HEAD"), timeout=15
            )
        except OSError:
            links = os.environ.get("PIP_FIND_LINKS", "").split()
            out[url] = [x for link in links for x in ("--find-links", link)] + ["--index-url", PYPI]
    return out


def main(argv: list[str] | None = None) -> int:
    global REPO, CACHE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", choices=sorted(IMAGES), action="append",
                        help="check only this image (repeatable; default: all)")  # fmt: skip
    parser.add_argument("--root", type=Path, default=REPO,
                        help="the repository to check (default: this one)")  # fmt: skip
    parser.add_argument("--cache", type=Path, default=CACHE,
                        help="where results are kept by input hash (default: .cache/image-check)")  # fmt: skip
    args = parser.parse_args(argv)
    REPO, CACHE = args.root.resolve(), args.cache
    try:
        urllib.request.urlopen(urllib.request.Request(f"{PYPI}/pip/", method="HEAD"), timeout=20)
    except OSError as e:
        print(f"image-check: PyPI cannot be reached ({e})", file=sys.stderr)
        return 3
    fallbacks, problems, total = index_fallbacks(), [], 0.0
    for url, links in fallbacks.items():
        print(f"image-check: {url} cannot be reached; resolving its steps with {' '.join(links)}")
    for name in args.image or list(IMAGES):
        lines, found = check_image(name, fallbacks)
        print("\n".join(lines), flush=True)
        problems += found
        total += float(lines[-1].split()[1]) if lines and "download:" in lines[-1] else 0
    print(f"image-check: {total:.1f} MB to download in all")
    for problem in problems:
        print(f"image-check: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
