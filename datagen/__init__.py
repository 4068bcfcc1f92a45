"""Synthetic Socratic dialogue generation against any OpenAI-compatible model.

`socratic data generate` (datagen.cli) drives `datagen.generate.run_generation`, which dispatches
to an engine; a run's settings, counts and manifest are in `datagen.job`. Prompting and the
diversity plan (prompting), reply extraction (extract), quality gates and dedupe (quality),
self-critique (critique), the retrying client (client), crash-safe files (store), what every
request asks and how every reply is judged (session), the real-time engine (realtime), the batch
engine (batch) with its line formats (batch_lines) and backends (openai_batch: the OpenAI Batch API; vllm_batch: vLLM's offline
runner), and `socratic data push` (push). The scripted fakes for tests and benchmarks live in
`testkit` (`testkit.fake_generator`: chat completions; `testkit.fake_batch`: Files + Batches API).
"""
