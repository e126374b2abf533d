"""The CRAG-MM LLM judge over any OpenAI-compatible chat-completions endpoint (docs/metrics.md §2.3).

Protocol (CRAG-MM `evaluation/llm_judge.py`): messages = [system: instructions + "\\n\\n" + examples,
user: the fixed template below]; temperature 0.0, max_tokens 1024; up to 3 attempts with 2**attempt seconds
between them; the reply is parsed with WRONG checked before CORRECT (`parse_verdict`). Verdicts are cached on disk,
keyed by (model, question, gold, prediction), so re-scoring never pays twice; failed calls are not cached.

The built-in system prompt restates the official rules in our own words with a few examples of our own; for
bit-exact numbers pass the official `evaluation_prompt.py` text (instructions + examples) as `prompt_file`.
Configuration: base URL, model and key from `JudgeConfig`, else the environment (`PIXSEARCH_JUDGE_URL`,
`PIXSEARCH_JUDGE_MODEL`, `PIXSEARCH_JUDGE_API_KEY` or `OPENAI_API_KEY`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import httpx
from pydantic import Field

from pixsearch_core.config import Config
from pixsearch_core.metrics.crag import JudgeUnavailable

log = logging.getLogger(__name__)

USER_TEMPLATE = (
    "Your task is to judge if the prediction is correct or not based on the ground truth answer. "
    "Now your turn:\n\nQuestion: {query}\nGround Truth: {ground_truth}\nPrediction: {agent_response}\n"
    "Give your output below:\n"
)

INSTRUCTIONS = """You are an expert evaluator of question answering. Given a question, its ground truth answer and a \
prediction, decide whether the prediction is correct. Rules:
1. A prediction that expresses uncertainty or refuses to answer is WRONG.
2. A prediction that exactly matches the ground truth is CORRECT.
3. Numbers in the prediction must almost exactly match the numbers in the ground truth.
4. A prediction that contradicts itself is WRONG.
5. A prediction that does not answer the question is WRONG.
6. If the ground truth is a set of items, the prediction must contain the same items.
7. A prediction whose content is grounded by the ground truth (it conveys the same answer) is CORRECT.
8. A prediction that is unrelated to or contradicts the ground truth is WRONG.
The ground truth is always correct. Extra information in the prediction is fine if the answer itself is grounded \
by the ground truth. Accept equivalent units after conversion.
Output a VERY-SHORT explanation, then on the last line clearly state "Result: CORRECT" or "Result: WRONG"."""

EXAMPLES = """EXAMPLES START
Question: how tall is this tower?
Ground Truth: 324 meters
Prediction: It is about 324 m tall.
Explanation: The height matches the ground truth.
Result: CORRECT

Question: who designed this building?
Ground Truth: Frank Gehry
Prediction: I'm not sure, possibly Zaha Hadid.
Explanation: The prediction is uncertain and names a different architect.
Result: WRONG

Question: what year did this stadium open?
Ground Truth: 1923
Prediction: It opened in 1925.
Explanation: The year does not match.
Result: WRONG
EXAMPLES END"""

_ATTEMPTS = 3


class JudgeConfig(Config):
    """Where and how to reach the judge; unset fields come from the environment."""

    base_url: str | None = Field(None, description="OpenAI-compatible base URL, e.g. https://api.openai.com/v1")
    model: str | None = Field(None, description="judge model; official default gpt-4o")
    api_key: str | None = Field(None, description="API key; prefer the environment")
    prompt_file: str | None = Field(None, description="system prompt text replacing the built-in one")
    cache_dir: str | None = Field(None, description="verdict cache directory; None = ~/.cache/pixsearch/judge")
    timeout_s: float = Field(60.0, gt=0)
    max_tokens: int = Field(1024, ge=1)
    attempts: int = Field(_ATTEMPTS, ge=1, le=10)
    backoff_s: float = Field(1.0, ge=0, description="sleep before retry i is backoff_s * 2**i (official: 1)")


def parse_verdict(text: str | None) -> bool | None:
    """The official parse: WRONG (anywhere as "Result: WRONG", or on the last line) wins over CORRECT."""
    if not isinstance(text, str):
        return None
    last = text.split("\n")[-1]
    if "Result: WRONG" in text or "WRONG" in last:
        return False
    if "Result: CORRECT" in text or "CORRECT" in last:
        return True
    return None


class LLMJudge:
    """Callable judge: judge(question, gold, response) -> True / False / None; raises JudgeUnavailable."""

    def __init__(self, config: JudgeConfig | None = None):
        cfg = config or JudgeConfig()
        self.config = cfg
        self.base_url = (cfg.base_url or os.environ.get("PIXSEARCH_JUDGE_URL") or "").rstrip("/")
        if not self.base_url:
            raise ValueError("no judge URL: pass --judge URL or set PIXSEARCH_JUDGE_URL")
        self.model = cfg.model or os.environ.get("PIXSEARCH_JUDGE_MODEL") or "gpt-4o"
        self.api_key = cfg.api_key or os.environ.get("PIXSEARCH_JUDGE_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self.system = (
            Path(cfg.prompt_file).read_text(encoding="utf-8") if cfg.prompt_file else INSTRUCTIONS + "\n\n" + EXAMPLES
        )
        self.cache_dir = Path(cfg.cache_dir or Path.home() / ".cache" / "pixsearch" / "judge")
        self.calls = 0  # HTTP requests made (cache hits make none)

    def messages(self, question: str, gold: str, response: str) -> list[dict[str, str]]:
        user = USER_TEMPLATE.format(query=question, ground_truth=gold, agent_response=response)
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]

    def _key(self, question: str, gold: str, response: str) -> str:
        blob = json.dumps([self.model, hashlib.sha256(self.system.encode()).hexdigest(), question, gold, response])
        return hashlib.sha256(blob.encode()).hexdigest()

    def _cache_path(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.json"

    def _complete(self, messages: list[dict[str, str]]) -> str | None:
        """One chat completion with the official retry schedule; JudgeUnavailable when every attempt failed."""
        url = f"{self.base_url}/chat/completions"
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        body = {"model": self.model, "messages": messages, "temperature": 0.0, "max_tokens": self.config.max_tokens}
        last_error: Exception | None = None
        for attempt in range(self.config.attempts):
            try:
                self.calls += 1
                r = httpx.post(url, json=body, headers=headers, timeout=self.config.timeout_s)
                r.raise_for_status()
                return r.json()["choices"][0]["message"]["content"]
            except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as e:
                last_error = e
                log.warning("judge call failed on attempt %d/%d: %s", attempt + 1, self.config.attempts, e)
                if attempt + 1 < self.config.attempts:
                    time.sleep(self.config.backoff_s * 2**attempt)
        raise JudgeUnavailable(f"judge at {url} failed after {self.config.attempts} attempts: {last_error}")

    def __call__(self, question: str, gold: str, response: str) -> bool | None:
        path = self._cache_path(self._key(question, gold, response))
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))["verdict"]
        output = self._complete(self.messages(question, gold, response))
        verdict = parse_verdict(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(
            json.dumps(
                {
                    "model": self.model,
                    "question": question,
                    "gold": gold,
                    "prediction": response,
                    "output": output,
                    "verdict": verdict,
                }
            ),
            encoding="utf-8",
        )
        os.replace(tmp, path)
        return verdict
