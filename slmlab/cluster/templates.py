"""Prompt templates: which calls share a system-prompt template, by near-duplicate matching.

The one definition of a call's template, used by the labeller (split by template), the drift check
(new templates in new logs) and anything else that asks "is this the same prompt template?".

Usage:
    >>> from slmlab.cluster.templates import TemplateIndex, system_prompt
    >>> TemplateIndex().fit(["You book flights."]).match(["Write SQL."])
    [None]
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import Any

from slmlab.schema import message_text, parse_messages


def system_prompt(messages_json: str | None) -> str | None:
    """The full text of a call's first system/developer message, or None."""
    for msg in parse_messages(messages_json):
        if msg.get("role") in ("system", "developer"):
            return message_text(msg)
    return None


def _normalize(text: str) -> str:
    return " ".join(re.sub(r"\d", "0", text.lower()).split())


def _shingles(text: str, n: int) -> set[str]:
    words = _normalize(text).split()
    if len(words) <= n:
        return {" ".join(words)}
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


class TemplateIndex:
    """Groups prompts into templates by near-duplicate matching (MinHash LSH on word 3-grams, digits
    folded to 0), so per-call fillers (dates, tiers, names) do not make every prompt a template of its own.

    Args:
        threshold: estimated Jaccard similarity above which two prompts share a template.
        num_perm: MinHash permutations (more = more exact, slower).
        shingle: words per shingle.

    Attributes:
        templates_: template id -> an example prompt (the most frequent member).

    Example:
        >>> rules = "Answer in one sentence. Never invent prices, times or booking numbers. Be polite and brief."
        >>> idx = TemplateIndex().fit([f"You book flights. Today is 2026-11-02, tier gold. {rules}"])
        >>> [t is None for t in idx.match([f"You book flights. Today is 2026-11-09, tier basic. {rules}", "Write SQL."])]
        [False, True]
    """

    def __init__(self, threshold: float = 0.6, num_perm: int = 64, shingle: int = 3) -> None:
        self.threshold = threshold
        self.num_perm = num_perm
        self.shingle = shingle

    def _minhash(self, text: str) -> Any:
        from datasketch import MinHash

        m = MinHash(num_perm=self.num_perm, seed=1)
        m.update_batch([s.encode("utf-8", "surrogatepass") for s in _shingles(text, self.shingle)])
        return m

    def fit(self, texts: Iterable[str | None]) -> TemplateIndex:
        """Learn the templates of `texts` (None entries are ignored); returns self."""
        counts: dict[str, int] = {}
        for t in texts:
            if t:
                counts[t] = counts.get(t, 0) + 1
        self._reset()
        for text in sorted(counts, key=lambda t: (-counts[t], t)):
            tid = self._best(text)
            if tid is None:
                tid = "t" + hashlib.sha1(_normalize(text).encode("utf-8", "surrogatepass")).hexdigest()[:10]
                self._add(tid, text)
            self._of[text] = tid
        return self

    @classmethod
    def from_examples(cls, examples: dict[str, str], **kwargs: Any) -> TemplateIndex:
        """An index of known templates (id -> example prompt), e.g. `templates_` of an earlier fit."""
        idx = cls(**kwargs)
        idx._reset()
        for tid, text in examples.items():
            idx._add(tid, text)
            idx._of[text] = tid
        return idx

    def _reset(self) -> None:
        from datasketch import MinHashLSH

        self._lsh = MinHashLSH(threshold=self.threshold, num_perm=self.num_perm)
        self._hashes: dict[str, Any] = {}
        self.templates_: dict[str, str] = {}
        self._of: dict[str, str] = {}

    def _add(self, tid: str, text: str) -> None:
        self.templates_[tid] = text
        self._hashes[tid] = self._minhash(text)
        self._lsh.insert(tid, self._hashes[tid])

    def _best(self, text: str) -> str | None:
        if not self._hashes:
            return None
        m = self._minhash(text)
        # A few hundred templates are compared exhaustively (exact for the estimate); beyond, LSH buckets.
        pool = self._hashes if len(self._hashes) <= 256 else self._lsh.query(m)
        cands = [(m.jaccard(self._hashes[c]), c) for c in pool]
        cands = [(j, c) for j, c in cands if j >= self.threshold]
        return max(cands)[1] if cands else None

    def match(self, texts: Sequence[str | None]) -> list[str | None]:
        """The template id of each text, or None where no known template is similar enough (or no text)."""
        memo: dict[str, str | None] = dict(self._of)
        out = []
        for t in texts:
            if not t:
                out.append(None)
                continue
            if t not in memo:
                memo[t] = self._best(t)
            out.append(memo[t])
        return out


__all__ = ["TemplateIndex", "system_prompt"]
