"""The generation engine behind `datagen.generate.arun_generation` (imports openai).

One `Run` = one session on one output file: open and recover the file, then keep up to
`concurrency` jobs in flight. A job is one generation request and everything that follows from
its reply (extraction, gates, critique); its accepted conversations are committed synchronously
(dedupe, target check, durable append), so the event loop never interleaves two commits.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import sys
import time
from typing import Any

from tqdm import tqdm

from datagen.api import Endpoint, FatalError, RequestFailed, RetryPolicy
from datagen.cost import cost_usd
from datagen.critique import critic_messages, critic_response_format, parse_critique
from datagen.extract import extract_conversations
from datagen.generate import Counts, GenerateArgs, Manifest, log, max_tokens_for
from datagen.prompting import RequestPlan, generator_messages, generator_response_format
from datagen.prompting import plan_request as _plan_request
from datagen.quality import Deduper, DupKeys, Rejected, Rules, check_candidate, socratic_problem
from datagen.store import Appender, read_existing, side_file, write_manifest
from tutor.data import Report, iter_conversations
from tutor.schema import Conversation, Limits

_READ_LIMITS = Limits(min_exchanges=1, max_exchanges=1000, max_chars=10**7)  # existing rows
_CHECKPOINT_S = 1.0  # manifest rewrite interval while running


class Run:
    def __init__(
        self,
        args: GenerateArgs,
        template: str,
        critic_template: str | None,
        topics: list,
        previous: dict[str, Any] | None,
    ):
        self.args, self.template, self.critic_template, self.topics = (
            args,
            template,
            critic_template,
            topics,
        )
        self.previous = previous or {}
        self.limits = Limits(*args.exchanges, max_chars=args.max_chars)
        self.rules = Rules(max_words=args.max_words)
        self.k = min(args.per_request, args.n)
        self.counts = Counts()
        self.deduper = Deduper(args.opening_threshold, args.dialogue_threshold)
        self.done: set[int] = set()
        self.generating: set[int] = set()  # requests waiting for their reply
        self.have = 0  # conversations in the file when the session started
        self.stop_reason = "running"
        self.launched = self.cancelled = 0
        self.started = time.time()
        self._last_checkpoint = 0.0

    # ------------------------------------------------------------------ session

    async def execute(self) -> Manifest:
        try:
            self._open()
        except BaseException:
            for name in ("out", "critique_log", "reject_log"):
                if hasattr(self, name):
                    getattr(self, name).close()
            raise
        self.endpoint = Endpoint(
            self.args.base_url,
            self.args.api_key or "EMPTY",
            self.args.model,
            concurrency=self.args.concurrency,
            timeout_s=self.args.timeout_s,
            policy=RetryPolicy(
                self.args.retries, self.args.retry_base_s, breaker=self.args.breaker
            ),
            seed=self.args.seed,
        )
        self.bar = tqdm(
            total=self.args.n,
            initial=self.have,
            unit="conv",
            desc=self.args.out.name,
            disable=not self.args.progress,
            file=sys.stderr,
            smoothing=0.1,
        )
        try:
            await self._loop()
        except FatalError as e:
            self.stop_reason = f"error: {e}"
            raise
        except BaseException:
            self.stop_reason = "interrupted"
            raise
        finally:
            self.bar.close()
            await self.endpoint.close()
            manifest = self._write_manifest()
            for f in (self.out, self.critique_log, self.reject_log):
                f.close()
        return manifest

    def _open(self) -> None:
        args = self.args
        self.out = Appender(args.out, sync=args.fsync)
        if self.out.truncated:
            log(
                f"{args.out}: removed a partial last line ({self.out.truncated} bytes) left by an "
                "interrupted run; it was never counted"
            )
        existing = read_existing(args.out, _READ_LIMITS)
        self.have = existing.count
        for messages in existing.messages:
            self.deduper.add(self.deduper.keys(messages))
        for path in args.dedupe_against:
            report = Report()
            for conv in iter_conversations([path], report, limits=_READ_LIMITS):
                self.deduper.add(self.deduper.keys(conv.messages))
            log(
                f"dedupe against {path}: {report.valid} conversations ({len(report.invalid)} invalid rows ignored)"
            )
        self.done = existing.requests | _expand(self.previous.get("requests_done", []))
        self.critique_log = Appender(side_file(args.out, "critique.jsonl"), lock=False, sync=False)
        self.reject_log = Appender(side_file(args.out, "rejected.jsonl"), lock=False, sync=False)
        if self.have:
            log(f"resuming: {self.have} of {args.n} conversations already in {args.out}")

    async def _loop(self) -> None:
        n, c = self.args.n, self.counts
        if self.have >= n:
            self.stop_reason = "done"
            return
        max_requests = self.args.max_requests or 4 * math.ceil((n - self.have) / self.k) + 8
        indices = (i for i in itertools.count() if i not in self.done)
        pending: dict[asyncio.Task, RequestPlan] = {}
        try:
            while True:
                while self.stop_reason == "running" and len(pending) < self.args.concurrency:
                    if self.launched >= max_requests:
                        self.stop_reason = "max_requests"
                    elif self._expected(len(pending)) < n - self.total:
                        plan = self.plan(next(indices))
                        pending[asyncio.create_task(self._job(plan))] = plan
                        self.launched += 1
                    else:
                        break
                if not pending:
                    break
                finished, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    self.done.add(pending.pop(task).index)
                    task.result()  # re-raises FatalError
                if self.total >= n:
                    break
                self._after_job()
        except BaseException:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            raise
        # Target reached: requests still waiting for a reply are cancelled (nothing to count);
        # jobs already past their reply finish, and what they return is counted as surplus.
        waiting = [t for t, plan in pending.items() if plan.index in self.generating]
        for task in waiting:
            task.cancel()
        self.cancelled = len(waiting)
        for result in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(result, Exception):
                raise result
        self.stop_reason = "done" if self.total >= n else self.stop_reason
        if self.stop_reason == "running":
            self.stop_reason = "max_requests"
        for problem in c.problems():
            log(f"warning: counts do not add up: {problem}")

    def plan(self, index: int) -> RequestPlan:
        return _plan_request(index, self.args.seed, self.k, self.args.exchanges, self.topics)

    @property
    def total(self) -> int:
        return self.have + self.counts.accepted

    def _expected(self, in_flight: int) -> float:
        """Conversations the in-flight requests are likely to yield (by this session's rate)."""
        c = self.counts
        rate = c.accepted / c.requested if c.requested >= 2 * self.k else 1.0
        return in_flight * self.k * max(rate, 0.2)

    def _after_job(self) -> None:
        c = self.counts
        cost = self._total_cost()
        if self.args.max_cost is not None and cost is not None and cost >= self.args.max_cost:
            if self.stop_reason == "running":
                self.stop_reason = "max_cost"
                log(
                    f"estimated cost ${cost:.4f} reached --max-cost ${self.args.max_cost}; stopping"
                )
        self.bar.set_postfix_str(
            f"req={c.requests} rej={sum(c.rejected.values())} dup={sum(c.duplicates.values())}"
            + (f" ${cost:.3f}" if cost is not None else ""),
            refresh=False,
        )
        if time.monotonic() - self._last_checkpoint >= _CHECKPOINT_S:
            self._write_manifest()

    # ------------------------------------------------------------------ one request

    async def _job(self, plan: RequestPlan) -> None:
        args, c = self.args, self.counts
        self.generating.add(plan.index)
        try:
            reply = await self.endpoint.chat(
                generator_messages(plan, self.template, args.addendum),
                purpose="generate",
                response_format=generator_response_format() if args.structured else None,
                max_tokens=args.max_tokens or max_tokens_for(plan.k, plan.exchanges),
                temperature=args.temperature,
                seed=plan.seed,
            )
        except RequestFailed as e:
            c.failed_requests += 1
            self.reject_log.append(
                [{"request": plan.index, "reason": "request failed", "detail": str(e)}]
            )
            return
        finally:
            self.generating.discard(plan.index)
        c.requests += 1
        c.requested += plan.k
        c.truncated_replies += reply.finish_reason == "length"
        ex = extract_conversations(reply.text)
        c.returned += ex.returned
        c.unparsed += ex.unparsed
        c.parsed += len(ex.items)
        if ex.unparsed:
            self.reject_log.append(
                [
                    {
                        "request": plan.index,
                        "reason": "unparsed",
                        "errors": ex.errors,
                        "reply": reply.text[:20000],
                    }
                ]
            )
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
            candidates.append((slot, conv, keys))
        if self.critic_template is None:
            results = [(slot, conv, False, None, keys) for slot, conv, keys in candidates]
        else:
            outcomes = await asyncio.gather(
                *(self._critique(plan, slot, conv, keys) for slot, conv, keys in candidates),
                return_exceptions=True,
            )
            for o in outcomes:
                if isinstance(o, BaseException):
                    raise o
            results = [o for o in outcomes if o is not None]
        self._commit(plan, results)

    async def _critique(
        self, plan: RequestPlan, slot: int, conv: Conversation, keys: DupKeys
    ) -> tuple | None:
        args = self.args
        self.counts.critiqued += 1
        entry: dict[str, Any] = {"request": plan.index, "slot": slot, "original": conv.messages[1:]}
        try:
            reply = await self.endpoint.chat(
                critic_messages(conv.messages, self.critic_template, args.min_score),
                purpose="critique",
                model=args.critic_model or args.model,
                response_format=critic_response_format() if args.structured else None,
                max_tokens=max_tokens_for(1, conv.exchanges) + 400,
                temperature=0.0,
            )
        except RequestFailed as e:
            return self._reject(
                plan, slot, Rejected("critique: request failed", str(e)), conv.messages, entry
            )
        try:
            crit = parse_critique(reply.text)
        except ValueError as e:
            entry["critique"] = reply.text[:4000]
            return self._reject(
                plan,
                slot,
                Rejected("critique: unreadable critic reply", str(e)),
                conv.messages,
                entry,
            )
        entry["critique"] = crit.to_dict()
        answer = crit.final_answer or None
        if not crit.falls_short(args.min_score):
            try:
                socratic_problem(conv.messages, self.rules, answer)
                return slot, conv, False, entry, keys
            except Rejected as r:
                if not crit.revision:
                    return self._reject(
                        plan,
                        slot,
                        Rejected(f"critique: {r.reason}", r.detail),
                        conv.messages,
                        entry,
                    )
        if not crit.revision:
            return self._reject(
                plan, slot, Rejected("critique: falls short, no revision"), conv.messages, entry
            )
        entry["revision"] = crit.revision
        try:
            revised = check_candidate(
                {"conversations": crit.revision}, self.limits, self.rules, answer
            )
        except Rejected as r:
            reason = f"critique: revision failed {r.reason}"
            return self._reject(plan, slot, Rejected(reason, r.detail), crit.revision, entry)
        entry["revision"] = revised.messages[1:]
        return slot, revised, True, entry, self.deduper.keys(revised.messages)

    def _reject(
        self, plan: RequestPlan, slot: int, r: Rejected, item: Any, entry: dict | None = None
    ) -> None:
        self.counts.rejected[r.reason] += 1
        self.reject_log.append(
            [
                {
                    "request": plan.index,
                    "slot": slot,
                    "reason": r.reason,
                    "detail": r.detail,
                    "item": item,
                }
            ]
        )
        if entry is not None:
            entry["outcome"] = f"rejected: {r.detail}"
            self.critique_log.append([entry])

    def _commit(self, plan: RequestPlan, results: list[tuple]) -> None:
        """Dedupe against everything accepted so far, stop at --n, append durably."""
        c, records, entries = self.counts, [], []
        for slot, conv, revised, entry, keys in results:
            if dup := self.deduper.check(keys):
                c.duplicates[dup] += 1
                outcome = f"duplicate ({dup})"
            elif self.total >= self.args.n:
                c.surplus += 1
                outcome = "surplus"
            else:
                self.deduper.add(keys)
                c.accepted += 1
                c.revised += revised
                records.append(self._record(plan, slot, conv, revised))
                outcome = "accepted"
            if entry is not None:
                entry["outcome"] = outcome
                entries.append(entry)
        self.out.append(records)
        self.critique_log.append(entries)
        self.bar.update(len(records))

    def _record(self, plan: RequestPlan, slot: int, conv: Conversation, revised: bool) -> dict:
        situation, difficulty = plan.slots[slot] if slot < plan.k else (None, None)
        meta = {
            "subject": plan.subject,
            "subtopic": plan.subtopic,
            "situation": situation,
            "difficulty": difficulty,
            "model": self.args.model,
            "request": plan.index,
            "slot": slot,
            "revised": revised,
        }
        return {
            "conversations": conv.messages,
            "meta": {k: v for k, v in meta.items() if v is not None},
        }

    # ------------------------------------------------------------------ manifest

    def _usage(self) -> dict[str, dict[str, int]]:
        return {
            purpose: {"calls": u[0], "prompt_tokens": u[1], "completion_tokens": u[2]}
            for purpose, u in self.endpoint.stats.usage.items()
        }

    def _session_cost(self) -> float | None:
        total = 0.0
        for purpose, u in self.endpoint.stats.usage.items():
            model = self.args.critic_model if purpose == "critique" else None
            price = self.args.price(model)
            if price is None:
                return None
            total += cost_usd(u[1], u[2], price)
        return total

    def _total_cost(self) -> float | None:
        costs = [s.get("cost_usd") for s in self.previous.get("sessions", [])]
        costs.append(self._session_cost())
        return None if any(x is None for x in costs) else sum(costs)

    def _write_manifest(self) -> Manifest:
        self._last_checkpoint = time.monotonic()
        args, stats = self.args, self.endpoint.stats
        session = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
            "elapsed_s": round(time.time() - self.started, 3),
            "stop_reason": self.stop_reason,
            "existing_at_start": self.have,
            "truncated_partial_bytes": self.out.truncated,
            "counts": self.counts.to_dict(),
            "requests": {
                "launched": self.launched,
                "cancelled_at_target": self.cancelled,
                "attempts": stats.attempts,
                "retries": stats.retries,
                "errors": dict(stats.errors),
            },
            "usage": self._usage(),
            "cost_usd": self._session_cost(),
            "adaptations": stats.adaptations,
        }
        sessions = [*self.previous.get("sessions", []), session]
        data = {
            "output": args.out.name,
            "target": args.n,
            "conversations_in_file": self.total,
            "stop_reason": self.stop_reason,
            "model": args.model,
            "critic_model": (args.critic_model or args.model) if args.critique else None,
            "base_url": self.endpoint.base_url,
            "template_sha256": _sha256(self.template),
            "critic_template_sha256": _sha256(self.critic_template)
            if self.critic_template
            else None,
            "structured_output": args.structured and "response_format" not in self.endpoint.dropped,
            "price_usd_per_1m_tokens": args.price(),
            "cost_usd": self._total_cost(),
            "tokens": _sum_usage(sessions),
            "args": args.to_dict(),
            "sessions": sessions,
            "requests_done": _ranges(self.done),
        }
        path = side_file(args.out, "manifest.json")
        write_manifest(path, data)
        return Manifest(path=path, data=data)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _sum_usage(sessions: list[dict]) -> dict[str, int]:
    out = {"prompt_tokens": 0, "completion_tokens": 0}
    for s in sessions:
        for u in s.get("usage", {}).values():
            out["prompt_tokens"] += u.get("prompt_tokens", 0)
            out["completion_tokens"] += u.get("completion_tokens", 0)
    return out


def _ranges(indices: set[int]) -> list[list[int]]:
    """{0,1,2,5} -> [[0, 2], [5, 5]] (inclusive), so the manifest stays small."""
    out: list[list[int]] = []
    for i in sorted(indices):
        if out and out[-1][1] == i - 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def _expand(ranges: list) -> set[int]:
    done: set[int] = set()
    for r in ranges:
        if isinstance(r, list) and len(r) == 2 and all(isinstance(x, int) for x in r):
            done.update(range(r[0], r[1] + 1))
    return done
