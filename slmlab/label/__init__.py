"""Step 4, label: review the clusters of step 3 — rename, merge, split, accept — in a plain state object
(`LabelSession`) with an ipywidgets view over it (`LabelWidget`).

Modules: `session` (`LabelSession`: operations, views, save/load), `state` (the log replayed over step 3's
tables), `ops` (what a merge or split does to calls), `table` (the label table's columns, merged rows,
`describe_clusters` statistics of edited clusters), `keys` (what calls are split by), `load` (a run's
labelled calls and clusters), `widget` (`LabelWidget`).

Usage:
    >>> from slmlab.label import LabelSession
    >>> # session = LabelSession(clusters, calls); session.rename(3, "seat lookup"); session.save(path)
"""

from __future__ import annotations

from typing import Any

from slmlab.label.keys import split_keys, system_prompt_hash
from slmlab.label.load import load_labelled_calls, load_labelled_clusters
from slmlab.label.session import LabelSession
from slmlab.label.table import StaleLabelsError
from slmlab.runtime.chat_format import call_prompt_texts

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
