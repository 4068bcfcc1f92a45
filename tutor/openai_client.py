"""The one retrying client of OpenAI-compatible chat endpoints (data generation and evaluation).

- bounded concurrency (one semaphore for every call of the run);
- retries with exponential backoff and jitter on 429, 5xx, 408/409, timeouts and connection
  errors, honouring `Retry-After` / `retry-after-ms`;
- fail at once on a bad key (401/403), an unknown model or URL (404) and exhausted quota
  (429 `insufficient_quota`): `FatalError`, no retry;
- a circuit breaker: `breaker` failed attempts in a row (server errors, timeouts, requests that ran
  out of retries) raise `FatalError`; any success closes it again;
- endpoints that reject an optional parameter with a 400 are adapted to once, for the whole run:
  `response_format` (structured outputs) is dropped, `max_tokens` becomes `max_completion_tokens`,
  `temperature`, `top_p` and `seed` are dropped.

The openai client's own retries are off (`max_retries=0`) so every attempt is counted here.
`openai` (the datagen and eval extras) is imported when an `Endpoint` is made, not with this module.

    endpoint = Endpoint("http://127.0.0.1:8000/v1", "EMPTY", "socratic-tutor")
    reply = await endpoint.chat([{"role": "user", "content": "2+2?"}], purpose="check")
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tutor.errors import UserError

if TYPE_CHECKING:
    import openai


class _CallError(UserError):
    """A request that ended in an error; `attempts` made, `last`: the last failure as
    `ExceptionName: message` (callers with a message format of their own use both)."""

    def __init__(self, message: str, *, attempts: int = 1, last: str = ""):
        super().__init__(message)
        self.attempts = attempts
        self.last = last or message


class FatalError(_CallError):
    """The run cannot go on (bad key, bad model, endpoint keeps failing); one-line message."""


class RequestFailed(_CallError):
    """One request failed for good (non-retryable 4xx or out of retries); the run goes on."""


@dataclass
class Reply:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int


@dataclass
class CallStats:
    """What the endpoint did; `usage` maps purpose -> [calls, prompt tokens, completion tokens]."""

    attempts: int = 0
    retries: int = 0
    failed_requests: int = 0
    errors: Counter = field(default_factory=Counter)  # "429", "500", "timeout", "connection"
    usage: dict[str, list[int]] = field(default_factory=dict)
    adaptations: list[str] = field(default_factory=list)

    def add_usage(self, purpose: str, reply: Reply) -> None:
        u = self.usage.setdefault(purpose, [0, 0, 0])
        u[0] += 1
        u[1] += reply.prompt_tokens
        u[2] += reply.completion_tokens


@dataclass
class RetryPolicy:
    retries: int = 6  # retries per request after the first attempt
    base_s: float = 1.0  # first backoff; doubles per retry, with jitter
    cap_s: float = 60.0  # longest backoff (a Retry-After is honoured up to max_wait_s)
    max_wait_s: float = 300.0
    breaker: int = 10  # failed attempts in a row that stop the run (0: never)


_ADAPTABLE = ("response_format", "max_tokens", "temperature", "top_p", "seed")


class ParamFallback:
    """Optional parameters an endpoint refused, learned from its 400s and applied to later
    requests (the real-time endpoint and the batch rounds share it). `notes` records each change."""

    def __init__(self, notes: list[str] | None = None):
        self.dropped: set[str] = set()
        self.use_max_completion_tokens = False
        self.notes = notes if notes is not None else []

    def apply(self, optional: dict[str, Any]) -> dict[str, Any]:
        """The parameters to send: unset and refused ones dropped, max_tokens renamed if needed."""
        out = {k: v for k, v in optional.items() if v is not None and k not in self.dropped}
        if self.use_max_completion_tokens and "max_tokens" in out:
            out["max_completion_tokens"] = out.pop("max_tokens")
        return out

    def learn(self, param: str | None, message: str, sent: dict[str, Any]) -> bool:
        """Drop or rename the parameter a 400 complains about; True when a retry may succeed."""
        text = f"{param or ''} {message}".lower()
        if any(name in sent and name in self.dropped for name in _ADAPTABLE):
            return True  # another request adapted meanwhile: retry with the current parameters
        if self.use_max_completion_tokens and "max_tokens" in sent:
            return True
        for name in _ADAPTABLE:
            if name not in sent or name not in text:
                continue
            if name == "max_tokens" and "max_completion_tokens" in text:
                self.use_max_completion_tokens = True
                note = "max_tokens -> max_completion_tokens"
            else:
                self.dropped.add(name)
                note = f"dropped {name}"
            self.notes.append(f"{note} (endpoint said: {message[:120]})")
            return True
        if "response_format" in sent and "response_format" not in self.dropped:
            # Many servers reject an unknown schema feature with a vague 400: try once without.
            self.dropped.add("response_format")
            self.notes.append(f"dropped response_format (400: {message[:120]})")
            return True
        return False


class Endpoint:
    """An OpenAI-compatible chat endpoint shared by all requests of a run."""

    def __init__(
        self,
        base_url: str | None,
        api_key: str,
        model: str,
        *,
        concurrency: int = 8,
        timeout_s: float = 300.0,
        policy: RetryPolicy | None = None,
        seed: int | None = None,
    ):
        import openai

        self.client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout_s
        )
        self.base_url = str(self.client.base_url)
        self.model = model
        self.policy = policy or RetryPolicy()
        self.stats = CallStats()
        self.limit = asyncio.Semaphore(concurrency)
        self.rng = random.Random(seed)  # backoff jitter only
        self.params = ParamFallback(self.stats.adaptations)
        self._failures_in_a_row = 0

    async def close(self) -> None:
        await self.client.close()

    async def chat(
        self,
        messages: list[dict[str, str]],
        *,
        purpose: str,
        model: str | None = None,
        response_format: dict | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        require_content: bool = False,
    ) -> Reply:
        """One chat completion with retries; raises `RequestFailed` or `FatalError`.
        `require_content`: a reply without message content is a failed attempt (retried)."""
        import openai

        optional = {
            "response_format": response_format,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "seed": seed,
        }
        attempt = 0
        while True:
            kwargs = self._kwargs(optional)
            try:
                async with self.limit:
                    self.stats.attempts += 1
                    resp = await self.client.chat.completions.create(
                        model=model or self.model, messages=messages, **kwargs
                    )
                if require_content and not _has_content(resp):
                    raise _NoContent("the response has no message content")
            except openai.APIStatusError as e:
                if e.status_code == 400 and self._adapt(e, kwargs):
                    continue
                delay = self._handle_status(e, attempt)
            except openai.APIConnectionError as e:  # includes APITimeoutError
                kind = "timeout" if isinstance(e, openai.APITimeoutError) else "connection"
                delay = self._retryable(kind, attempt, None, _describe(e))
            except _NoContent as e:
                delay = self._retryable("no content", attempt, None, f"ValueError: {e}")
            else:
                self._failures_in_a_row = 0
                return self._reply(resp, purpose)
            attempt += 1
            self.stats.retries += 1
            await asyncio.sleep(delay)

    def _kwargs(self, optional: dict[str, Any]) -> dict[str, Any]:
        return self.params.apply(optional)

    def _adapt(self, e: openai.APIStatusError, sent: dict[str, Any]) -> bool:
        return self.params.learn(e.param, error_message(e), sent)

    @property
    def dropped(self) -> set[str]:
        return self.params.dropped

    def _handle_status(self, e: openai.APIStatusError, attempt: int) -> float:
        code, message, last = e.status_code, error_message(e)[:200], _describe(e)
        fatal = None
        if code in (401, 403):
            fatal = f"{self.base_url} rejected the API key ({code}): {message}"
        elif code == 404:
            fatal = (
                f"model {self.model!r} not found at {self.base_url} (404): check --model and "
                f"--base-url ({message})"
            )
        elif code == 429 and (
            e.code == "insufficient_quota" or "quota" in error_message(e).lower()
        ):
            fatal = f"{self.base_url}: quota exhausted (429): {message}"
        if fatal:
            raise FatalError(fatal, attempts=attempt + 1, last=last) from None
        if code == 429 or code in (408, 409) or code >= 500:
            return self._retryable(str(code), attempt, retry_after_s(e.response.headers), last)
        self.stats.errors[str(code)] += 1
        self.stats.failed_requests += 1
        self._count_failure(f"{code}: {message}", attempts=attempt + 1)
        raise RequestFailed(f"{code}: {message}", attempts=attempt + 1, last=last)

    def _retryable(self, kind: str, attempt: int, retry_after: float | None, last: str) -> float:
        self.stats.errors[kind] += 1
        out_of_retries = attempt >= self.policy.retries
        if kind != "429" or out_of_retries:  # rate limiting alone is the endpoint working
            self._count_failure(kind, attempts=attempt + 1)
        if out_of_retries:
            self.stats.failed_requests += 1
            raise RequestFailed(
                f"{kind} after {attempt + 1} attempts", attempts=attempt + 1, last=last
            )
        delay = min(self.policy.cap_s, self.policy.base_s * 2**attempt)
        delay = delay * self.rng.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.policy.max_wait_s))
        return delay

    def _count_failure(self, what: str, attempts: int) -> None:
        self._failures_in_a_row += 1
        if self.policy.breaker and self._failures_in_a_row >= self.policy.breaker:
            raise FatalError(
                f"{self.base_url} failed {self._failures_in_a_row} times in a row "
                f"(last: {what}); stopping (circuit breaker)",
                attempts=attempts,
            )

    def _reply(self, resp: Any, purpose: str) -> Reply:
        choice = resp.choices[0] if resp.choices else None
        usage = resp.usage
        reply = Reply(
            text=(choice.message.content or "") if choice else "",
            finish_reason=choice.finish_reason if choice else None,
            prompt_tokens=(usage.prompt_tokens or 0) if usage else 0,
            completion_tokens=(usage.completion_tokens or 0) if usage else 0,
        )
        self.stats.add_usage(purpose, reply)
        return reply


class _NoContent(Exception):
    """A reply without message content, where the caller requires one."""


def _has_content(resp: Any) -> bool:
    return bool(resp.choices) and resp.choices[0].message.content is not None


def _describe(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e)[:200]}"


def error_message(e: openai.APIStatusError) -> str:
    body = e.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
        if body.get("detail"):
            return str(body["detail"])
    return str(e.message)


def retry_after_s(headers: Any) -> float | None:
    """Seconds from `retry-after-ms`, `retry-after` (seconds or an HTTP date); None if absent."""
    try:
        if ms := headers.get("retry-after-ms"):
            return float(ms) / 1000
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None
