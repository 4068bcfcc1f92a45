"""What a generation run is: its settings (`GenerateArgs`, the CLI's flags), its counts and its
manifest, the conversations in flight (`Candidate`, `Outcome`), the log line format: the types
every engine (real time, batch) shares. The dispatcher
is `datagen.generate`.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from datagen.cost import price_for
from datagen.critique import DEFAULT_CRITIC_TEMPLATE
from datagen.prompting import DEFAULT_TEMPLATE, RequestPlan
from datagen.quality import DupKeys
from tutor.schema import Conversation


@dataclass
class GenerateArgs:
    """Every setting of a run (the CLI's flags; the manifest records them, minus the key)."""

    out: Path
    n: int
    exchanges: tuple[int, int] = (2, 6)  # user+assistant pairs per conversation, drawn per request
    topic: str = "general"  # "general" = the bundled list; a subject of the list; or any topic
    topics_file: Path | None = None  # replaces the bundled topic list
    per_request: int = 5  # conversations asked for per request
    model: str = "gpt-4o-mini"
    base_url: str | None = None  # None: the openai client's default (OPENAI_BASE_URL or OpenAI)
    api_key: str = field(default="", repr=False)
    concurrency: int = 8  # requests in flight (generation and critique together)
    critique: bool = True
    critic_model: str | None = None  # None: the generator model
    min_score: int = 3  # a principle scored below this (1-5) makes a conversation fall short
    seed: int = 0
    max_cost: float | None = None  # USD; stop launching requests once the estimate reaches it
    price_in: float | None = None  # USD per 1M input tokens (overrides the price table)
    price_out: float | None = None  # USD per 1M output tokens
    template: Path = DEFAULT_TEMPLATE
    critic_template: Path = DEFAULT_CRITIC_TEMPLATE
    addendum: bool = True  # append the per-conversation situation/difficulty plan to the prompt
    structured: bool = True  # send a JSON-schema response_format (dropped if the endpoint refuses)
    temperature: float = 1.0
    max_tokens: int = 0  # per generation request; 0 = sized from per_request and exchanges
    timeout_s: float = 300.0
    retries: int = 6
    retry_base_s: float = 1.0
    breaker: int = 10
    max_requests: int = 0  # generation requests this run may send; 0 = 4 x the expected need + 8
    max_words: int = 150  # per tutor turn
    max_chars: int = 4000  # per message
    dedupe_against: list[Path] = field(default_factory=list)
    opening_threshold: float = 0.8  # Jaccard of student openings that counts as a near-duplicate
    dialogue_threshold: float = 0.7  # Jaccard of whole dialogues that counts as a near-duplicate
    progress: bool = True
    fsync: bool = True
    batch: str | None = None  # None = real time; "openai" (Batch API) or "vllm" (run_batch)
    poll_s: float = 30.0  # seconds between status checks of an OpenAI batch
    cancel_batch: bool = False  # cancel the recorded OpenAI batch, keep what it finished, stop
    vllm_args: str = ""  # extra flags for vLLM's batch runner, e.g. "--tensor-parallel-size 4"
    pairs: bool = False  # write preference pairs (datagen.pairs_gen) instead of conversations
    pairs_from: Path | None = None  # conversations whose good tutor turns become `chosen`
    pairs_template: Path | None = None  # None: data/prompts/pairs_prompt.txt
    pairs_critic_template: Path | None = None  # None: data/prompts/pairs_critic_prompt.txt

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


@dataclass
class Counts:
    """What happened to every conversation asked for. Invariants (see `problems`):
    requested + extra = returned + missing; returned = parsed + unparsed;
    parsed = accepted + surplus + rejected + duplicates;
    valid = parsed - rejected before critique (reasons not starting with "critique:").
    Together (`ledger`): requested + failed + extra = accepted + every rejection + failed."""

    requests: int = 0  # generation requests answered
    failed_requests: int = 0  # generation requests that failed for good
    requested: int = 0  # conversations asked for by answered requests
    failed: int = 0  # conversations asked for by requests that failed for good
    truncated_replies: int = 0  # replies cut off by max_tokens (finish_reason "length")
    returned: int = 0  # items found in replies, readable or not
    missing: int = 0  # asked for but absent from the reply (it held fewer items)
    extra: int = 0  # items beyond the number asked for (kept and checked like the others)
    unparsed: int = 0
    parsed: int = 0
    valid: int = 0  # passed the schema and the Socratic checks
    critiqued: int = 0
    revised: int = 0  # accepted conversations that are the critic's revision
    accepted: int = 0
    surplus: int = 0  # valid and unique but beyond --n
    rejected: Counter = field(default_factory=Counter)  # reason -> count
    duplicates: Counter = field(default_factory=Counter)  # exact / near: opening / near: dialogue

    def problems(self) -> list[str]:
        """The invariants that do not hold (empty when the counts add up)."""
        rejected = sum(self.rejected.values())
        early = sum(v for k, v in self.rejected.items() if not k.startswith("critique:"))
        ends = self.accepted + self.surplus + rejected + sum(self.duplicates.values())
        checks = [
            (
                self.requested + self.extra == self.returned + self.missing,
                "requested + extra != returned + missing",
            ),
            (self.returned == self.parsed + self.unparsed, "returned != parsed + unparsed"),
            (self.parsed == ends, "parsed != accepted + surplus + rejected + duplicates"),
            (self.valid == self.parsed - early, "valid != parsed - rejected before critique"),
        ]
        return [message for ok, message in checks if not ok]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rejected"] = dict(self.rejected.most_common())
        d["duplicates"] = dict(self.duplicates.most_common())
        return d

    def ledger(self) -> dict[str, Any]:
        """Every conversation asked for, by fate: `requested + extra_returned = written +
        sum(rejected) + failed` (rejected includes unparsed, missing, duplicates and surplus)."""
        rejected = Counter(self.rejected)
        rejected.update({f"duplicate: {k}": v for k, v in self.duplicates.items()})
        rejected.update(unparsed=self.unparsed, **{"not returned": self.missing})
        rejected.update({"surplus beyond --n": self.surplus})
        return {
            "requested": self.requested + self.failed,
            "extra_returned": self.extra,
            "written": self.accepted,
            "rejected": {k: v for k, v in rejected.most_common() if v},
            "failed": self.failed,
        }


@dataclass
class Manifest:
    """The run's record, written beside the output as `<name>.manifest.json`."""

    path: Path
    data: dict[str, Any]

    @property
    def stop_reason(self) -> str:
        return self.data["stop_reason"]

    @property
    def conversations(self) -> int:
        return self.data["conversations_in_file"]

    @property
    def counts(self) -> dict[str, Any]:
        return self.data["sessions"][-1]["counts"]


@dataclass
class Candidate:
    """A conversation that passed the gates and awaits its critique and commit."""

    plan: RequestPlan
    slot: int
    conv: Conversation
    keys: DupKeys


@dataclass
class Outcome:
    """A conversation ready to commit (the original or the critic's revision)."""

    slot: int
    conv: Conversation
    revised: bool
    entry: dict[str, Any] | None  # the critique trail, None without critique
    keys: DupKeys


def max_tokens_for(k: int, exchanges: int) -> int:
    """Output budget of a request: ~100 tokens per message plus JSON overhead, capped at 16k."""
    return min(16384, k * (150 + 2 * exchanges * 100) + 300)


def summary_line(m: Manifest, elapsed_s: float | None = None) -> str:
    c = m.counts
    cost = m.data["cost_usd"]
    parts = [
        f"{m.conversations} {'pairs' if m.data['args'].get('pairs') else 'conversations'} in "
        f"{m.path.with_name(m.data['output'])}",
        f"this run: {c['accepted']} accepted ({c['revised']} revised), "
        f"{sum(c['rejected'].values())} rejected, {sum(c['duplicates'].values())} duplicates, "
        f"{c['unparsed']} unparsed, {c['requests']} requests",
        f"cost ~${cost:.4f}" if cost is not None else "cost unknown (tokens in the manifest)",
    ]
    if elapsed_s is not None:
        parts.append(f"{elapsed_s:.1f} s")
    return "; ".join(parts)


def log(message: str) -> None:
    print(f"[datagen {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
