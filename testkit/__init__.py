"""Test support shipped with the project: fake OpenAI-style servers and the ASGI helpers they share.

Imported by `tests/` and `bench/` only, never by a product package (tests/test_layers.py checks).

- `asgi`: read a body, answer JSON, serve an ASGI app in a thread (`ThreadedServer`).
- `fake_generator`: a scripted chat-completions endpoint for `socratic data generate` (good,
  fenced, malformed, truncated ... replies, 429/500, slow; a critic that keeps or revises).
- `fake_batch`: the OpenAI Files + Batches API, answering with `fake_generator`'s replies.
- `fast_upstream`: a fixed-latency streaming upstream, cheap enough to benchmark a gateway against.
- `fault_engine`: an engine with fault modes (slow, 500, garbage, die, stall, echo) for the gateway.
- `fake_openai`: an endpoint whose every answer a test decides (evaluation tests).
"""
