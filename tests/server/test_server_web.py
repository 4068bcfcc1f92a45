"""The chat page's routes over HTTP (no browser): GET / with its Content-Security-Policy, the page's
files under /webui/, WEB_UI=0 turning both off, the API's own routes and error bodies unchanged
beside them, and a warning naming the fix when the page's libraries are not installed.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from server.settings import Settings
from server.web import STATIC_DIR, VENDOR_FILES, add_web_ui, missing_vendor_files


@pytest.fixture(scope="module")
def gateway(fake_engine, gateway_factory) -> str:
    return gateway_factory(engine_url=fake_engine.url)


def test_the_page_is_served_at_the_root_with_a_strict_policy(gateway):
    resp = httpx.get(gateway + "/")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    policy = resp.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "unsafe-eval" not in policy and "default-src 'none'" in policy
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert '<label for="input"' in resp.text and "Socratic tutor" in resp.text


def test_every_file_the_page_names_is_under_the_static_folder(gateway):
    page = httpx.get(gateway + "/").text
    names = re.findall(r'(?:src|href)="webui/([^"]+)"', page)
    assert {"app.js", "style.css", *(f"vendor/{n}" for n in VENDOR_FILES)} == set(names)
    for name in ("app.js", "style.css"):
        resp = httpx.get(f"{gateway}/webui/{name}")
        assert resp.status_code == 200 and resp.text == (STATIC_DIR / name).read_text()
    assert (
        httpx.get(gateway + "/webui/app.js").headers["content-type"].startswith("text/javascript")
    )


def test_unknown_files_get_the_api_error_body(gateway):
    resp = httpx.get(gateway + "/webui/nothing-here.js")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"


def test_the_api_routes_are_unchanged_beside_the_page(gateway):
    assert httpx.get(gateway + "/v1/chat/completions").status_code == 405
    assert httpx.get(gateway + "/v1/models").json()["data"][0]["id"] == "socratic-tutor"
    assert httpx.get(gateway + "/health").json() == {"status": "ok"}
    assert httpx.get(gateway + "/v2/anything").status_code == 404


def test_web_ui_0_turns_the_page_off(fake_engine, gateway_factory):
    settings = Settings.from_env({"WEB_UI": "0"}, engine_url=fake_engine.url)
    assert settings.web_ui is False
    url = gateway_factory(engine_url=fake_engine.url, web_ui=False)
    for path in ("/", "/webui/app.js"):
        resp = httpx.get(url + path)
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
    assert httpx.get(url + "/health").status_code == 200


def test_missing_libraries_are_named_with_the_fix(tmp_path: Path):
    (tmp_path / "index.html").write_text("<!doctype html><title>t</title>")
    (tmp_path / "vendor" / "katex").mkdir(parents=True)
    (tmp_path / "vendor" / "marked.umd.js").write_text("")
    assert missing_vendor_files(tmp_path) == [n for n in VENDOR_FILES if n != "marked.umd.js"]

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("server")
    logger.addHandler(handler)
    try:
        app = FastAPI()
        add_web_ui(app, tmp_path)
    finally:
        logger.removeHandler(handler)
    [record] = [r for r in records if r.getMessage() == "web_ui_libraries_missing"]
    assert record.levelno == logging.WARNING
    assert "make webui" in record.fields["fix"]
    assert "purify.min.js" in record.fields["missing"]
    assert any(getattr(r, "path", None) == "/" for r in app.routes)
