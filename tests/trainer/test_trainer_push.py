"""Hub push of an export through the real huggingface_hub client against a fake Hub on
127.0.0.1: merged files go to REPO_ID, the adapter to REPO_ID-lora, a transient 503 is retried,
a refused push raises with a retry command and leaves the local export intact, and a finished
export of the same adapter is reused instead of merged again."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import trainer.push
from trainer.export import PushError, export_run


class FakeHub(BaseHTTPRequestHandler):
    """Just enough of the Hub API for create_repo + upload_folder (regular uploads only)."""

    commits: dict[str, dict[str, bytes]] = {}
    fail_once: set[str] = set()
    deny: set[str] = set()

    def log_message(self, *args):
        pass

    def _reply(self, code: int, obj: dict) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._reply(404, {"error": "not here"})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        base = f"http://{self.headers['Host']}"
        if self.path == "/api/repos/create":
            req = json.loads(body)
            repo = f"{req['organization']}/{req['name']}"
            if repo in self.deny:
                return self._reply(403, {"error": "forbidden"})
            if repo in self.fail_once:
                self.fail_once.discard(repo)
                return self._reply(503, {"error": "try later"})
            return self._reply(200, {"url": f"{base}/{repo}"})
        if self.path == "/api/validate-yaml":
            return self._reply(200, {"errors": [], "warnings": []})
        if "/preupload/" in self.path:
            files = json.loads(body)["files"]
            return self._reply(
                200,
                {
                    "files": [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                        for f in files
                    ]
                },
            )
        if "/commit/" in self.path:
            repo = self.path.split("/api/models/")[1].split("/commit/")[0]
            files = {}
            for line in body.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            self.commits.setdefault(repo, {}).update(files)  # a repo keeps earlier commits
            oid = "a" * 40
            return self._reply(200, {"commitUrl": f"{base}/{repo}/commit/{oid}", "commitOid": oid})
        self._reply(404, {"error": "not here"})


@pytest.fixture
def hub(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    monkeypatch.setattr(trainer.push, "BASE_DELAY", 0.01)
    FakeHub.commits, FakeHub.fail_once, FakeHub.deny = {}, set(), set()
    yield FakeHub
    server.shutdown()


def test_push_merged_and_adapter_with_retry(hub, tiny_tutor, capsys):
    hub.fail_once.add("me/tutor")
    out = export_run(tiny_tutor.parent, tiny_tutor, push_to_hub="me/tutor")
    assert out == tiny_tutor
    assert "reusing it" in capsys.readouterr().out
    merged, lora = hub.commits["me/tutor"], hub.commits["me/tutor-lora"]
    assert {"model.safetensors", "tutor.json", "generation_config.json", "README.md"} <= set(merged)
    assert "tokenizer_config.json" in merged and not any(p.startswith("adapter/") for p in merged)
    assert merged["tutor.json"] == (tiny_tutor / "tutor.json").read_bytes()
    assert {"adapter_model.safetensors", "adapter_config.json", "README.md"} <= set(lora)
    assert b"base_model:" in merged["README.md"] and b"library_name: peft" in lora["README.md"]


def test_failed_push_keeps_export_and_says_how_to_retry(hub, tiny_tutor):
    hub.deny.add("me/denied")
    with pytest.raises(PushError) as err:
        export_run(tiny_tutor.parent, tiny_tutor, push_to_hub="me/denied", private=True)
    msg = str(err.value)
    assert "retry with: socratic export --run" in msg and "--push-to-hub me/denied --private" in msg
    assert (tiny_tutor / "tutor.json").exists() and (tiny_tutor / "model.safetensors").exists()


def test_push_needs_a_token(hub, tiny_tutor, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(PushError, match="needs HF_TOKEN"):
        export_run(tiny_tutor.parent, tiny_tutor, push_to_hub="me/tutor")
