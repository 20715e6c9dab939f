"""The savings dashboard: ipywidgets controls over live plotly figures, laid out for a ~1,000-px output.

Controls wrap onto several lines instead of running off the right edge; the figures wrap too, each a
fixed width that fits two across a notebook's output area; bars keep their order on every refresh.

Usage:
    >>> from slmlab.savings import SavingsDashboard
    >>> # SavingsDashboard(calls, clusters=[0, 1], scenario_calls_per_month=1e6).widget  # last line of a cell
"""

from __future__ import annotations

import html
import math
from dataclasses import asdict

import plotly.graph_objects as go
import polars as pl

from slmlab.savings.model import (
    SavingsResult,
    SelfHostedSLM,
    at_volume,
    break_even_curve,
    compute_savings,
    default_scenario,
    headline,
    monthly_volume,
)
from slmlab.savings.plots import plot_break_even, plot_cost_before_after, plot_savings_waterfall

# GPU rental prices a person would type (USD/h): a ladder, so one arrow key or a short drag moves to the
# next plausible price instead of jumping from an L4 to an H100.
GPU_PRICE_STEPS = (
    0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0,
    8.0, 10.0, 12.0,
)  # fmt: skip
FIGURE_WIDTH = 470  # px: two figures side by side fit a 968-px JupyterLab output; they wrap when narrower
FIGURE_HEIGHT = 360
WIDE_FIGURE_WIDTH = 950


def _price_options(value: float) -> list[float]:
    return sorted({*GPU_PRICE_STEPS, round(float(value), 2)})


def _volume_label(v: float) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= div:
            return f"{v / div:,.3g} {unit}"
    return f"{v:,.0f}"


def _volume_options(value: float) -> list[tuple[str, float]]:
    """(label, calls/month) stops 1-2-5 per decade from 100 to 1e9, plus the given value."""
    stops = {m * 10.0**k for k in range(2, 9) for m in (1, 2, 5)} | {1e9, float(value)}
    return [(_volume_label(v), v) for v in sorted(stops)]


class SavingsDashboard:
    """ipywidgets controls (GPU price, utilization, engineering cost, production volume, clusters to swap)
    over live figures.

    The state is plain: `spec`, `swap_clusters`, `scenario_calls_per_month`, `result` (at the observed
    volume) and `scenario` (the same swap at the production volume); `refresh()` recomputes and updates
    the `FigureWidget`s in place. Tests drive it headless by setting `.value` on the controls.

    Args:
        calls: the routed call table (`load_routed_calls`).
        clusters: cluster ids offered as checkboxes.
        spec: the self-hosted SLM cost model.
        swap_clusters: clusters ticked at first (default: all of `clusters`).
        prices: the LLM price table.
        calls_per_month: the observed monthly volume (default: the rate in the logs' timestamps).
        scenario_calls_per_month: the production volume the headline and the bars are stated at (default:
            the 1-2-5 round number at or above 10x the break-even volume, else above 100x the observed volume).

    Example:
        >>> dash = SavingsDashboard(calls, clusters=[0, 1])  # doctest: +SKIP
        >>> dash.widget  # doctest: +SKIP
    """

    def __init__(
        self,
        calls: pl.DataFrame,
        clusters: list[int],
        spec: SelfHostedSLM | None = None,
        swap_clusters: list[int] | None = None,
        prices: pl.DataFrame | None = None,
        calls_per_month: float | None = None,
        scenario_calls_per_month: float | None = None,
    ) -> None:
        import ipywidgets as w

        self.calls = calls.drop("routed_to") if "routed_to" in calls.columns else calls
        self.spec = spec or SelfHostedSLM()
        self.prices = prices
        self.calls_per_month = calls_per_month
        self.swap_clusters = list(swap_clusters if swap_clusters is not None else clusters)
        first = self._compute()
        if scenario_calls_per_month is None:
            scenario_calls_per_month = default_scenario(first)
        self.scenario_calls_per_month = float(scenario_calls_per_month)

        wide = {"description_width": "initial"}  # labels in full, never "eng. $/mo…"
        self.usd_per_hour = w.SelectionSlider(
            options=_price_options(self.spec.usd_per_hour),
            value=round(float(self.spec.usd_per_hour), 2),
            description="GPU $/hour",
            style=wide,
            layout=w.Layout(width="320px"),
        )
        self.utilization = w.FloatSlider(
            value=self.spec.utilization,
            min=0.05,
            max=1.0,
            step=0.05,
            description="GPU utilization",
            readout_format=".0%",
            style=wide,
            layout=w.Layout(width="320px"),
        )
        self.engineering = w.BoundedFloatText(
            value=self.spec.engineering_usd_month,
            min=0.0,
            max=1e7,
            step=50.0,
            description="engineering $/month",
            style=wide,
            layout=w.Layout(width="260px"),
        )
        # One knob for the production volume: 1-2-5 steps from 100 calls/month to a billion.
        self.volume = w.SelectionSlider(
            options=_volume_options(self.scenario_calls_per_month),
            value=self.scenario_calls_per_month,
            description="production calls/month",
            style=wide,
            layout=w.Layout(width="480px"),
        )
        self.scenario_calls_per_month = float(self.volume.value)
        self.cluster_boxes = {
            c: w.Checkbox(
                value=c in self.swap_clusters,
                description=f"cluster {c}",
                indent=False,
                layout=w.Layout(width="auto", margin="0 14px 0 0"),
            )
            for c in clusters
        }

        def wrap() -> w.Layout:
            return w.Layout(display="flex", flex_flow="row wrap", width="100%", align_items="center")

        self.summary = w.HTML(layout=w.Layout(width="100%"))
        self.fig_before_after = go.FigureWidget()
        self.fig_waterfall = go.FigureWidget()
        self.fig_break_even = go.FigureWidget()
        for ctrl in (
            self.usd_per_hour,
            self.utilization,
            self.engineering,
            self.volume,
            *self.cluster_boxes.values(),
        ):
            ctrl.observe(lambda _change: self.refresh(), names="value")
        self.widget = w.VBox(
            [
                w.Box([self.usd_per_hour, self.utilization, self.engineering, self.volume], layout=wrap()),
                w.Box(
                    [w.HTML("<b>send to the SLM:</b>&nbsp;"), *self.cluster_boxes.values()],
                    layout=wrap(),
                ),
                self.summary,
                w.Box([self.fig_before_after, self.fig_waterfall], layout=wrap()),
                self.fig_break_even,
            ],
            layout=w.Layout(width="100%", max_width="980px"),
        )
        self.refresh()

    def _compute(self) -> SavingsResult:
        return compute_savings(
            self.calls,
            self.spec,
            self.prices,
            swap_clusters=self.swap_clusters,
            calls_per_month=self.calls_per_month,
        )

    def refresh(self) -> SavingsResult:
        """Recompute the savings from the controls and redraw the headline and the figures."""
        self.spec = SelfHostedSLM(
            **{
                **asdict(self.spec),
                "usd_per_hour": float(self.usd_per_hour.value),
                "utilization": self.utilization.value,
                "engineering_usd_month": max(self.engineering.value, 0.0),
            }
        )
        self.scenario_calls_per_month = float(self.volume.value)
        self.swap_clusters = [c for c, box in self.cluster_boxes.items() if box.value]
        self.result = self._compute()
        self.scenario = at_volume(self.result, self.scenario_calls_per_month)
        lines = headline(self.result, self.scenario_calls_per_month)
        # The scenario line leads: it is the answer at the volume the person set.
        ordered = [lines[-1], *lines[:-1]] if len(lines) == 3 else lines
        self.summary.value = (
            f"<div style='line-height:1.5'><b>{html.escape(ordered[0])}</b><br>"
            + "<br>".join(html.escape(x) for x in ordered[1:])
            + "<br><small>USD/month; the fixed engineering cost does not grow with the volume, the "
            "per-call costs do.</small></div>"
        )
        obs = monthly_volume(self.result)
        be = self.result.break_even_calls_per_month or 0.0
        top = max(obs * 4, be * 3, self.scenario_calls_per_month * 2, 1000.0)
        low = max(min(obs, self.scenario_calls_per_month, be or math.inf) / 4, 1.0)
        vol = f"{self.scenario_calls_per_month:,.0f} calls/month"
        for target, fig, width in (
            (
                self.fig_before_after,
                plot_cost_before_after(
                    self.scenario, by="cluster", title=f"Monthly cost by cluster at {vol}"
                ),
                FIGURE_WIDTH,
            ),
            (
                self.fig_waterfall,
                plot_savings_waterfall(self.scenario, title=f"Where the savings come from at {vol}"),
                FIGURE_WIDTH,
            ),
            (
                self.fig_break_even,
                plot_break_even(
                    break_even_curve(self.result, self.spec, max_calls=top, min_calls=low, points=80),
                    self.result,
                    scenario_calls_per_month=self.scenario_calls_per_month,
                ),
                WIDE_FIGURE_WIDTH,
            ),
        ):
            fig.update_layout(
                width=width,
                height=FIGURE_HEIGHT,
                margin={"l": 60, "r": 20, "t": 50, "b": 60},
                title_font_size=14,
            )
            with target.batch_update():
                target.data = []
                target.add_traces(list(fig.data))
                target.layout = fig.layout
        return self.result
