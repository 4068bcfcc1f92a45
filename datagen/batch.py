"""The batch engine behind `socratic data generate --batch openai|vllm`.

The same session as the real-time mode (`datagen.session`: diversity plan, prompts, gates,
dedupe, critique and revision, commit, manifest), but the calls travel as JSONL batch files, in
rounds: a generation round asks for new conversations (and retries failed lines), a critique
round judges every candidate it produced (the critic's reply carries the revision). Rounds
alternate until the file holds `--n`, `--max-requests` or `--max-cost` is reached, or a batch is
cancelled. Backends: `datagen.openai_batch` (the Batch API: upload, create, poll, download) and
`datagen.vllm_batch` (vLLM's offline runner on a local model).

Resume: `<name>.batch.json` records the round in flight before anything is sent (its request
file, then the uploaded file id, then the batch id), the lines waiting for a retry and the
candidates waiting for their critique; it is rewritten atomically after every step. A rerun of
the same command picks the round up where it stopped and never submits its lines twice. Request
and result files stay in `<name>.batches/`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from datagen.batch_lines import Line, read_results, request_line
from datagen.client import CallStats, FatalError, ParamFallback
from datagen.cost import cost_usd
from datagen.job import GenerateArgs, Manifest, log, noting_stop
from datagen.session import Session
from datagen.store import expand, ranges, read_manifest, side_file, write_manifest
from tutor.io import DataError, atomic_open

ROUND_LIMIT = 50_000  # requests per batch file (the OpenAI Batch API's limit)
_FATAL_STATUS = (401, 403, 404)  # a bad key or model: no later round can do better
_RETRYABLE_4XX = (408, 409, 429)


def make_backend(args: GenerateArgs, folder: Path):
    if args.batch == "openai":
        from datagen.openai_batch import OpenAIBatches

        return OpenAIBatches(args, folder)
    from datagen.vllm_batch import VllmBatches

    return VllmBatches(args, folder)


class BatchRun:
    def __init__(self, session: Session):  # a datagen.pairs_gen.PairSession for --pairs
        self.args = args = session.args
        self.session = session
        self.stats = CallStats()
        self.params = ParamFallback(self.stats.adaptations)
        self.folder = side_file(args.out, "batches")
        self.state_path = side_file(args.out, "batch.json")
        self.stop_reason = "running"
        self.launched = 0  # new generation requests this session (retries not counted)
        self.rounds: list[dict[str, Any]] = []  # this session's rounds, for the manifest

    # ------------------------------------------------------------------ session

    def execute(self) -> Manifest:
        s, args = self.session, self.args
        s.open()
        try:
            self.state = self._load_state()
            s.done |= expand(self.state["done"])
            self.max_requests = args.max_requests or 4 * math.ceil(s.need / s.k) + 8
            self.backend = make_backend(args, self.folder)
        except BaseException:
            s.close()
            raise
        s.progress_bar()
        self._write_manifest()
        try:
            with noting_stop(self):
                if args.cancel_batch:
                    self._cancel()
                self._loop()
        finally:
            self.backend.close()
            manifest = self._write_manifest()
            s.close()
        return manifest

    def _loop(self) -> None:
        s = self.session
        while self.stop_reason == "running":
            rnd = self.state["current"] or self._next_round()
            if rnd is None:
                break
            if "results" not in rnd:
                self.backend.run(rnd, self._save_state)
            self._process(rnd)
            if rnd["status"] == "cancelled" or self.args.cancel_batch:
                self.stop_reason = "cancelled"
        if s.total >= self.args.n:
            self.stop_reason = "done"
        elif self.stop_reason == "running":
            self.stop_reason = "max_requests"
        s.warn_if_counts_do_not_add_up()

    def _cancel(self) -> None:
        """Cancel the batch in flight; the loop then keeps what it finished and stops."""
        rnd = self.state["current"]
        if rnd and "results" not in rnd and rnd.get("remote", {}).get("batch_id"):
            self.backend.cancel(rnd["remote"]["batch_id"])
        elif not rnd:
            log("--cancel-batch: no batch in flight")
            self.stop_reason = "cancelled"

    # ------------------------------------------------------------------ rounds

    def _next_round(self) -> dict[str, Any] | None:
        s, st = self.session, self.state
        if self._over_budget():
            return None
        if st["critique"]:
            items, st["critique"] = st["critique"][:ROUND_LIMIT], st["critique"][ROUND_LIMIT:]
            model = self.args.critic_model or self.args.model
            lines = [
                request_line(it["id"], self._body(s.critique_request(s.candidate_from_item(it))))
                for it in items
            ]
            rnd = {"kind": "critique", "items": items}
        elif s.need > 0:
            retry, new = st["generate"], self._new_indices(len(st["generate"]))
            if not retry and not new:
                return None
            st["generate"], model = [], self.args.model
            lines = [
                request_line(f"gen-{i}", self._body(s.generation_request(s.plan(i))))
                for i in retry + new
            ]
            rnd = {"kind": "generate", "indices": retry + new, "new": len(new)}
            self.launched += len(new)
        else:
            return None
        st["rounds"] += 1
        name = f"round-{st['rounds']:03d}-{rnd['kind']}"
        rnd.update(n=st["rounds"], name=name, model=model, ids=[x["custom_id"] for x in lines])
        rnd["sent"] = sorted({k for x in lines for k in x["body"]} - {"model", "messages"})
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_open(self.folder / f"{name}.requests.jsonl") as f:
            f.writelines(json.dumps(x, ensure_ascii=False) + "\n" for x in lines)
        st["current"] = rnd
        self._save_state()
        log(f"round {rnd['n']}: {len(lines)} {rnd['kind']} requests ({self.args.batch})")
        return rnd

    def _new_indices(self, retries: int) -> list[int]:
        """Fresh request indices for a generation round, sized by the yield so far."""
        s = self.session
        want = math.ceil(s.need / (s.k * s.yield_rate())) - retries
        want = min(want, self.max_requests - self.launched, ROUND_LIMIT - retries)
        if self.args.max_cost is not None:  # before any cost is known, a probe of C requests
            avg, spent = self._cost_per_request(), s.total_cost(self.stats) or 0.0
            cap = math.ceil((self.args.max_cost - spent) / avg) if avg else self.args.concurrency
            want = min(want, cap)
        out, i = [], 0
        taken = set(self.state["generate"])
        while len(out) < want:
            if i not in s.done and i not in taken:
                out.append(i)
            i += 1
        return out

    def _cost_per_request(self) -> float | None:
        """USD per generation request so far (None before the first reply or without a price)."""
        u, price = self.stats.usage.get("generate"), self.args.price()
        return cost_usd(u[1], u[2], price) / u[0] if u and u[0] and price else None

    def _over_budget(self) -> bool:
        cost = self.session.total_cost(self.stats)
        if self.args.max_cost is None or cost is None or cost < self.args.max_cost:
            return False
        log(f"estimated cost ${cost:.4f} reached --max-cost ${self.args.max_cost}; stopping")
        self.stop_reason = "max_cost"
        return True

    def _body(self, request: dict[str, Any]) -> dict[str, Any]:
        optional = {k: v for k, v in request.items() if k not in ("model", "messages")}
        if (cap := self.backend.max_tokens_cap) and optional.get("max_tokens"):
            optional["max_tokens"] = min(optional["max_tokens"], cap)
        return {
            "model": request["model"],
            "messages": request["messages"],
            **self.params.apply(optional),
        }

    # ------------------------------------------------------------------ results

    def _process(self, rnd: dict[str, Any]) -> None:
        """Judge a round's results with the session, then record the round as done."""
        lines = read_results([self.folder / p for p in rnd["results"]], rnd["ids"])
        self._refuse_fatal(rnd, lines)
        if rnd["kind"] == "generate":
            failed = self._process_generation(rnd, lines)
        else:
            failed = self._process_critique(rnd, lines)
        summary = {k: rnd.get(k) for k in ("n", "kind", "model", "status", "remote", "engine")}
        self.rounds.append({**summary, "lines": len(rnd["ids"]), "failed_lines": failed})
        self.state["current"], self.state["done"] = None, ranges(self.session.done)
        self._save_state()

    def _process_generation(self, rnd: dict[str, Any], lines: dict[str, Line]) -> int:
        s, failed = self.session, 0
        for i in rnd["indices"]:
            plan, line = s.plan(i), lines[f"gen-{i}"]
            if line.reply is None:
                failed += 1
                if self._retry(line, rnd):
                    self.state["generate"].append(i)
                    continue
                s.on_generation_failed(plan, line.error)
                s.done.add(i)
                continue
            self.stats.add_usage("generate", line.reply)
            candidates = s.on_generation(plan, line.reply)
            s.done.add(i)
            if s.critic_template is None:
                s.commit(plan, s.uncritiqued(candidates))
            else:
                self.state["critique"] += [s.candidate_item(c) for c in candidates]
        return failed

    def _process_critique(self, rnd: dict[str, Any], lines: dict[str, Line]) -> int:
        s, failed, outcomes = self.session, 0, {}
        for item in rnd["items"]:
            cand, line = s.candidate_from_item(item), lines[item["id"]]
            if line.reply is None:
                failed += 1
                if self._retry(line, rnd):
                    self.state["critique"].append(item)
                else:
                    s.on_critique_failed(cand, line.error)
                continue
            self.stats.add_usage("critique", line.reply)
            if (o := s.on_critique(cand, line.reply.text)) is not None:
                outcomes.setdefault(item["request"], []).append(o)
        for index in sorted(outcomes):
            s.commit(s.plan(index), outcomes[index])
        return failed

    def _refuse_fatal(self, rnd: dict[str, Any], lines: dict[str, Line]) -> None:
        """A bad key or model: put the round's requests back (a rerun rebuilds them with the
        corrected settings) and stop."""
        fatal = next((x for x in lines.values() if x.status in _FATAL_STATUS), None)
        if fatal is None:
            return
        st = self.state
        if rnd["kind"] == "generate":
            st["generate"] = rnd["indices"] + st["generate"]
        else:
            st["critique"] = rnd["items"] + st["critique"]
        st["current"] = None
        self._save_state()
        raise FatalError(
            f"{self.args.batch} batch, request {fatal.custom_id}: {fatal.status}: {fatal.error} "
            "(check --model and the key)"
        )

    def _retry(self, line: Line, rnd: dict[str, Any]) -> bool:
        """Whether a failed line goes into a later round (False: it failed for good)."""
        if line.code == "batch_cancelled" or (rnd["status"] == "cancelled" and line.status is None):
            return True  # not the request's fault: no retry is spent
        sent = dict.fromkeys(rnd.get("sent", []))  # the optional parameters the line carried
        if line.status == 400 and self.params.learn(line.param, line.error, sent):
            return True
        if (
            line.status is not None
            and 400 <= line.status < 500
            and line.status not in _RETRYABLE_4XX
        ):
            return False
        tries = self.state["retries"]
        tries[line.custom_id] = tries.get(line.custom_id, 0) + 1
        return tries[line.custom_id] <= self.args.retries

    # ------------------------------------------------------------------ state and manifest

    def _load_state(self) -> dict[str, Any]:
        fresh = {"mode": self.args.batch, "rounds": 0, "current": None}
        fresh.update(generate=[], critique=[], retries={}, done=[])
        state = read_manifest(self.state_path)  # any JSON file; None when absent or unreadable
        if state is None:
            if self.state_path.exists():
                raise DataError(f"{self.state_path}: unreadable; move it away to start over")
            return fresh
        if state.get("mode") != self.args.batch:
            raise DataError(
                f"{self.state_path}: recorded for --batch {state.get('mode')}; rerun with it, or "
                "move the file away to start over"
            )
        if current := state.get("current"):
            log(f"resuming round {current['n']} ({current['kind']})")
            self.launched += current.get("new", 0)  # its requests count as this run's
        return state

    def _save_state(self) -> None:
        """The state first (what a rerun trusts), then the manifest (what it reports)."""
        write_manifest(self.state_path, self.state)
        self._write_manifest()

    def _write_manifest(self) -> Manifest:
        st = self.state
        requests = {
            "launched": self.launched,
            "rounds": self.rounds,
            "pending_retries": len(st["generate"]),
            "pending_critiques": len(st["critique"]),
        }
        return self.session.write_manifest(
            self.stop_reason,
            self.stats,
            base_url=self.backend.base_url,
            structured=self.args.structured and "response_format" not in self.params.dropped,
            requests=requests,
            extra={"batch": {"mode": self.args.batch, "state": self.state_path.name}},
        )
