"""bench.gateway_profile's summary of py-spy's collapsed stacks: shares by package of the
innermost frame (the event loop's native time apart), self and inclusive time."""

from __future__ import annotations

from pathlib import Path

from bench.gateway_profile import summarise


def test_summarise_collapsed_stacks(tmp_path: Path) -> None:
    raw = tmp_path / "gw.raw"
    loop = "main (tutor/cli.py:70);run (asyncio/runners.py:118)"
    raw.write_text(
        f"main (tutor/cli.py:70);Runner.run (asyncio/runners.py:118) 60\n"
        f"{loop};send (uvicorn/protocols/http/httptools_impl.py:500) 25\n"
        f"{loop};with_model (server/upstream.py:318) 10\n"
        f"{loop};with_model (server/upstream.py:320);dumps (json/__init__.py:231) 5\n\n"
    )
    text = summarise(raw)
    assert text.startswith("100 samples")
    by_package = text.split("self time:")[0]
    assert " 60.0%  event loop, native" in by_package
    assert " 25.0%  uvicorn" in by_package and " 10.0%  server/" in by_package
    assert "  5.0%  json" in by_package
    inclusive = text.split("inclusive:")[1]
    assert " 15.0%  with_model (server/upstream.py)" in inclusive  # line numbers merged
    assert "100.0%  main (tutor/cli.py)" in inclusive
