"""An ipywidgets labeller over a `LabelSession`: cluster list, details, 2-D map, and edit buttons.

The widget holds no state of its own: every button calls a `LabelSession` method and redraws from the
session, so the same edits can be scripted (and are unit-tested) without a browser.

Usage:
    >>> from slmlab.label import LabelSession, LabelWidget
    >>> # LabelWidget(LabelSession(clusters, calls), path=artefact("labels", RUN))   # last line of a cell
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from slmlab.config import require
from slmlab.label.session import (
    LabelSession,
    call_prompt_texts,
    last_user_text,
    system_prompt_head,
)

STATUS_BUTTONS = (
    ("slm_candidate", "SLM candidate", "success"),
    ("keep_llm", "keep on LLM", "warning"),
    ("ignore", "ignore", ""),
    ("unreviewed", "unreviewed", ""),
)
STATUS_MARK = {"slm_candidate": "✔ SLM", "keep_llm": "✖ LLM", "ignore": "– ignore", "unreviewed": "?"}
SPLIT_CHOICES = ("action", "template", "kmeans", "agent", "model")


def map_coordinates(
    calls: pl.DataFrame, embeddings: np.ndarray | None = None, *, seed: int = 0, max_points: int | None = None
) -> pl.DataFrame:
    """2-D coordinates of calls for the cluster map: PCA of `embeddings`, else of TF-IDF vectors of the
    calls' last user turns (TruncatedSVD), so a map is drawn even without stored embeddings.

    Args:
        calls: call table with `call_id` and `messages`.
        embeddings: optional matrix, one row per call.
        seed: random state of the sample and the SVD.
        max_points: keep at most this many calls (a uniform sample), so the map stays responsive.

    Returns:
        call_id, x, y.

    Example:
        >>> calls = pl.DataFrame({"call_id": ["a", "b", "c"], "messages": ['[{"role":"user","content":"x y"}]',
        ...     '[{"role":"user","content":"y z"}]', '[{"role":"user","content":"z w"}]']})
        >>> map_coordinates(calls).columns
        ['call_id', 'x', 'y']
    """
    rows = np.arange(calls.height)
    if max_points is not None and calls.height > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(calls.height, max_points, replace=False))
    ids = calls.get_column("call_id").to_numpy()[rows]
    if len(rows) < 2:
        return pl.DataFrame({"call_id": ids, "x": np.zeros(len(rows)), "y": np.zeros(len(rows))})
    if embeddings is not None:
        from sklearn.decomposition import PCA

        x = np.asarray(embeddings, dtype=np.float32)[rows]
        xy = PCA(n_components=min(2, x.shape[1]), random_state=seed).fit_transform(x)
    else:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = call_prompt_texts(calls[rows])
        try:
            tf = TfidfVectorizer(max_features=5000, sublinear_tf=True).fit_transform(texts)
        except ValueError:  # no words at all
            tf = None
        if tf is None or tf.shape[1] < 3:
            xy = np.zeros((len(rows), 2))
        else:
            xy = TruncatedSVD(n_components=2, random_state=seed).fit_transform(tf)
    if xy.shape[1] == 1:
        xy = np.column_stack([xy[:, 0], np.zeros(len(rows))])
    return pl.DataFrame({"call_id": ids, "x": xy[:, 0].astype(float), "y": xy[:, 1].astype(float)})


class LabelWidget:
    """The labeller: pick clusters on the left, read them on the right, edit with the buttons.

    Args:
        session: the `LabelSession` to edit.
        path: where Save writes the session (e.g. `artefact("labels", RUN)`); None disables Save.
        coords: call_id, x, y for the map; default `map_coordinates(session calls, embeddings)`.
        embeddings: one row per session call, for the map's PCA when `coords` is not given.
        autosave: also save after every edit (labels survive a kernel crash).
        max_points: calls drawn on the map at most.
        progress: a progress bar while the map and the list are built (a few seconds for thousands of
            calls); None shows it above 500 calls.

    Attributes:
        widget: the ipywidgets container (the object displays itself as this).
        cluster_list, detail, figure, name_text, rename_button, merge_button, split_by, split_button,
        status_buttons (dict status -> Button), note_text, note_button, undo_button, save_button, message.

    Example:
        >>> # w = LabelWidget(session, path); w.cluster_list.value = (3,); w.name_text.value = "seats"
        >>> # w.rename_button.click()
    """

    def __init__(
        self,
        session: LabelSession,
        path: str | Path | None = None,
        *,
        coords: pl.DataFrame | None = None,
        embeddings: np.ndarray | None = None,
        autosave: bool = False,
        max_points: int = 4000,
        progress: bool | None = None,
    ) -> None:
        w = require("ipywidgets", "core")
        go = require("plotly.graph_objects", "core")
        self.session = session
        self.path = Path(path) if path is not None else None
        self.autosave = autosave
        self._dirty = False
        calls = session._calls
        self._calls = calls

        self.cluster_list = w.SelectMultiple(options=[], rows=14, layout=w.Layout(width="100%"))
        self.detail = w.HTML(layout=w.Layout(width="100%"))
        self.summary = w.HTML()
        self.message = w.HTML()
        self.name_text = w.Text(placeholder="cluster name", layout=w.Layout(width="260px"))
        # width "auto": a button as wide as its label, never "Merge selec…"
        auto = w.Layout(width="auto", min_width="max-content")
        self.rename_button = w.Button(description="Rename", icon="pencil", layout=auto)
        self.merge_button = w.Button(description="Merge selected", icon="compress", layout=auto)
        choices = [
            c
            for c in SPLIT_CHOICES
            if c in ("action", "template", "kmeans") or (calls is not None and c in calls.columns)
        ]
        self.split_by = w.Dropdown(
            options=choices, value="action", description="split by", layout=w.Layout(width="200px")
        )
        self.split_button = w.Button(description="Split", icon="scissors", layout=auto)
        self.status_buttons = {
            status: w.Button(description=label, button_style=style, layout=auto)
            for status, label, style in STATUS_BUTTONS
        }
        self.note_text = w.Textarea(
            placeholder="notes on this cluster", layout=w.Layout(width="100%", height="60px")
        )
        self.note_button = w.Button(description="Save note", icon="sticky-note", layout=auto)
        self.undo_button = w.Button(description="Undo", icon="undo", layout=auto)
        self.save_button = w.Button(description="Save", icon="save", disabled=self.path is None, layout=auto)

        self.rename_button.on_click(lambda _: self._act(self._rename))
        self.merge_button.on_click(lambda _: self._act(self._merge))
        self.split_button.on_click(lambda _: self._act(self._split))
        for status, button in self.status_buttons.items():
            button.on_click(lambda _, s=status: self._act(lambda: self._set_status(s)))
        self.note_button.on_click(lambda _: self._act(self._note))
        self.undo_button.on_click(lambda _: self._act(self._undo))
        self.save_button.on_click(lambda _: self._save_clicked())
        self.cluster_list.observe(self._on_select, names="value")

        # The map: every call in grey/colour by cluster, the selection drawn on top in red.
        from tqdm.auto import tqdm

        n_calls = calls.height if calls is not None else 0
        show = progress if progress is not None else n_calls > 500
        bar = tqdm(
            total=3,
            desc="building the labeller",
            disable=not show,
            bar_format="{desc}: {n}/{total} {postfix}",
        )
        bar.set_postfix_str("2-D map of the calls")
        self.figure = None
        self._xy = None
        if calls is not None and calls.height:
            if coords is None:
                coords = map_coordinates(calls, embeddings, max_points=max_points)
            self._xy = coords.select("call_id", "x", "y").join(
                calls.select("call_id").with_row_index("_row"), on="call_id", how="inner"
            )
            scatter = go.Scattergl if self._xy.height > 1500 else go.Scatter
            self.figure = go.FigureWidget(
                data=[
                    scatter(
                        x=self._xy["x"],
                        y=self._xy["y"],
                        mode="markers",
                        name="calls",
                        hoverinfo="text",
                        marker={"size": 4, "opacity": 0.45, "colorscale": "Turbo"},
                    ),
                    scatter(
                        x=[],
                        y=[],
                        mode="markers",
                        name="selected",
                        marker={"size": 7, "color": "crimson", "line": {"width": 0.5, "color": "white"}},
                    ),
                ],  # fmt: skip
                layout={
                    "height": 380,
                    "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
                    "title": {"text": "calls (selected cluster in red)", "font": {"size": 13}},
                    "showlegend": False,
                    "xaxis": {"visible": False},
                    "yaxis": {"visible": False},
                },
            )

        def row(children: list[Any]) -> Any:  # a row of controls that wraps instead of being cut
            return w.HBox(children, layout=w.Layout(flex_flow="row wrap", width="100%"))

        bar.update(1)
        bar.set_postfix_str("controls")
        edit = w.VBox(
            [
                row([self.name_text, self.rename_button]),
                row([self.merge_button, self.split_by, self.split_button]),
                row(list(self.status_buttons.values())),
                self.note_text,
                row([self.note_button, self.undo_button, self.save_button]),
                self.message,
            ]
        )
        # Two columns that wrap under each other in a narrow output (min widths), never run off the edge.
        left = w.VBox(
            [self.summary, self.cluster_list, edit],
            layout=w.Layout(flex="1 1 440px", min_width="360px", max_width="100%"),
        )
        right_items = [self.figure] if self.figure is not None else []
        right = w.VBox(
            [*right_items, self.detail],
            layout=w.Layout(flex="1 1 440px", min_width="360px", max_width="100%"),
        )
        self.widget = w.HBox([left, right], layout=w.Layout(flex_flow="row wrap", width="100%"))
        bar.update(1)
        bar.set_postfix_str("cluster list and details")
        self.refresh()
        if self.cluster_list.options:
            self.cluster_list.value = (self.cluster_list.options[0][1],)
        bar.update(1)
        bar.set_postfix_str("done")
        bar.close()
        self._watch_session()

    # ------------------------------------------------------------------------------------- display
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def _session_state(self) -> list[tuple[Any, ...]]:
        return self.session.clusters.select("cluster", "name", "status", "size", "note").rows()

    def _watch_session(self) -> None:
        """Redraw after every notebook cell that changed the session behind the widget's back.

        A later cell (`session.accept_suggested(...)`, `session.rename(...)`) edits the same session; without
        this the list would show the state from before that cell until the next click in the widget, e.g.
        every cluster "?" right after Run All while the cell below printed the accepted ones.
        """
        self._shown = self._session_state()
        try:
            from IPython import get_ipython
        except ImportError:  # no IPython: scripted use, nothing to watch
            return
        shell = get_ipython()
        if shell is not None:
            shell.events.register("post_run_cell", self.sync)

    def sync(self, *_: Any) -> bool:
        """Redraw if the session changed since the widget last drew it; True if it redrew."""
        if self._session_state() == self._shown:
            return False
        self.refresh()
        return True

    # ----------------------------------------------------------------------------------------- views
    @property
    def selected(self) -> list[int]:
        """The cluster ids selected in the list."""
        return [int(c) for c in self.cluster_list.value]

    def refresh(self, select: list[int] | None = None) -> None:
        """Redraw the list, summary, details and map from the session; keep or set the selection."""
        table = self.session.clusters
        keep = select if select is not None else self.selected
        options = []
        confidence = self._confidence()
        for r in table.iter_rows(named=True):
            cost = f"{r['share_cost']:.0%} cost" if r["share_cost"] is not None else "cost n/a"
            label = f"{STATUS_MARK[r['status']]:>8} │ {r['name']} · {r['size']} calls · {cost}"
            if r["cluster"] in confidence:
                label += f" · conf {confidence[r['cluster']][0]:.2f}"
            options.append((label, r["cluster"]))
        valid = {c for _, c in options}
        self.cluster_list.unobserve(self._on_select, names="value")
        self.cluster_list.options = options
        self.cluster_list.value = tuple(c for c in keep if c in valid)
        self.cluster_list.observe(self._on_select, names="value")
        counts = table.group_by("status").agg(pl.len(), pl.col("share_calls").sum())
        parts = [
            f"{STATUS_MARK[s]} {n} ({share or 0:.0%} of calls)"
            for s, n, share in counts.sort("status").iter_rows()
        ]
        saved = "" if not self._dirty else " · <i>unsaved changes</i>"
        self.summary.value = f"<b>{table.height} clusters</b> · " + " · ".join(parts) + saved
        self._shown = self._session_state()
        self._show_selection()

    def _confidence(self) -> dict[int, tuple[float, float]]:
        """Per current cluster: mean `cluster_confidence` of its calls and the share below 0.5, where the
        clustered table has that column (step 3's per-call confidence); else empty."""
        calls = self._calls
        if calls is None or "cluster_confidence" not in calls.columns or self.session._assign is None:
            return {}
        df = pl.DataFrame(
            {"cluster": self.session.call_clusters, "conf": calls.get_column("cluster_confidence")}
        ).drop_nulls()
        agg = df.group_by("cluster").agg(
            pl.col("conf").mean().alias("mean"), (pl.col("conf") < 0.5).mean().alias("low")
        )
        return {int(c): (float(m), float(lo)) for c, m, lo in agg.iter_rows()}

    def _on_select(self, change: dict[str, Any]) -> None:
        self._show_selection()

    def _show_selection(self) -> None:
        sel = self.selected
        table = self.session.clusters
        rows = table.filter(pl.col("cluster").is_in(sel)).to_dicts()
        if len(rows) == 1:
            r = rows[0]
            self.name_text.value = r["name"]
            self.note_text.value = r["note"] or ""
            self.detail.value = self._detail_html(r)
        else:
            self.name_text.value = ""
            self.note_text.value = ""
            self.detail.value = (
                "<i>select a cluster</i>"
                if not rows
                else "<b>selected:</b><br>"
                + "<br>".join(html.escape(f"{r['cluster']}: {r['name']} ({r['size']} calls)") for r in rows)
            )
        self._draw_map(sel)

    def _draw_map(self, sel: list[int]) -> None:
        if self.figure is None:
            return
        cl = self.session.call_clusters.to_numpy()[self._xy.get_column("_row").to_numpy()]
        names = dict(self.session.clusters.select("cluster", "name").iter_rows())
        hover = [f"{c}: {names.get(int(c), 'noise')}" for c in cl]
        on = np.isin(cl, sel)
        with self.figure.batch_update():
            self.figure.data[0].marker.color = cl
            self.figure.data[0].hovertext = hover
            self.figure.data[1].x = self._xy.get_column("x").to_numpy()[on]
            self.figure.data[1].y = self._xy.get_column("y").to_numpy()[on]

    def _detail_html(self, r: dict[str, Any]) -> str:
        esc = html.escape

        def num(v: Any, fmt: str) -> str:
            return "n/a" if v is None else format(v, fmt)

        lines = [
            f"<h4 style='margin:4px 0'>{esc(r['name'])} <small>(cluster {r['cluster']}, {r['status']})</small></h4>",
            f"<b>{r['size']}</b> calls · {num(r['share_calls'], '.1%')} of calls · "
            f"{num(r['share_cost'], '.1%')} of cost · suitability {num(r['suitability'], '.2f')}",
            f"action <code>{esc(str(r['dominant_action']))}</code> in {num(r['action_share'], '.0%')} · "
            f"output {esc(str(r['output_shape']))} · tokens in {num(r['mean_input_tokens'], ',.0f')} "
            f"(p90 {num(r['p90_input_tokens'], ',.0f')}) / out {num(r['mean_output_tokens'], ',.0f')}",
            f"<b>keywords</b>: {esc(', '.join(r['keywords'] or []))}",
        ]
        conf = self._confidence().get(r["cluster"])
        if conf is not None:
            lines.append(
                f"<b>cluster confidence</b> (per call, step 3): mean {conf[0]:.2f} · "
                f"{conf[1]:.0%} of calls below 0.5 (check those: they may belong elsewhere)"
            )
        if r["template"]:
            lines.append(f"<b>template</b>: <code>{esc(r['template'][:300])}</code>")
        if r["note"]:
            lines.append(f"<b>note</b>: {esc(r['note'])}")
        if self._calls is not None and r["exemplars"]:
            from slmlab.runtime.chat_format import render_target
            from slmlab.schema import parse_tool_calls

            ex = self._calls.filter(pl.col("call_id").is_in(r["exemplars"][:3]))
            for e in ex.iter_rows(named=True):
                system = system_prompt_head(e["messages"], 120)
                user = last_user_text(e["messages"])[:300]
                answer = render_target(e["response_text"], parse_tool_calls(e["response_tool_calls"]))[:300]
                lines.append(
                    "<div style='border-left:3px solid #ccc;padding-left:6px;margin:4px 0;font-size:90%'>"
                    + (f"<i>system:</i> {esc(system)}…<br>" if system else "")
                    + f"<i>user:</i> {esc(user)}<br><i>LLM:</i> <code>{esc(answer)}</code></div>"
                )
        return "<br>".join(lines)

    # --------------------------------------------------------------------------------------- actions
    def _act(self, fn: Any) -> None:
        try:
            select = fn()
        except ValueError as exc:
            self.message.value = f"<span style='color:crimson'>{html.escape(str(exc))}</span>"
            return
        self._dirty = True
        if self.autosave and self.path is not None:
            self.session.save(self.path)
            self._dirty = False
        self.refresh(select)

    def _one(self) -> int:
        sel = self.selected
        if len(sel) != 1:
            raise ValueError("select exactly one cluster")
        return sel[0]

    def _rename(self) -> list[int]:
        c = self._one()
        self.session.rename(c, self.name_text.value)
        self.message.value = f"renamed cluster {c}"
        return [c]

    def _merge(self) -> list[int]:
        into = self.session.merge(self.selected)
        self.message.value = f"merged into cluster {into}"
        return [into]

    def _split(self) -> list[int]:
        parts = self.session.split(self._one(), by=self.split_by.value)
        self.message.value = f"split into {', '.join(map(str, parts))}"
        return parts

    def _set_status(self, status: str) -> list[int]:
        sel = self.selected
        if not sel:
            raise ValueError("select one or more clusters")
        self.session.set_status(sel, status)
        self.message.value = f"{len(sel)} cluster(s) -> {status}"
        return sel

    def _note(self) -> list[int]:
        c = self._one()
        self.session.note(c, self.note_text.value)
        self.message.value = f"note saved on cluster {c}"
        return [c]

    def _undo(self) -> list[int]:
        op = self.session.undo()
        if op is None:
            raise ValueError("nothing to undo")
        self.message.value = f"undid {op['op']}"
        return self.selected

    def _save_clicked(self) -> None:
        if self.path is None:
            self.message.value = "<span style='color:crimson'>no path to save to</span>"
            return
        self.session.save(self.path)
        self._dirty = False
        self.message.value = f"saved {len(self.session.operations)} edits to {html.escape(str(self.path))}"
        self.refresh()


__all__ = ["LabelWidget", "map_coordinates"]
