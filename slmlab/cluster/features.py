"""What a call is clustered on: per-call state extracted from the prompt (and, offline, the response).

Agent calls are told apart by their instructions and by the action taken, not by the one message before the
call: on tau-bench, embedding only that message gives ARI ~0.02 against the action taken. So a call is
described by named *feature parts*, each a block of the feature matrix:

| part | uses | block(s) |
|---|---|---|
| `last_user` | prompt | embedding of the last user turn |
| `system` | prompt | embedding of the system prompt |
| `last_message` | prompt | embedding of the last message, prefixed by its role and tool ("tool get_user_details: {...}"); a last user turn is not prefixed (it is `last_user`, embedded once) |
| `prompt_state` | prompt | one-hot of the system-prompt template id, one-hot of the last message's role and tool, and the embeddings of the last user turn and of the last message |
| `action` | response | one-hot of the action (tool called, structured or written in the text as `slmlab.actions` reads it, or "respond") and of the output shape (tool_call/json/text) |

Combine parts with "+", e.g. "prompt_state+system+action" (the offline default: it may use what the LLM did).
The router sees only the prompt, so `TaskClusterer.predict` always uses the prompt-only parts of its
features (`prompt_parts`). Each block is L2-normalized and scaled by sqrt(weight), so squared distances
add up as a weighted sum over the blocks.

Usage:
    >>> from slmlab.cluster.features import prompt_parts
    >>> prompt_parts("prompt_state+action")
    ('prompt_state',)
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from slmlab.cluster.embed import Embedder, select_embedder
from slmlab.schema import action_expr, message_text

# Characters of each text a clusterer embeds: the head of a tool result or user turn says what it is, and
# MiniLM's cost grows with length. Steps that embed the same prompts (the drift check) use it too, so the
# on-disk embedding cache, keyed by this cut, serves them.
EMBED_MAX_CHARS = 500

PROMPT_PARTS = ("last_user", "system", "last_message", "prompt_state")
RESPONSE_PARTS = ("action",)
FEATURE_PARTS = PROMPT_PARTS + RESPONSE_PARTS
# The system prompt's embedding tells agents apart where template ids fragment (a date, a user's name or a
# locale filled into the prompt gives each call its own hash): text-action log ARI 0.75 -> 0.98 (TF-IDF).
DEFAULT_FEATURES = "prompt_state+system+action"
DEFAULT_PROMPT_FEATURES = "prompt_state"

# Block weights (squared-distance contributions). The action dominates offline so clusters are pure in
# the action taken; the prompt blocks then split an action by the situation it was taken in.
DEFAULT_WEIGHTS: dict[str, float] = {
    "template": 1.0,
    "last_state": 1.0,
    "last_user_text": 1.0,
    "last_message_text": 1.0,
    "system_text": 1.0,
    "action": 4.0,
    "output_shape": 0.5,
}

# Blocks each part contributes: (block name, column of `call_states`, kind).
_PART_BLOCKS: dict[str, list[tuple[str, str, str]]] = {
    "last_user": [("last_user_text", "last_user", "text")],
    "system": [("system_text", "system", "text")],
    "last_message": [("last_message_text", "last_message", "text")],
    "prompt_state": [
        ("template", "template_id", "onehot"),
        ("last_state", "last_state", "onehot"),
        ("last_user_text", "last_user", "text"),
        ("last_message_text", "last_message", "text"),
    ],
    "action": [("action", "action", "onehot"), ("output_shape", "output_shape", "onehot")],
}

_DIGITS = re.compile(r"\d+")


def parse_features(features: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Split "a+b" into known part names, raising on unknown ones.

    Example:
        >>> parse_features("prompt_state+action")
        ('prompt_state', 'action')
    """
    parts = tuple(features.split("+")) if isinstance(features, str) else tuple(features)
    parts = tuple(p.strip() for p in parts if p.strip())
    unknown = [p for p in parts if p not in FEATURE_PARTS]
    if unknown or not parts:
        raise ValueError(
            f"unknown feature part(s) {unknown or features!r}; known: {', '.join(FEATURE_PARTS)}"
        )
    return parts


def prompt_parts(features: str | tuple[str, ...]) -> tuple[str, ...]:
    """The prompt-only parts of `features` (what a live router can see); "prompt_state" if none are left."""
    parts = tuple(p for p in parse_features(features) if p in PROMPT_PARTS)
    return parts or (DEFAULT_PROMPT_FEATURES,)


def template_id(system: str) -> str:
    """A short id of a system prompt's template: sha1 of its first 2,000 characters with digits masked."""
    if not system:
        return "none"
    return "T" + hashlib.sha1(_DIGITS.sub("0", system[:2000]).encode()).hexdigest()[:8]


def output_shape(response_text: str | None, n_tool_calls: int | None) -> str:
    """ "tool_call" when the response calls a tool, "json" when its text is a JSON object/array, else "text"."""
    if n_tool_calls:
        return "tool_call"
    text = (response_text or "").strip()
    if text[:1] in ("{", "[") or text.startswith("```json"):
        body = text.removeprefix("```json").removesuffix("```").strip()
        try:
            json.loads(body)
            return "json"
        except json.JSONDecodeError:
            pass
    return "text"


def _state(messages_json: str | None, max_chars: int) -> tuple[str, str, str, str, str]:
    """(system, last role, last tool, last user text, last message text) of one prompt."""
    try:
        msgs = json.loads(messages_json) if messages_json else []
    except json.JSONDecodeError:
        msgs = []
    if not isinstance(msgs, list):
        msgs = []
    system = next((message_text(m) for m in msgs if m.get("role") in ("system", "developer")), "")
    last = msgs[-1] if msgs else {}
    role = str(last.get("role") or "none")
    tool = ""
    if role in ("tool", "function"):
        tool = str(last.get("name") or "")
        if not tool and last.get("tool_call_id"):
            wanted = last["tool_call_id"]
            for m in reversed(msgs):
                for tc in m.get("tool_calls") or []:
                    if tc.get("id") == wanted:
                        tool = str((tc.get("function") or {}).get("name") or tc.get("name") or "")
                        break
                if tool:
                    break
    last_user = next((message_text(m) for m in reversed(msgs) if m.get("role") == "user"), "")
    last_text = message_text(last) if last else ""
    if not last_text and last.get("tool_calls"):
        last_text = " ".join(str((tc.get("function") or {}).get("name", "")) for tc in last["tool_calls"])
    # A last user turn is the `last_user` text itself, so it is embedded once; other roles keep their
    # "role tool:" head, which tells tool results apart in the embedding.
    message = (
        last_text[:max_chars] if role == "user" else f"{role} {tool}".strip() + f": {last_text[:max_chars]}"
    )
    return system[:max_chars], role, tool, last_user[:max_chars], message


def call_states(calls: pl.DataFrame, max_chars: int = 1000) -> pl.DataFrame:
    """One row per call with what the feature parts use.

    Columns: `system`, `template_id`, `last_role`, `last_tool`, `last_state` ("role:tool"), `last_user`,
    `last_message`, and when the response is present `action` and `output_shape`.

    Example:
        >>> import json
        >>> df = pl.DataFrame({"messages": [json.dumps([{"role": "user", "content": "hi"}])],
        ...                    "tool_name": [None], "response_text": ["hello"], "n_tool_calls": [0]})
        >>> call_states(df).select("last_state", "action", "output_shape").row(0)
        ('user:', 'respond', 'text')
    """
    rows = [_state(m, max_chars) for m in calls.get_column("messages").to_list()]
    system, role, tool, last_user, last_message = (
        (list(c) for c in zip(*rows, strict=True)) if rows else [[]] * 5
    )
    out = pl.DataFrame(
        {
            "system": system,
            "template_id": [template_id(s) for s in system],
            "last_role": role,
            "last_tool": tool,
            "last_state": [f"{r}:{t}" for r, t in zip(role, tool, strict=True)],
            "last_user": last_user,
            "last_message": last_message,
        },
        schema={
            c: pl.String
            for c in (
                "system",
                "template_id",
                "last_role",
                "last_tool",
                "last_state",
                "last_user",
                "last_message",
            )
        },
    )
    if "tool_name" in calls.columns:
        n_tools = calls.get_column("n_tool_calls") if "n_tool_calls" in calls.columns else None
        texts = calls.get_column("response_text") if "response_text" in calls.columns else None
        shapes = [
            output_shape(texts[i] if texts is not None else None, n_tools[i] if n_tools is not None else 0)
            for i in range(calls.height)
        ]
        out = out.with_columns(
            calls.select(action_expr()).to_series(),
            pl.Series("output_shape", shapes, dtype=pl.String),
        )
    return out


def prompt_texts(calls: pl.DataFrame, max_chars: int = 1000) -> list[str]:
    """One readable prompt-only text per call: template id, last message's role/tool, last user turn.

    For routers that want text rather than vectors; it holds only what a live call shows.

    Example:
        >>> import json
        >>> df = pl.DataFrame({"messages": [json.dumps([{"role": "system", "content": "Be brief."},
        ...                                             {"role": "user", "content": "hi"}])]})
        >>> prompt_texts(df)[0].split(" | ")[1:]
        ['after user', 'user: hi']
    """
    st = call_states(calls, max_chars)
    return [
        f"[{tid}] | after {role}{' ' + tool if tool else ''} | user: {user}"
        for tid, role, tool, user in zip(
            st["template_id"], st["last_role"], st["last_tool"], st["last_user"], strict=True
        )
    ]


@dataclass
class FeatureEncoder:
    """Turns calls into the weighted block matrix of some feature parts (fit learns one-hot vocabularies).

    Args:
        features: parts joined by "+" (see the module table).
        embedder: name, path or `Embedder` for the text blocks; TF-IDF is fit on each text column.
        weights: block weights overriding `DEFAULT_WEIGHTS`.
        max_chars: texts are cut to this many characters.

    Example:
        >>> import json
        >>> df = pl.DataFrame({"messages": [json.dumps([{"role": "user", "content": t}]) for t in "ab"],
        ...                    "tool_name": ["x", None], "response_text": [None, "ok"], "n_tool_calls": [1, 0]})
        >>> FeatureEncoder("action").fit(df).transform(df).shape
        (2, 4)
    """

    features: str = DEFAULT_FEATURES
    embedder: Any = None
    weights: dict[str, float] | None = None
    max_chars: int = 1000
    parts_: tuple[str, ...] = field(default=(), init=False)
    vocab_: dict[str, list[str]] = field(default_factory=dict, init=False)
    embedders_: dict[str, Embedder] = field(default_factory=dict, init=False)
    # Column range of each block in the last matrix `transform` returned, e.g. {"action": (768, 914)}.
    block_slices_: dict[str, tuple[int, int]] = field(default_factory=dict, init=False)

    def blocks(self) -> list[tuple[str, str, str]]:
        seen: dict[str, tuple[str, str, str]] = {}
        for part in parse_features(self.features):
            for block in _PART_BLOCKS[part]:
                seen.setdefault(block[0], block)
        return list(seen.values())

    def _weight(self, block: str) -> float:
        return float({**DEFAULT_WEIGHTS, **(self.weights or {})}.get(block, 1.0))

    def _embedder_for(self, column: str) -> Embedder:
        emb = (
            select_embedder(self.embedder, max_chars=self.max_chars)
            if not isinstance(self.embedder, Embedder)
            else self.embedder
        )
        if hasattr(emb, "is_fitted"):
            # A corpus-fit embedder (TF-IDF) needs its own fitted copy per text column.
            emb = type(emb)(
                n_components=emb.n_components,
                max_features=emb.max_features,
                seed=emb.seed,
                max_chars=emb.max_chars,
            )
        return emb

    def fit(self, calls: pl.DataFrame, states: pl.DataFrame | None = None) -> FeatureEncoder:
        states = call_states(calls, self.max_chars) if states is None else states
        self.parts_ = parse_features(self.features)
        self.vocab_, self.embedders_ = {}, {}
        for name, column, kind in self.blocks():
            self._check(states, column)
            if kind == "onehot":
                self.vocab_[name] = sorted(set(states.get_column(column).to_list()))
            else:
                self.embedders_[name] = self._embedder_for(column).fit(states.get_column(column).to_list())
        return self

    @staticmethod
    def _check(states: pl.DataFrame, column: str) -> None:
        if column not in states.columns:
            raise ValueError(
                f"feature column {column!r} needs the response (tool_name, response_text); "
                "use prompt-only features for calls without one"
            )

    def transform(self, calls: pl.DataFrame, states: pl.DataFrame | None = None) -> np.ndarray:
        if not self.parts_:
            raise RuntimeError("FeatureEncoder is not fitted; call fit(calls) first")
        states = call_states(calls, self.max_chars) if states is None else states
        mats = []
        for name, column, kind in self.blocks():
            self._check(states, column)
            values = states.get_column(column).to_list()
            if kind == "onehot":
                index = {v: i for i, v in enumerate(self.vocab_[name])}
                mat = np.zeros((len(values), max(1, len(index))), dtype=np.float32)
                hits = [(r, index[v]) for r, v in enumerate(values) if v in index]
                if hits:
                    rows, cols = zip(*hits, strict=True)
                    mat[list(rows), list(cols)] = 1.0
            else:
                mat = self.embedders_[name].embed(values)
            mats.append(mat * np.float32(np.sqrt(self._weight(name))))
        starts = np.cumsum([0] + [m.shape[1] for m in mats])
        self.block_slices_ = {b[0]: (int(starts[i]), int(starts[i + 1])) for i, b in enumerate(self.blocks())}
        return np.hstack(mats).astype(np.float32) if mats else np.zeros((calls.height, 0), np.float32)

    def fit_transform(self, calls: pl.DataFrame, states: pl.DataFrame | None = None) -> np.ndarray:
        states = call_states(calls, self.max_chars) if states is None else states
        return self.fit(calls, states).transform(calls, states)


def prompt_features(
    calls: pl.DataFrame,
    features: str = DEFAULT_PROMPT_FEATURES,
    embedder: Any = None,
    encoder: FeatureEncoder | None = None,
) -> np.ndarray:
    """Prompt-only feature matrix of `calls`, the input a router sees for a live call.

    Pass the `prompt_encoder_` of a fitted `TaskClusterer` as `encoder` to get vectors in the same space it
    assigns clusters in; otherwise a new encoder is fit on `calls` (response parts are dropped).

    Example:
        >>> import json
        >>> df = pl.DataFrame({"messages": [json.dumps([{"role": "user", "content": "hi"}])]})
        >>> prompt_features(df, embedder="tfidf", features="last_user").shape[0]
        1
    """
    if encoder is None:
        encoder = FeatureEncoder("+".join(prompt_parts(features)), embedder).fit(calls)
    return encoder.transform(calls)
