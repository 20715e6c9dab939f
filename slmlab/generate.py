"""One generation interface for every model slmlab runs: local transformers models and served endpoints.

`Generator.generate(prompts)` takes chat prompts (lists of `{role, content}` messages, already fitted with
`slmlab.chat_format.fit_messages`) and returns one `Generation` per prompt: the raw text, the parsed tool
calls, the number of generated tokens, the latency and the mean token log-probability (a confidence
signal the router can use).

Usage:
    >>> from slmlab.generate import TransformersGenerator
    >>> gen = TransformersGenerator("smollm2-135m")  # doctest: +SKIP
    >>> gen.generate([[{"role": "user", "content": "Hi"}]])[0].text  # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from slmlab.chat_format import parse_response, render_prompt
from slmlab.config import require
from slmlab.models import LoadSpec, load_causal_lm


@dataclass
class Generation:
    """What a model produced for one prompt."""

    text: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    valid_json: bool = True
    output_tokens: int = 0
    latency_ms: float = 0.0
    mean_logprob: float | None = None


class Generator:
    """Base class: subclasses implement `_generate_batch`; `generate` batches and shows progress."""

    name: str = "generator"
    batch_size: int = 8

    def _generate_batch(self, prompts: list[list[dict[str, str]]], max_new_tokens: int) -> list[Generation]:
        raise NotImplementedError

    def generate(
        self, prompts: list[list[dict[str, str]]], max_new_tokens: int = 128, progress: bool = True
    ) -> list[Generation]:
        """Generate one answer per prompt, greedily, in batches of `batch_size`."""
        out: list[Generation] = []
        bar = tqdm(total=len(prompts), desc=f"generate [{self.name}]", disable=not progress)
        for start in range(0, len(prompts), self.batch_size):
            batch = prompts[start : start + self.batch_size]
            out.extend(self._generate_batch(batch, max_new_tokens))
            bar.update(len(batch))
        bar.close()
        return out


class TransformersGenerator(Generator):
    """Batched, left-padded greedy generation with a transformers causal LM (KV cache on).

    Args:
        model: any reference `slmlab.models.resolve_model` accepts, or an already loaded model.
        tokenizer: needed when `model` is an object.
        adapter: a LoRA adapter folder, merged into the weights for speed unless the base is quantized.
        spec: quantization / device / dtype.
        batch_size: prompts per forward pass.
    """

    def __init__(
        self,
        model: Any = "smollm2-135m",
        tokenizer: Any = None,
        adapter: str | None = None,
        spec: LoadSpec | None = None,
        batch_size: int = 8,
        name: str | None = None,
    ) -> None:
        if isinstance(model, str):
            self.model, self.tokenizer = load_causal_lm(model, spec, adapter=adapter, merge_adapter=True)
            self.name = name or (model if adapter is None else f"{model}+{adapter}")
        else:
            if tokenizer is None:
                raise ValueError("pass the tokenizer with a loaded model")
            self.model, self.tokenizer = model, tokenizer
            self.name = name or type(model).__name__
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.batch_size = batch_size

    def _generate_batch(self, prompts: list[list[dict[str, str]]], max_new_tokens: int) -> list[Generation]:
        torch = require("torch", "train")
        texts = [render_prompt(p, self.tokenizer) for p in prompts]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(self.model.device) for k, v in enc.items()}
        start = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
                output_scores=True,
                return_dict_in_generate=True,
            )
        elapsed_ms = (time.perf_counter() - start) * 1000
        new_tokens = out.sequences[:, enc["input_ids"].shape[1] :]
        logprobs = self.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
        results = []
        eos_ids = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        for i in range(len(prompts)):
            ids = new_tokens[i].tolist()
            n = next((j for j, t in enumerate(ids) if t in eos_ids), len(ids))
            text = self.tokenizer.decode(ids[:n], skip_special_tokens=True)
            lp = logprobs[i, : max(n, 1)].float()
            parsed = parse_response(text)
            results.append(
                Generation(
                    text=text,
                    tool_calls=parsed.tool_calls,
                    valid_json=parsed.valid_json,
                    output_tokens=n,
                    latency_ms=elapsed_ms / len(prompts),
                    mean_logprob=float(lp[torch.isfinite(lp)].mean()) if n else None,
                )
            )
        return results
