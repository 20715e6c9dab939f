"""Supervised fine-tuning data from the LLM's own answers: tokenized prompt/target pairs and packed rows.

Each logged call becomes one example: its prompt messages (plus the tool list: the logged schemas, else
schemas inferred from the training calls) fitted to a token budget with `slmlab.runtime.chat_format.fit_messages`
and rendered with the target model's chat template; its target is the LLM's answer in `<tool_call>` form
(`chat_format.render_target`) followed by EOS. The loss only sees target tokens (labels -100 on the
prompt). `pack_examples` bin-packs examples into fixed-length rows whose position ids restart at every
example: transformers turns restarting position ids into a block-diagonal attention mask (SDPA, eager and
flash-attention), so packed examples never attend to each other and no compute goes to padding.

Usage:
    >>> from slmlab.specialize import build_sft_dataset
    >>> data = build_sft_dataset(split_calls, tokenizer, PromptBudget(max_tokens=512))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from slmlab.runtime.chat_format import (
    PromptBudget,
    fit_messages,
    render_prompt,
    render_target,
    tools_from_calls,
)
from slmlab.schema import parse_messages, parse_tool_calls

IGNORE_INDEX = -100

# The budget slmlab trains with by default: a 768-token prompt leaves room for a tool call inside an
# 896-token row, and the evidence note keeps ids stated before the kept turns (a 384-token window of the
# last 4 messages made a previous baseline invent ids it could not see).
DEFAULT_BUDGET = PromptBudget(
    max_system_chars=600, max_message_chars=800, max_turns=8, max_tokens=768, max_evidence_chars=400
)


@dataclass(frozen=True)
class SFTExample:
    """One tokenized call: `input_ids` = prompt + target + EOS; the loss sees ids from `n_prompt` on."""

    call_id: str
    input_ids: tuple[int, ...]
    n_prompt: int

    @property
    def labels(self) -> list[int]:
        """Labels for a causal LM: -100 on the prompt, the token ids on the target."""
        return [IGNORE_INDEX] * self.n_prompt + list(self.input_ids[self.n_prompt :])

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True)
class SFTDataset:
    """Tokenized train / val examples and what is needed to reproduce them.

    Attributes:
        train, val: the examples.
        tools: the tool schemas shown in every prompt (JSON-able list).
        budget: the prompt budget used; evaluation must render prompts with the same one.
        max_len: longest example kept (prompt + target + EOS), in tokens.
        n_dropped: calls dropped because even their fitted prompt and target exceed `max_len`.
        n_target_cut: targets cut to fit `max_len` (their EOS is kept).
        data_hash: hash of every token id and call id, recorded with the adapter.
    """

    train: tuple[SFTExample, ...]
    val: tuple[SFTExample, ...]
    tools: list[dict[str, Any]] = field(default_factory=list)
    budget: PromptBudget = DEFAULT_BUDGET
    max_len: int = 1024
    n_dropped: int = 0
    n_target_cut: int = 0
    data_hash: str = ""

    def to_frame(self) -> pl.DataFrame:
        """One row per example: call_id, split, prompt and target token counts."""
        rows = [
            {
                "call_id": ex.call_id,
                "split": split,
                "n_prompt": ex.n_prompt,
                "n_target": len(ex) - ex.n_prompt,
            }
            for split, exs in (("train", self.train), ("val", self.val))
            for ex in exs
        ]
        schema = {"call_id": pl.String, "split": pl.String, "n_prompt": pl.Int64, "n_target": pl.Int64}
        return pl.DataFrame(rows, schema=schema)

    def budget_dict(self) -> dict[str, Any]:
        return asdict(self.budget)


def tools_for(calls: pl.DataFrame) -> list[dict[str, Any]]:
    """The tool schemas to show: the logged `tools` (union by name), else inferred from the tool calls.

    Example:
        >>> df = pl.DataFrame({"tools": [None], "response_tool_calls": ['[{"name": "f", "arguments": "{}"}]']})
        >>> [t["function"]["name"] for t in tools_for(df)]
        ['f']
    """
    logged: dict[str, dict[str, Any]] = {}
    if "tools" in calls.columns:
        for raw in calls.get_column("tools").drop_nulls().unique(maintain_order=True).to_list():
            for tool in json.loads(raw) or []:
                name = (tool.get("function") or tool).get("name")
                logged.setdefault(name, tool)
    if logged:
        return [logged[k] for k in sorted(logged)]
    return tools_from_calls(calls.get_column("response_tool_calls").to_list())


def fit_call(
    messages_json: str, tools: list[dict[str, Any]] | None, budget: PromptBudget, tokenizer: Any
) -> list[dict[str, str]]:
    """The fitted `{role, content}` prompt of one logged call (what training and generation both see)."""
    return fit_messages(parse_messages(messages_json), tools, budget, tokenizer)


def call_prompts(
    calls: pl.DataFrame, tokenizer: Any, budget: PromptBudget = DEFAULT_BUDGET, tools: list | None = None
) -> list[list[dict[str, str]]]:
    """Fitted prompts for every call, ready for `slmlab.runtime.generate.Generator.generate`.

    Example:
        >>> prompts = call_prompts(test_calls, tokenizer, data.budget, data.tools)  # doctest: +SKIP
    """
    return [fit_call(m, tools, budget, tokenizer) for m in calls.get_column("messages").to_list()]


def call_targets(calls: pl.DataFrame) -> list[str]:
    """The LLM's answer of every call rendered as a target (`<tool_call>` blocks or text)."""
    return [
        render_target(text, parse_tool_calls(tc))
        for text, tc in calls.select("response_text", "response_tool_calls").iter_rows()
    ]


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def build_sft_dataset(
    calls: pl.DataFrame,
    tokenizer: Any,
    budget: PromptBudget = DEFAULT_BUDGET,
    tools: list[dict[str, Any]] | None = None,
    max_len: int | None = None,
    progress: bool = False,
) -> SFTDataset:
    """Tokenize calls into SFT examples with loss on the LLM's answer only.

    Args:
        calls: a call table; with a `split` column (from `slmlab.specialize.splits.split_by_session`) "train" rows
            become training examples and "val" rows validation examples ("test" rows are left out);
            without one, every row is a training example.
        tokenizer: the target model's tokenizer (its chat template renders the prompt).
        budget: how long prompts are cut down (`PromptBudget.max_tokens` bounds the prompt).
        tools: tool schemas to list in the prompt; default: logged schemas, else inferred from the
            training calls' tool calls.
        max_len: longest example in tokens (default: `budget.max_tokens` + 256). Longer targets are cut
            (keeping EOS); calls whose prompt alone leaves no room are dropped and counted.
        progress: show a progress bar.

    Returns:
        An `SFTDataset`.

    Example:
        >>> from slmlab.runtime.models import load_tokenizer
        >>> tok = load_tokenizer("smollm2-135m")  # doctest: +SKIP
        >>> data = build_sft_dataset(split_calls, tok, PromptBudget(max_tokens=512))  # doctest: +SKIP
        >>> len(data.train), data.data_hash  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    max_len = max_len or budget.max_tokens + 256
    if "split" in calls.columns:
        train_calls = calls.filter(pl.col("split") == "train")
        val_calls = calls.filter(pl.col("split") == "val")
    else:
        train_calls, val_calls = calls, calls.clear()
    if tools is None:
        tools = tools_for(train_calls)
    eos = tokenizer.eos_token or ""
    digest = hashlib.sha256(json.dumps([getattr(tokenizer, "name_or_path", ""), asdict(budget)]).encode())
    out: dict[str, list[SFTExample]] = {"train": [], "val": []}
    dropped = cut = 0
    for split, frame in (("train", train_calls), ("val", val_calls)):
        targets = call_targets(frame)
        rows = frame.select("call_id", "messages").iter_rows()
        for (call_id, messages), target in tqdm(
            zip(rows, targets, strict=True),
            total=frame.height,
            desc=f"tokenize {split}",
            disable=not progress,
        ):
            prompt_ids = _encode(
                tokenizer, render_prompt(fit_call(messages, tools, budget, tokenizer), tokenizer)
            )
            target_ids = _encode(tokenizer, target + eos)
            room = max_len - len(prompt_ids)
            if room < 8:
                dropped += 1
                continue
            if len(target_ids) > room:
                target_ids = target_ids[: room - 1] + target_ids[-1:]
                cut += 1
            ids = tuple(prompt_ids + target_ids)
            out[split].append(SFTExample(call_id=str(call_id), input_ids=ids, n_prompt=len(prompt_ids)))
            digest.update(f"{split}|{call_id}|{len(prompt_ids)}|".encode())
            digest.update(json.dumps(ids).encode())
    return SFTDataset(
        train=tuple(out["train"]),
        val=tuple(out["val"]),
        tools=tools,
        budget=budget,
        max_len=max_len,
        n_dropped=dropped,
        n_target_cut=cut,
        data_hash=digest.hexdigest()[:16],
    )


@dataclass(frozen=True)
class PackedRow:
    """Several examples concatenated: ids, labels, position ids restarting at 0 per example."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    position_ids: tuple[int, ...]
    example_ids: tuple[str, ...]

    @property
    def n_tokens(self) -> int:
        return len(self.input_ids)


def _concat(examples: list[SFTExample]) -> PackedRow:
    ids: list[int] = []
    labels: list[int] = []
    pos: list[int] = []
    for ex in examples:
        ids.extend(ex.input_ids)
        labels.extend(ex.labels)
        pos.extend(range(len(ex)))
    return PackedRow(tuple(ids), tuple(labels), tuple(pos), tuple(ex.call_id for ex in examples))


def pack_examples(
    examples: tuple[SFTExample, ...] | list[SFTExample], max_len: int, seed: int = 0
) -> list[PackedRow]:
    """Greedy first-fit-decreasing bin packing of examples into rows of at most `max_len` tokens.

    Every example keeps its own labels (prompt masked) and position ids starting at 0, and the first label
    of every example is -100 (it is a prompt token), so no example learns to predict its neighbour. The rows
    are shuffled with `seed` so long and short rows mix across batches.

    Example:
        >>> ex = [SFTExample(str(i), tuple(range(n)), 2) for i, n in enumerate([5, 4, 3])]
        >>> [r.example_ids for r in pack_examples(ex, max_len=8)]
        [('0', '2'), ('1',)]
    """
    order = sorted(range(len(examples)), key=lambda i: (-len(examples[i]), i))
    bins: list[list[SFTExample]] = []
    free: list[int] = []
    for i in order:
        ex = examples[i]
        if len(ex) > max_len:
            raise ValueError(f"example {ex.call_id} has {len(ex)} tokens, more than max_len={max_len}")
        slot = next((b for b, room in enumerate(free) if room >= len(ex)), None)
        if slot is None:
            bins.append([ex])
            free.append(max_len - len(ex))
        else:
            bins[slot].append(ex)
            free[slot] -= len(ex)
    rows = [_concat(b) for b in bins]
    random.Random(seed).shuffle(rows)
    return rows


def unpacked_rows(examples: tuple[SFTExample, ...] | list[SFTExample]) -> list[PackedRow]:
    """One row per example, in the given order (the no-packing baseline; batches get padded)."""
    return [_concat([ex]) for ex in examples]


def collate_rows(rows: list[PackedRow], pad_id: int, padding_free: bool = True) -> dict[str, Any]:
    """Stack rows into a batch padded to the longest row.

    With `padding_free` (packed rows) no attention mask is returned: position ids that restart mark the
    example boundaries, and the padding tail gets its own restarting positions so it forms a separate
    block that no real token attends to. Without it, a classic attention mask hides the padding.
    """
    import torch

    width = max(r.n_tokens for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        n = r.n_tokens
        ids[i, :n] = torch.tensor(r.input_ids)
        labels[i, :n] = torch.tensor(r.labels)
        pos[i, :n] = torch.tensor(r.position_ids)
        pos[i, n:] = torch.arange(width - n)
        mask[i, :n] = 1
    batch: dict[str, Any] = {"input_ids": ids, "labels": labels}
    if padding_free:
        batch["position_ids"] = pos
    else:
        batch["attention_mask"] = mask
    return batch
