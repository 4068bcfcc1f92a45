"""The settings of a generation run (`GenerateArgs`): every field with its type, its default and,
for the flags of `socratic data generate`, its help with units (built by `tutor.flags`). The
manifest records them, minus the key. Light imports only: the CLI reads this at start-up.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from datagen.cost import price_for
from datagen.critique import DEFAULT_CRITIC_TEMPLATE
from datagen.prompting import DEFAULT_TEMPLATE
from tutor.flags import flag

PAIRS_GROUP = (
    "preference pairs (--pairs)",
    "Write preference pairs (tutor.pairs format) instead of conversations: for every good tutor "
    "turn of --pairs-from, the model writes its rejected twin (accepts a wrong claim, doubts a "
    "right one, or hands over a demanded answer) and the critic keeps the pair only when it "
    "differs on that point alone. --n counts pairs; one request per source turn.",
)
TOPIC = "topic"  # --topic and --topics exclude each other
PAIRS = "pairs"


def exchanges(text: str) -> tuple[int, int]:
    """`--exchanges`: N or MIN-MAX."""
    lo, _, hi = text.partition("-")
    try:
        return int(lo), int(hi or lo)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or MIN-MAX, got {text!r}") from None


def _f(default: Any = None, help: str | None = None, *, factory: Any = None, **kw: Any) -> Any:
    """A field with its default and, given `help`, its flag (`tutor.flags.flag`)."""
    meta = flag(help, **kw) if help is not None else {}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class GenerateArgs:
    """Every setting of a run (the CLI's flags; the manifest records them, minus the key)."""

    out: Path = field(metadata=flag("output file (required; appended)", shown=False, metavar="FILE.jsonl"))  # fmt: skip
    n: int = field(metadata=flag("conversations the file should hold (required)", shown=False, metavar="N"))  # fmt: skip
    exchanges: tuple[int, int] = _f(
        (2, 6), "user+assistant pairs per conversation, drawn per request, e.g. 2-6 or 4",
        shown="2-6", type=exchanges, metavar="MIN-MAX",
    )  # fmt: skip
    topic: str = _f(
        "general", "'general' = the bundled subject list; a subject of that list; or any topic",
        group=TOPIC, metavar="TOPIC",
    )  # fmt: skip
    topics_file: Path | None = _f(
        None, "your own 'subject: sub-topic; sub-topic' list instead of the bundled one",
        name="--topics", group=TOPIC, metavar="FILE",
    )  # fmt: skip
    per_request: int = _f(5, "conversations asked per request", metavar="K")
    model: str = _f("gpt-4o-mini", "generator model name", metavar="M")
    base_url: str | None = _f(
        None, "OpenAI-compatible endpoint, e.g. http://localhost:8000/v1",
        shown="$OPENAI_BASE_URL if set, else OpenAI", metavar="URL",
    )  # fmt: skip
    # the key itself comes from the environment variable the flag names
    api_key: str = field(default="", repr=False, metadata=flag(
        "environment variable holding the API key, optional for a --base-url endpoint",
        "--api-key-env", dest="api_key_env", default="OPENAI_API_KEY", metavar="NAME",
    ))  # fmt: skip
    concurrency: int = _f(
        8, "requests in flight; with --batch and --max-cost, the size of the first round",
        metavar="C",
    )  # fmt: skip
    critique: bool = _f(True, "constitutional self-critique and revision of every conversation")
    critic_model: str | None = _f(None, "critic model", shown="the --model", metavar="M")
    min_score: int = _f(
        3, "a principle scored below S (1-5) by the critic triggers a revision", metavar="S"
    )
    seed: int = _f(0, "seed of the per-request plan", metavar="S")
    max_cost: float | None = _f(
        None, "stop launching requests once the estimated cost of the file reaches USD (US "
        "dollars; default: no limit)", shown=False, metavar="USD",
    )  # fmt: skip
    price_in: float | None = _f(
        None, "price in USD per 1M input tokens",
        shown="the built-in table for known models", metavar="USD",
    )  # fmt: skip
    price_out: float | None = _f(
        None, "price in USD per 1M output tokens",
        shown="the built-in table for known models", metavar="USD",
    )  # fmt: skip
    template: Path = _f(
        DEFAULT_TEMPLATE, "generator prompt with {NUM_CONVERSATIONS}, {NUM_EXCHANGES}, {TOPIC}",
        shown="data/prompts/generator_prompt.txt", metavar="FILE",
    )  # fmt: skip
    critic_template: Path = _f(
        DEFAULT_CRITIC_TEMPLATE, "critic prompt with {CONVERSATION}, {MIN_SCORE}",
        shown="data/prompts/critic_prompt.txt", metavar="FILE",
    )  # fmt: skip
    addendum: bool = _f(
        True, "append the per-conversation student situation and difficulty plan to the prompt"
    )
    structured: bool = _f(
        True, "ask for JSON-schema structured output, dropped automatically if refused"
    )
    temperature: float = _f(1.0, "generator temperature", metavar="T")
    max_tokens: int = _f(
        0, "output tokens per generation request; 0 = sized from --per-request and exchanges",
        metavar="N",
    )  # fmt: skip
    timeout_s: float = _f(
        300.0, "per-request timeout in seconds", name="--timeout", shown="300", metavar="SEC"
    )
    retries: int = _f(
        6, "retries per request on 429/5xx/timeouts; with --batch, the later rounds a failed "
        "line may go into", metavar="N",
    )  # fmt: skip
    retry_base_s: float = _f(
        1.0, "first backoff in seconds; doubles per retry, jittered; Retry-After wins if longer",
        name="--retry-base", metavar="SEC",
    )  # fmt: skip
    breaker: int = _f(10, "stop the run after N failed attempts in a row", metavar="N")
    max_requests: int = _f(
        0, "generation requests this run may send; 0 = 4x the expected need + 8", metavar="N"
    )
    max_words: int = _f(150, "longest tutor turn, in words", metavar="N")
    max_chars: int = _f(4000, "longest message, in characters", metavar="N")
    dedupe_against: list[Path] = _f(
        help="other conversation files that generated ones must not duplicate", factory=list,
        metavar="FILE",
    )  # fmt: skip
    opening_threshold: float = 0.8  # Jaccard of student openings that counts as a near-duplicate
    dialogue_threshold: float = 0.7  # Jaccard of whole dialogues that counts as a near-duplicate
    progress: bool = _f(
        True, "hide the progress bar (shown by default)", name="--no-progress", shown=False,
        order=1,
    )  # fmt: skip
    fsync: bool = True
    batch: str | None = _f(
        None, "send the requests as batch files instead of one by one: 'openai' = the OpenAI "
        "Batch API (half the price, done within 24 h); 'vllm' = vLLM's offline batch runner on "
        "--model (a local dir or Hub id), run with $VLLM_PYTHON (default: .venv-vllm/bin/python "
        "in the checkout, else this Python)", shown="off, real time", choices=("openai", "vllm"),
    )  # fmt: skip
    poll_s: float = _f(
        30.0, "seconds between status checks of an OpenAI batch", name="--poll-interval",
        shown="30", metavar="SEC",
    )  # fmt: skip
    cancel_batch: bool = _f(
        False, "cancel the OpenAI batch in flight, keep the requests it finished, and stop; a "
        "later rerun sends the rest",
    )  # fmt: skip
    vllm_args: str = _f(
        "", "extra flags for vLLM's batch runner, one quoted string, e.g. "
        "'--tensor-parallel-size 4 --max-model-len 8192'; on vLLM's CPU build, --dtype float32 "
        "--max-model-len 2048 --enforce-eager and no chunked prefill are added unless given",
        metavar="ARGS",
    )  # fmt: skip
    pairs: bool = _f(
        False, "generate preference pairs", shown="conversations", group=PAIRS
    )  # writes preference pairs (datagen.pairs_gen) instead of conversations
    pairs_from: Path | None = _f(
        None, "conversations whose tutor turns become the chosen sides, e.g. "
        "data/sample/dialogues.jsonl or a generated file; meta.claims labels name the point "
        "(required with --pairs)", shown=False, group=PAIRS, metavar="FILE",
    )  # fmt: skip
    pairs_template: Path | None = _f(
        None, "prompt with {CONVERSATION}, {CHOSEN}, {KIND}",
        shown="data/prompts/pairs_prompt.txt", group=PAIRS, metavar="FILE",
    )  # fmt: skip
    pairs_critic_template: Path | None = _f(
        None, "critic prompt with {CONVERSATION}, {CHOSEN}, {REJECTED}, {KIND}",
        shown="data/prompts/pairs_critic_prompt.txt", group=PAIRS, metavar="FILE",
    )  # fmt: skip

    def check(self) -> None:
        """Raise ValueError (one line) on inconsistent settings."""
        lo, hi = self.exchanges
        problems = [
            (self.n < 1, f"--n must be >= 1, got {self.n}"),
            (not 1 <= lo <= hi <= 32, f"--exchanges must be 1 <= MIN <= MAX <= 32, got {lo}-{hi}"),
            (self.per_request < 1, f"--per-request must be >= 1, got {self.per_request}"),
            (self.concurrency < 1, f"--concurrency must be >= 1, got {self.concurrency}"),
            (not 1 <= self.min_score <= 5, f"--min-score must be 1-5, got {self.min_score}"),
            (self.max_cost is not None and self.max_cost <= 0, "--max-cost must be > 0"),
            ((self.price_in is None) != (self.price_out is None), "give both --price-in and --price-out"),
            (self.retries < 0 or self.breaker < 1, "--retries must be >= 0 and --breaker >= 1"),
            (self.batch not in (None, "openai", "vllm"), f"--batch must be openai or vllm, got {self.batch!r}"),
            (self.poll_s <= 0, f"--poll-interval must be > 0, got {self.poll_s}"),
            (self.cancel_batch and self.batch != "openai", "--cancel-batch needs --batch openai"),
            (bool(self.vllm_args) and self.batch != "vllm", "--vllm-args needs --batch vllm"),
        ]  # fmt: skip
        for bad, message in problems:
            if bad:
                raise ValueError(message)
        models = [self.model] + ([self.critic_model] if self.critique and self.critic_model else [])
        for model in models:
            if self.max_cost is not None and self.price(model) is None:
                raise ValueError(
                    f"--max-cost needs a price: {model!r} is not in the price table; "
                    "give --price-in and --price-out (USD per 1M tokens)"
                )

    def price(self, model: str | None = None) -> tuple[float, float] | None:
        """USD per 1M tokens; a self-hosted vLLM batch has a price only when one is given."""
        if self.batch == "vllm" and self.price_in is None:
            return None
        return price_for(
            model or self.model, self.price_in, self.price_out, batch=self.batch == "openai"
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("api_key")
        return json.loads(json.dumps(d, default=str))
