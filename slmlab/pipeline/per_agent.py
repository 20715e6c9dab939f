"""Per-agent replay of a multi-agent log: one router per agent, cost before (logged) and after.

Usage:
    >>> from slmlab.pipeline.per_agent import replay_by_agent
    >>> result = replay_by_agent(tau2_agent_calls, by="model")  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from slmlab.route.replay import replay
from slmlab.route.routers import ROUTE_COLUMNS, ClusterRouter, RandomRouter, Router

_EMPTY_SCORES = {"call_id": pl.String, "agreement": pl.Float64}
# The per-agent table of `replay_by_agent`, after the agent column: the whole log, the fit, then the
# held-out replay (costs in USD; agreement only over SLM-routed calls that were scored).
AGENT_TABLE_COLUMNS = (
    "log_calls", "log_cost_usd", "log_calls_without_cost", "train_calls", "clusters", "swap_clusters",
    "calls", "calls_without_cost", "calls_cost_estimated", "cost_before_usd", "cost_after_usd", "saved_usd",
    "saved_share", "slm_calls", "slm_share", "measured_calls", "unmeasured_calls", "slm_agreement",
)  # fmt: skip


@dataclass
class AgentReplay:
    """The held-out replay of a multi-agent log, one cluster router per agent (from `replay_by_agent`).

    Attributes:
        by: the column that names an agent (e.g. "agent", or "model" for tau2-bench's six agent models).
        held_out: agent -> its held-out calls (whole sessions, `split == "test"`), every call-table column.
        routers: agent -> the router fitted on its training calls (a `RandomRouter` that routes nothing
            where an agent had no cluster to swap).
        clusters: agent -> cluster table of its training calls (`describe_clusters`) with a `swap` column.
        tools: agent -> tool schemas inferred from its *training* calls (for prompting an SLM).
        agents: one row per agent: the whole log before splitting (log_calls, log_cost_usd,
            log_calls_without_cost) and the fit (train_calls, clusters, swap_clusters).
        spec: the self-hosted SLM cost model (`slmlab.savings.SelfHostedSLM`).
        scores: the SLM scores the replay used (empty: no SLM evaluated, every routed call unmeasured).
        calls: one row per replayed call (set by `with_scores`): the agent, call_id, session_id, the route
            columns, agreement / measured as `replay` gives them, cost_before_usd, cost_after_usd.
        table: one row per agent (set by `with_scores`, columns listed in `replay_by_agent`).
        total: the table's sums and overall shares.
    """

    by: str
    held_out: dict[str, pl.DataFrame]
    routers: dict[str, Router]
    clusters: dict[str, pl.DataFrame]
    tools: dict[str, list[dict[str, Any]]]
    agents: pl.DataFrame
    spec: Any
    scores: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=_EMPTY_SCORES))
    calls: pl.DataFrame = field(default_factory=pl.DataFrame)
    table: pl.DataFrame = field(default_factory=pl.DataFrame)
    total: dict[str, Any] = field(default_factory=dict)

    def with_scores(self, scores: pl.DataFrame | None = None) -> AgentReplay:
        """A copy replayed with these SLM scores: `scores`, `calls`, `table` and `total` filled anew.

        The routers are not refitted, so scoring a sample (`score_routed`) and replaying again is cheap.
        Scores of several SLM configurations at once would make the per-call agreement ambiguous (replay
        keeps the best), so they must name one (model, experiment).
        """
        from slmlab.savings import slm_cost_per_call

        scores = scores if scores is not None and scores.height else pl.DataFrame(schema=_EMPTY_SCORES)
        configs = [c for c in ("model", "experiment", "adapter") if c in scores.columns]
        if configs and scores.select(configs).unique().height > 1:
            raise ValueError(
                "scores hold several SLM configurations; filter them to one (model, experiment, adapter)"
            )
        per_call = []
        for agent, test in self.held_out.items():
            if test.is_empty():
                continue
            rep = replay(test, self.routers[agent], scores)
            slm_out = rep.get_column("slm_output_tokens").fill_null(test.get_column("output_tokens"))
            slm_cost = slm_cost_per_call(
                test.get_column("input_tokens").fill_null(0).to_numpy(),
                slm_out.fill_null(0).to_numpy(),
                self.spec,
            )
            estimated = test.get_column("cost_estimated") if "cost_estimated" in test.columns else None
            before = pl.col("cost_before_usd")
            per_call.append(
                rep.select(
                    pl.lit(agent, dtype=pl.String).alias(self.by),
                    "call_id",
                    *ROUTE_COLUMNS,
                    "agreement",
                    "measured",
                    "slm_output_tokens",
                )
                .with_columns(
                    test.get_column("session_id"),
                    test.get_column("cost_usd").cast(pl.Float64).alias("cost_before_usd"),
                    (estimated if estimated is not None else pl.lit(False))
                    .fill_null(False)
                    .alias("cost_estimated"),
                    pl.Series("slm_cost_usd", slm_cost, dtype=pl.Float64),
                )
                .with_columns(
                    # Calls without a known LLM cost stay out of before and after alike (like with like).
                    pl.when(before.is_null())
                    .then(None)
                    .when(pl.col("routed_to") == "slm")
                    .then(pl.col("slm_cost_usd"))
                    .otherwise(before)
                    .alias("cost_after_usd")
                )
            )
        out = dataclasses.replace(
            self, scores=scores, calls=pl.concat(per_call) if per_call else pl.DataFrame()
        )
        out.table, out.total = _agent_table(out)
        return out


def _agent_table(result: AgentReplay) -> tuple[pl.DataFrame, dict[str, Any]]:
    by = result.by
    slm = pl.col("routed_to") == "slm"
    if result.calls.height:
        replayed = result.calls.group_by(by).agg(
            pl.len().alias("calls"),
            pl.col("cost_before_usd").is_null().sum().alias("calls_without_cost"),
            pl.col("cost_estimated").sum().alias("calls_cost_estimated"),
            pl.col("cost_before_usd").sum().alias("cost_before_usd"),
            pl.col("cost_after_usd").sum().alias("cost_after_usd"),
            slm.sum().alias("slm_calls"),
            (slm & pl.col("measured")).sum().alias("measured_calls"),
            (slm & ~pl.col("measured")).sum().alias("unmeasured_calls"),
            pl.col("agreement").filter(slm & pl.col("measured")).mean().alias("slm_agreement"),
        )
    else:
        counts = ("calls", "calls_without_cost", "calls_cost_estimated")
        replayed = pl.DataFrame(
            schema={by: pl.String}
            | dict.fromkeys(counts, pl.Int64)
            | dict.fromkeys(("cost_before_usd", "cost_after_usd"), pl.Float64)
            | dict.fromkeys(("slm_calls", "measured_calls", "unmeasured_calls"), pl.Int64)
            | {"slm_agreement": pl.Float64}
        )
    table = (
        result.agents.join(replayed, on=by, how="left")
        .with_columns(
            pl.col("calls", "calls_without_cost", "calls_cost_estimated", "slm_calls")
            .fill_null(0)
            .cast(pl.Int64),
            pl.col("measured_calls", "unmeasured_calls").fill_null(0).cast(pl.Int64),
            pl.col("cost_before_usd", "cost_after_usd").fill_null(0.0),
        )
        .with_columns((pl.col("cost_before_usd") - pl.col("cost_after_usd")).alias("saved_usd"))
        .with_columns(
            pl.when(pl.col("cost_before_usd") > 0)
            .then(pl.col("saved_usd") / pl.col("cost_before_usd"))
            .alias("saved_share"),
            pl.when(pl.col("calls") > 0).then(pl.col("slm_calls") / pl.col("calls")).alias("slm_share"),
        )
        .select(by, *AGENT_TABLE_COLUMNS)
        .sort(by)
    )
    sums = {
        c: table.get_column(c).sum()
        for c in ("log_calls", "log_cost_usd", "calls", "cost_before_usd", "cost_after_usd", "saved_usd")
    }
    sums |= {c: int(table.get_column(c).sum()) for c in ("slm_calls", "measured_calls", "unmeasured_calls")}
    measured = result.calls.filter(slm & pl.col("measured")) if result.calls.height else result.calls
    total = sums | {
        "agents": table.height,
        "saved_share": sums["saved_usd"] / sums["cost_before_usd"] if sums["cost_before_usd"] else None,
        "slm_share": sums["slm_calls"] / sums["calls"] if sums["calls"] else None,
        "slm_agreement": float(measured.get_column("agreement").mean()) if measured.height else None,
    }
    return table, total


def replay_by_agent(
    calls: pl.DataFrame,
    by: str = "agent",
    scores: pl.DataFrame | None = None,
    spec: Any = None,
    *,
    test_size: float = 0.3,
    seed: int = 0,
    clusterer: Any = None,
    router: Router | None = None,
    min_suitability: float = 0.6,
    min_calls: int = 20,
) -> AgentReplay:
    """Replay a multi-agent log per agent: split, cluster, route held-out calls, price before and after.

    For each agent (each value of `by`): whole sessions are split into train and held-out
    (`slmlab.specialize.splits.split_by_session`, no deduplication, so every logged call is replayed or trained on),
    the training calls are clustered (`TaskClusterer`, TF-IDF by default: fast and offline), clusters with
    `suitability >= min_suitability` are marked swap (what the unattended pipeline accepts), a
    `ClusterRouter` is fitted on the training calls, and the held-out calls go through `replay`.

    Costs: *before* is each held-out call's `cost_usd` as the call table has it (the logged cost; an
    estimate only where the table already holds one, counted in `calls_cost_estimated`); *after* keeps
    LLM calls at that cost and prices SLM-routed calls with `slmlab.savings.slm_cost_per_call` (measured
    SLM output lengths where scored, else the logged ones; no fixed engineering cost). Calls without a
    known cost stay out of both sums (`calls_without_cost`). Agreement is only ever measured: an SLM-routed
    call counts as measured when `scores` holds it (`score_routed`, `slmlab.evaluate.run_experiments`),
    otherwise it is unmeasured and `slm_agreement` stays null.

    Args:
        calls: a call table (`call_id`, `session_id`, `messages`, responses, tokens, `cost_usd`, `by`).
        by: the column naming an agent; for tau2-bench use the agent calls and `by="model"`.
        scores: per-call SLM scores for one (model, experiment); None: no SLM evaluated.
        spec: `slmlab.savings.SelfHostedSLM` (default: its defaults, an L4 at 50% utilization).
        test_size: share of each agent's calls held out (approximate: sessions are not cut).
        seed: the split's seed; the same seed holds out the same calls, so saved scores stay valid.
        clusterer: an unfitted `TaskClusterer` (copied per agent); default `TaskClusterer(embedder="tfidf")`.
        router: an unfitted router (copied per agent); default `ClusterRouter()`.
        min_suitability: clusters at or above this suitability are sent to the SLM.
        min_calls: agents with fewer training calls are not clustered (everything stays on the LLM).

    Returns:
        An `AgentReplay`; its `table` has one row per agent: log_calls, log_cost_usd and
        log_calls_without_cost (the whole log), train_calls, clusters, swap_clusters, then over the
        held-out calls: calls, calls_without_cost, calls_cost_estimated, cost_before_usd, cost_after_usd,
        saved_usd, saved_share, slm_calls, slm_share, measured_calls, unmeasured_calls, slm_agreement.

    Example:
        >>> agents = tau2_calls.filter(pl.col("agent") == "agent")  # doctest: +SKIP
        >>> result = replay_by_agent(agents, by="model")  # doctest: +SKIP
        >>> scores = score_routed(result, "smollm2-135m", n_per_cluster=2, max_clusters=3)  # doctest: +SKIP
        >>> result.with_scores(scores).table  # doctest: +SKIP
    """
    from slmlab.cluster import TaskClusterer, describe_clusters
    from slmlab.runtime.chat_format import tools_from_calls
    from slmlab.savings import SelfHostedSLM
    from slmlab.specialize.splits import check_leakage, split_by_session

    if by not in calls.columns:
        raise ValueError(f"the call table has no {by!r} column to group agents by")
    calls = calls.with_columns(pl.col(by).cast(pl.String).fill_null("unknown"))
    cost = pl.col("cost_usd").cast(pl.Float64)
    log = (
        calls.group_by(by)
        .agg(
            pl.len().cast(pl.Int64).alias("log_calls"),
            cost.sum().alias("log_cost_usd"),
            cost.is_null().sum().cast(pl.Int64).alias("log_calls_without_cost"),
        )
        .sort(by)
    )
    template_c = clusterer if clusterer is not None else TaskClusterer(embedder="tfidf")
    template_r = router if router is not None else ClusterRouter()
    held, routers, tables, tools, fits = {}, {}, {}, {}, []
    for agent in log.get_column(by).to_list():
        part = calls.filter(pl.col(by) == agent)
        split = split_by_session(part, test_size=test_size, val_size=0.0, seed=seed, dedupe=False)
        check_leakage(split)
        train = split.filter(pl.col("split") == "train")
        held[agent] = split.filter(pl.col("split") == "test")
        tools[agent] = tools_from_calls(train.get_column("response_tool_calls").to_list())
        table = pl.DataFrame(schema={"cluster": pl.Int32, "swap": pl.Boolean})
        if train.height >= max(min_calls, 2):
            labels = copy.deepcopy(template_c).fit(train).labels_
            train = train.with_columns(pl.Series("cluster", labels, dtype=pl.Int32))
            table = describe_clusters(train)
            suitable = (pl.col("cluster") >= 0) & (pl.col("suitability") >= min_suitability)
            table = table.with_columns(suitable.alias("swap"))
        swap = table.filter(pl.col("swap")).get_column("cluster").to_list()
        if swap and table.height >= 2:  # the router needs two classes (noise counts as one)
            routers[agent] = copy.deepcopy(template_r).fit(train, routes=swap)
        else:  # nothing to swap: a router that keeps every call on the LLM
            routers[agent] = RandomRouter(swap_only=True)
        tables[agent] = table
        fits.append(
            {
                by: agent,
                "train_calls": train.height,
                "clusters": int((table.get_column("cluster") >= 0).sum()),
                "swap_clusters": len(swap),
            }
        )
    fit_info = pl.DataFrame(
        fits, schema={by: pl.String, "train_calls": pl.Int64, "clusters": pl.Int64, "swap_clusters": pl.Int64}
    )
    result = AgentReplay(
        by=by, held_out=held, routers=routers, clusters=tables, tools=tools,
        agents=log.join(fit_info, on=by, how="left"),
        spec=spec if spec is not None else SelfHostedSLM(),
    )  # fmt: skip
    return result.with_scores(scores)
