"""Synthetic Socratic dialogue generation against any OpenAI-compatible model.

`socratic data generate` (datagen.cli) drives `datagen.generate.run_generation`: prompting and the
diversity plan (prompting), reply extraction (extract), quality gates and dedupe (quality),
self-critique (critique), the retrying client (api), crash-safe files (store), the engine (run),
and `socratic data push` (push). `datagen.fake_upstream` is a scripted fake endpoint for tests
and benchmarks.
"""
