"""The real-time engine behind `datagen.generate.arun_generation` (imports openai).

One `Run` keeps up to `concurrency` jobs in flight over one `Session`. A job is one generation
request and everything that follows from its reply (extraction, gates, critique); its accepted
conversations are committed synchronously (dedupe, target check, durable append), so the event
loop never interleaves two commits. What a request asks and how a reply is judged live in
`datagen.session`, shared with the batch engine.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time

from datagen.client import Endpoint, RequestFailed, RetryPolicy
from datagen.job import Candidate, Manifest, Outcome, log, noting_stop
from datagen.prompting import RequestPlan
from datagen.session import Session

_CHECKPOINT_S = 1.0  # manifest rewrite interval while running


class Run:
    def __init__(self, session: Session):  # a datagen.pairs_gen.PairSession for --pairs
        self.args = session.args
        self.session = session
        self.generating: set[int] = set()  # requests waiting for their reply
        self.stop_reason = "running"
        self.launched = self.cancelled = 0
        self._last_checkpoint = 0.0

    # ------------------------------------------------------------------ session

    async def execute(self) -> Manifest:
        s, args = self.session, self.args
        s.open()
        self.endpoint = Endpoint(
            args.base_url,
            args.api_key or "EMPTY",
            args.model,
            concurrency=args.concurrency,
            timeout_s=args.timeout_s,
            policy=RetryPolicy(args.retries, args.retry_base_s, breaker=args.breaker),
            seed=args.seed,
        )
        s.progress_bar()
        try:
            with noting_stop(self):
                await self._loop()
        finally:
            await self.endpoint.close()
            manifest = self._write_manifest()
            s.close()
        return manifest

    async def _loop(self) -> None:
        s, n = self.session, self.args.n
        if s.total >= n:
            self.stop_reason = "done"
            return
        max_requests = self.args.max_requests or 4 * math.ceil(s.need / s.k) + 8
        indices = (i for i in itertools.count() if i not in s.done)
        pending: dict[asyncio.Task, RequestPlan] = {}
        try:
            while True:
                while self.stop_reason == "running" and len(pending) < self.args.concurrency:
                    if self.launched >= max_requests:
                        self.stop_reason = "max_requests"
                    elif len(pending) * s.k * s.yield_rate() < s.need:
                        plan = s.plan(next(indices))
                        pending[asyncio.create_task(self._job(plan))] = plan
                        self.launched += 1
                    else:
                        break
                if not pending:
                    break
                finished, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    s.done.add(pending.pop(task).index)
                    task.result()  # re-raises FatalError
                if s.total >= n:
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
        self.stop_reason = "done" if s.total >= n else self.stop_reason
        if self.stop_reason == "running":
            self.stop_reason = "max_requests"
        s.warn_if_counts_do_not_add_up()

    def _after_job(self) -> None:
        s, c = self.session, self.session.counts
        cost = s.total_cost(self.endpoint.stats)
        if self.args.max_cost is not None and cost is not None and cost >= self.args.max_cost:
            if self.stop_reason == "running":
                self.stop_reason = "max_cost"
                log(
                    f"estimated cost ${cost:.4f} reached --max-cost ${self.args.max_cost}; stopping"
                )
        s.bar.set_postfix_str(
            f"req={c.requests} rej={sum(c.rejected.values())} dup={sum(c.duplicates.values())}"
            + (f" ${cost:.3f}" if cost is not None else ""),
            refresh=False,
        )
        if time.monotonic() - self._last_checkpoint >= _CHECKPOINT_S:
            self._write_manifest()

    # ------------------------------------------------------------------ one request

    async def _job(self, plan: RequestPlan) -> None:
        s = self.session
        self.generating.add(plan.index)
        try:
            reply = await self.endpoint.chat(**s.generation_request(plan), purpose="generate")
        except RequestFailed as e:
            s.on_generation_failed(plan, str(e))
            return
        finally:
            self.generating.discard(plan.index)
        candidates = s.on_generation(plan, reply)
        if s.critic_template is None:
            s.commit(plan, s.uncritiqued(candidates))
            return
        outcomes = await asyncio.gather(
            *(self._critique(cand) for cand in candidates), return_exceptions=True
        )
        for o in outcomes:
            if isinstance(o, BaseException):
                raise o
        s.commit(plan, [o for o in outcomes if o is not None])

    async def _critique(self, cand: Candidate) -> Outcome | None:
        s = self.session
        try:
            reply = await self.endpoint.chat(**s.critique_request(cand), purpose="critique")
        except RequestFailed as e:
            return s.on_critique_failed(cand, str(e))
        return s.on_critique(cand, reply.text)

    # ------------------------------------------------------------------ manifest

    def _write_manifest(self) -> Manifest:
        self._last_checkpoint = time.monotonic()
        stats = self.endpoint.stats
        requests = {
            "launched": self.launched,
            "cancelled_at_target": self.cancelled,
            "attempts": stats.attempts,
            "retries": stats.retries,
            "errors": dict(stats.errors),
        }
        return self.session.write_manifest(
            self.stop_reason,
            stats,
            base_url=self.endpoint.base_url,
            structured=self.args.structured and "response_format" not in self.endpoint.dropped,
            requests=requests,
        )
