"""What a fine-tuning run looks like: memory stats, the loss curve, and answers side by side.

Usage:
    >>> from slmlab.specialize.report import memory_stats, plot_history
    >>> memory_stats()["rss_mb"] > 0
    True
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import polars as pl

from slmlab.runtime.chat_format import render_tool_calls


def memory_stats() -> dict[str, float]:
    """Process RSS and system RAM in MiB, plus CUDA allocated / reserved / total where a GPU is in use.

    Example:
        >>> sorted(memory_stats())[:2]
        ['ram_available_mb', 'ram_total_mb']
    """
    import sys

    import psutil

    vm = psutil.virtual_memory()
    stats = {
        "rss_mb": psutil.Process().memory_info().rss / 2**20,
        "ram_total_mb": vm.total / 2**20,
        "ram_available_mb": vm.available / 2**20,
    }
    torch = sys.modules.get("torch")  # only report CUDA if torch is already in use: never import it here
    if torch is not None and torch.cuda.is_available():
        stats["cuda_allocated_mb"] = torch.cuda.memory_allocated() / 2**20
        stats["cuda_reserved_mb"] = torch.cuda.memory_reserved() / 2**20
        stats["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        stats["cuda_total_mb"] = torch.cuda.get_device_properties(0).total_memory / 2**20
    return {k: round(v, 1) for k, v in stats.items()}


def plot_history(history: pl.DataFrame, title: str = "Fine-tuning loss") -> go.Figure:
    """Training loss per step (and validation loss where measured) of `FinetuneResult.history`.

    Example:
        >>> fig = plot_history(pl.DataFrame({"step": [1, 2], "loss": [2.0, 1.0], "eval_loss": [None, 1.2]}))
        >>> len(fig.data)
        2
    """
    fig = go.Figure()
    fig.add_scatter(
        x=history["step"].to_list(), y=history["loss"].to_list(), mode="lines+markers", name="train loss"
    )
    evals = history.filter(pl.col("eval_loss").is_not_null())
    if evals.height:
        fig.add_scatter(
            x=evals["step"].to_list(),
            y=evals["eval_loss"].to_list(),
            mode="markers",
            name="val loss",
            marker_size=10,
        )
    fig.update_layout(
        title=title,
        xaxis_title="optimizer step",
        yaxis_title="cross-entropy (answer tokens)",
        template="plotly_white",
    )
    return fig


def _show(gen: Any) -> str:
    return render_tool_calls(gen.tool_calls) if gen.tool_calls else gen.text


def side_by_side(
    calls: pl.DataFrame,
    prompts: list[list[dict[str, str]]],
    generators: dict[str, Any],
    max_new_tokens: int = 64,
) -> pl.DataFrame:
    """The LLM's logged answer next to each generator's answer for the same fitted prompts.

    Args:
        calls: the calls (their logged answers are the "llm" column).
        prompts: their fitted prompts (`slmlab.specialize.call_prompts`).
        generators: column name -> `slmlab.runtime.generate.Generator` (e.g. {"base": ..., "tuned": ...}).

    Returns:
        One row per call: call_id, last user/tool message (shortened), llm, then one column per generator.

    Example:
        >>> side_by_side(test.head(3), prompts, {"base": base_gen, "tuned": tuned_gen})  # doctest: +SKIP
    """
    from slmlab.specialize.sft_data import call_targets

    out = {
        "call_id": calls.get_column("call_id").to_list(),
        "last_turn": [p[-1]["content"][-160:] for p in prompts],
        "llm": call_targets(calls),
    }
    for name, gen in generators.items():
        out[name] = [_show(g) for g in gen.generate(prompts, max_new_tokens=max_new_tokens, progress=False)]
    return pl.DataFrame(out)
