"""`--batch openai`: one round through the OpenAI Batch API (imports openai).

    upload the request file (files.create, purpose "batch")      -> round.remote.file_id
    create the batch (batches.create, 24 h window)                -> round.remote.batch_id
    poll batches.retrieve until completed|failed|expired|cancelled (a bar shows its counts)
    download the output and error files (files.content)          -> round.results

Each id is saved in the state file as soon as it is known. A process that dies after the batch
was created but before its id was saved would otherwise pay twice: before creating a batch, the
batches created since the upload are listed, and one made from the same input file is adopted.
Control calls use the openai client's own retries; anything that still fails is a `FatalError`
(the state is saved: rerun to resume).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai

from datagen.batch_lines import ENDPOINT
from datagen.client import FatalError, error_message
from datagen.job import GenerateArgs, log, round_bar
from tutor.io import atomic_open

TERMINAL = ("completed", "failed", "expired", "cancelled")
_CLOCK_SLACK_S = 600  # batches listed this long before the upload are still checked


class OpenAIBatches:
    max_tokens_cap = None  # the API refuses what a model cannot do: the adaptation handles it

    def __init__(self, args: GenerateArgs, folder: Path):
        self.args, self.folder = args, folder
        self.client = openai.OpenAI(
            base_url=args.base_url,
            api_key=args.api_key or "EMPTY",
            max_retries=args.retries,
            timeout=args.timeout_s,
        )
        self.base_url = str(self.client.base_url)

    def close(self) -> None:
        self.client.close()

    def run(self, rnd: dict[str, Any], save: Callable[[], None]) -> None:
        """Submit the round (or pick up its batch), wait for it, download its results."""
        remote = rnd.setdefault("remote", {})
        if not remote.get("batch_id"):
            if not remote.get("file_id"):
                path = self.folder / f"{rnd['name']}.requests.jsonl"
                with path.open("rb") as f:
                    uploaded = self._call(self.client.files.create, file=f, purpose="batch")
                remote.update(file_id=uploaded.id, file_created_at=uploaded.created_at)
                save()
            batch = self._orphan(remote) or self._call(
                self.client.batches.create,
                input_file_id=remote["file_id"],
                endpoint=ENDPOINT,
                completion_window="24h",
                metadata={"socratic_output": self.args.out.name, "round": str(rnd["n"])},
            )
            remote["batch_id"] = batch.id
            save()
            log(f"round {rnd['n']}: batch {batch.id} submitted")
        batch = self._wait(remote["batch_id"], rnd)
        counts = batch.request_counts
        rnd["request_counts"] = counts.model_dump() if counts else None
        if batch.status == "failed":
            rnd.setdefault("failed_batches", []).append(remote["batch_id"])
            rnd["remote"] = {}  # a rerun submits the round again (a failed batch costs nothing)
            save()
            raise FatalError(f"batch {batch.id} failed: {_errors(batch)}")
        rnd["results"] = [
            self._download(file_id, f"{rnd['name']}.{kind}.jsonl")
            for kind, file_id in (("output", batch.output_file_id), ("errors", batch.error_file_id))
            if file_id
        ]
        rnd["status"] = batch.status
        save()

    def cancel(self, batch_id: str) -> None:
        batch = self._call(self.client.batches.cancel, batch_id)
        log(f"batch {batch_id}: cancel requested ({batch.status})")

    # ------------------------------------------------------------------ steps

    def _orphan(self, remote: dict[str, Any]) -> Any | None:
        """A batch already created from this input file (by a process that died)."""
        since = remote.get("file_created_at", 0) - _CLOCK_SLACK_S
        for batch in self._call(self.client.batches.list, limit=100):
            if batch.input_file_id == remote["file_id"]:
                log(f"batch {batch.id} was already created from {remote['file_id']}: adopting it")
                return batch
            if batch.created_at < since:
                break  # newest first: everything further is older than the upload
        return None

    def _wait(self, batch_id: str, rnd: dict[str, Any]) -> Any:
        bar = round_bar(self.args, rnd)
        try:
            while True:
                batch = self._call(self.client.batches.retrieve, batch_id)
                counts = batch.request_counts
                if counts is not None:
                    bar.total = counts.total
                    bar.n = counts.completed + counts.failed
                bar.set_postfix_str(
                    f"{batch.status} ok={counts.completed if counts else 0} "
                    f"failed={counts.failed if counts else 0}"
                )
                if batch.status in TERMINAL:
                    log(f"round {rnd['n']}: batch {batch_id} {batch.status} ({_counts(batch)})")
                    return batch
                time.sleep(self.args.poll_s)
        finally:
            bar.close()

    def _download(self, file_id: str, name: str) -> str:
        content = self._call(self.client.files.content, file_id)
        with atomic_open(self.folder / name) as f:
            f.write(content.text)
        return name

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
            raise FatalError(f"{self.base_url} rejected the API key ({e.status_code})") from None
        except openai.APIStatusError as e:
            raise FatalError(
                f"{self.base_url}: {e.status_code} {error_message(e)[:200]}; rerun to resume"
            ) from None
        except openai.APIConnectionError as e:
            raise FatalError(f"{self.base_url} unreachable ({e}); rerun to resume") from None


def _counts(batch: Any) -> str:
    c = batch.request_counts
    return f"{c.completed} completed, {c.failed} failed of {c.total}" if c else "no counts"


def _errors(batch: Any) -> str:
    errors = (batch.errors.data or []) if batch.errors else []
    parts = [f"line {e.line}: {e.message}" if e.line else str(e.message) for e in errors[:3]]
    return "; ".join(parts) or "no reason given"
