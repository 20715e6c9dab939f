"""Generated agent logs: the bundled demo data every notebook runs on when you bring no logs of your own.

A fictional company ("Northwind Travel & Retail") runs a multi-agent assistant. Sessions go through an
intent classifier, a planner, a tool-calling worker, a summarizer, a coder and a final responder, over two or
three OpenAI models. Each call is written as one JSONL line in the request/response shape that logging
proxies store (and `slmlab.collect`'s `openai` reader parses):

    {"request": {"model", "messages", "tools"?, "temperature"},
     "response": {"id", "object", "created", "model", "choices": [...], "usage": {...}},
     "metadata": {"agent", "session_id", "step"}, "latency_ms": 812.5, "timestamp": "2026-11-02T09:14:03.120Z"}

What makes it realistic enough to exercise the pipeline:

* 12 recurring sub-tasks (the hidden ground truth, written to a separate CSV and never to the log) over 6
  agents; the worker, summarizer and coder each serve several sub-tasks from one system prompt, so a
  template is not a label and clustering has real work to do. System prompts come in two versions per
  agent (a prompt change mid-week) with per-call fillers (date, customer tier, locale).
* Token counts follow the text (about 4 characters per token, plus chat and tool-schema overhead); cached
  prompt tokens follow OpenAI's rule (prompts of 1,024+ tokens, 128-token steps); latency follows tokens
  and model speed with log-normal noise and a slow tail. No per-call cost is logged: the reader estimates it.
* About 2.5% failed calls (rate limits, timeouts, server errors, context overflows; each followed by its
  retry) and about 2% exact duplicates (a retry logged twice: same prompt, same answer, new id).
* Seeded fake personal data and secrets in prompts and tool arguments: emails, phone numbers, Luhn-valid
  card numbers, IBANs with valid check digits, SSNs, IP addresses, street addresses, dates of birth,
  API keys (`sk-proj-...`, `AKIA...`, `ghp_...`) and JWTs, for the curate step to find.

Modules: `company` (sub-tasks, agents, models, system prompts, tool schemas), `fake` (personal data and
secrets, card/IBAN checksums), `sessions` (one session's state, customer messages), `support` and `content`
(the session kinds), `records` (the generator: calls to log records); this module is the public API.

Everything is deterministic for a seed. 3,000 calls take well under 2 s; `iter_agent_logs` streams any
number of calls (memory stays flat), e.g. 1,000,000 calls for the ingest benchmark.

Usage:
    >>> from slmlab.demo.synth import generate_agent_logs
    >>> logs = generate_agent_logs(20, seed=0)
    >>> len(logs), sorted(logs[0])
    (20, ['latency_ms', 'metadata', 'request', 'response', 'timestamp'])
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

from slmlab.config import REPO_ROOT, cache_dir
from slmlab.demo.company import (
    AGENT_MODEL,
    AGENT_TEMPERATURE,
    DUPLICATE_RATE,
    ERROR_RATE,
    MODELS,
    START,
    TASKS,
    ModelProfile,
)
from slmlab.demo.fake import iban_valid, luhn_valid
from slmlab.demo.records import Generator

LOG_FILE = "demo_agent_logs.jsonl"
LABEL_FILE = "demo_labels.csv"


# ---------------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------------
def iter_labelled_logs(
    n_calls: int = 3000, seed: int = 0, days: int = 7
) -> Iterator[tuple[dict[str, Any], str]]:
    """Stream `(log_record, task_label)` pairs; the label is the hidden ground-truth sub-task.

    Args:
        n_calls: number of calls (log lines) to produce; the last session may be cut short.
        seed: everything (texts, ids, timestamps, errors) is a function of the seed.
        days: the calendar span the sessions are spread over, starting Monday 2026-11-02.

    Example:
        >>> rec, label = next(iter_labelled_logs(1, seed=0))
        >>> label in TASKS
        True
    """
    if n_calls < 0:
        raise ValueError(f"n_calls must be >= 0, got {n_calls}")
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    return Generator(n_calls, seed, days).labelled_records()


def iter_agent_logs(n_calls: int = 3000, seed: int = 0, days: int = 7) -> Iterator[dict[str, Any]]:
    """Stream log records (one dict per JSONL line), without the hidden labels; memory stays flat.

    Example:
        >>> sum(1 for _ in iter_agent_logs(50, seed=1))
        50
    """
    return (rec for rec, _ in iter_labelled_logs(n_calls, seed, days))


def generate_agent_logs(n_calls: int = 3000, seed: int = 0, days: int = 7) -> list[dict[str, Any]]:
    """All log records of a generated agent workload as a list (see the module docstring for the shape).

    Example:
        >>> logs = generate_agent_logs(5, seed=0)
        >>> logs[0]["metadata"]["agent"]
        'intent_classifier'
    """
    return list(iter_agent_logs(n_calls, seed, days))


def write_demo_logs(out_dir: str | Path, n_calls: int = 3000, seed: int = 0, days: int = 7) -> Path:
    """Write `demo_agent_logs.jsonl` and `demo_labels.csv` (`call_id,task_label`) into `out_dir`.

    Streams, so `n_calls=1_000_000` works in constant memory. Returns the path of the JSONL file.

    Example:
        >>> path = write_demo_logs(tmp_dir, n_calls=10)  # doctest: +SKIP
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log_path, label_path = out / LOG_FILE, out / LABEL_FILE
    tmp_log, tmp_lab = log_path.with_suffix(".tmp"), label_path.with_suffix(".tmp")
    with tmp_log.open("w", encoding="utf-8") as fl, tmp_lab.open("w", encoding="utf-8", newline="") as fc:
        writer = csv.writer(fc, lineterminator="\n")
        writer.writerow(["call_id", "task_label"])
        for rec, label in iter_labelled_logs(n_calls, seed, days):
            fl.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
            writer.writerow([rec["response"]["id"], label])
    tmp_log.replace(log_path)
    tmp_lab.replace(label_path)
    return log_path


def demo_logs_path() -> Path:
    """The bundled demo logs: the repository's `data/demo_agent_logs.jsonl`, else generated into the cache.

    Example:
        >>> demo_logs_path().name
        'demo_agent_logs.jsonl'
    """
    bundled = REPO_ROOT / "data" / LOG_FILE
    if bundled.exists() and (bundled.parent / LABEL_FILE).exists():
        return bundled
    target = cache_dir("demo") / LOG_FILE
    if not (target.exists() and (target.parent / LABEL_FILE).exists()):
        write_demo_logs(target.parent)
    return target


def load_demo_labels(path: str | Path | None = None) -> pl.DataFrame:
    """The hidden ground truth of the demo logs: `call_id, task_label`, one row per call.

    Only for measuring clustering quality (ARI/NMI); never feed it to the pipeline.

    Example:
        >>> load_demo_labels().columns
        ['call_id', 'task_label']
    """
    path = Path(path) if path is not None else demo_logs_path().parent / LABEL_FILE
    return pl.read_csv(path, schema={"call_id": pl.String, "task_label": pl.String})


__all__ = [
    "AGENT_MODEL",
    "AGENT_TEMPERATURE",
    "DUPLICATE_RATE",
    "ERROR_RATE",
    "LABEL_FILE",
    "LOG_FILE",
    "MODELS",
    "START",
    "TASKS",
    "ModelProfile",
    "demo_logs_path",
    "generate_agent_logs",
    "iban_valid",
    "iter_agent_logs",
    "iter_labelled_logs",
    "load_demo_labels",
    "luhn_valid",
    "write_demo_logs",
]
