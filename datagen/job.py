"""What a generation run is: its settings (`GenerateArgs`, the CLI's flags, defined in
`datagen.settings`), its counts and its manifest, the conversations in flight (`Candidate`,
`Outcome`), the log line format: the types every engine (real time, batch) shares. The dispatcher
is `datagen.generate`.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from datagen.prompting import RequestPlan
from datagen.quality import DupKeys
from datagen.settings import GenerateArgs as GenerateArgs  # re-exported: the engines import it here
from tutor.schema import Conversation


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


@contextmanager
def noting_stop(run: Any) -> Iterator[None]:
    """Set `run.stop_reason` when the body fails: `error: ...` on a FatalError (the endpoint
    cannot be used), else `interrupted`; the exception goes on."""
    from datagen.client import FatalError

    try:
        yield
    except FatalError as e:
        run.stop_reason = f"error: {e}"
        raise
    except BaseException:
        run.stop_reason = "interrupted"
        raise


def round_bar(args: GenerateArgs, rnd: dict[str, Any], total: int | None = None, what: str = ""):
    """The progress bar of one batch round, below the run's (hidden without --progress)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=f"round {rnd['n']} {rnd['kind']}{what}", unit="req",
                position=1, leave=False, disable=not args.progress, file=sys.stderr)  # fmt: skip


def log(message: str) -> None:
    print(f"[datagen {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
