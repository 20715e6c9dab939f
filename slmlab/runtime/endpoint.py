"""Generation through an OpenAI-compatible HTTP endpoint (vLLM, llama.cpp's server, a hosted API): the
same `Generator` interface as the local `TransformersGenerator`.

Usage:
    >>> from slmlab.runtime.endpoint import OpenAICompatibleGenerator
    >>> gen = OpenAICompatibleGenerator("http://127.0.0.1:8000/v1", "cluster_3")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from slmlab.runtime.chat_format import parse_response, render_tool_calls
from slmlab.runtime.generate import Generation, Generator


class OpenAICompatibleGenerator(Generator):
    """Generation through any OpenAI-compatible `/v1/chat/completions` endpoint, over plain HTTP.

    Works with vLLM (`vllm serve ... --enable-lora`: pass the LoRA's served name as `model`, or use
    `with_adapter`), llama.cpp's `llama-server`, or a hosted API. Requests run `concurrency` at a time;
    decoding is greedy (`temperature=0`). Native `tool_calls` in the reply are kept; otherwise `<tool_call>`
    blocks in the text are parsed as for local models.

    Args:
        base_url: e.g. "http://127.0.0.1:8000/v1" (a trailing "/chat/completions" is added).
        model: the model name the server expects.
        api_key: sent as a bearer token when given (local servers need none).
        concurrency: parallel requests.
        timeout: seconds per request.
        logprobs: ask for token log-probabilities (vLLM and OpenAI support it) to fill `mean_logprob`.

    Example:
        >>> gen = OpenAICompatibleGenerator("http://127.0.0.1:8000/v1", "smollm2")  # doctest: +SKIP
        >>> gen.generate([[{"role": "user", "content": "Hi"}]], max_new_tokens=8)[0].text  # doctest: +SKIP
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout: float = 120.0,
        logprobs: bool = True,
        name: str | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.concurrency = concurrency
        self.timeout = timeout
        self.logprobs = logprobs
        self.extra_body = extra_body or {}
        self.name = name or model
        self.cache_id = f"{self.base_url}|{model}"
        self.batch_size = max(concurrency, 1) * 4

    def with_adapter(self, adapter: str | Path) -> OpenAICompatibleGenerator:
        """The same server, asking for the LoRA served under `adapter`'s name (vLLM multi-LoRA)."""
        served = Path(str(adapter)).name
        return OpenAICompatibleGenerator(
            self.base_url, served, self.api_key, self.concurrency, self.timeout, self.logprobs,
            name=f"{self.name}+{served}", extra_body=self.extra_body,
        )  # fmt: skip

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        url = self.base_url + ("" if self.base_url.endswith("/chat/completions") else "/chat/completions")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read().decode())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise RuntimeError(f"{url} answered HTTP {exc.code}: {detail}") from exc

    def _one(self, prompt: list[dict[str, str]], max_new_tokens: int) -> Generation:
        body = {"model": self.model, "messages": prompt, "max_tokens": max_new_tokens, "temperature": 0}
        if self.logprobs:
            body["logprobs"] = True
        body.update(self.extra_body)
        start = time.perf_counter()
        reply = self._post(body)
        latency = (time.perf_counter() - start) * 1000
        choice = (reply.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        text = message.get("content") or ""
        native = [
            {
                "name": (c.get("function") or {}).get("name"),
                "arguments": (c.get("function") or {}).get("arguments"),
            }
            for c in message.get("tool_calls") or []
        ]
        parsed = parse_response(text + ("\n" + render_tool_calls(native) if native else ""))
        tokens = (reply.get("usage") or {}).get("completion_tokens")
        lps = [t.get("logprob") for t in ((choice.get("logprobs") or {}).get("content") or [])]
        lps = [x for x in lps if isinstance(x, (int, float))]
        return Generation(
            text=text,
            tool_calls=parsed.tool_calls,
            valid_json=parsed.valid_json,
            output_tokens=int(tokens) if tokens is not None else len(lps),
            latency_ms=latency,
            mean_logprob=sum(lps) / len(lps) if lps else None,
        )

    def _generate_batch(self, prompts: list[list[dict[str, str]]], max_new_tokens: int) -> list[Generation]:
        with ThreadPoolExecutor(max_workers=max(self.concurrency, 1)) as pool:
            return list(pool.map(lambda p: self._one(p, max_new_tokens), prompts))
