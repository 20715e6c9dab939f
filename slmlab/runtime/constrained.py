"""Decoding constrained to an agent's tools: the answer is a `<tool_call>` whose JSON names one of the
available tools and matches that tool's parameter schema, enforced token by token with lm-format-enforcer.

lm-format-enforcer (a maintained PyPI package, pure Python, no CUDA) walks a character-level JSON-schema
parser over the tokenizer's prefix tree and returns, at each step, the tokens that keep the output valid.
`ToolCallLogitsProcessor` is the transformers `LogitsProcessor` around it: every other token's logit is set
to -inf, so greedy decoding picks the model's most likely *valid* continuation and the recorded token
probabilities are the model's, renormalized over the valid tokens. (The package's own transformers glue
imports a module transformers 5 removed, so the few lines of glue are here; the grammar work is the
library's.)

Cost: the parser runs in Python at every step over the vocabulary's prefix tree; on 2 shared CPU cores
with SmolLM2-135M it measured seconds per token (two tau-bench answers of 96 tokens did not finish in
12 minutes while other jobs loaded the cores), so the cascade benchmark uses it only where a free answer
fails the schemas, and only where time allows (`--max-constrained`).

Usage:
    >>> from slmlab.runtime.constrained import tool_call_processor
    >>> from slmlab.runtime.generate import TransformersGenerator
    >>> gen = TransformersGenerator("smollm2-135m", logits_processor=tool_call_processor(tools),
    ...                             constraint="tools:" + tools_fingerprint(tools))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any

from slmlab.config import require

TOOL_CALL_OPEN = "<tool_call>\n"
TOOL_CALL_CLOSE = "\n</tool_call>"


def tool_call_schema(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON schema of one tool call: `{"name": <one tool>, "arguments": <that tool's parameters>}`.

    Example:
        >>> tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object",
        ...           "properties": {"id": {"type": "string"}}, "required": ["id"]}}}]
        >>> tool_call_schema(tools)["anyOf"][0]["properties"]["name"]
        {'type': 'string', 'enum': ['f']}
    """
    options = []
    for tool in tools:
        fn = tool.get("function", tool)
        params = dict(fn.get("parameters") or {"type": "object", "properties": {}})
        params.setdefault("type", "object")
        params.setdefault("properties", {})
        options.append(
            {
                "type": "object",
                "properties": {"name": {"type": "string", "enum": [fn["name"]]}, "arguments": params},
                "required": ["name", "arguments"],
            }
        )
    if not options:
        raise ValueError("constrained decoding needs at least one tool schema")
    return {"anyOf": options}


def tools_fingerprint(tools: list[dict[str, Any]]) -> str:
    """A short stable id of a tool list (for the generation cache key of constrained answers)."""
    return hashlib.sha256(json.dumps(tools, sort_keys=True).encode()).hexdigest()[:12]


def _lmfe():
    return require("lmformatenforcer", "train")


@lru_cache(maxsize=4)
def _tokenizer_data(tokenizer: Any) -> Any:
    """lm-format-enforcer's prefix tree of the tokenizer's vocabulary (built once per tokenizer)."""
    _lmfe()
    from lmformatenforcer.tokenenforcer import TokenEnforcerTokenizerData

    vocab_size = len(tokenizer)
    zero = tokenizer.encode("0", add_special_tokens=False)[-1]
    special = set(tokenizer.all_special_ids)
    regular = []
    for idx in range(vocab_size):
        if idx in special:
            continue
        # Decoding after a "0" keeps a token's leading space (how the library's own glue does it).
        after_zero = tokenizer.decode([zero, idx])[1:]
        alone = tokenizer.decode([idx])
        regular.append((idx, after_zero, len(after_zero) > len(alone)))

    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids).rstrip("\ufffd")

    return TokenEnforcerTokenizerData(regular, decode, tokenizer.eos_token_id, False, vocab_size)


def tool_call_parser(tools: list[dict[str, Any]]) -> Any:
    """The character-level parser of `<tool_call>\\n{json}\\n</tool_call>` over the tools' schemas."""
    _lmfe()
    from lmformatenforcer import JsonSchemaParser
    from lmformatenforcer.characterlevelparser import CharacterLevelParserConfig, SequenceParser, StringParser

    # One whitespace at most between JSON tokens: a model unsure what comes next must not fill its token
    # budget with newlines (the library's default allows long runs), and json.dumps needs only one.
    config = CharacterLevelParserConfig(max_consecutive_whitespaces=1)
    return SequenceParser(
        [
            StringParser(TOOL_CALL_OPEN),
            JsonSchemaParser(tool_call_schema(tools), config=config),
            StringParser(TOOL_CALL_CLOSE),
        ]
    )


class ToolCallLogitsProcessor:
    """A transformers logits processor (`LogitsProcessorList` calls it) that allows only the tokens
    keeping the answer a valid tool call.

    One lm-format-enforcer `TokenEnforcer` per generate call; it keys its state by each row's token
    sequence (prompt included), so left-padded batches work row by row. After the closing tag only EOS is
    allowed.
    """

    def __init__(self, tokenizer: Any, tools: list[dict[str, Any]]) -> None:
        self.tokenizer = tokenizer
        self.tools = tools
        self._data = _tokenizer_data(tokenizer)
        self._enforcer: Any = None
        self._prompt_len: int | None = None

    def _new_enforcer(self) -> Any:
        from lmformatenforcer import TokenEnforcer

        return TokenEnforcer(self._data, tool_call_parser(self.tools))

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        torch = require("torch", "train")
        if self._enforcer is None or self._prompt_len is None or input_ids.shape[1] <= self._prompt_len:
            self._enforcer = self._new_enforcer()  # a new generate call: fresh parser states
            self._prompt_len = input_ids.shape[1]
        mask = torch.full_like(scores, float("-inf"))
        for row, seq in enumerate(input_ids.tolist()):
            allowed = self._enforcer.get_allowed_tokens(seq).allowed_tokens
            if not allowed:
                allowed = [self.tokenizer.eos_token_id]
            mask[row, allowed] = 0.0
        return scores + mask


def tool_call_processor(tools: list[dict[str, Any]]):
    """A factory `tokenizer -> ToolCallLogitsProcessor` for `TransformersGenerator(logits_processor=...)`.

    Example:
        >>> make = tool_call_processor([{"function": {"name": "f", "parameters": {}}}])
        >>> callable(make)
        True
    """

    def make(tokenizer: Any) -> ToolCallLogitsProcessor:
        return ToolCallLogitsProcessor(tokenizer, tools)

    return make


__all__ = [
    "TOOL_CALL_CLOSE",
    "TOOL_CALL_OPEN",
    "ToolCallLogitsProcessor",
    "tool_call_parser",
    "tool_call_processor",
    "tool_call_schema",
    "tools_fingerprint",
]
