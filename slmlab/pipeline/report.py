"""The self-contained HTML report of a run: headline table first, then one section per step.

It reads only the artefacts the steps wrote into the run folder (`slmlab.runs.RunStore`), so it can be
rebuilt at any time with `slmlab report`. Figures are embedded with plotly.js inlined once, so the file
opens offline.

Usage:
    >>> from slmlab.pipeline.report import write_report
    >>> path = write_report("demo")  # doctest: +SKIP
"""

from __future__ import annotations

import html
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import polars as pl

from slmlab.runs import RunStore


def _read(name: str, run: str) -> pl.DataFrame | None:
    store = RunStore(run)
    return store.read_table(name, check=False) if store.exists(name) else None


def _table(df: pl.DataFrame, max_rows: int = 20) -> str:
    cols = df.columns
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    rows = []
    for row in df.head(max_rows).iter_rows():
        cells = []
        for v in row:
            if isinstance(v, float):
                text = f"{v:,.4g}"
            elif isinstance(v, list):
                text = ", ".join(map(str, v[:6]))
            else:
                text = str(v)
            cells.append(f"<td>{html.escape(text[:160])}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = (
        f"<p class='note'>{df.height - max_rows} more rows in the artefact.</p>"
        if df.height > max_rows
        else ""
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"


def headline(run: str) -> pl.DataFrame:
    """The report's first screen: one row per figure that answers "what can move, and what does it save"."""
    rows: list[tuple[str, str]] = []
    calls = _read("calls", run)
    if calls is not None:
        cost = calls["cost_usd"].sum()
        est = calls["cost_estimated"].mean() if calls.height else 0
        rows += [
            ("LLM calls in the logs", f"{calls.height:,}"),
            ("sessions", f"{calls['session_id'].n_unique():,}"),
            ("models", ", ".join(sorted(calls["model"].unique().to_list())[:6])),
            (
                "cost in the logs (USD)",
                f"{cost:,.2f}" + (f" ({est:.0%} estimated from prices)" if est else ""),
            ),
        ]
    clusters = _read("clusters", run)
    if clusters is not None:
        rows.append(("sub-task clusters found", f"{clusters.height}"))
    if RunStore(run).exists("labels"):
        try:
            from slmlab.label import load_labelled_clusters

            _, labelled = load_labelled_clusters(run)
            accepted = labelled.filter(pl.col("status") == "slm_candidate")
            rows.append(("clusters accepted as SLM candidates", f"{accepted.height}"))
        except Exception as exc:  # noqa: BLE001 - the report must render even if one artefact is unreadable
            rows.append(("labels", f"unreadable: {exc}"))
    total_path = RunStore(run).path("savings_total")
    if total_path.exists():
        t = json.loads(total_path.read_text())
        tot = t.get("total", t)
        from slmlab.savings import describe_change

        def at(block: dict[str, Any]) -> str:
            b, a = block.get("monthly_before_usd", 0.0), block.get("monthly_after_usd", 0.0)
            return f"{b:,.2f} -> {a:,.2f}: {describe_change(b, a)}"

        # Phrased around the break-even volume: below it the fixed cost of the SLM stack dominates, so
        # a share "saved" at a demo's volume would read as a loss ("saved -2441.9%").
        be = t.get("break_even_calls_per_month")
        rows += [
            ("share of calls routed to a tuned SLM", f"{tot.get('slm_share', 0):.1%}"),
            (
                "break-even volume (calls/month)",
                "never at these prices" if be is None else f"{be:,.0f}: the swap pays above it",
            ),
            (f"monthly cost (USD) at the observed {tot.get('monthly_calls', 0):,.0f} calls/month", at(tot)),
        ]
        scen = t.get("scenario")
        if scen:
            rows.append(
                (
                    f"monthly cost (USD) at {scen['calls_per_month']:,.0f} calls/month (production scenario)",
                    at(scen),
                )
            )
        if "quality" in t:
            rows.append(("agreement with the LLM on routed calls", f"{t['quality']:.1%}"))
    return pl.DataFrame(rows, schema=["figure", "value"], orient="row")


def _figures(run: str) -> list[tuple[str, go.Figure]]:
    """Figures rebuilt from artefacts with the step modules' own plot functions, where available."""
    figs: list[tuple[str, go.Figure]] = []
    calls = _read("calls", run)
    if calls is not None and calls.height:
        by_model = calls.group_by("model", "agent").agg(
            pl.len().alias("calls"), pl.col("cost_usd").sum().alias("cost")
        )
        fig = go.Figure()
        for agent in by_model["agent"].unique().sort().to_list():
            part = by_model.filter(pl.col("agent") == agent)
            fig.add_bar(name=agent, x=part["model"].to_list(), y=part["calls"].to_list())
        fig.update_layout(barmode="stack", title="Calls by model and agent", yaxis_title="calls")
        figs.append(("Collect", fig))
    clustered = _read("clustered", run)
    clusters = _read("clusters", run)
    if clusters is not None and clusters.height:
        fig = go.Figure(
            go.Bar(
                x=[
                    f"{c}: {n}"[:40]
                    for c, n in zip(clusters["cluster"].to_list(), clusters["name"].to_list(), strict=True)
                ],
                y=clusters["size"].to_list(),
                marker_color=clusters["suitability"].to_list(),
                marker_colorscale="Viridis",
                marker_showscale=True,
            )
        )
        fig.update_layout(title="Clusters: size, coloured by SLM suitability", yaxis_title="calls")
        figs.append(("Cluster", fig))
    savings = _read("savings", run)
    if savings is not None and savings.height:
        from slmlab.savings import SavingsResult, plot_cost_before_after

        t = savings.group_by("agent").agg(
            pl.col("cost_before").sum().alias("monthly_before_usd"),
            pl.col("cost_after").sum().alias("monthly_after_usd"),
        )
        res = SavingsResult(savings, t, t, {}, None)
        fig = plot_cost_before_after(res, by="agent")
        fig.update_layout(title="Cost of the logged calls before and after, by agent (USD)")
        figs.append(("Savings", fig))
    del clustered
    return figs


def write_report(run: str = "demo", steps: list[Any] | None = None, path: Path | None = None) -> Path:
    """Write `report.html` for a run and return its path."""
    path = path or RunStore(run).report_path()
    parts = [
        "<h1>slmlab report</h1>",
        f"<p class='note'>run <b>{html.escape(run)}</b>, written {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}</p>",
        "<h2>Headline</h2>",
        _table(headline(run), 40),
    ]
    if steps:
        st = pl.DataFrame(
            {
                "notebook": [s.notebook for s in steps],
                "status": [s.status for s in steps],
                "seconds": [round(s.seconds, 1) for s in steps],
            }
        )
        parts += ["<h2>Steps</h2>", _table(st, 40)]
        for s in steps:
            if s.status == "failed":
                parts.append(f"<pre class='err'>{html.escape(s.notebook)}: {html.escape(s.error)}</pre>")
    first = True
    for section, fig in _figures(run):
        parts.append(f"<h2>{html.escape(section)}</h2>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs="inline" if first else False))
        first = False
    for name, title in (
        ("clusters", "Clusters"),
        ("ranking", "Candidate SLMs"),
        ("scores", "Evaluation (per call, first rows)"),
    ):
        df = _read(name, run)
        if df is not None:
            keep = [c for c in df.columns if df.schema[c] != pl.Object][:14]
            parts += [f"<h2>{title}</h2>", _table(df.select(keep))]
    total_path = RunStore(run).path("savings_total")
    if total_path.exists():
        parts += [
            "<h2>Assumptions of the cost model</h2>",
            f"<pre>{html.escape(total_path.read_text()[:6000])}</pre>",
        ]
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}"
        ".note{color:#666}.err{color:#a00;white-space:pre-wrap}"
    )
    doc = f"<!doctype html><html><head><meta charset='utf-8'><title>slmlab report: {html.escape(run)}</title><style>{style}</style></head><body>{''.join(parts)}</body></html>"
    path.write_text(doc, encoding="utf-8")
    return path
