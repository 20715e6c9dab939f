"""An optional LLM-as-judge for free-text turns, through an OpenAI-compatible endpoint you configure.

Off by default: nothing in slmlab depends on it. Token F1 and embedding similarity undervalue a correct
answer phrased differently; a judge model reads the conversation, the LLM's logged answer and the small
model's answer and rates whether they are equivalent for the user, 0 to 10 (scaled to 0..1).

Usage:
    >>> from slmlab.evaluate import LLMJudge
    >>> from slmlab.runtime.endpoint import OpenAICompatibleGenerator
    >>> judge = LLMJudge(OpenAICompatibleGenerator("http://127.0.0.1:8000/v1", "judge-model"))  # doctest: +SKIP
    >>> score_calls(calls, generations, judge=judge)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from slmlab.runtime.generate import Generator
from slmlab.schema import message_text

JUDGE_PROMPT = """You compare two answers of a customer-service agent to the same conversation.
Conversation (latest turns):
{context}

Reference answer (from the production model):
{reference}

Candidate answer:
{candidate}

Does the candidate convey the same information and take the same action as the reference, so the user
would be served equally well? Reply with one line: "score: N" where N is 0 (different) to 10 (equivalent)."""

_SCORE = re.compile(r"score\s*[:=]\s*(\d+(?:\.\d+)?)", re.IGNORECASE)


@dataclass
class LLMJudge:
    """Rates candidate texts against reference texts with a judge model.

    Attributes:
        generator: any `Generator`, typically an `OpenAICompatibleGenerator` for a strong served model.
        context_turns: how many latest prompt messages to show the judge.
        max_chars: cut each shown text to this many characters.
    """

    generator: Generator
    context_turns: int = 3
    max_chars: int = 1500
    max_new_tokens: int = 16

    def prompt(self, messages_json: str | None, reference: str, candidate: str) -> list[dict[str, str]]:
        """The judge prompt for one pair."""
        msgs = json.loads(messages_json) if messages_json else []
        ctx = "\n".join(
            f"{m.get('role')}: {message_text(m)[: self.max_chars]}" for m in msgs[-self.context_turns :]
        )
        text = JUDGE_PROMPT.format(
            context=ctx or "(none)",
            reference=reference[: self.max_chars],
            candidate=candidate[: self.max_chars],
        )
        return [{"role": "user", "content": text}]

    def score(
        self, messages: Sequence[str | None], references: Sequence[str], candidates: Sequence[str]
    ) -> list[float | None]:
        """Scores in 0..1 (None where the judge's reply has no parseable score)."""
        prompts = [self.prompt(m, r, c) for m, r, c in zip(messages, references, candidates, strict=True)]
        if not prompts:
            return []
        out: list[float | None] = []
        for g in self.generator.generate(prompts, max_new_tokens=self.max_new_tokens, progress=False):
            match = _SCORE.search(g.text)
            out.append(min(max(float(match.group(1)) / 10, 0.0), 1.0) if match else None)
        return out
