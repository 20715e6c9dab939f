"""Reader `tau2_bench`: tau2-bench simulation results (`{"timestamp", "info", "tasks", "simulations"}`).

A record is one simulation. Its calls:
* **agent calls** (agent "agent", model `info.agent_info.llm`): every assistant message except the fixed
  greeting that opens a simulation without usage ("Hi! How can I help you today?"). Files without usage
  (gpt-oss LangChain, ToolOrchestra) still count their assistant messages as calls, with tokens counted.
  The prompt is the domain policy as system message plus the agent's view of every earlier message: user
  text, its own answers and tool calls, and the results of its tools (not the user's phone tools).
* **user-simulator calls** (agent "user_simulator", model `info.user_info.llm`): every user message. The
  prompt is the simulation guidelines + the task's user scenario, then the conversation with roles
  flipped (the agent speaks as "user"), with the user's own tool calls and results (telecom).

Tokens come from `usage`, cost from `cost` (a logged 0.0 stays 0.0), latency from the difference between a
message's timestamp and the previous one (`timestamp` = that previous time, when the call started).
Tool-call arguments are dicts in the file and become JSON strings. ToolOrchestra's agent messages are JSON
strings `{"message": ...}` and are kept verbatim as text. `llm_args` (which may hold API keys) is never
copied.

Usage:
    >>> from slmlab.collect import ingest
    >>> ingest("tau2-bench/").summary.formats  # doctest: +SKIP
    {'tau2_bench': 10209}
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from slmlab.collect.base import (
    BadRecord,
    Context,
    Reader,
    Record,
    as_float,
    as_int,
    load_document,
    openai_tool_calls,
    read_head,
    register_reader,
    response_fields,
    span_ms,
    to_json,
    to_openai_tool_calls,
)


def _scenario_text(task: dict[str, Any] | None) -> str:
    if not task:
        return ""
    scen = task.get("user_scenario") or {}
    instr = scen.get("instructions")
    parts = []
    if scen.get("persona"):
        parts.append(f"Persona:\n{scen['persona']}")
    if isinstance(instr, dict):
        for k in ("domain", "reason_for_call", "known_info", "unknown_info", "task_instructions"):
            if instr.get(k):
                parts.append(f"{k.replace('_', ' ').capitalize()}:\n{instr[k]}")
    elif instr:
        parts.append(str(instr))
    return "\n\n".join(parts)


class Tau2BenchReader(Reader):
    """tau2-bench results: agent and user-simulator calls of every simulation."""

    name = "tau2_bench"
    priority = 20
    description = "tau2-bench simulation results ({timestamp, info, tasks, simulations})"

    def sniff(self, path: Path, head: str) -> bool:
        h = head.lstrip()
        return h.startswith("{") and '"agent_info"' in h and ('"user_info"' in h or '"simulations"' in h)

    def records(self, ctx: Context) -> Iterator[Record]:
        doc, err = load_document(ctx.path)
        if err:
            yield Record(1, error=err, raw=read_head(ctx.path, 20_000))
            return
        if not isinstance(doc, dict) or not isinstance(doc.get("simulations"), list):
            yield Record(
                1, error="not a tau2-bench results object (no simulations list)", raw=str(doc)[:20_000]
            )
            return
        ctx.state["info"] = doc.get("info") if isinstance(doc.get("info"), dict) else {}
        ctx.state["tasks"] = {str(t.get("id")): t for t in doc.get("tasks") or [] if isinstance(t, dict)}
        for i, sim in enumerate(doc["simulations"], start=1):
            yield Record(i, obj=sim)

    def calls(self, record: Any, ctx: Context, line: int) -> list[dict[str, Any]]:
        if not isinstance(record, dict):
            raise BadRecord(f"simulation is a {type(record).__name__}, expected an object")
        msgs = record.get("messages")
        if not isinstance(msgs, list) or not all(isinstance(m, dict) for m in msgs):
            raise BadRecord("simulation.messages is not a list of message objects")
        info = ctx.state["info"]
        agent_llm = (info.get("agent_info") or {}).get("llm") or "unknown"
        user_llm = (info.get("user_info") or {}).get("llm") or "unknown"
        env = info.get("environment_info") or {}
        policy = env.get("policy") or ""
        tool_defs = env.get("tool_defs")
        tools = to_json(tool_defs) if tool_defs else None
        task = ctx.state["tasks"].get(str(record.get("task_id")))
        guidelines = (info.get("user_info") or {}).get("global_simulation_guidelines") or ""
        user_system = guidelines + (
            "\n\n<scenario>\n" + _scenario_text(task) + "\n</scenario>" if task else ""
        )
        stem = ctx.path.name.split(".")[0]
        sim_id = record.get("id") or f"sim{line}"
        session = f"{stem}/{sim_id}"
        reward = as_float((record.get("reward_info") or {}).get("reward"))
        meta = {
            "domain": env.get("domain_name"),
            "task_id": record.get("task_id"),
            "trial": record.get("trial"),
            "simulation_id": sim_id,
            "termination_reason": record.get("termination_reason"),
        }
        agent_view: list[dict[str, Any]] = [{"role": "system", "content": policy}] if policy else []
        user_view: list[dict[str, Any]] = [{"role": "system", "content": user_system}] if user_system else []
        rows: list[dict[str, Any]] = []
        for i, m in enumerate(msgs):
            role = m.get("role")
            tcs = openai_tool_calls(m.get("tool_calls"))
            content = m.get("content")
            is_call = role == "user" or (role == "assistant" and not (i == 0 and not m.get("usage")))
            if is_call:
                usage = m.get("usage") if isinstance(m.get("usage"), dict) else {}
                prev_ts = msgs[i - 1].get("timestamp") if i else None
                raw = m.get("raw_data") if isinstance(m.get("raw_data"), dict) else {}
                is_agent = role == "assistant"
                errors = m.get("errors")
                rows.append(
                    {
                        "call_id": f"{session}/{m.get('turn_idx', i)}",
                        "session_id": session,
                        "agent": "agent" if is_agent else "user_simulator",
                        "timestamp": prev_ts or m.get("timestamp"),
                        "model": agent_llm if is_agent else user_llm,
                        "messages": to_json(agent_view if is_agent else user_view),
                        "tools": tools if is_agent else None,
                        **response_fields(content, tcs),
                        "input_tokens": as_int(usage.get("prompt_tokens")),
                        "output_tokens": as_int(usage.get("completion_tokens")),
                        "latency_ms": span_ms(prev_ts, m.get("timestamp")) if prev_ts else None,
                        "cost_usd": as_float(m.get("cost")),
                        "status": "error" if errors else "ok",
                        "error": to_json(errors) if errors else None,
                        "finish_reason": raw.get("finish_reason"),
                        "reward": reward,
                        "source_line": line,
                        "metadata": to_json(meta | {"turn_idx": m.get("turn_idx", i)}),
                    }
                )
            # Extend both views with this message as each side saw it.
            if role == "assistant":
                am: dict[str, Any] = {"role": "assistant", "content": content}
                if tcs:
                    am["tool_calls"] = to_openai_tool_calls(tcs)
                agent_view.append(am)
                if content:
                    user_view.append({"role": "user", "content": content})
            elif role == "user":
                um: dict[str, Any] = {"role": "assistant", "content": content}
                if tcs:
                    um["tool_calls"] = to_openai_tool_calls(tcs)
                user_view.append(um)
                if content:
                    agent_view.append({"role": "user", "content": content})
            elif role == "tool":
                tm = {"role": "tool", "tool_call_id": m.get("id"), "content": content}
                (user_view if m.get("requestor") == "user" else agent_view).append(tm)
        return rows


register_reader(Tau2BenchReader)
