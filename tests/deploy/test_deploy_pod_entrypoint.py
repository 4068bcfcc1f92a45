"""The training pod's entry point (docker/pod_entrypoint.py) and its pod lifecycle.

The real entry point runs as a subprocess with a fake `socratic` (the 7B job needs a GPU), a fake
`runpodctl` that records its arguments, and a fake RunPod REST API on 127.0.0.1. Covered: success
(train, export + push, removal), failure (logs kept, non-zero exit, removal after the grace time),
KEEP_POD, the MAX_RUNTIME_HOURS watchdog, SIGTERM, runpodctl's legacy syntax and the REST
fallback, restarts that resume or skip finished stages, and secrets never reaching a log or argv.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
ENTRYPOINT = HERE.parents[1] / "docker" / "pod_entrypoint.py"
HF_TOKEN = "hf_SECRETtoken123456"
RUNPOD_KEY = "rpa_SECRETkey987654"


def load_module():
    spec = importlib.util.spec_from_file_location("pod_entrypoint", ENTRYPOINT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class FakeRunPodAPI:
    """RunPod's REST API reduced to `DELETE /v1/pods/{id}`, recording what it was sent."""

    def __init__(self, status: int = 200):
        calls = self.calls = []

        class Handler(BaseHTTPRequestHandler):
            def do_DELETE(self):  # noqa: N802 (http.server's naming)
                calls.append((self.path, self.headers.get("Authorization")))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api():
    server = FakeRunPodAPI()
    yield server
    server.close()


@pytest.fixture
def pod(tmp_path):
    """Runs the entry point; `with_runpodctl` puts the fake runpodctl on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(HERE / "fakes" / "socratic", bin_dir / "socratic")
    python_dir = str(Path(sys.executable).parent)

    class Pod:
        volume = tmp_path / "volume"
        run_dir = volume / "runs" / "job"
        calls_file = tmp_path / "socratic.jsonl"
        ctl_file = tmp_path / "runpodctl.jsonl"

        def run(self, extra=None, with_runpodctl=True, timeout=60.0, sigterm_after=None):
            if with_runpodctl and not (bin_dir / "runpodctl").exists():
                os.symlink(HERE / "fakes" / "runpodctl", bin_dir / "runpodctl")
            if not with_runpodctl and (bin_dir / "runpodctl").exists():
                (bin_dir / "runpodctl").unlink()
            env = {
                "PATH": f"{bin_dir}:{python_dir}:/usr/bin:/bin",
                "VOLUME_DIR": str(self.volume),
                "CONFIG": "configs/qwen2.5-7b-qlora.yaml",
                "DPO_CONFIG": "none",  # the lifecycle tests: SFT + export; the DPO stage below
                "RUN_NAME": "job",
                "HUB_REPO_ID": "me/socratic-tutor",
                "HF_TOKEN": HF_TOKEN,
                "RUNPOD_API_KEY": RUNPOD_KEY,
                "RUNPOD_POD_ID": "pod123",
                "FAILURE_GRACE_SECONDS": "0",
                "MAX_RUNTIME_HOURS": "1",
                "FAKE_SOCRATIC_LOG": str(self.calls_file),
                "FAKE_RUNPODCTL_LOG": str(self.ctl_file),
                **(extra or {}),
            }
            started = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, str(ENTRYPOINT)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            if sigterm_after is not None:
                time.sleep(sigterm_after)
                proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=timeout)
            return proc.returncode, out, time.monotonic() - started

        def socratic_calls(self):
            return _jsonl(self.calls_file)

        def runpodctl_calls(self):
            return _jsonl(self.ctl_file)

        def summary(self):
            return json.loads((self.run_dir / "pod_summary.json").read_text())

    return Pod()


def _jsonl(path: Path) -> list:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_no_secrets(pod, out: str) -> None:
    texts = [out] + [p.read_text() for p in pod.run_dir.glob("*") if p.is_file()]
    texts += [json.dumps(c["argv"]) for c in pod.socratic_calls()]
    for text in texts:
        assert HF_TOKEN not in text and RUNPOD_KEY not in text


def test_success_trains_exports_pushes_and_removes_the_pod(pod):
    code, out, _ = pod.run({"DPO_CONFIG": "configs/qwen2.5-7b-dpo-qlora.yaml"})
    assert code == 0, out
    train, dpo, export = pod.socratic_calls()
    assert train["argv"][:3] == ["train", "--config", "configs/qwen2.5-7b-qlora.yaml"]
    assert f"train.output_dir={pod.run_dir}" in train["argv"]
    assert {"train.resume=auto", "export.after_train=false"} <= set(train["argv"])
    assert dpo["argv"][:3] == ["train", "--config", "configs/qwen2.5-7b-dpo-qlora.yaml"]
    assert {f"dpo.sft_run={pod.run_dir}", f"train.output_dir={pod.run_dir / 'dpo'}"} <= set(
        dpo["argv"]
    )
    assert export["argv"] == [
        "export", "--run", str(pod.run_dir / "dpo"), "--out", str(pod.run_dir / "export"),
        "--push-to-hub", "me/socratic-tutor",
    ]  # fmt: skip
    # The stages read HF_TOKEN from the environment; the RunPod key never reaches them.
    assert train["has_hf_token"] and not train["has_runpod_key"]
    assert pod.runpodctl_calls() == [["pod", "delete", "pod123"]]
    summary = pod.summary()
    assert summary["outcome"] == "success"
    assert summary["hub_url"] == "https://huggingface.co/me/socratic-tutor"
    assert {s["status"] for s in summary["stages"].values()} == {"done"}
    assert "***" in (pod.run_dir / "train.log").read_text()  # the token line, masked
    assert_no_secrets(pod, out)


def test_failure_keeps_logs_exits_nonzero_and_removes_after_grace_via_rest(pod, api):
    code, out, elapsed = pod.run(
        {"FAKE_SOCRATIC_TRAIN": "fail", "FAILURE_GRACE_SECONDS": "1.5", "RUNPOD_REST_URL": api.url},
        with_runpodctl=False,
    )
    assert code == 1, out
    assert elapsed >= 1.5
    assert [c["argv"][0] for c in pod.socratic_calls()] == ["train"]  # no export after a failure
    assert "CUDA out of memory" in (pod.run_dir / "train.log").read_text()
    assert api.calls == [("/v1/pods/pod123", f"Bearer {RUNPOD_KEY}")]
    summary = pod.summary()
    assert summary["outcome"] == "failed"
    assert (summary["stages"]["train"]["status"], summary["stages"]["train"]["returncode"]) == (
        "failed",
        3,
    )
    assert_no_secrets(pod, out)


@pytest.mark.parametrize(("mode", "expected"), [("ok", 0), ("fail", 1)])
def test_keep_pod_never_removes_and_skips_the_grace_wait(pod, api, mode, expected):
    extra = {"KEEP_POD": "1", "FAKE_SOCRATIC_EXPORT": mode, "FAILURE_GRACE_SECONDS": "30"}
    code, out, elapsed = pod.run(extra | {"RUNPOD_REST_URL": api.url})
    assert code == expected, out
    assert elapsed < 20
    assert pod.runpodctl_calls() == [] and api.calls == []
    assert "KEEP_POD=1" in out


def test_watchdog_stops_a_runaway_job_and_removes_the_pod(pod):
    # 0.0005 h = 1.8 s; the fake job would sleep for 10 minutes.
    code, out, elapsed = pod.run({"FAKE_SOCRATIC_TRAIN": "hang", "MAX_RUNTIME_HOURS": "0.0005"})
    assert code == 1, out
    assert elapsed < 20
    summary = pod.summary()
    assert summary["outcome"] == "watchdog"
    assert summary["stages"]["train"]["status"] == "watchdog"
    assert pod.runpodctl_calls() == [["pod", "delete", "pod123"]]


def test_sigterm_stops_the_stage_without_removing_the_pod(pod):
    code, out, elapsed = pod.run({"FAKE_SOCRATIC_TRAIN": "hang"}, sigterm_after=2.0)
    assert code == 143, out
    assert elapsed < 20
    assert pod.runpodctl_calls() == []
    assert "outcome" not in pod.summary() or pod.summary()["outcome"] == "interrupted"


def test_runpodctl_legacy_syntax_then_rest_fallback(pod, api):
    code, out, _ = pod.run({"FAKE_RUNPODCTL_FAIL": "pod delete"})
    assert code == 0, out
    assert pod.runpodctl_calls() == [["pod", "delete", "pod123"], ["remove", "pod", "pod123"]]
    pod.ctl_file.unlink()
    (pod.run_dir / "pod_summary.json").unlink()
    extra = {"FAKE_RUNPODCTL_FAIL": "pod delete,remove pod", "RUNPOD_REST_URL": api.url}
    code, out, _ = pod.run(extra)
    assert code == 0, out
    assert len(pod.runpodctl_calls()) == 2
    assert api.calls == [("/v1/pods/pod123", f"Bearer {RUNPOD_KEY}")]


def test_removal_that_fails_everywhere_exits_nonzero(pod):
    server = FakeRunPodAPI(status=403)
    try:
        code, out, _ = pod.run({"RUNPOD_REST_URL": server.url}, with_runpodctl=False)
    finally:
        server.close()
    assert code == 1
    assert "remove it by hand" in out


def test_restart_resumes_after_finished_stages(pod):
    pod.run_dir.mkdir(parents=True)
    earlier = {
        "config": "configs/qwen2.5-7b-qlora.yaml",
        "train_args": [],
        "stages": {"train": {"status": "done", "returncode": 0}},
    }
    (pod.run_dir / "pod_summary.json").write_text(json.dumps(earlier))
    code, out, _ = pod.run()
    assert code == 0, out
    assert [c["argv"][0] for c in pod.socratic_calls()] == ["export"]
    assert "already done" in out


def test_restart_after_the_end_goes_straight_to_removal(pod):
    code, _, _ = pod.run({"KEEP_POD": "1"})
    assert code == 0
    code, out, _ = pod.run()
    assert code == 0, out
    assert len(pod.socratic_calls()) == 2  # nothing ran again
    assert pod.runpodctl_calls() == [["pod", "delete", "pod123"]]


def test_another_config_starts_fresh(pod):
    pod.run({"KEEP_POD": "1"})
    code, _, _ = pod.run({"KEEP_POD": "1", "TRAIN_ARGS": "train.epochs=1"})
    assert code == 0
    calls = pod.socratic_calls()
    assert [c["argv"][0] for c in calls] == ["train", "export", "train", "export"]
    assert calls[2]["argv"][-1] == "train.epochs=1"


def test_a_secret_written_into_the_export_fails_the_run(pod):
    code, out, _ = pod.run({"FAKE_SOCRATIC_EXPORT": "leak", "KEEP_POD": "1"})
    assert code == 1
    assert "a secret value was written to" in out and "README.md" in out
    assert HF_TOKEN not in out
    assert pod.summary()["stages"]["export"]["status"] == "failed"


def test_not_on_a_pod_nothing_is_removed(pod):
    code, out, _ = pod.run({"RUNPOD_POD_ID": ""})
    assert code == 0
    assert pod.runpodctl_calls() == []
    assert "not a RunPod pod" in out


def test_settings_defaults_and_bad_numbers(tmp_path):
    module = load_module()
    s = module.settings_from_env({"VOLUME_DIR": str(tmp_path), "HUB_PRIVATE": "true"})
    assert s.config == "configs/qwen2.5-7b-qlora.yaml"
    assert s.run_dir == tmp_path / "runs" / "qwen2.5-7b-qlora"
    assert s.max_runtime_s == 24 * 3600 and s.grace_s == 600
    assert s.rest_url == "https://rest.runpod.io/v1"
    names = [name for name, _ in module.stage_commands(s)]
    assert names == ["train", "dpo", "export"]  # SFT, then DPO from it, then one export
    dpo, export = module.stage_commands(s)[1][1], module.stage_commands(s)[2][1]
    assert "--push-to-hub" not in export  # no repo, no push
    assert export[3] == str(tmp_path / "runs" / "qwen2.5-7b-qlora" / "dpo")  # the DPO run
    assert "configs/qwen2.5-7b-dpo-qlora.yaml" in dpo
    assert f"dpo.sft_run={tmp_path / 'runs' / 'qwen2.5-7b-qlora'}" in dpo
    s = module.settings_from_env({"HUB_REPO_ID": "me/x", "HUB_PRIVATE": "1", "DPO_CONFIG": "none"})
    assert [name for name, _ in module.stage_commands(s)] == ["train", "export"]
    assert module.stage_commands(s)[1][1][-3:] == ["--push-to-hub", "me/x", "--private"]
    s = module.settings_from_env({"TRAIN_LAUNCHER": "accelerate launch --num_processes 2 -m x",
                                  "DPO_TRAIN_ARGS": "dpo.beta=0.2"})  # fmt: skip
    train, dpo, export = (argv for _, argv in module.stage_commands(s))
    assert train[:6] == ["accelerate", "launch", "--num_processes", "2", "-m", "x"]
    assert train[6] == "train" and export[:2] == ["socratic", "export"]
    assert dpo[:2] == ["socratic", "train"] and dpo[-1] == "dpo.beta=0.2"  # one process
    with pytest.raises(SystemExit, match="MAX_RUNTIME_HOURS"):
        module.settings_from_env({"MAX_RUNTIME_HOURS": "soon"})
    with pytest.raises(SystemExit, match="FAILURE_GRACE_SECONDS"):
        module.settings_from_env({"FAILURE_GRACE_SECONDS": "-1"})


@pytest.mark.parametrize("config", ["configs/qwen2.5-7b-qlora.yaml", "configs/tiny-cpu.yaml"])
def test_the_real_trainer_accepts_the_train_command(tmp_path, config):
    """The overrides the pod passes are valid keys for the real config loader."""
    module = load_module()
    s = module.settings_from_env({"VOLUME_DIR": str(tmp_path), "CONFIG": config})
    argv = module.stage_commands(s)[0][1]
    socratic = Path(sys.executable).parent / "socratic"
    done = subprocess.run(
        [str(socratic), *argv[1:], "--print-config"],
        cwd=HERE.parents[1],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    assert resolved["train"]["output_dir"] == str(s.run_dir)
    assert resolved["train"]["resume"] == "auto"
    assert resolved["export"]["after_train"] is False


def test_the_real_trainer_accepts_the_dpo_command(tmp_path):
    module = load_module()
    s = module.settings_from_env({"VOLUME_DIR": str(tmp_path)})
    argv = dict(module.stage_commands(s))["dpo"]
    socratic = Path(sys.executable).parent / "socratic"
    done = subprocess.run([str(socratic), *argv[1:], "--print-config"], cwd=HERE.parents[1],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    assert resolved["train"]["stage"] == "dpo" and resolved["dpo"]["sft_run"] == str(s.run_dir)
    assert resolved["train"]["output_dir"] == str(s.run_dir / "dpo")
