"""A chat-completions client for any OpenAI-compatible endpoint (OpenAI, vLLM, a local server), built for batch jobs.

    client = ChatClient(LLMConfig(base_url="http://127.0.0.1:8000/v1", model="gpt-4.1"), store)
    reply = client.chat([{"role": "user", "content": "..."}], temperature=0.7, seed=3)
    reply.text, reply.cached, client.usage.as_dict()

- At most `concurrency` requests in flight (a semaphore shared by every thread of the process).
- Retries with exponential backoff and jitter on timeouts, connection errors, 429 and 5xx; a 429 / 503 with
  `Retry-After` waits that long (capped). Other 4xx fail at once: retrying cannot fix a bad request or a bad key.
- A response whose JSON lacks `choices[0].message.content` counts as a failed attempt (servers under load do this).
- Every successful reply is cached in the object store under sha256(model, messages, params): a rerun of the same
  job makes zero calls. Failures are never cached.
- Token accounting from the replies' `usage`; cost = tokens x the configured prices (per million tokens).
- The key is read only from the environment variable named by `api_key_env` (never from a config file).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import Field

from pixsearch_core.config import Config
from pixsearch_core.storage import ObjectStore, join

log = logging.getLogger(__name__)


class LLMError(RuntimeError):
    """A chat call failed for good (after its retries, or with an error retrying cannot fix)."""


class LLMConfig(Config):
    """Where the LLM is and how hard to push it."""

    kind: str = Field(
        "openai",
        description="openai (any chat-completions endpoint) | rule_based (SynthCRAG only, "
        "no LLM: a deterministic stand-in, labelled as such in every record)",
    )
    base_url: str | None = Field(None, description="e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1")
    model: str = Field("gpt-4.1", description="model name sent to the endpoint (the paper used gpt-4.1)")
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the key (never the key)")
    concurrency: int = Field(8, ge=1, description="requests in flight per process")
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(5, ge=0)
    backoff_s: float = Field(1.0, ge=0, description="first retry waits about this long, then doubling")
    max_backoff_s: float = Field(60.0, ge=0)
    max_tokens: int = Field(1024, ge=1)
    cache: str | None = Field(None, description="response cache prefix (path or s3://); null = <output>/llm-cache")
    price_in_per_mtok: float = Field(0.0, ge=0, description="USD per million prompt tokens, for the cost report")
    price_out_per_mtok: float = Field(0.0, ge=0, description="USD per million completion tokens")


def cost_usd(prompt_tokens: int, completion_tokens: int, cfg: LLMConfig) -> float:
    """Dollars for these token counts at the configured prices (per million tokens)."""
    return round(prompt_tokens * cfg.price_in_per_mtok / 1e6 + completion_tokens * cfg.price_out_per_mtok / 1e6, 6)


@dataclass
class Usage:
    calls: int = 0  # HTTP requests made (retries included; cache hits make none)
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for k, v in counts.items():
                setattr(self, k, getattr(self, k) + v)

    def as_dict(self, cfg: LLMConfig | None = None) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("calls", "cache_hits", "prompt_tokens", "completion_tokens", "failures")}
        if cfg is not None:
            out["cost_usd"] = cost_usd(self.prompt_tokens, self.completion_tokens, cfg)
        return out


@dataclass(frozen=True)
class Reply:
    text: str
    cached: bool
    usage: dict[str, int]


_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
_semaphores: dict[int, threading.BoundedSemaphore] = {}


def _semaphore(n: int) -> threading.BoundedSemaphore:
    return _semaphores.setdefault(n, threading.BoundedSemaphore(n))


class ChatClient:
    def __init__(self, cfg: LLMConfig, store: ObjectStore, cache: str):
        if not cfg.base_url:
            raise ValueError(
                "llm.base_url is not set: give an OpenAI-compatible endpoint (e.g. "
                "https://api.openai.com/v1) or use llm.kind=rule_based for SynthCRAG"
            )
        self.cfg, self.store, self.cache = cfg, store, cache
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        key = os.environ.get(cfg.api_key_env)
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.usage = Usage()
        self.http = httpx.Client(timeout=cfg.timeout_s)

    def key(self, messages: list[dict[str, str]], params: dict[str, Any]) -> str:
        blob = json.dumps({"model": self.cfg.model, "messages": messages, "params": params}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def chat(self, messages: list[dict[str, str]], **params: Any) -> Reply:
        """One completion (cached); raises LLMError when it cannot be had."""
        params = {"max_tokens": self.cfg.max_tokens, **params}
        k = self.key(messages, params)
        uri = join(self.cache, k[:2], f"{k}.json")
        if self.store.exists(uri):
            self.usage.add(cache_hits=1)
            hit = json.loads(self.store.get_bytes(uri))
            return Reply(hit["text"], True, hit.get("usage", {}))
        body = {"model": self.cfg.model, "messages": messages, **params}
        text, usage = self._post(body)
        self.store.put_bytes(
            uri,
            json.dumps(
                {"model": self.cfg.model, "messages": messages, "params": params, "text": text, "usage": usage},
                sort_keys=True,
            ).encode(),
        )
        return Reply(text, False, usage)

    def _post(self, body: dict[str, Any]) -> tuple[str, dict[str, int]]:
        last = "no attempt"
        for attempt in range(self.cfg.max_retries + 1):
            wait = None
            try:
                with _semaphore(self.cfg.concurrency):
                    self.usage.add(calls=1)
                    r = self.http.post(self.url, json=body, headers=self.headers)
                if r.status_code == 200:
                    return self._parse(r)
                last = f"HTTP {r.status_code}: {r.text[:200]}"
                if r.status_code not in _RETRY_STATUS:
                    raise LLMError(f"{self.url}: {last} (not retried: fix the request, model name or key)")
                wait = _retry_after(r.headers.get("retry-after"))
            except (httpx.TimeoutException, httpx.TransportError) as e:
                last = f"{type(e).__name__}: {e}"
            except _BadReply as e:
                last = str(e)
            if attempt < self.cfg.max_retries:
                delay = wait if wait is not None else self.cfg.backoff_s * 2**attempt * (0.5 + random.random())
                delay = min(delay, self.cfg.max_backoff_s)
                log.warning(
                    "llm call failed (%s); retry %d/%d in %.1fs", last, attempt + 1, self.cfg.max_retries, delay
                )
                time.sleep(delay)
        self.usage.add(failures=1)
        raise LLMError(f"{self.url}: failed after {self.cfg.max_retries + 1} attempts; last: {last}")

    def _parse(self, r: httpx.Response) -> tuple[str, dict[str, int]]:
        try:
            data = r.json()
            text = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise _BadReply(f"malformed reply ({type(e).__name__}): {r.text[:200]!r}") from None
        if not isinstance(text, str):
            raise _BadReply(f"reply content is {type(text).__name__}, not text")
        usage = {k: int(v) for k, v in (data.get("usage") or {}).items() if k in ("prompt_tokens", "completion_tokens")}
        self.usage.add(**usage)
        return text, usage


class _BadReply(Exception):
    pass


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
