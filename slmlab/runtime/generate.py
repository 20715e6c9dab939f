"""One generation interface for every model slmlab runs: local transformers models and served endpoints.

`Generator.generate(prompts)` takes chat prompts (lists of `{role, content}` messages, already fitted with
`slmlab.runtime.chat_format.fit_messages`) and returns one `Generation` per prompt: the raw text, the parsed tool
calls, the number of generated tokens, the latency and the mean token log-probability (a confidence
signal the router can use).

Three things make evaluation re-runs cheap:
- prompts are sorted by length before batching, so a batch pads to similar lengths;
- an on-disk `GenerationCache` (sqlite, keyed by model, adapter, prompt hash and `max_new_tokens`) returns
  earlier answers instantly (greedy decoding is deterministic, so a cached answer is the answer);
- on a CPU with native bf16 (AVX512-BF16 / AMX) `TransformersGenerator` runs in bf16, 2-3x faster than fp32;
- `TransformersGenerator(..., int8=True)` quantizes the linear layers to int8 (less memory on CPU).

`OpenAICompatibleGenerator` talks plain HTTP to any OpenAI-compatible server (vLLM, llama.cpp server,
a hosted API), so the same evaluation runs against a served model or a multi-LoRA deployment.

Usage:
    >>> from slmlab.runtime.generate import TransformersGenerator
    >>> gen = TransformersGenerator("smollm2-135m")  # doctest: +SKIP
    >>> gen.generate([[{"role": "user", "content": "Hi"}]])[0].text  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from slmlab.config import cache_dir, require
from slmlab.runtime.chat_format import parse_response, render_prompt
from slmlab.runtime.models import LoadSpec, cpu_has_native_bf16, load_causal_lm, pick_device


@dataclass
class Generation:
    """What a model produced for one prompt.

    `latency_ms` is the wall time of the forward passes attributed to this prompt (a batch's time divided
    by its size); `cached` is True when the answer came from the on-disk cache (latency is then the one
    measured when it was first generated).
    """

    text: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    valid_json: bool = True
    output_tokens: int = 0
    latency_ms: float = 0.0
    mean_logprob: float | None = None
    cached: bool = False
    # Per generated token: its log-probability and where it ends in `text` (character offset), so a gate
    # can read the probability of one span (the tool name, an argument value). None: not recorded.
    token_logprobs: list[float] | None = None
    token_ends: list[int] | None = None


class GenerationCache:
    """Answers already generated, on disk, keyed by (model, adapter, prompt, max_new_tokens).

    One sqlite file; safe to share between the processes of one machine. The default lives under
    `SLMLAB_HOME/cache/generations`.

    Example:
        >>> import tempfile
        >>> cache = GenerationCache(tempfile.mkdtemp() + "/g.sqlite")
        >>> key = cache.key("m", None, [{"role": "user", "content": "hi"}], 8)
        >>> cache.put({key: Generation(text="hello", output_tokens=1)})
        >>> cache.get([key])[key].text
        'hello'
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else cache_dir("generations") / "generations.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as con:
            con.execute("CREATE TABLE IF NOT EXISTS gen (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    @staticmethod
    def key(model: str, adapter: str | None, prompt: list[dict[str, str]], max_new_tokens: int) -> str:
        """The cache key of one generation request."""
        payload = json.dumps([model, adapter, prompt, max_new_tokens], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()

    def get(self, keys: list[str]) -> dict[str, Generation]:
        """The cached generations among `keys` (missing keys are absent from the result)."""
        out: dict[str, Generation] = {}
        with self._lock, self._connect() as con:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for k, v in con.execute(f"SELECT key, value FROM gen WHERE key IN ({marks})", chunk):
                    out[k] = Generation(**{**json.loads(v), "cached": True})
        return out

    def put(self, items: dict[str, Generation]) -> None:
        """Store generations under their keys (overwriting)."""
        rows = [(k, json.dumps({**asdict(g), "cached": False})) for k, g in items.items()]
        with self._lock, self._connect() as con:
            con.executemany("INSERT OR REPLACE INTO gen (key, value) VALUES (?, ?)", rows)

    def __len__(self) -> int:
        with self._connect() as con:
            return int(con.execute("SELECT COUNT(*) FROM gen").fetchone()[0])


def _token_ends(tokenizer: Any, ids: list[int]) -> list[int]:
    """The character offset in the decoded text where each token ends (decoding growing prefixes, so
    multi-token characters and merged spaces land where `decode` puts them)."""
    return [len(tokenizer.decode(ids[: k + 1], skip_special_tokens=True)) for k in range(len(ids))]


def _cache_kwarg(model: Any) -> str:
    """The keyword `generate` takes a KV cache under: transformers 5 renamed `past_key_values` to `cache`
    (the old name warns "`past_key_values` is deprecated"); older releases know only the old one."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _prompt_len(prompt: list[dict[str, str]]) -> int:
    return sum(len(m.get("content") or "") for m in prompt)


class Generator:
    """Base class: subclasses implement `_generate_batch`; `generate` sorts, batches, caches, shows progress.

    Attributes:
        name: label used in score tables and progress bars.
        cache_id: what identifies the model in the generation cache (model reference, quantization).
        adapter: the adapter reference that is part of the cache key (None for the base model).
    """

    name: str = "generator"
    cache_id: str | None = None
    adapter: str | None = None
    batch_size: int = 8

    def _generate_batch(self, prompts: list[list[dict[str, str]]], max_new_tokens: int) -> list[Generation]:
        raise NotImplementedError

    def generate(
        self,
        prompts: list[list[dict[str, str]]],
        max_new_tokens: int = 128,
        progress: bool = True,
        cache: bool | GenerationCache = False,
        sort_by_length: bool = True,
    ) -> list[Generation]:
        """Generate one answer per prompt, greedily, in batches of `batch_size`.

        Args:
            prompts: fitted chat prompts.
            max_new_tokens: generation budget per prompt.
            progress: show a progress bar.
            cache: True for the default on-disk cache, a `GenerationCache`, or False.
            sort_by_length: batch prompts of similar length together (less padding); results keep the
                input order either way.
        """
        store = (
            GenerationCache() if cache is True else (cache if isinstance(cache, GenerationCache) else None)
        )
        out: list[Generation | None] = [None] * len(prompts)
        keys: list[str] = []
        if store is not None:
            cid = self.cache_id or self.name
            keys = [store.key(cid, self.adapter, p, max_new_tokens) for p in prompts]
            hits = store.get(keys)
            for i, k in enumerate(keys):
                out[i] = hits.get(k)
        todo = [i for i, g in enumerate(out) if g is None]
        if sort_by_length:
            # Prompts that share a group key (a system prompt) batch together; unique keys sort by length.
            group = {i: self._group_key(prompts[i]) for i in todo}
            shared = Counter(group.values())
            todo.sort(key=lambda i: (group[i] if shared[group[i]] > 1 else "", _prompt_len(prompts[i])))
        bar = tqdm(total=len(todo), desc=f"generate [{self.name}]", disable=not progress or not todo)
        for start in range(0, len(todo), self.batch_size):
            idx = todo[start : start + self.batch_size]
            gens = self._generate_batch([prompts[i] for i in idx], max_new_tokens)
            for i, g in zip(idx, gens, strict=True):
                out[i] = g
            if store is not None:
                store.put({keys[i]: g for i, g in zip(idx, gens, strict=True)})
            bar.update(len(idx))
        bar.close()
        return [g for g in out if g is not None]

    def _group_key(self, prompt: list[dict[str, str]]) -> str:
        """Prompts with the same key are batched together (subclasses that share work within a batch)."""
        return ""

    def with_adapter(self, adapter: str | Path) -> Generator:
        """A generator for the same base model with a LoRA adapter (subclasses that support adapters)."""
        raise NotImplementedError(f"{type(self).__name__} does not support adapters")


def _quantize_int8_cpu(model: Any) -> Any:
    """Dynamic int8 quantization of every linear layer (weights int8, activations quantized on the fly).

    Cuts the linear weights' memory about 4x. It is not a speed-up for batched generation on a small CPU:
    on 2 cores, 24 tau-bench prompts took 217 s in int8 vs 50 s in fp32 (benchmarks/bench_eval.py), so
    use it when memory is the limit. Answers can differ slightly from fp32: score the int8 model itself.
    """
    import warnings

    torch = require("torch", "train")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice; the API still works
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


class TransformersGenerator(Generator):
    """Batched, left-padded greedy generation with a transformers causal LM (KV cache on).

    Args:
        model: any reference `slmlab.runtime.models.resolve_model` accepts, or an already loaded model.
        tokenizer: needed when `model` is an object.
        adapter: a LoRA adapter folder, merged into the weights for speed unless the base is quantized
            (the unmerged adapter was measured 7x slower).
        spec: quantization / device / dtype.
        batch_size: prompts per forward pass.
        name: label for tables (default: the model reference, plus the adapter).
        int8: quantize linear layers to int8 after loading (CPU inference; see `_quantize_int8_cpu`).
        cpu_bf16: on CPU, cast the (merged) model to bf16 where the CPU computes bf16 natively: "auto"
            (when `cpu_has_native_bf16()` and no dtype / quantization is asked for), True or False.
            Greedy answers can differ slightly from fp32; the cache keys them apart.
        prefix_cache: compute the shared system prompt (policy + tool list: most of an agent prompt) once
            and reuse its KV cache for every call that starts with it. Identical answers in fp32; in bf16
            the different summation order can change a few greedy answers. On tau-bench prompts (one shared
            ~300-token system prompt) measured 1.04x-1.7x faster on a shared 2-core machine: decoding, not
            the prefill, is most of the time at 48 new tokens.
        logits_processor: a callable `tokenizer -> logits processor` applied at every decoding step, e.g.
            `slmlab.runtime.constrained.tool_call_processor(tools)` (answers constrained to the tools'
            JSON schemas); `constraint` names it in the cache key (default "lp").

    Every `Generation` records each token's log-probability and where it ends in the text
    (`token_logprobs`, `token_ends`): the cascade's gate reads the probability of the tool name and of
    each argument value from them.

    Example:
        >>> gen = TransformersGenerator("smollm2-135m", int8=True)  # doctest: +SKIP
        >>> gen.generate([[{"role": "user", "content": "Hi"}]], max_new_tokens=8, cache=True)  # doctest: +SKIP
    """

    def __init__(
        self,
        model: Any = "smollm2-135m",
        tokenizer: Any = None,
        adapter: str | Path | None = None,
        spec: LoadSpec | None = None,
        batch_size: int = 8,
        name: str | None = None,
        int8: bool = False,
        cpu_bf16: bool | str = "auto",
        prefix_cache: bool = True,
        logits_processor: Any = None,
        constraint: str | None = None,
    ) -> None:
        self.spec = spec
        # A callable tokenizer -> logits processor (built once here), e.g. a decoding constrained to tool
        # schemas (`slmlab.runtime.constrained.tool_call_processor`); `constraint` names it in the cache
        # key, so constrained and free answers are cached apart.
        self._logits_processor = logits_processor
        self.constraint = (
            constraint if constraint is not None else (None if logits_processor is None else "lp")
        )
        self.prefix_cache = prefix_cache
        self._prefixes: dict[str, tuple[list[int], Any]] = {}  # rendered system message -> ids, KV cache
        self.int8 = int8
        self.adapter = str(adapter) if adapter is not None else None
        if isinstance(model, (str, Path)):
            self.model_ref = str(model)
            self.model, self.tokenizer = load_causal_lm(
                self.model_ref, spec, adapter=adapter, merge_adapter=True
            )
            self.name = name or (
                self.model_ref if adapter is None else f"{self.model_ref}+{Path(adapter).name}"
            )
        else:
            if tokenizer is None:
                raise ValueError("pass the tokenizer with a loaded model")
            self.model_ref = None
            self.model, self.tokenizer = model, tokenizer
            self.name = name or type(model).__name__
        if int8:
            self.model = _quantize_int8_cpu(self.model)
        quant = (spec.quantization if spec else None) or ("int8-dynamic" if int8 else "fp")
        if self._use_cpu_bf16(cpu_bf16):
            torch = require("torch", "train")
            self.model = self.model.to(torch.bfloat16)  # after the merge: the adapter is merged in fp32
            quant = "bf16"
        self.cpu_bf16 = quant == "bf16"
        self.cache_id = f"{self.model_ref or self.name}|{quant}"
        if self.constraint:
            self.cache_id += f"|{self.constraint}"
        self._processor = logits_processor(self.tokenizer) if logits_processor is not None else None
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.batch_size = batch_size

    def _use_cpu_bf16(self, cpu_bf16: bool | str) -> bool:
        if cpu_bf16 not in ("auto", True, False):
            raise ValueError(f"cpu_bf16 must be 'auto', True or False, not {cpu_bf16!r}")
        if cpu_bf16 is False or self.int8 or self.model_ref is None:
            return False
        if self.spec is not None and (self.spec.quantization or self.spec.dtype):
            return False
        if pick_device(self.spec.device if self.spec else None) != "cpu":
            return False
        return cpu_bf16 is True or cpu_has_native_bf16()

    def with_adapter(self, adapter: str | Path) -> TransformersGenerator:
        """Load the same base model again with `adapter` merged (same spec, batch size, int8 and bf16)."""
        if self.model_ref is None:
            raise ValueError("with_adapter needs a generator built from a model reference, not an object")
        return TransformersGenerator(
            self.model_ref,
            adapter=adapter,
            spec=self.spec,
            batch_size=self.batch_size,
            int8=self.int8,
            cpu_bf16=self.cpu_bf16,
            prefix_cache=self.prefix_cache,
            logits_processor=self._logits_processor,
            constraint=self.constraint,
        )

    def _group_key(self, prompt: list[dict[str, str]]) -> str:
        if self.prefix_cache and prompt and prompt[0].get("role") == "system":
            return prompt[0].get("content") or ""
        return ""

    def _device(self) -> Any:
        """Where inputs go: the model's device (CPU for the dynamically int8-quantized model)."""
        torch = require("torch", "train")
        return next(self.model.parameters()).device if not self.int8 else torch.device("cpu")

    def _prefix(self, system: dict[str, str], first_text: str) -> tuple[str, list[int], Any] | None:
        """Token ids and KV cache of the rendered system message, or None where it is no clean prefix."""
        torch = require("torch", "train")
        text = self.tokenizer.apply_chat_template([system], tokenize=False, add_generation_prompt=False)
        if not first_text.startswith(text):
            return None
        if text not in self._prefixes:
            ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            rest = list(self.tokenizer(first_text[len(text) :], add_special_tokens=False)["input_ids"])
            whole = list(self.tokenizer(first_text, add_special_tokens=False)["input_ids"])
            if len(ids) < 32 or ids + rest != whole:  # too short to pay, or tokens merge across the cut
                return None
            with torch.inference_mode():
                out = self.model(torch.tensor([ids], device=self._device()), use_cache=True)
                cache = out[_cache_kwarg(self.model)]  # `.past_key_values` warns in transformers 5
            if len(self._prefixes) >= 4:
                self._prefixes.pop(next(iter(self._prefixes)))
            self._prefixes[text] = (ids, cache)
        return (text, *self._prefixes[text])

    def _encode(self, prompts: list[list[dict[str, str]]]) -> tuple[dict[str, Any], Any]:
        """Model inputs for a batch: left-padded, or [shared prefix][padding][suffix] with the prefix's cache."""
        import copy

        torch = require("torch", "train")
        device = self._device()
        texts = [render_prompt(p, self.tokenizer) for p in prompts]
        keys = {self._group_key(p) for p in prompts}
        prefix = None
        if self.prefix_cache and len(keys) == 1 and "" not in keys:
            prefix = self._prefix(prompts[0][0], texts[0])
        if prefix is not None and all(t.startswith(prefix[0]) for t in texts):
            text, ids, cache = prefix
            cut = len(text)
            suffixes = [list(self.tokenizer(t[cut:], add_special_tokens=False)["input_ids"]) for t in texts]
            width = max(len(x) for x in suffixes)
            pad = self.tokenizer.pad_token_id
            # Padding between prefix and suffix: positions come from the attention mask's running sum, so
            # every suffix continues right after the shared prefix.
            input_ids = [ids + [pad] * (width - len(x)) + x for x in suffixes]
            mask = [[1] * len(ids) + [0] * (width - len(x)) + [1] * len(x) for x in suffixes]
            past = copy.deepcopy(cache)
            past.batch_repeat_interleave(len(prompts))
            enc = {
                "input_ids": torch.tensor(input_ids, device=device),
                "attention_mask": torch.tensor(mask, device=device),
            }
            return enc, past
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        return {k: v.to(device) for k, v in enc.items()}, None

    def _generate_batch(self, prompts: list[list[dict[str, str]]], max_new_tokens: int) -> list[Generation]:
        keys = [self._group_key(p) for p in prompts]
        shared = Counter(keys)
        groups: dict[str, list[int]] = {}
        for i, k in enumerate(keys):  # a prompt whose prefix no other prompt shares joins the plain group
            groups.setdefault(k if shared[k] > 1 else "", []).append(i)
        if len(groups) == 1:
            return self._generate_group(prompts, max_new_tokens)
        out: list[Generation | None] = [None] * len(prompts)
        for idx in groups.values():  # one shared prefix per sub-batch
            for i, g in zip(
                idx, self._generate_group([prompts[i] for i in idx], max_new_tokens), strict=True
            ):
                out[i] = g
        return [g for g in out if g is not None]

    def _generate_group(self, prompts: list[list[dict[str, str]]], max_new_tokens: int) -> list[Generation]:
        torch = require("torch", "train")
        enc, past = self._encode(prompts)
        if past is not None:
            enc[_cache_kwarg(self.model)] = past
        start = time.perf_counter()
        extra: dict[str, Any] = {}
        if self._processor is not None:
            from transformers import LogitsProcessorList

            extra["logits_processor"] = LogitsProcessorList([self._processor])
        with torch.inference_mode():
            out = self.model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
                output_scores=True,
                return_dict_in_generate=True,
                **extra,
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
            finite = lp[torch.isfinite(lp)]
            parsed = parse_response(text)
            token_lps = [float(x) if math.isfinite(float(x)) else -1e4 for x in lp[:n].tolist()]
            results.append(
                Generation(
                    text=text,
                    tool_calls=parsed.tool_calls,
                    valid_json=parsed.valid_json,
                    output_tokens=n,
                    latency_ms=elapsed_ms / len(prompts),
                    mean_logprob=float(finite.mean()) if n and finite.numel() else None,
                    token_logprobs=token_lps,
                    token_ends=_token_ends(self.tokenizer, ids[:n]),
                )
            )
        return results
