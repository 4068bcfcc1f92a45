#!/usr/bin/env python3
"""Training pod entry point: SFT, DPO, export + push, then remove the pod so nothing bills.

The training image runs this (standard library only) as its ENTRYPOINT; every setting is an
environment variable (docs/deployment.md and .env.example list them):

    CONFIG=configs/qwen2.5-7b-qlora.yaml HUB_REPO_ID=me/socratic-tutor python docker/pod_entrypoint.py

Stages: `train` (SFT with $CONFIG into the run dir), `dpo` (the preference stage with $DPO_CONFIG
into `<run dir>/dpo`, from that SFT run; DPO_CONFIG=none skips it), `export` (of the last stage).

Everything the run writes lives in `$VOLUME_DIR/runs/$RUN_NAME` on the network volume: checkpoints,
`export/`, `pod.log`, `train.log`, `export.log` and `pod_summary.json`. A restarted pod finds them
there: training resumes from the last checkpoint (`train.resume=auto`), finished stages are skipped,
and a run that already ended goes straight to pod removal.

Pod lifecycle, only when `RUNPOD_POD_ID` is set:
- success: remove the pod (`runpodctl pod delete`, legacy `runpodctl remove pod`, then the REST API
  `DELETE /pods/{id}` with `RUNPOD_API_KEY`), exit 0;
- failure or watchdog (`MAX_RUNTIME_HOURS`): keep the logs on the volume, wait
  `FAILURE_GRACE_SECONDS`, remove the pod, exit 1;
- `KEEP_POD=1`: never remove; SIGTERM (someone else stops the pod): stop the stage, exit 143.
Secrets (HF_TOKEN, RUNPOD_API_KEY, ...) are read from the environment only, never put on a command
line, and masked in every log line; a stage that writes one into a text file under the run
directory (config, model card, metadata) fails.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CONFIG = "configs/qwen2.5-7b-qlora.yaml"
DEFAULT_DPO_CONFIG = "configs/qwen2.5-7b-dpo-qlora.yaml"
DEFAULT_REST_URL = "https://rest.runpod.io/v1"
VOLUME_CANDIDATES = ("/runpod-volume", "/workspace")
SECRET_NAMES = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "RUNPOD_API_KEY",
    "WANDB_API_KEY",
    "OPENAI_API_KEY",
    "API_KEYS",
)
FINAL_OUTCOMES = ("success", "failed", "watchdog")
# SIGTERM, then SIGKILL after this long: on SIGTERM the trainer finishes its optimizer step and
# saves a checkpoint (a 7B step with gradient accumulation can take tens of seconds).
KILL_WAIT_S = 120.0
# Where a stage could write a secret by mistake: configs, model cards, metadata, logs.
LEAK_SUFFIXES = (".json", ".yaml", ".yml", ".md", ".txt", ".jinja", ".log", ".csv")


@dataclass(frozen=True)
class PodSettings:
    """The environment, read once. Times in seconds; `max_runtime_s` 0 = no watchdog."""

    config: str
    run_dir: Path
    train_args: tuple[str, ...]
    dpo_config: str  # "" = no preference stage
    dpo_args: tuple[str, ...]
    hub_repo_id: str
    hub_private: bool
    pod_id: str
    api_key: str
    rest_url: str
    keep_pod: bool
    grace_s: float
    max_runtime_s: float
    socratic: str
    train_launcher: tuple[str, ...]
    secrets: tuple[str, ...]


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise SystemExit(f"pod: error: {name}={raw!r} is not a number") from None
    if value < 0:
        raise SystemExit(f"pod: error: {name} must be >= 0 (got {raw})")
    return value


def settings_from_env(env: Mapping[str, str]) -> PodSettings:
    """Every knob of the pod; bad numbers stop the pod at once with one line naming the variable."""
    config = env.get("CONFIG") or DEFAULT_CONFIG
    volume = env.get("VOLUME_DIR") or next(
        (v for v in VOLUME_CANDIDATES if Path(v).is_dir()), VOLUME_CANDIDATES[-1]
    )
    run_name = env.get("RUN_NAME") or Path(config).stem
    dpo = (env.get("DPO_CONFIG") or DEFAULT_DPO_CONFIG).strip()
    return PodSettings(
        config=config,
        run_dir=Path(volume) / "runs" / run_name,
        train_args=tuple(shlex.split(env.get("TRAIN_ARGS", ""))),
        dpo_config="" if dpo.lower() in ("none", "0", "off") else dpo,
        dpo_args=tuple(shlex.split(env.get("DPO_TRAIN_ARGS", ""))),
        hub_repo_id=env.get("HUB_REPO_ID", "").strip(),
        hub_private=_truthy(env.get("HUB_PRIVATE")),
        pod_id=env.get("RUNPOD_POD_ID", "").strip(),
        api_key=env.get("RUNPOD_API_KEY", ""),
        rest_url=(env.get("RUNPOD_REST_URL") or DEFAULT_REST_URL).rstrip("/"),
        keep_pod=_truthy(env.get("KEEP_POD")),
        grace_s=_number(env, "FAILURE_GRACE_SECONDS", 600.0),
        max_runtime_s=_number(env, "MAX_RUNTIME_HOURS", 24.0) * 3600.0,
        socratic=env.get("SOCRATIC_BIN") or "socratic",
        train_launcher=tuple(shlex.split(env.get("TRAIN_LAUNCHER", ""))),
        secrets=tuple(env[n] for n in SECRET_NAMES if len(env.get(n, "")) >= 4),
    )


def stage_commands(s: PodSettings) -> list[tuple[str, list[str]]]:
    """(stage name, argv). Secrets never go on a command line: the children read the environment."""
    # Several GPUs: TRAIN_LAUNCHER="accelerate launch --num_processes 2 -m trainer.cli".
    launcher = list(s.train_launcher) or [s.socratic]
    train = [*launcher, "train", "--config", s.config, f"train.output_dir={s.run_dir}"]
    train += ["train.resume=auto", "export.after_train=false", *s.train_args]
    stages, last = [("train", train)], s.run_dir
    if s.dpo_config:
        last = s.run_dir / "dpo"
        dpo = [s.socratic, "train", "--config", s.dpo_config, f"train.output_dir={last}"]  # 1 GPU
        dpo += [f"dpo.sft_run={s.run_dir}", "train.resume=auto", "export.after_train=false"]
        stages.append(("dpo", [*dpo, *s.dpo_args]))
    export = [s.socratic, "export", "--run", str(last), "--out", str(s.run_dir / "export")]
    if s.hub_repo_id:
        export += ["--push-to-hub", s.hub_repo_id] + (["--private"] if s.hub_private else [])
    return [*stages, ("export", export)]


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def child_env(env: Mapping[str, str]) -> dict[str, str]:
    """The stages get everything but the RunPod key (they never manage pods)."""
    out = {k: v for k, v in env.items() if k != "RUNPOD_API_KEY"}
    out["PYTHONUNBUFFERED"] = "1"
    return out


class Logger:
    """Timestamped lines to stdout and `pod.log`, secrets masked."""

    def __init__(self, path: Path, secrets: tuple[str, ...]):
        self.path, self.secrets = path, secrets

    def __call__(self, message: str) -> None:
        line = redact(f"[pod {time.strftime('%Y-%m-%dT%H:%M:%S')}] {message}", self.secrets)
        print(line, flush=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")


class Stopper:
    """Kills the running stage's process group on the watchdog deadline or on SIGTERM."""

    def __init__(self, deadline: float | None):
        self.deadline, self.reason, self.proc = deadline, "", None
        self._lock = threading.Lock()

    def stop(self, reason: str) -> None:
        with self._lock:
            self.reason = self.reason or reason
            proc = self.proc
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            timer = threading.Timer(KILL_WAIT_S, _kill_group, (proc,))
            timer.daemon = True  # never keeps the entry point alive on its own
            timer.start()

    def watch(self) -> None:
        while self.deadline is not None and not self.reason:
            if time.monotonic() >= self.deadline:
                self.stop("watchdog")
                return
            time.sleep(0.2)


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)


def run_stage(
    argv: list[str], log_path: Path, env: dict[str, str], stopper: Stopper, secrets: tuple[str, ...]
) -> int:
    """Run one stage, teeing its output (masked) to stdout and `log_path`; returns its exit code."""
    with log_path.open("a", encoding="utf-8") as log:
        log.write(redact(f"\n$ {shlex.join(argv)}\n", secrets))
        try:
            proc = subprocess.Popen(
                argv,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                start_new_session=True,  # own process group: the watchdog kills workers too
            )
        except OSError as e:
            log.write(f"cannot start: {e}\n")
            return 127
        stopper.proc = proc
        if stopper.reason:  # stopped while starting
            stopper.stop(stopper.reason)
        for line in proc.stdout:
            line = redact(line, secrets)
            sys.stdout.write(line)
            log.write(line)
        code = proc.wait()
        stopper.proc = None
        return code


def load_summary(path: Path, s: PodSettings) -> dict:
    """The previous summary when it describes this same job (config and args), else a fresh one."""
    fresh = {"config": s.config, "train_args": list(s.train_args), "stages": {}}
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return fresh
    same = old.get("config") == s.config and old.get("train_args") == list(s.train_args)
    return old if same and isinstance(old.get("stages"), dict) else fresh


def write_summary(path: Path, summary: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)  # a crash never leaves a half-written summary


def find_leaks(root: Path, secrets: tuple[str, ...]) -> list[Path]:
    """Text files under `root` (configs, model cards, summaries) that contain a secret value."""
    if not secrets:
        return []
    leaks = []
    for path in sorted(root.rglob("*")):
        if path.suffix not in LEAK_SUFFIXES or not path.is_file():
            continue
        if path.stat().st_size > 50_000_000:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if any(secret in text for secret in secrets):
            leaks.append(path)
    return leaks


def run_stages(s: PodSettings, summary: dict, env: dict[str, str], log: Logger) -> str:
    """Run the stages not done yet; returns the outcome: success | failed | watchdog | interrupted."""
    deadline = time.monotonic() + s.max_runtime_s if s.max_runtime_s > 0 else None
    stopper = Stopper(deadline)
    threading.Thread(target=stopper.watch, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: stopper.stop("interrupted"))
    for name, argv in stage_commands(s):
        if stopper.reason:
            return stopper.reason
        if summary["stages"].get(name, {}).get("status") == "done":
            log(f"stage {name}: already done in an earlier start, skipped")
            continue
        log(f"stage {name}: {shlex.join(argv)}")
        started = time.time()
        code = run_stage(argv, s.run_dir / f"{name}.log", env, stopper, s.secrets)
        status = "done" if code == 0 and not stopper.reason else stopper.reason or "failed"
        leaks = find_leaks(s.run_dir, s.secrets) if status == "done" else []
        if leaks:
            log(f"stage {name}: a secret value was written to {', '.join(map(str, leaks))}")
            status = "failed"
        summary["stages"][name] = {
            "status": status,
            "returncode": code,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "seconds": round(time.time() - started, 1),
        }
        write_summary(s.run_dir / "pod_summary.json", summary)
        log(f"stage {name}: {status} (exit {code}) after {summary['stages'][name]['seconds']} s")
        if status != "done":
            return status
    return "success"


def remove_pod(s: PodSettings, log: Logger) -> bool:
    """runpodctl (current, then legacy syntax), then the REST API. True when one of them worked."""
    if shutil.which("runpodctl"):
        for args in (["pod", "delete", s.pod_id], ["remove", "pod", s.pod_id]):
            try:
                done = subprocess.run(
                    ["runpodctl", *args], capture_output=True, text=True, timeout=120
                )
            except (OSError, subprocess.TimeoutExpired) as e:
                log(f"runpodctl {' '.join(args)}: {e}")
                continue
            if done.returncode == 0:
                log(f"pod {s.pod_id} removed (runpodctl {' '.join(args[:2])})")
                return True
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
            log(f"runpodctl {' '.join(args)} failed (exit {done.returncode}): {tail[0]}")
    if not s.api_key:
        log("RUNPOD_API_KEY is not set: no REST fallback")
        return False
    return _rest_delete(s, log)


def _rest_delete(s: PodSettings, log: Logger, attempts: int = 3) -> bool:
    url = f"{s.rest_url}/pods/{s.pod_id}"
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(
            url, method="DELETE", headers={"Authorization": f"Bearer {s.api_key}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                log(f"pod {s.pod_id} removed (REST DELETE, HTTP {response.status})")
                return True
        except urllib.error.HTTPError as e:
            log(f"REST DELETE {url}: HTTP {e.code} (attempt {attempt}/{attempts})")
            if 400 <= e.code < 500 and e.code != 429:
                return False
        except (urllib.error.URLError, OSError) as e:
            log(f"REST DELETE {url}: {e} (attempt {attempt}/{attempts})")
        time.sleep(min(2.0**attempt, 10.0))
    return False


def finish(s: PodSettings, outcome: str, summary: dict, log: Logger, grace: bool) -> int:
    """The pod lifecycle after the stages; returns the process exit code."""
    code = {"success": 0, "interrupted": 143}.get(outcome, 1)
    if not s.pod_id:
        log("RUNPOD_POD_ID is not set (not a RunPod pod): nothing to remove")
        return code
    if s.keep_pod:
        log(
            f"KEEP_POD=1: pod {s.pod_id} keeps running and billing; remove it by hand with "
            f"`runpodctl pod delete {s.pod_id}`"
        )
        return code
    if outcome == "interrupted":
        return code
    if outcome != "success" and grace and s.grace_s > 0:
        log(
            f"{outcome}: logs are in {s.run_dir}; removing the pod in {s.grace_s:g} s "
            "(set KEEP_POD=1 to keep it)"
        )
        time.sleep(s.grace_s)
    summary["removal"] = {"requested_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_summary(s.run_dir / "pod_summary.json", summary)
    if remove_pod(s, log):
        return code
    log(f"could not remove pod {s.pod_id}: remove it by hand (`runpodctl pod delete {s.pod_id}`)")
    return code or 1


def main(env: Mapping[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    s = settings_from_env(env)
    s.run_dir.mkdir(parents=True, exist_ok=True)
    log = Logger(s.run_dir / "pod.log", s.secrets)
    summary_path = s.run_dir / "pod_summary.json"
    summary = load_summary(summary_path, s)
    log(
        f"run dir {s.run_dir}, config {s.config}, hub repo {s.hub_repo_id or '(none: no push)'}, "
        f"pod {s.pod_id or '(none)'}, watchdog {s.max_runtime_s / 3600:g} h"
    )
    if summary.get("outcome") in FINAL_OUTCOMES:
        log(
            f"this run already ended ({summary['outcome']}): skipping to the pod lifecycle; "
            f"delete {summary_path} or change RUN_NAME to run again"
        )
        return finish(s, summary["outcome"], summary, log, grace=False)
    outcome = run_stages(s, summary, child_env(env), log)
    summary["outcome"] = outcome
    if outcome == "success" and s.hub_repo_id:
        summary["hub_url"] = f"https://huggingface.co/{s.hub_repo_id}"
        log(f"model pushed: {summary['hub_url']}")
    write_summary(summary_path, summary)
    return finish(s, outcome, summary, log, grace=True)


if __name__ == "__main__":
    sys.exit(main())
