"""Chat completions against OpenAI-compatible endpoints: retries, timeouts and an on-disk cache.

The calls go through the project's one retrying client (`tutor.openai_client.Endpoint`): backoff
on 429, 5xx, timeouts, connection errors and replies without content; a bad key, model or URL
fails at once. Every model call of the evaluation (tutor, judge, simulated student) goes through
`Chat.complete`, so a rerun, a new metric or a new report never regenerates a response it already
has. The cache key is the endpoint URL, the model name, the messages and the sampling settings:
serve changed weights under a new model name, or use a fresh cache directory.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from tutor.errors import UserError
from tutor.io import atomic_open
from tutor.openai_client import Endpoint, FatalError, RequestFailed, RetryPolicy


@dataclass(frozen=True)
class Sampling:
    """Sampling settings sent with every request (the same for every endpoint)."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int = 0


class CallFailed(UserError):
    """A request that still failed after all retries; the message says why."""


def base_url(url: str) -> str:
    """`http://host:port` or `http://host:port/v1` -> the `/v1` base URL the client wants."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


class Chat:
    """One endpoint: the shared retrying `Endpoint` (concurrency limit, retries) and a cache."""

    def __init__(
        self,
        url: str,
        model: str | None = None,
        *,
        cache_dir: str | Path | None = None,
        concurrency: int = 4,
        retries: int = 2,
        timeout_s: float = 120.0,
        api_key: str | None = None,
    ):
        self.url = base_url(url)
        self.model = model
        self.retries = retries
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._endpoint = Endpoint(
            self.url,
            api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY",
            model or "",
            concurrency=concurrency,
            timeout_s=timeout_s,
            # backoff 1, 2, 4, 8 s (jittered); a run goes on past failed replies: no breaker
            policy=RetryPolicy(retries=retries, base_s=1.0, cap_s=8.0, breaker=0),
        )

    async def resolve_model(self) -> str:
        """The model name: the one given, else the first the endpoint lists at /v1/models."""
        if not self.model:
            try:
                models = await self._endpoint.client.models.list()
            except Exception as e:
                raise CallFailed(f"{self.url}/models: {type(e).__name__}: {e}") from None
            if not models.data:
                raise CallFailed(f"{self.url}/models: the endpoint lists no model")
            self.model = self._endpoint.model = models.data[0].id
        return self.model

    async def complete(
        self, messages: list[dict], sampling: Sampling, *, json_mode: bool = False
    ) -> str:
        """The reply text; cached on disk; raises CallFailed after `retries` retries."""
        model = await self.resolve_model()
        key = _cache_key(self.url, model, messages, sampling, json_mode)
        cached = self._cache_get(key)
        if cached is not None:
            return cached
        try:
            reply = await self._endpoint.chat(
                messages,
                purpose="eval",
                model=model,
                response_format={"type": "json_object"} if json_mode else None,
                require_content=True,
                **asdict(sampling),
            )
        except (RequestFailed, FatalError) as e:
            raise CallFailed(f"{self.url}: {e.attempts} attempts failed; last: {e.last}") from None
        self._cache_put(key, reply.text)
        return reply.text

    def _cache_get(self, key: str) -> str | None:
        if not self.cache_dir:
            return None
        path = self.cache_dir / key[:2] / f"{key}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))["content"]
        except (OSError, ValueError, KeyError):
            return None  # missing or unreadable: regenerate

    def _cache_put(self, key: str, text: str) -> None:
        if self.cache_dir:
            with atomic_open(self.cache_dir / key[:2] / f"{key}.json") as f:
                json.dump({"content": text}, f)

    async def close(self) -> None:
        await self._endpoint.close()


def _cache_key(url: str, model: str, messages: list[dict], sampling: Sampling, json_mode: bool):
    blob = json.dumps(
        [url, model, messages, asdict(sampling), json_mode], sort_keys=True, ensure_ascii=False
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
