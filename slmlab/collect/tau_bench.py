"""Reader `tau_bench`: tau-bench historical trajectories (`historical_trajectories/<model>-<domain>.json`).

A JSON list of `{"task_id", "trial", "reward", "info", "traj"}`; `traj` is an OpenAI message list. Each
assistant message is one call whose prompt is every message before it. The model comes from the file name
(`gpt-4o-airline.json` → `gpt-4o`); the session is task + trial; the agent is "agent". No tokens,
timestamps or tool schemas are logged. A record is one trajectory.

Usage:
    >>> from slmlab.collect import ingest
    >>> ingest("tau-bench-airline/gpt-4o-airline.json").summary.calls  # doctest: +SKIP
    2454
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slmlab.collect.base import (
    BadRecord,
    Context,
    Reader,
    as_float,
    model_from_filename,
    openai_tool_calls,
    register_reader,
    require_messages,
    response_fields,
    to_json,
)


class TauBenchReader(Reader):
    """tau-bench trajectories: one call per assistant message."""

    name = "tau_bench"
    priority = 20
    description = "tau-bench historical trajectories (JSON list of {task_id, trial, reward, traj})"

    def sniff(self, path: Path, head: str) -> bool:
        return head.lstrip().startswith("[") and '"traj"' in head and '"task_id"' in head

    def calls(self, record: Any, ctx: Context, line: int) -> list[dict[str, Any]]:
        if not isinstance(record, dict):
            raise BadRecord(f"trajectory is a {type(record).__name__}, expected an object")
        traj = require_messages(record.get("traj"), "traj")
        stem = ctx.path.name.split(".")[0]
        model = model_from_filename(stem)
        task, trial = record.get("task_id"), record.get("trial")
        domain = stem[len(model) :].strip("-_") or None
        session = f"{stem}/task{task}-trial{trial}"
        info = record.get("info") if isinstance(record.get("info"), dict) else {}
        meta = to_json(
            {
                "task_id": task,
                "trial": trial,
                "domain": domain,
                "user_id": (info.get("task") or {}).get("user_id"),
            }
        )
        rows = []
        step = 0
        for i, m in enumerate(traj):
            if m.get("role") != "assistant":
                continue
            tool_calls = openai_tool_calls(m.get("tool_calls"))
            rows.append(
                {
                    "call_id": f"{session}/{i}",
                    "session_id": session,
                    "step": step,
                    "agent": "agent",
                    "model": model,
                    "messages": to_json(traj[:i]),
                    **response_fields(m.get("content"), tool_calls),
                    "reward": as_float(record.get("reward")),
                    "source_line": line,
                    "metadata": meta,
                }
            )
            step += 1
        return rows


register_reader(TauBenchReader)
