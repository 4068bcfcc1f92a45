"""One generation session on one output file, shared by the real-time engine (`datagen.realtime`) and
the batch engine (`datagen.batch`): both build every request and handle every reply here.

A session opens and recovers the output file, seeds the deduper, and then, per request:
`generation_request` builds the chat call, `on_generation` extracts and gates the reply into
`Candidate`s, `critique_request`/`on_critique` judge each candidate (or `uncritiqued` skips
that), and `commit` appends the survivors durably. `write_manifest` records it all; the engines
add what is theirs (request statistics, batch rounds). Engines decide only how calls travel.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm import tqdm

from datagen.client import CallStats, Reply
from datagen.cost import cost_usd
from datagen.critique import critic_messages, critic_response_format, parse_critique
from datagen.extract import extract_conversations
from datagen.job import Candidate, Counts, GenerateArgs, Manifest, Outcome, log, max_tokens_for
from datagen.prompting import RequestPlan, generator_messages, generator_response_format
from datagen.prompting import plan_request as _plan_request
from datagen.quality import Deduper, Rejected, Rules, check_candidate, socratic_problem
from datagen.store import (
    Appender,
    expand,
    ranges,
    read_existing,
    sha256_hex,
    side_file,
    sum_usage,
    write_manifest,
)
from tutor.data import Report, iter_conversations
from tutor.schema import Conversation, Limits

_READ_LIMITS = Limits(min_exchanges=1, max_exchanges=1000, max_chars=10**7)  # existing rows


class Session:
    UNIT = "conversations"  # what a row of the output is
    TRUNCATED_NOTE = " left by an interrupted run; it was never counted"

    def __init__(self, args: GenerateArgs, template: str, critic_template: str | None,
                 topics: list, previous: dict[str, Any] | None):  # fmt: skip
        self.args, self.template, self.critic_template = args, template, critic_template
        self.topics = topics
        self.previous = previous or {}
        self.limits = Limits(*args.exchanges, max_chars=args.max_chars)
        self.rules = Rules(max_words=args.max_words)
        self.k = min(args.per_request, args.n)
        self.counts = Counts()
        self.deduper = Deduper(args.opening_threshold, args.dialogue_threshold)
        self.done: set[int] = set()  # request indices answered (or failed for good)
        self.have = 0  # conversations in the file when the session started
        self.started = time.time()
        self.bar: tqdm | None = None

    # ------------------------------------------------------------------ files

    def open(self) -> None:
        """Lock and recover the output, seed the deduper, open the side logs."""
        args = self.args
        self.out = Appender(args.out, sync=args.fsync)
        try:
            if self.out.truncated:
                log(f"{args.out}: removed a partial last line ({self.out.truncated} bytes)"
                    + self.TRUNCATED_NOTE)  # fmt: skip
            self.have, requests = self.read_output()
            self.done = requests | expand(self.previous.get("requests_done", []))
            self.critique_log = Appender(
                side_file(args.out, "critique.jsonl"), lock=False, sync=False
            )
            self.reject_log = Appender(
                side_file(args.out, "rejected.jsonl"), lock=False, sync=False
            )
        except BaseException:
            self.close()
            raise
        if self.have:
            log(f"resuming: {self.have} of {args.n} {self.UNIT} already in {args.out}")

    def read_output(self) -> tuple[int, set[int]]:
        """Seed the deduper from the output and --dedupe-against; the output's rows and requests."""
        args = self.args
        existing = read_existing(args.out, _READ_LIMITS)
        for messages in existing.messages:
            self.deduper.add(self.deduper.keys(messages))
        for path in args.dedupe_against:
            report = Report()
            for conv in iter_conversations([path], report, limits=_READ_LIMITS):
                self.deduper.add(self.deduper.keys(conv.messages))
            log(
                f"dedupe against {path}: {report.valid} conversations "
                f"({len(report.invalid)} invalid rows ignored)"
            )
        return existing.count, existing.requests

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        for name in ("out", "critique_log", "reject_log"):
            if hasattr(self, name):
                getattr(self, name).close()

    def progress_bar(self) -> tqdm:
        self.bar = tqdm(
            total=self.args.n,
            initial=self.have,
            unit="conv",
            desc=self.args.out.name,
            disable=not self.args.progress,
            file=sys.stderr,
            smoothing=0.1,
        )
        return self.bar

    # ------------------------------------------------------------------ plan

    def plan(self, index: int) -> RequestPlan:
        return _plan_request(index, self.args.seed, self.k, self.args.exchanges, self.topics)

    @property
    def total(self) -> int:
        return self.have + self.counts.accepted

    @property
    def need(self) -> int:
        return max(0, self.args.n - self.total)

    def yield_rate(self) -> float:
        """Accepted per conversation asked for so far (1.0 until there is evidence), >= 0.2."""
        c = self.counts
        rate = c.accepted / c.requested if c.requested >= 2 * self.k else 1.0
        return max(rate, 0.2)

    # ------------------------------------------------------------------ requests

    def generation_request(self, plan: RequestPlan) -> dict[str, Any]:
        """The chat call of a generation request (`model` plus the optional parameters)."""
        args = self.args
        return {
            "model": args.model,
            "messages": generator_messages(plan, self.template, args.addendum),
            "response_format": generator_response_format() if args.structured else None,
            "max_tokens": args.max_tokens or max_tokens_for(plan.k, plan.exchanges),
            "temperature": args.temperature,
            "seed": plan.seed,
        }

    def critique_request(self, cand: Candidate) -> dict[str, Any]:
        args = self.args
        assert self.critic_template is not None
        return {
            "model": args.critic_model or args.model,
            "messages": critic_messages(cand.conv.messages, self.critic_template, args.min_score),
            "response_format": critic_response_format() if args.structured else None,
            "max_tokens": max_tokens_for(1, cand.conv.exchanges) + 400,
            "temperature": 0.0,
        }

    # ------------------------------------------------------------------ replies

    def on_generation_failed(self, plan: RequestPlan, detail: str) -> None:
        """A generation request failed for good: its conversations count as failed."""
        self.counts.failed_requests += 1
        self.counts.failed += plan.k
        self.reject_log.append(
            [{"request": plan.index, "reason": "request failed", "detail": detail}]
        )

    def on_generation(self, plan: RequestPlan, reply: Reply) -> list[Candidate]:
        """Extract and gate a generation reply; returns the candidates not yet seen."""
        c = self.counts
        c.requests += 1
        c.requested += plan.k
        c.truncated_replies += reply.finish_reason == "length"
        ex = extract_conversations(reply.text)
        c.returned += ex.returned
        c.missing += max(0, plan.k - ex.returned)
        c.extra += max(0, ex.returned - plan.k)
        c.unparsed += ex.unparsed
        c.parsed += len(ex.items)
        if ex.unparsed:
            entry = {"request": plan.index, "reason": "unparsed", "errors": ex.errors}
            self.reject_log.append([{**entry, "reply": reply.text[:20000]}])
        candidates = []
        for slot, item in enumerate(ex.items):
            try:
                conv = check_candidate(item, self.limits, self.rules)
            except Rejected as r:
                self._reject(plan, slot, r, item)
                continue
            c.valid += 1
            keys = self.deduper.keys(conv.messages)
            if dup := self.deduper.check(keys):
                c.duplicates[dup] += 1
                continue
            candidates.append(Candidate(plan, slot, conv, keys))
        return candidates

    def candidate_item(self, c: Candidate) -> dict[str, Any]:
        """A candidate awaiting its critique, as JSON for the batch engine's state file."""
        return {
            "id": f"crit-{c.plan.index}-{c.slot}",
            "request": c.plan.index,
            "slot": c.slot,
            "messages": c.conv.messages,
        }

    def candidate_from_item(self, item: dict[str, Any]) -> Candidate:
        conv = Conversation(messages=item["messages"], meta={})
        return Candidate(
            self.plan(item["request"]), item["slot"], conv, self.deduper.keys(conv.messages)
        )

    def uncritiqued(self, candidates: list[Candidate]) -> list[Outcome]:
        return [Outcome(c.slot, c.conv, False, None, c.keys) for c in candidates]

    def on_critique_failed(self, cand: Candidate, detail: str) -> None:
        self.counts.critiqued += 1
        entry = self._entry(cand)
        self._reject_candidate(cand, Rejected("critique: request failed", detail), entry)

    def on_critique(self, cand: Candidate, text: str) -> Outcome | None:
        """Judge a candidate by the critic's reply: keep it, take the revision, or reject."""
        args, conv = self.args, cand.conv
        self.counts.critiqued += 1
        entry = self._entry(cand)
        try:
            crit = parse_critique(text)
        except ValueError as e:
            entry["critique"] = text[:4000]
            reason = Rejected("critique: unreadable critic reply", str(e))
            return self._reject_candidate(cand, reason, entry)
        entry["critique"] = crit.to_dict()
        answer = crit.final_answer or None
        if not crit.falls_short(args.min_score):
            try:
                socratic_problem(conv.messages, self.rules, answer)
                return Outcome(cand.slot, conv, False, entry, cand.keys)
            except Rejected as r:
                if not crit.revision:
                    reason = Rejected(f"critique: {r.reason}", r.detail)
                    return self._reject_candidate(cand, reason, entry)
        if not crit.revision:
            reason = Rejected("critique: falls short, no revision")
            return self._reject_candidate(cand, reason, entry)
        entry["revision"] = crit.revision
        try:
            revised = check_candidate(
                {"conversations": crit.revision}, self.limits, self.rules, answer
            )
        except Rejected as r:
            reason = Rejected(f"critique: revision failed {r.reason}", r.detail)
            return self._reject_candidate(cand, reason, entry, crit.revision)
        entry["revision"] = revised.messages[1:]
        return Outcome(cand.slot, revised, True, entry, self.deduper.keys(revised.messages))

    def _entry(self, cand: Candidate) -> dict[str, Any]:
        return {"request": cand.plan.index, "slot": cand.slot, "original": cand.conv.messages[1:]}

    def _reject(
        self, plan: RequestPlan, slot: int, r: Rejected, item: Any, entry: dict | None = None
    ) -> None:
        self.counts.rejected[r.reason] += 1
        record = {"request": plan.index, "slot": slot, "reason": r.reason, "detail": r.detail}
        self.reject_log.append([{**record, "item": item}])
        if entry is not None:
            entry["outcome"] = f"rejected: {r.detail}"
            self.critique_log.append([entry])

    def _reject_candidate(
        self, cand: Candidate, r: Rejected, entry: dict, item: Any = None
    ) -> None:
        item = cand.conv.messages if item is None else item
        self._reject(cand.plan, cand.slot, r, item, entry)

    # ------------------------------------------------------------------ commit

    def commit(self, plan: RequestPlan, results: list[Outcome]) -> None:
        """Dedupe against everything accepted so far, stop at --n, append durably."""
        c, records, entries = self.counts, [], []
        for o in results:
            if dup := self.deduper.check(o.keys):
                c.duplicates[dup] += 1
                outcome = f"duplicate ({dup})"
            elif self.total >= self.args.n:
                c.surplus += 1
                outcome = "surplus"
            else:
                self.deduper.add(o.keys)
                records.append(self._record(plan, o))
                c.accepted += 1
                c.revised += o.revised
                outcome = "accepted"
            if o.entry is not None:
                o.entry["outcome"] = outcome
                entries.append(o.entry)
        self.out.append(records)
        self.critique_log.append(entries)
        if self.bar is not None:
            self.bar.update(len(records))

    def _record(self, plan: RequestPlan, o: Outcome) -> dict:
        situation, difficulty = plan.slots[o.slot] if o.slot < plan.k else (None, None)
        meta = {
            "subject": plan.subject,
            "subtopic": plan.subtopic,
            "situation": situation,
            "difficulty": difficulty,
            "model": self.args.model,
            "request": plan.index,
            "slot": o.slot,
            "revised": o.revised,
        }
        return {
            "conversations": o.conv.messages,
            "meta": {k: v for k, v in meta.items() if v is not None},
        }

    # ------------------------------------------------------------------ manifest

    def session_cost(self, stats: CallStats) -> float | None:
        total = 0.0
        for purpose, u in stats.usage.items():
            model = self.args.critic_model if purpose == "critique" else None
            price = self.args.price(model)
            if price is None:
                return None
            total += cost_usd(u[1], u[2], price)
        return total

    def total_cost(self, stats: CallStats) -> float | None:
        costs = [s.get("cost_usd") for s in self.previous.get("sessions", [])]
        costs.append(self.session_cost(stats))
        return None if any(x is None for x in costs) else sum(costs)

    def write_manifest(
        self,
        stop_reason: str,
        stats: CallStats,
        *,
        base_url: str | None,
        structured: bool,
        requests: dict[str, Any],
        extra: dict[str, Any] | None = None,
    ) -> Manifest:
        """Rewrite `<name>.manifest.json`: this session appended to the earlier ones."""
        args = self.args
        session = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
            "elapsed_s": round(time.time() - self.started, 3),
            "stop_reason": stop_reason,
            "existing_at_start": self.have,
            "truncated_partial_bytes": self.out.truncated,
            "counts": self.counts.to_dict(),
            "ledger": self.counts.ledger(),
            "requests": requests,
            "usage": {
                purpose: {"calls": u[0], "prompt_tokens": u[1], "completion_tokens": u[2]}
                for purpose, u in stats.usage.items()
            },
            "cost_usd": self.session_cost(stats),
            "adaptations": stats.adaptations,
        }
        sessions = [*self.previous.get("sessions", []), session]
        data = {
            "output": args.out.name,
            "target": args.n,
            "conversations_in_file": self.total,
            "stop_reason": stop_reason,
            "model": args.model,
            "critic_model": (args.critic_model or args.model) if args.critique else None,
            "base_url": base_url,
            "template_sha256": sha256_hex(self.template),
            "critic_template_sha256": sha256_hex(self.critic_template)
            if self.critic_template
            else None,
            "structured_output": structured,
            "price_usd_per_1m_tokens": args.price(),
            "cost_usd": self.total_cost(stats),
            "tokens": sum_usage(sessions),
            **(extra or {}),
            "args": args.to_dict(),
            "sessions": sessions,
            "requests_done": ranges(self.done),
        }
        path = side_file(args.out, "manifest.json")
        write_manifest(path, data)
        return Manifest(path=path, data=data)

    def warn_if_counts_do_not_add_up(self) -> None:
        for problem in self.counts.problems():
            log(f"warning: counts do not add up: {problem}")
