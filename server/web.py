"""The student chat page: server/webui/static/ served by the gateway (WEB_UI=1, the default).

    add_web_ui(app)        # in create_app: GET / -> the page, GET /webui/... -> its files

The page (index.html, app.js, style.css) talks to the gateway's own /v1/chat/completions, so the
API-key, limit and fault rules are the API's. Its libraries (marked, DOMPurify, KaTeX) come from
the npm registry at install time: `make webui` (scripts/build_webui.sh) puts their browser builds
in server/webui/static/vendor/; the images do the same in a build stage. Without them the page
still works and shows replies as plain text; the gateway logs a warning at start-up.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from server.observability import log_event

STATIC_DIR = Path(__file__).parent / "webui" / "static"
VENDOR_FILES = ("marked.umd.js", "purify.min.js", "katex/katex.min.js", "katex/katex.min.css")
# The page runs only its own scripts and talks only to this gateway; KaTeX sets inline styles.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "font-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def missing_vendor_files(static_dir: Path = STATIC_DIR) -> list[str]:
    """The library files `make webui` installs that are not there."""
    return [name for name in VENDOR_FILES if not (static_dir / "vendor" / name).is_file()]


def add_web_ui(app: FastAPI, static_dir: Path = STATIC_DIR) -> None:
    """Serve the chat page at / and its files under /webui/."""
    missing = missing_vendor_files(static_dir)
    if missing:
        log_event(
            "web_ui_libraries_missing",
            logging.WARNING,
            missing=missing,
            fix="make webui (replies show as plain text until then)",
        )
    index = static_dir / "index.html"

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(index, media_type="text/html", headers=PAGE_HEADERS)

    app.mount("/webui", StaticFiles(directory=static_dir), name="webui")
