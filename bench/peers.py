"""The proxies a user would otherwise put in front of vLLM, installed and run by the benchmark:
LiteLLM's proxy (PyPI, in a venv of its own under the cache) and nginx (Debian's package) as a
plain reverse proxy. Nothing of theirs lives in the repository.

    with litellm_proxy(upstream_url, port) as proc: ...     # OpenAI-compatible, key KEY
    with nginx_proxy(upstream_port, port) as proc: ...

LiteLLM: `pip install 'litellm[proxy]==LITELLM_VERSION'` into `<cache>/bench/litellm-<version>`
on first use (a stamp marks a complete install), one OpenAI-compatible model
pointing at the upstream, a master key, one worker. nginx: `apt-get install -y nginx` when it is
missing and this runs as root; its config (one upstream with keep-alive, buffering off so
streams pass chunk by chunk, one worker, no access log) is written to a temporary directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.common import pinned
from tutor.paths import cache_root
from tutor.proc import spawned

# 1.107.0 was reported compromised: never that one. Checked with `pip index versions litellm`.
LITELLM_VERSION = "1.110.2"
KEY = "sk-bench-peers"
MODEL = "socratic-tutor"


def litellm_venv(version: str = LITELLM_VERSION) -> Path:
    """The venv holding LiteLLM `version` and its proxy, created on first use; a stamp written
    last marks it complete (an interrupted install is removed and redone)."""
    if version == "1.107.0":
        raise ValueError("litellm 1.107.0 was reported compromised; use another version")
    venv = cache_root() / "bench" / f"litellm-{version}"
    stamp = venv / ".complete"
    if stamp.exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    print(f"installing litellm[proxy]=={version} into {venv} (once; a few minutes)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if subprocess.run([*pip, f"litellm[proxy]=={version}"]).returncode != 0:
        print("litellm[proxy]: the extra's companion pins are not on this index; installing "
              f"litellm=={version} and the extra's requirements by name", flush=True)  # fmt: skip
        subprocess.run([*pip, f"litellm=={version}"], check=True)
        reqs = subprocess.run([python, "-c", PROXY_REQUIREMENTS], check=True,
                              capture_output=True, text=True).stdout.split()  # fmt: skip
        subprocess.run([*pip, *reqs], check=True)
    stamp.write_text(version)
    return venv


# Run by the venv's python: the `proxy` extra's requirements of the installed litellm, without
# `litellm-proxy` (not a published distribution) and with the exact pins of litellm's companion
# packages (litellm-proxy-extras, litellm-enterprise) left to whatever the index has.
PROXY_REQUIREMENTS = """
import importlib.metadata as md
from packaging.requirements import Requirement
for line in md.requires("litellm"):
    req = Requirement(line)
    if req.marker is None or not req.marker.evaluate({"extra": "proxy"}) or "extra" not in str(req.marker):
        continue
    if req.name == "litellm-proxy":
        continue
    req.marker = None
    print(req.name if req.name.startswith("litellm-") else str(req).replace(" ", ""))
"""


def litellm_config(upstream_url: str) -> str:
    """LiteLLM's proxy config: one OpenAI-compatible model at `upstream_url`, a master key."""
    return (
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        "      model: openai/fake\n"
        f"      api_base: {upstream_url.rstrip('/')}/v1\n"
        "      api_key: none\n"
        "general_settings:\n"
        f"  master_key: {KEY}\n"
        "litellm_settings:\n"
        "  drop_params: true\n"
        "  request_timeout: 600\n"
    )


@contextmanager
def litellm_proxy(upstream_url: str, port: int, cpu: int | None = None) -> Iterator:
    venv = litellm_venv()
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
           "LITELLM_TELEMETRY": "False", "DISABLE_SCHEMA_UPDATE": "True"}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "litellm.yaml"
        config.write_text(litellm_config(upstream_url))
        cmd = [str(venv / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1",
               "--port", str(port), "--num_workers", "1"]  # fmt: skip
        url = f"http://127.0.0.1:{port}/health/liveliness"
        with spawned(pinned(cmd, cpu), url, timeout_s=180, env=env) as proc:
            yield proc


def nginx_binary() -> str:
    """nginx's path; installs Debian's package when missing and this process is root."""
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError("nginx is not installed: apt-get install -y nginx (as root)")
    print("installing nginx (apt-get install -y nginx)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "nginx"], env=env).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=True)
        subprocess.run(["apt-get", "install", "-y", "nginx"], env=env, check=True)
    return nginx_binary()


def nginx_config(upstream_port: int, port: int, prefix: Path) -> str:
    """A plain reverse proxy: keep-alive to the upstream, no buffering, one worker, no logs."""
    return f"""daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream engine {{ server 127.0.0.1:{upstream_port}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://engine;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 600s;
        }}
    }}
}}
"""


@contextmanager
def nginx_proxy(upstream_port: int, port: int, cpu: int | None = None) -> Iterator:
    binary = nginx_binary()
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(nginx_config(upstream_port, port, Path(tmp)))
        cmd = [binary, "-p", tmp, "-c", str(conf), "-e", str(Path(tmp) / "error.log")]
        with spawned(pinned(cmd, cpu), f"http://127.0.0.1:{port}/health") as proc:
            yield proc
