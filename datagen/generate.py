"""Generate Socratic dialogues with any OpenAI-compatible model: `socratic data generate`.

    socratic data generate --out data/gen/train.jsonl --n 1000 --model gpt-4o-mini

With `--batch openai|vllm` the same requests go out as JSONL batch files instead, in rounds
(`datagen.batch`): the OpenAI Batch API at half the price, or vLLM's offline batch runner.
A run's settings (`GenerateArgs`), counts and manifest are defined in `datagen.job`, which every
engine imports; this module only dispatches, so no engine imports it back.

Programmatic use (the benchmark drives it against a fake upstream):

    from datagen.generate import GenerateArgs, run_generation
    manifest = run_generation(GenerateArgs(out=Path("x.jsonl"), n=50, base_url=..., api_key="k"))

A run keeps up to `concurrency` requests in flight. Each reply is extracted, validated, checked
for Socratic behaviour and duplicates, optionally critiqued and revised, and the accepted
conversations are appended to the output (durably) until it holds `n`. Rerunning the same command
resumes: the file is counted, its conversations seed the deduper, and requests whose conversations
are already there (or that the manifest recorded as done) are skipped.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from datagen.job import Counts, GenerateArgs, Manifest, log, max_tokens_for, summary_line
from datagen.prompting import DEFAULT_TOPICS, check_template, load_topics, select_topics
from datagen.store import read_manifest, side_file
from tutor.io import DataError

# the run's types live in datagen.job; they are importable from here too (documented path)
__all__ = [
    "Counts", "GenerateArgs", "Manifest", "arun_generation", "load_inputs", "log",
    "max_tokens_for", "run_generation", "summary_line",
]  # fmt: skip


def load_inputs(args: GenerateArgs) -> tuple[str, str | None, list]:
    """The generator template, the critic template (if critiquing) and the topic list."""
    try:
        template = Path(args.template).read_text(encoding="utf-8")
        check_template(template, str(args.template))
        critic = Path(args.critic_template).read_text(encoding="utf-8") if args.critique else None
        if critic is not None and "{CONVERSATION}" not in critic:
            raise ValueError(f"{args.critic_template}: no {{CONVERSATION}} placeholder")
        topics = select_topics(load_topics(args.topics_file or DEFAULT_TOPICS), args.topic)
    except OSError as e:
        raise DataError(f"{e.filename}: {e.strerror}") from None
    except ValueError as e:
        raise DataError(str(e)) from None
    return template, critic, topics


async def arun_generation(args: GenerateArgs) -> Manifest:
    """Run (or resume) a generation; returns the final manifest. Raises `FatalError` when the
    endpoint cannot be used, `DataError` on unusable inputs, `ValueError` on bad settings.
    A batch run (`args.batch`) blocks the event loop until it ends: it only waits and polls."""
    args.check()
    from datagen.session import Session  # the shared run logic; imports openai

    session_cls: type[Session] = Session
    if args.pairs:
        from datagen.pairs_gen import PairSession
        from datagen.pairs_prompting import load_pair_inputs

        inputs, session_cls = load_pair_inputs(args), PairSession
    else:
        inputs = load_inputs(args)
    session = session_cls(args, *inputs, read_manifest(side_file(args.out, "manifest.json")))
    if args.batch:
        from datagen.batch import BatchRun

        return BatchRun(session).execute()
    from datagen.realtime import Run  # the engine; imports openai

    return await Run(session).execute()


def run_generation(args: GenerateArgs) -> Manifest:
    """Synchronous `arun_generation`."""
    return asyncio.run(arun_generation(args))
