"""scripts/launch_training.sh: the one-command RunPod launch.

Runs the real script with a fake `runpodctl` on PATH that records its arguments. Covered: the
`--dry-run` command (current `runpodctl pod create` flags, `--env` JSON with secret references and
no secret values, the `--terminate-after` backstop), defaults from a .env file and their precedence,
`--gpu-count` splitting train.grad_accum over the GPUs (the effective batch stays the preset's),
that a real launch runs exactly the printed command, `--follow` polling until the pod is gone, and
one-line errors for bad arguments.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SCRIPT = HERE.parents[1] / "scripts" / "launch_training.sh"
REQUIRED = ["--image", "ghcr.io/me/train:1", "--gpu", "NVIDIA GeForce RTX 4090"]
REQUIRED += ["--hub-repo", "me/socratic-tutor"]


@pytest.fixture
def launch(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(HERE / "fakes" / "runpodctl", bin_dir / "runpodctl")
    ctl_log = tmp_path / "runpodctl.jsonl"

    def run(*args, env=None, env_file="/dev/null"):
        full_env = {
            "PATH": f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin",
            "ENV_FILE": str(env_file),
            "FAKE_RUNPODCTL_LOG": str(ctl_log),
            "HF_TOKEN": "hf_REALsecret42",
            "RUNPOD_API_KEY": "rpa_REALsecret42",
            **(env or {}),
        }
        done = subprocess.run(
            ["bash", str(SCRIPT), *args], env=full_env, capture_output=True, text=True, timeout=60
        )
        return done

    run.calls = lambda: (
        [json.loads(x) for x in ctl_log.read_text().splitlines()] if ctl_log.exists() else []
    )
    return run


def flags(argv: list[str]) -> dict[str, str]:
    """`--flag value` pairs of a `runpodctl pod create` argv."""
    assert argv[:3] == ["runpodctl", "pod", "create"]
    rest = argv[3:]
    assert len(rest) % 2 == 0 and all(a.startswith("--") for a in rest[::2]), rest
    return dict(zip(rest[::2], rest[1::2], strict=True))


def test_dry_run_prints_the_current_pod_create_command(launch):
    done = launch(*REQUIRED, "--dry-run")
    assert done.returncode == 0, done.stderr
    f = flags(shlex.split(done.stdout))
    assert f["--image"] == "ghcr.io/me/train:1"
    assert f["--gpu-id"] == "NVIDIA GeForce RTX 4090"
    assert (f["--gpu-count"], f["--cloud-type"], f["--container-disk-in-gb"]) == (
        "1",
        "SECURE",
        "60",
    )
    assert (f["--volume-in-gb"], f["--volume-mount-path"]) == ("100", "/workspace")
    assert "--network-volume-id" not in f
    env = json.loads(f["--env"])
    assert env["HF_TOKEN"] == "{{ RUNPOD_SECRET_hf_token }}"  # referenced, not pasted
    assert env["HUB_REPO_ID"] == "me/socratic-tutor"
    assert env["CONFIG"] == "configs/qwen2.5-7b-qlora.yaml"
    assert (env["VOLUME_DIR"], env["MAX_RUNTIME_HOURS"], env["KEEP_POD"]) == (
        "/workspace",
        "24",
        "0",
    )
    assert "REALsecret" not in done.stdout + done.stderr
    terminate = dt.datetime.strptime(f["--terminate-after"], "%Y-%m-%dT%H:%M:%SZ")
    hours = (terminate.replace(tzinfo=dt.UTC) - dt.datetime.now(dt.UTC)).total_seconds() / 3600
    assert 24.9 < hours <= 25.0
    assert launch.calls() == []  # nothing was created


def test_dry_run_options(launch):
    done = launch(
        *REQUIRED,
        "--network-volume", "nv42", "--gpu-count", "2", "--cloud-type", "COMMUNITY",
        "--config", "configs/tiny-cpu.yaml", "--hf-secret", "my_hf", "--wandb-secret", "wb",
        "--max-runtime-hours", "0", "--private", "--keep-pod", "--run-name", "r1",
        "--train-args", "train.epochs=1 lora.r=8", "--name", "it's mine", "--dry-run",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    f = flags(shlex.split(done.stdout))
    assert f["--network-volume-id"] == "nv42" and "--volume-in-gb" not in f
    assert (f["--gpu-count"], f["--cloud-type"], f["--name"]) == ("2", "COMMUNITY", "it's mine")
    assert "--terminate-after" not in f  # watchdog off: no backstop either
    env = json.loads(f["--env"])
    assert env["HF_TOKEN"] == "{{ RUNPOD_SECRET_my_hf }}"
    assert env["WANDB_API_KEY"] == "{{ RUNPOD_SECRET_wb }}"
    assert (env["HUB_PRIVATE"], env["KEEP_POD"], env["RUN_NAME"]) == ("1", "1", "r1")
    # Two GPUs: DDP through accelerate with the hf backend.
    assert env["TRAIN_LAUNCHER"] == "accelerate launch --num_processes 2 -m trainer.cli"
    # The tiny preset's grad_accum 1 cannot be split over 2 GPUs: left alone, with a warning.
    assert env["TRAIN_ARGS"] == "train.backend=hf train.epochs=1 lora.r=8"
    assert "effective batch grows 2x" in done.stderr
    assert env["CONFIG"] == "configs/tiny-cpu.yaml"


@pytest.mark.parametrize(
    ("gpus", "train_args", "warned"),
    [
        ("2", "train.backend=hf train.grad_accum=4 data.train_files=[me/dialogues]", False),
        ("4", "train.backend=hf train.grad_accum=2 data.train_files=[me/dialogues]", False),
        ("3", "train.backend=hf data.train_files=[me/dialogues]", True),
    ],
)
def test_gpu_count_splits_grad_accum_to_keep_the_effective_batch(launch, gpus, train_args, warned):
    # The 7B preset: 2 per GPU x grad_accum 8 = 16 sequences per optimizer step on one GPU.
    done = launch(
        *REQUIRED, "--gpu-count", gpus, "--train-args", "data.train_files=[me/dialogues]",
        "--dry-run",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    env = json.loads(flags(shlex.split(done.stdout))["--env"])
    assert env["TRAIN_ARGS"] == train_args
    assert ("effective batch grows 3x" in done.stderr) is warned


def test_defaults_from_env_file_and_precedence(launch, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# comment\nTRAIN_IMAGE=ghcr.io/me/from-file:2\nGPU_TYPE='NVIDIA L40S'\n"
        'HUB_REPO_ID="me/from-file"\nVOLUME_GB=250\nCLOUD_TYPE=COMMUNITY\n'
        "NOT_A_SETTING=$(touch should-not-run)\n"
    )
    done = launch("--dry-run", "--cloud-type", "SECURE", env_file=env_file, env={"VOLUME_GB": "7"})
    assert done.returncode == 0, done.stderr
    f = flags(shlex.split(done.stdout))
    assert (f["--image"], f["--gpu-id"]) == ("ghcr.io/me/from-file:2", "NVIDIA L40S")
    assert json.loads(f["--env"])["HUB_REPO_ID"] == "me/from-file"
    assert f["--volume-in-gb"] == "7"  # the environment beats .env
    assert f["--cloud-type"] == "SECURE"  # a flag beats both
    assert not (Path.cwd() / "should-not-run").exists()


def test_launch_runs_exactly_the_printed_command(launch):
    printed = shlex.split(launch(*REQUIRED, "--dry-run").stdout)
    done = launch(*REQUIRED)
    assert done.returncode == 0, done.stderr
    assert "fakepod123" in done.stdout
    (recorded,) = launch.calls()
    expected, got = flags(printed), flags(["runpodctl", *recorded])
    # The backstop time moves on between the two calls; everything else is identical.
    assert abs(
        dt.datetime.fromisoformat(expected.pop("--terminate-after"))
        - dt.datetime.fromisoformat(got.pop("--terminate-after"))
    ) < dt.timedelta(minutes=1)
    assert got == expected
    assert "REALsecret" not in json.dumps(recorded)


def test_follow_polls_until_the_pod_is_gone(launch):
    done = launch(*REQUIRED, "--follow", "--poll-seconds", "0", env={"FAKE_POD_GETS": "3"})
    assert done.returncode == 0, done.stderr
    calls = launch.calls()
    assert calls[0][:2] == ["pod", "create"]
    assert [c[:3] for c in calls[1:]] == [["pod", "get", "fakepod123"]] * 4
    assert done.stdout.count("RUNNING") == 1  # printed on change only
    assert "is gone" in done.stdout
    assert "https://huggingface.co/me/socratic-tutor" in done.stdout


def test_follow_gives_up_after_repeated_errors(launch):
    done = launch(*REQUIRED, "--follow", "--poll-seconds", "0", env={"FAKE_POD_GET_ERROR": "1"})
    assert done.returncode == 1
    assert len(launch.calls()) == 1 + 5
    assert "giving up" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpu", "x", "--hub-repo", "me/t"], "--image is required"),
        (["--image", "i", "--hub-repo", "me/t"], "--gpu is required"),
        (["--image", "i", "--gpu", "x", "--hub-repo", "nope"], "owner/name"),
        ([*REQUIRED, "--volume-gb", "5", "--network-volume", "n"], "exclude each other"),
        ([*REQUIRED, "--volume-gb", "lots"], "--volume-gb must be a whole number"),
        ([*REQUIRED, "--max-runtime-hours", "soon"], "--max-runtime-hours must be a number"),
        ([*REQUIRED, "--cloud-type", "cheap"], "SECURE or COMMUNITY"),
        ([*REQUIRED, "--min-cuda-version", "13"], "--min-cuda-version must look like 13.0"),
        ([*REQUIRED, "--gpu-count"], "--gpu-count needs a value"),
        ([*REQUIRED, "--bogus", "1"], "unknown option --bogus"),
    ],
)
def test_bad_arguments_fail_with_one_line(launch, args, message):
    done = launch("--dry-run", *args)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert launch.calls() == []


def test_help(launch):
    done = launch("--help")
    assert done.returncode == 0
    for flag in ("--image", "--gpu", "--hub-repo", "--volume-gb", "--network-volume", "--follow"):
        assert flag in done.stdout
