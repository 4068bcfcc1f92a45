"""The deployment files, checked without a Docker engine.

hadolint on every Dockerfile (warnings fail; an inline ignore needs a written reason on the line
above), docker-compose.yml against the compose-spec JSON schema that check-jsonschema vendors plus
the services the project promises, runpod.toml's keys and types as `runpodctl project` reads them
and its fit with runpodctl v2.7.2 and the runpod/base image (ports, Python, requirements + lock),
and every path it names, .dockerignore keeping data and secrets out, every environment variable the
images and scripts read documented in .env.example and docs/deployment.md, and the GPU pins in
constraints.txt agreeing with pyproject.toml and the training base image.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from server.engine import EngineSpec
from server.settings import ServeOptions, Settings

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DOCKERFILES = sorted((REPO / "docker").glob("*.Dockerfile"))


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


# --- Dockerfiles ---------------------------------------------------------------------------------


def test_there_are_three_images():
    names = {p.name for p in DOCKERFILES}
    assert names == {"train.Dockerfile", "serve.Dockerfile", "cpu.Dockerfile"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_clean(dockerfile):
    done = run(str(BIN / "hadolint"), "--failure-threshold", "warning", str(dockerfile))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_ignores_carry_a_reason(dockerfile):
    lines = dockerfile.read_text().splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore=" in line:
            above = lines[i - 1].strip() if i else ""
            assert above.startswith("#") and len(above) > 10, f"{dockerfile.name}:{i + 1}"


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get update && apt-get install -y curl\n")
    done = run(str(BIN / "hadolint"), "--failure-threshold", "warning", str(bad))
    assert done.returncode != 0 and "DL3008" in done.stdout


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_share_the_conventions(dockerfile):
    text = dockerfile.read_text()
    assert re.search(r"^ARG \w+=[\w./-]+:[\w.-]+$", text, re.M), "a pinned, tagged base image"
    for needed in ("org.opencontainers.image.title", "DEBIAN_FRONTEND=noninteractive"):
        assert needed in text
    assert "PYTHONUNBUFFERED=1" in text and "-c constraints.txt" in text
    assert not re.search(r"^(ENV|ARG)\b.*(TOKEN|API_KEY)", text, re.M), "a secret in the image"
    for path in re.findall(r"/app/(docker/[\w.]+)", text):
        assert (REPO / path).is_file(), path


def test_images_use_xet_not_the_removed_hf_transfer():
    # huggingface_hub 1.x dropped hf_transfer (it only warns about HF_HUB_ENABLE_HF_TRANSFER).
    for dockerfile in DOCKERFILES:
        assert "HF_HUB_ENABLE_HF_TRANSFER" not in dockerfile.read_text(), dockerfile.name
    assert "HF_XET_HIGH_PERFORMANCE=1" in (REPO / "docker" / "train.Dockerfile").read_text()


def test_training_base_image_fits_unsloth():
    text = (REPO / "docker" / "train.Dockerfile").read_text()
    torch = re.search(r"pytorch/pytorch:(\d+)\.(\d+)\.\d+-cuda", text)
    assert torch, "a pinned pytorch/pytorch base"
    assert (2, 4) <= (int(torch[1]), int(torch[2])) < (2, 15)  # unsloth 2026.10: torch >=2.4,<2.15


def test_serving_image_installs_only_the_serve_extra():
    text = (REPO / "docker" / "serve.Dockerfile").read_text()
    assert re.search(r"^ARG VLLM_IMAGE=vllm/vllm-openai:v\d+\.\d+\.\d+$", text, re.M)
    installs = [line for line in text.splitlines() if "pip install" in line]
    assert installs and all("torch" not in line for line in installs)
    assert any('".[serve]"' in line for line in installs)
    assert "--mount=type=secret,id=hf_token" in text  # baked models never put the token in a layer


# --- docker-compose.yml --------------------------------------------------------------------------


def test_compose_matches_the_compose_spec():
    done = run(
        str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
        str(REPO / "docker-compose.yml"),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_schema_check_rejects_a_broken_file(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        "services:\n  serve:\n    image: x\n    ports: 8000\n    restart: sometimes\n"
    )
    done = run(
        str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(broken)
    )
    assert done.returncode != 0


def test_compose_services():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"serve", "train", "tiny-train", "serve-cpu"}
    assert set(compose["volumes"]) == {"models", "tiny-models"}
    for name, service in services.items():
        volume = "tiny-models" if name in ("tiny-train", "serve-cpu") else "models"
        assert service["volumes"] == [f"{volume}:/models"], name
        assert service["env_file"] == [{"path": ".env", "required": False}], name
        if "build" in service:
            assert (REPO / service["build"]["dockerfile"]).is_file(), name
    for name in ("serve", "train"):
        (device,) = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert device["capabilities"] == ["gpu"], name
    assert "profiles" not in services["serve"]
    assert services["train"]["profiles"] == ["train"]
    assert services["serve"]["environment"]["MODE"] == "gateway"
    assert services["serve"]["ports"] == ["${SERVE_PORT:-8000}:8000"]
    cpu = services["serve-cpu"]
    assert cpu["profiles"] == ["cpu"] and "deploy" not in cpu
    assert cpu["command"][cpu["command"].index("--engine") + 1] == "transformers"
    assert cpu["depends_on"]["tiny-train"]["condition"] == "service_completed_successfully"
    tiny = services["tiny-train"]["command"]
    assert (REPO / tiny[tiny.index("--config") + 1]).is_file()
    exported = next(a.split("=", 1)[1] for a in tiny if a.startswith("export.out_dir="))
    assert cpu["command"][cpu["command"].index("--model") + 1] == exported


# --- runpod.toml ---------------------------------------------------------------------------------


def test_runpod_toml_has_what_runpodctl_project_reads():
    cfg = tomllib.loads((REPO / "runpod.toml").read_text())
    project, runtime, endpoint = cfg["project"], cfg["runtime"], cfg["endpoint"]
    assert isinstance(cfg["name"], str) and cfg["name"]
    # Types as runpodctl's Go code asserts them (a wrong type panics there).
    assert re.fullmatch(r"[0-9a-f]{8}", project["uuid"])
    for key in ("base_image", "volume_mount_path", "ports"):
        assert isinstance(project[key], str) and project[key], key
    for key in ("gpu_count", "container_disk_size_gb"):
        assert isinstance(project[key], int) and project[key] > 0, key
    assert project["gpu_types"] and all(g.startswith("NVIDIA ") for g in project["gpu_types"])
    assert all(isinstance(v, str) for v in project["env_vars"].values())
    assert re.fullmatch(r"\d+/(http|tcp)(, ?\d+/(http|tcp))*", project["ports"])
    assert re.fullmatch(r"3\.\d+", runtime["python_version"])
    assert runtime["handler_path"] == "handler.py"
    assert 0 <= endpoint["active_workers"] <= endpoint["max_workers"]
    assert isinstance(endpoint["flashboot"], bool)


# runpod/base (runpod/containers, container-template/proxy/nginx.conf): what its nginx listens on
# in a dev pod (the image's /start.sh runs it; a serverless worker's start command replaces it).
RUNPOD_BASE_NGINX_PORTS = {3001, 7270, 7861, 8001, 8081, 9091}


def test_runpod_toml_fits_runpodctl_project_and_its_base_image():
    """runpodctl v2.7.2 (cmd/project/functions.go) starts the dev pod with empty docker args (the
    image's own start), creates `python<version> -m virtualenv`/`-m venv` environments over SSH,
    serves the dev API on 8080 only when 8080/http is listed and 7270/http is not (else 7270), and
    runs the handler as `python -u <volume>/<uuid>/prod/<name>/<handler_path>`."""
    cfg = tomllib.loads((REPO / "runpod.toml").read_text())
    project, runtime = cfg["project"], cfg["runtime"]
    image = project["base_image"]
    assert re.fullmatch(r"runpod/base:\d+\.\d+\.\d+-cuda13\d+-ubuntu\d{4}", image), image
    assert runtime["python_version"] in ("3.11", "3.12", "3.13")  # the base's, and >= ours
    ports = [p.strip() for p in project["ports"].split(",")]
    assert "22/tcp" in ports  # the file sync and the remote commands
    api_port = 8080 if "8080/http" in ports and "7270/http" not in ports else 7270
    assert api_port not in RUNPOD_BASE_NGINX_PORTS and f"{api_port}/http" in ports
    engine_port = int(project["env_vars"]["ENGINE_PORT"])
    assert engine_port not in RUNPOD_BASE_NGINX_PORTS | {api_port}
    assert project["env_vars"]["ENGINE"] == "vllm"
    ignore = (REPO / ".runpodignore").read_text().splitlines()
    for rule in (".venv/", ".env", "runs/", ".whl/", "*.safetensors"):
        assert rule in ignore, rule  # never rsynced to the pod


def test_runpod_project_requirements_pin_vllm_and_the_lock():
    runtime = tomllib.loads((REPO / "runpod.toml").read_text())["runtime"]
    for key in ("handler_path", "requirements_path"):
        assert (REPO / runtime[key]).is_file(), key
    requirements = REPO / runtime["requirements_path"]
    lines = [x for x in requirements.read_text().splitlines() if x and not x.startswith("#")]
    assert lines[2:] == ["-e .[serve]", "-c constraints-runpod-project.txt"]
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", "\n".join(lines[:2]), re.M))
    lock_text = (requirements.parent / "constraints-runpod-project.txt").read_text()
    lock = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", lock_text, re.M))
    assert pins == {"vllm": pins["vllm"], "runpod": lock["runpod"]} and lock["vllm"] == pins["vllm"]
    serve = (REPO / "docker" / "serve.Dockerfile").read_text()
    assert f"ARG VLLM_IMAGE=vllm/vllm-openai:v{pins['vllm']}" in serve  # one vLLM everywhere
    assert "socratic-tutor" not in lock and "torch" in lock


# --- secrets, context and documentation ----------------------------------------------------------


def test_dockerignore_keeps_data_outputs_and_secrets_out():
    rules = [x for x in (REPO / ".dockerignore").read_text().splitlines() if x and x[0] != "#"]
    for rule in (
        "**/.env",
        "**/.git",
        "**/.venv",
        "**/.venv-vllm",  # a CPU build in /app would be found before the image's own vLLM
        "runs/",
        "outputs/",
        "data/*",
        "**/*.safetensors",
    ):
        assert rule in rules, rule
    for keep in ("!data/sample/", "!data/eval/", "!data/prompts/"):
        assert keep in rules, keep


def env_names_used() -> set[str]:
    """Every variable the entry points, the launch script and compose read."""
    pod = (REPO / "docker" / "pod_entrypoint.py").read_text()
    names = set(re.findall(r'env(?:\.get)?\(\s*"([A-Z_]+)"', pod))
    names |= set(re.findall(r'_number\(env, "([A-Z_]+)"', pod))
    names |= {"HF_TOKEN", "RUNPOD_API_KEY", "WANDB_API_KEY"}
    serve = (REPO / "docker" / "serve_entrypoint.sh").read_text()
    names |= set(re.findall(r"\$\{([A-Z_]+)", serve))
    launch = (REPO / "scripts" / "launch_training.sh").read_text()
    names |= set(re.findall(r"\$\{([A-Z][A-Z_]+):-", launch))
    compose = (REPO / "docker-compose.yml").read_text()
    names |= set(re.findall(r"\$\{([A-Z_]+)", compose))
    names |= {f.name.upper() for f in dataclasses.fields(ServeOptions)}  # serve's own
    names |= {f.name.upper() for f in dataclasses.fields(Settings)}
    names |= {f.name.upper() for f in dataclasses.fields(EngineSpec)}
    for source in ("server/cli.py", "handler.py"):  # socratic chat's and the worker's own
        names |= set(re.findall(r'environ\.get\(\s*"([A-Z_]+)"', (REPO / source).read_text()))
    # Set by bash, by RunPod itself, or internal to one script.
    runpod = {"RUNPOD_POD_ID", "RUNPOD_WEBHOOK_GET_JOB", "RUNPOD_ENDPOINT_ID"}
    return names - {"BASH_SOURCE", "ENV_FILE", "BAKED_MODEL_DIR"} - runpod


def env_example() -> dict[str, str]:
    lines = (REPO / ".env.example").read_text().splitlines()
    documented = {}
    for i, line in enumerate(lines):
        if m := re.match(r"([A-Z_][A-Z0-9_]*)=", line):
            comment = next((x for x in reversed(lines[:i]) if not re.match(r"[A-Z_]+=", x)), "")
            documented[m[1]] = comment
    return documented


def test_env_example_lists_every_variable_with_a_comment():
    documented = env_example()
    missing = env_names_used() - set(documented)
    assert not missing, f"add to .env.example: {sorted(missing)}"
    for name, comment in documented.items():
        assert comment.startswith("# "), name
    secrets = ("HF_TOKEN", "RUNPOD_API_KEY", "WANDB_API_KEY", "API_KEYS")
    text = (REPO / ".env.example").read_text()
    for name in secrets:
        assert re.search(rf"^{name}=$", text, re.M), f"{name} must be empty in .env.example"


def test_deployment_doc_mentions_every_variable():
    doc = (REPO / "docs" / "deployment.md").read_text()
    missing = [name for name in env_example() if f"`{name}`" not in doc]
    assert not missing, f"document in docs/deployment.md: {missing}"


# --- constraints ---------------------------------------------------------------------------------


def test_gpu_pins_agree_with_pyproject():
    pins = dict(
        re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (REPO / "constraints.txt").read_text(), re.M)
    )
    gpu = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"][
        "gpu"
    ]
    unsloth = next(r for r in gpu if r.startswith("unsloth"))
    assert unsloth == f"unsloth=={pins['unsloth']}"
    assert pins["unsloth_zoo"] == pins["unsloth"]
    for requirement in gpu:  # every GPU-only package has an exact pin
        name = re.match(r"[A-Za-z0-9_.-]+", requirement)[0]
        assert name in pins, f"pin {name} in the GPU section of constraints.txt"
    assert "xformers" in pins
    assert not {"torch", "torchvision", "triton"} & set(pins)  # they come from the base image
