"""Preference pairs from a strong model: `socratic data generate --pairs --pairs-from FILE`.

    socratic data generate --pairs --pairs-from data/gen/train.jsonl --out data/gen/pairs.jsonl \\
        --n 500 --model gpt-4o

Every good tutor turn of the source conversations (a file in the conversation format: the bundled
sample, or `socratic data generate` output) is a `chosen` side. One request per turn asks the
model for its rejected twin: the same turn making the wrong move on one point only (accepting a
wrong claim, doubting a right one, or handing over a demanded answer; `tutor.pairs.KINDS`). When
the source labels its student turns (`meta.claims`: "right" / "wrong" / null, as
`data/sample/` does), the point is taken from the label; otherwise the model names it, or "none"
(no claim to judge), which is counted and dropped. A pair passes local gates (`tutor.pairs`
schema: sides differ and are one assistant message each; lengths within `LENGTH_RATIO`), the
exact-duplicate check, and then the critic (`data/prompts/pairs_critic_prompt.txt`), which keeps
it only when the kind holds and the sides differ on the named point and nowhere else.

The session is `datagen.session.Session` with pairs instead of conversations, so the real-time and
the batch engines, resume (the file is counted, done requests are skipped), the counts that add
up and the manifest are the same as for `socratic data generate`. The output is in the
`tutor.pairs` format: `socratic data validate` reads it, `tutor.pairs.load_pairs` loads it.
"""

from __future__ import annotations

import zlib
from typing import Any

from datagen.client import Reply
from datagen.extract import extract_object
from datagen.job import Candidate, GenerateArgs, Manifest, Outcome
from datagen.pairs_prompting import (
    CRITIC_FORMAT,
    LENGTH_RATIO,
    PAIR_FORMAT,
    SOURCE_LIMITS,
    PairPlan,
    SourceTurns,
    dialogue_json,
    fill,
)
from datagen.quality import Rejected
from datagen.session import Session
from tutor.data import reason_key
from tutor.io import DataError
from tutor.pairs import KINDS, PairsReport, iter_pairs, pair_fingerprint, parse_pair
from tutor.schema import Conversation, SchemaError


class _ExactKeys:
    """The deduper of pairs: exact duplicates of prompt + chosen + rejected (normalised)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def check(self, key: str) -> str | None:
        return "exact" if key in self.seen else None

    def add(self, key: str) -> None:
        self.seen.add(key)


class PairSession(Session):
    """A `Session` whose requests are source turns and whose candidates are preference pairs."""

    UNIT = "pairs"
    TRUNCATED_NOTE = ""

    def __init__(
        self,
        args: GenerateArgs,
        template: str,
        critic_template: str | None,
        topics: SourceTurns,
        previous: dict[str, Any] | None,
    ):
        super().__init__(args, template, critic_template, [], previous)
        self.turns: SourceTurns = topics
        self.k = 1
        self.deduper = _ExactKeys()

    def read_output(self) -> tuple[int, set[int]]:
        """Seed the deduper from the output's pairs; their count and the requests they record."""
        report, requests = PairsReport(), set()
        for pair in iter_pairs([self.args.out], report, limits=SOURCE_LIMITS):
            self.deduper.add(pair_fingerprint(pair))
            request = (pair.get("meta") or {}).get("request")
            if isinstance(request, int):
                requests.add(request)
        if report.invalid:
            where, reason = report.invalid[0]
            raise DataError(
                f"{len(report.invalid)} invalid row(s) in the file to extend (first: "
                f"{where}: {reason}); check it with `socratic data validate`"
            )
        return report.valid, requests

    def plan(self, index: int) -> PairPlan:
        """Request `index` pairs source turn `index mod turns` (a later lap samples anew)."""
        source = self.turns.turns[index % len(self.turns.turns)]
        seed = zlib.crc32(f"pairs:{self.args.seed}:{index}".encode()) & 0x7FFFFFFF
        return PairPlan(index, seed, source)

    def generation_request(self, plan: PairPlan) -> dict[str, Any]:
        src, args = plan.source, self.args
        text = fill(
            self.template,
            {
                "CONVERSATION": dialogue_json(src.prompt),
                "CHOSEN": src.chosen,
                "KIND": src.kind or "decide",
            },
        )
        return {
            "model": args.model,
            "messages": [{"role": "user", "content": text}],
            "response_format": PAIR_FORMAT if args.structured else None,
            "max_tokens": args.max_tokens or 800,
            "temperature": args.temperature,
            "seed": plan.seed,
        }

    def on_generation(self, plan: PairPlan, reply: Reply) -> list[Candidate]:
        """Read the rejected twin, gate the pair, drop exact duplicates."""
        c = self.counts
        c.requests += 1
        c.requested += 1
        c.returned += 1
        c.truncated_replies += reply.finish_reason == "length"
        try:
            obj = extract_object(reply.text)
            kind, rejected = obj["kind"], obj["rejected"]
            if not isinstance(kind, str) or not isinstance(rejected, str):
                raise ValueError("'kind' and 'rejected' must be strings")
        except (ValueError, KeyError, TypeError) as e:
            c.unparsed += 1
            entry = {"request": plan.index, "reason": "unparsed", "errors": [str(e)]}
            self.reject_log.append([{**entry, "reply": reply.text[:20000]}])
            return []
        c.parsed += 1
        try:
            pair = self._pair(plan, kind.strip(), rejected)
        except Rejected as r:
            self._reject(plan, 0, r, obj)
            return []
        c.valid += 1
        key = pair_fingerprint(pair)
        if dup := self.deduper.check(key):
            c.duplicates[dup] += 1
            return []
        return [
            Candidate(plan, 0, Conversation(pair["prompt"] + pair["chosen"], {"pair": pair}), key)
        ]

    def _pair(self, plan: PairPlan, kind: str, rejected: str) -> dict[str, Any]:
        src = plan.source
        if kind == "none":
            raise Rejected("pairs: the model found no point to contrast")
        if kind not in KINDS:
            raise Rejected("pairs: unknown kind", f"kind {kind!r} (allowed: {', '.join(KINDS)})")
        if src.kind is not None and kind != src.kind:
            raise Rejected("pairs: kind differs from the source's label", f"{kind} != {src.kind}")
        record: dict[str, Any] = (
            {"subject": src.subject, "kind": kind} if src.subject else {"kind": kind}
        )
        record.update(
            prompt=src.prompt,
            chosen=[{"role": "assistant", "content": src.chosen}],
            rejected=[{"role": "assistant", "content": rejected}],
        )
        try:
            pair = parse_pair(record, self.limits)
        except SchemaError as e:
            raise Rejected(f"schema: {reason_key(str(e))}", str(e)) from None
        ratio = len(src.chosen) / len(rejected.strip())
        if not LENGTH_RATIO[0] <= ratio <= LENGTH_RATIO[1]:
            raise Rejected(
                "pairs: sides differ in length beyond the ratio bounds",
                f"chosen/rejected = {ratio:.2f}, outside {LENGTH_RATIO[0]}-{LENGTH_RATIO[1]}",
            )
        return pair

    def critique_request(self, cand: Candidate) -> dict[str, Any]:
        pair, args = cand.conv.meta["pair"], self.args
        assert self.critic_template is not None
        text = fill(
            self.critic_template,
            {
                "CONVERSATION": dialogue_json(pair["prompt"]),
                "KIND": pair["kind"],
                "CHOSEN": pair["chosen"][0]["content"],
                "REJECTED": pair["rejected"][0]["content"],
            },
        )
        return {
            "model": args.critic_model or args.model,
            "messages": [{"role": "user", "content": text}],
            "response_format": CRITIC_FORMAT if args.structured else None,
            "max_tokens": 400,
            "temperature": 0.0,
        }

    def on_critique(self, cand: Candidate, text: str) -> Outcome | None:
        """Keep the pair only when the critic says it differs on the named point and nowhere else."""
        self.counts.critiqued += 1
        entry = self._entry(cand)
        try:
            crit = extract_object(text)
            flags = [crit[k] for k in ("kind_holds", "differs_on_point", "differs_elsewhere")]
            verdict = str(crit["verdict"]).strip().lower()
            if not all(isinstance(f, bool) for f in flags) or verdict not in ("keep", "reject"):
                raise ValueError("flags must be booleans and the verdict keep or reject")
        except (ValueError, KeyError, TypeError) as e:
            entry["critique"] = text[:4000]
            reason = Rejected("critique: unreadable critic reply", str(e))
            return self._reject_candidate(cand, reason, entry)
        entry["critique"] = crit
        kind_holds, on_point, elsewhere = flags
        problem = (
            "critique: the kind does not hold"
            if not kind_holds
            else "critique: the sides do not differ on the named point"
            if not on_point
            else "critique: the sides differ elsewhere too"
            if elsewhere
            else "critique: rejected by the critic"
            if verdict != "keep"
            else None
        )
        if problem:
            return self._reject_candidate(
                cand, Rejected(problem, str(crit.get("problems", ""))), entry
            )
        return Outcome(cand.slot, cand.conv, False, entry, cand.keys)

    def _entry(self, cand: Candidate) -> dict[str, Any]:
        return {"request": cand.plan.index, "pair": cand.conv.meta["pair"]}

    def _reject_candidate(self, cand: Candidate, r: Rejected, entry: dict, item: Any = None):
        self._reject(
            cand.plan, cand.slot, r, cand.conv.meta["pair"] if item is None else item, entry
        )

    def candidate_item(self, c: Candidate) -> dict[str, Any]:
        return {
            "id": f"crit-{c.plan.index}-0",
            "request": c.plan.index,
            "slot": 0,
            "pair": c.conv.meta["pair"],
        }

    def candidate_from_item(self, item: dict[str, Any]) -> Candidate:
        pair = item["pair"]
        conv = Conversation(pair["prompt"] + pair["chosen"], {"pair": pair})
        return Candidate(self.plan(item["request"]), 0, conv, pair_fingerprint(pair))

    def _record(self, plan: PairPlan, o: Outcome) -> dict:
        pair, src = o.conv.meta["pair"], plan.source
        meta = {
            "source": src.where,
            "turn": src.turn,
            "model": self.args.model,
            "request": plan.index,
            "critiqued": o.entry is not None,
        }
        return {"id": f"gen-{plan.index}", **pair, "meta": meta}

    def write_manifest(
        self, *args: Any, extra: dict[str, Any] | None = None, **kw: Any
    ) -> Manifest:
        t = self.turns
        pairs = {
            "source": t.path,
            "source_conversations": t.conversations,
            "source_turns": len(t.turns),
            "turns_without_a_point": t.no_point,
        }
        return super().write_manifest(*args, extra={**(extra or {}), "pairs": pairs}, **kw)
