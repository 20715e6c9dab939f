"""Step 4, label: review the clusters of step 3 — rename, merge, split, accept — in a plain state object
(`LabelSession`) with an ipywidgets view over it (`LabelWidget`).

Usage:
    >>> from slmlab.label import LabelSession
    >>> # session = LabelSession(clusters, calls); session.rename(3, "seat lookup"); session.save(path)
"""

from __future__ import annotations

from typing import Any

from slmlab.label.session import (
    LabelSession,
    StaleLabelsError,
    call_prompt_texts,
    load_labelled_calls,
    load_labelled_clusters,
    split_keys,
    system_prompt_hash,
)

__all__ = [
    "LabelSession",
    "LabelWidget",
    "StaleLabelsError",
    "call_prompt_texts",
    "load_labelled_calls",
    "load_labelled_clusters",
    "map_coordinates",
    "split_keys",
    "system_prompt_hash",
]


def __getattr__(name: str) -> Any:
    # The widget pulls in ipywidgets and plotly's FigureWidget; import it only when asked for.
    if name in ("LabelWidget", "map_coordinates"):
        from slmlab.label import widget

        return getattr(widget, name)
    raise AttributeError(f"module 'slmlab.label' has no attribute {name!r}")
