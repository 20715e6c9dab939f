"""Curate benchmark: recall per kind on gold sets the redactor was not seeded with, false positives, speed.

Runs the pattern back-end (the speed baseline and the pre-NER default) and the NER default on the same
inputs in one run and prints the ratio:

1. tau-bench airline (2,454 calls): seconds per back-end and the time ratio (goal: NER within 3x).
2. tau-bench + tau2-bench user profiles: every personal field of every profile a tool returned, searched
   for everywhere in the curated calls (free-text turns included); recall per kind, Wilson 95% CI.
3. generated free text: dev templates, the earlier held-out templates, and the thirteen blind template sets by authors who
   never read the rules (plus how many of the non-personal values written in them survive).
4. Presidio's published context sentences and its Synthea FHIR Patient.
5. false positives on clean text: redactions inside the agent policy (system prompt, no personal data),
   and flight-search tool arguments changed (and whether each still parses as JSON).

Usage:
    .venv/bin/python benchmarks/bench_curate.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import polars as pl

from slmlab.collect import ingest
from slmlab.curate import CurateConfig, curate
from slmlab.curate.gold import (
    GOLD_SCHEMA,
    KEEP_VALUES,
    PRESIDIO_CONTEXT_SENTENCES,
    SYNTHEA_GOLD,
    SYNTHEA_PATIENT,
    TEMPLATE_SETS,
    generated_calls,
    leak_table,
    leaks,
    profile_gold,
)
from slmlab.schema import conform

LOGS = Path(__file__).resolve().parents[2] / "shared" / "data" / "agent-logs"
BACKENDS = ("patterns", "ner")
# The curate step before NER, context rules and the two-pass engine (the parent of the commit that added
# them): loaded from git into a private package so "today's time" is measured in the same run.
BEFORE = "69a7ff880c1ff28e4dcc95f4ff08a94518a0bba2"


def _curate_before():
    """`curate` and `CurateConfig` as they were at `BEFORE`, or None where git or the commit is missing."""
    import importlib
    import subprocess
    import sys
    import tempfile

    root = Path(__file__).resolve().parents[1]
    pkg = Path(tempfile.mkdtemp()) / "_curate_before"
    pkg.mkdir()
    try:
        for name in ("__init__", "core", "filters", "redact"):
            src = subprocess.run(["git", "-C", str(root), "show", f"{BEFORE}:slmlab/curate/{name}.py"],
                                 check=True, capture_output=True, text=True).stdout  # fmt: skip
            (pkg / f"{name}.py").write_text(src.replace("slmlab.curate", "_curate_before"))
    except (OSError, subprocess.CalledProcessError):
        return None
    sys.path.insert(0, str(pkg.parent))
    mod = importlib.import_module("_curate_before")
    return mod.curate, mod.CurateConfig


def _cfg(redactor: str, **kw) -> CurateConfig:
    return CurateConfig(salt="bench", redactor=redactor, **kw)


def _show(title: str, tables: dict[str, pl.DataFrame]) -> None:
    print(f"\n## {title}")
    joined = None
    for name, t in tables.items():
        t = t.select("kind", "values", pl.col("left").alias(f"left_{name}"),
                     pl.col("recall").round(4).alias(f"recall_{name}"),
                     pl.format("[{}, {}]", pl.col("ci_low").round(3), pl.col("ci_high").round(3)).alias(f"ci95_{name}"))  # fmt: skip
        joined = t if joined is None else joined.join(t.drop("values"), on="kind", how="full", coalesce=True)
    with pl.Config(tbl_rows=40, tbl_width_chars=200):
        print(joined)


def _rows(sentences: list[tuple[str, str]]) -> pl.DataFrame:
    rows = []
    for i, (kind_text, tool) in enumerate(sentences):
        msgs = [{"role": "user", "content": kind_text}]
        if tool:
            msgs.append({"role": "tool", "tool_call_id": f"c{i}", "content": tool})
        rows.append({"call_id": f"p{i}", "session_id": f"p{i}", "step": 0, "agent": "a", "model": "m",
                     "messages": json.dumps(msgs), "response_text": "ok", "status": "ok",
                     "source_format": "published", "source_file": "presidio", "source_line": i})  # fmt: skip
    return conform(pl.DataFrame(rows))


def main(quick: bool, timing_only: bool = False, skip_profiles: bool = False) -> None:
    print(
        f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared with other jobs)"
    )
    tau = LOGS / "tau-bench-airline" / "gpt-4o-airline.json"
    tau2 = sorted((LOGS / "tau2-bench").glob("*.json"))
    if not tau.exists():
        print("shared agent logs absent; skipping the tau sections")
    else:
        calls = ingest(tau, prices=False, count_missing_tokens=False, quarantine="/tmp/bench_q.jsonl").calls
        from slmlab.curate.ner import load_spacy

        t0 = time.perf_counter()
        load_spacy()
        t_load = time.perf_counter() - t0
        before = _curate_before()
        times, results = {}, {}
        for _rep in range(2):  # twice, alternating, to see the noise of the shared cores
            if before is not None:
                t0 = time.perf_counter()
                old = before[0](calls, before[1](salt="bench"))
                times.setdefault("before", []).append(time.perf_counter() - t0)
            for b in BACKENDS:
                t0 = time.perf_counter()
                results[b] = curate(calls, _cfg(b))
                times.setdefault(b, []).append(time.perf_counter() - t0)
        print(
            f"\n## 1. tau-bench airline, {calls.height} calls (best of 2 runs each; spaCy model load {t_load:.1f} s, once per process)"
        )
        if before is not None:
            print(f"before    {min(times['before']):7.1f} s  runs {[round(t, 1) for t in times['before']]}  "
                  f"redactions {old.summary['redactions_by_entity']}")  # fmt: skip
        for b in BACKENDS:
            print(f"{b:9s} {min(times[b]):7.1f} s  runs {[round(t, 1) for t in times[b]]}  "
                  f"redactions {results[b].summary['redactions_by_entity']}")  # fmt: skip
        base = min(times["before"]) if before is not None else min(times["patterns"])
        print(f"ratio ner / before: {min(times['ner']) / base:.2f}x (goal <= 3x); with the model load "
              f"{(min(times['ner']) + t_load) / base:.2f}x; patterns / before: {min(times['patterns']) / base:.2f}x")  # fmt: skip

        if timing_only:
            return
        files = [tau] + (tau2[:3] if quick else tau2) if not skip_profiles else []
        gold = profile_gold(files)
        tables = {b: [] for b in BACKENDS}
        for f in files:
            c = ingest(f, prices=False, count_missing_tokens=False, quarantine="/tmp/bench_q.jsonl").calls
            g = gold.filter(pl.col("source") == f.name)
            for b in BACKENDS:
                cur = results[b].calls if f == tau else curate(c, _cfg(b)).calls
                tables[b].append(leak_table(c, cur, g).with_columns(pl.lit(f.name).alias("file")))
        merged = {}
        for b, parts in tables.items() if files else []:
            t = pl.concat(parts).group_by("kind").agg(pl.col("values").sum(), pl.col("left").sum())
            merged[b] = _recall(t)
        if files:
            _show(
                f"2. tau / tau2 profile gold set ({len(files)} files, {gold.height} distinct values)", merged
            )

        # 5. false positives on clean text
        policy = json.loads(calls["messages"][0])[0]["content"]
        print("\n## 5. false positives on clean text")
        key = ["source_file", "source_line", "step"]
        for b in BACKENDS:
            cur = results[b].calls
            new_policy = json.loads(cur["messages"][0])[0]["content"]
            pairs = cur.select(*key, "response_tool_calls").join(
                calls.select(*key, pl.col("response_tool_calls").alias("raw")), on=key
            )
            changed, broken, n = 0, 0, 0
            for raw_tc, new_tc in zip(
                pairs["raw"].to_list(), pairs["response_tool_calls"].to_list(), strict=True
            ):
                if not raw_tc or not new_tc or '"search_' not in raw_tc:
                    continue
                for a, z in zip(json.loads(raw_tc), json.loads(new_tc), strict=True):
                    n += 1
                    changed += a["arguments"] != z["arguments"]
                    try:
                        json.loads(z["arguments"])
                    except ValueError:
                        broken += 1
            audit = results[b].audit
            sys_fp = (
                audit.filter(pl.col("path").str.starts_with("messages[0].content")).select("rule").unique()
            )
            print(f"{b:9s} policy text ({len(policy)} chars): {'unchanged' if new_policy == policy else 'CHANGED'} "
                  f"(rules firing there: {sys_fp['rule'].to_list()}); flight-search arguments changed "
                  f"{changed}/{n}, not valid JSON {broken}/{n}")  # fmt: skip

    n = 150 if quick else 600
    for which in TEMPLATE_SETS:
        gcalls, ggold = generated_calls(n=n, seed=7, templates=which)
        curated = {b: curate(gcalls, _cfg(b, drop_near_duplicates=False)).calls for b in BACKENDS}
        _show(f"3. generated free text, {which} templates, {n} sessions",
              {b: leak_table(gcalls, c, ggold) for b, c in curated.items()})  # fmt: skip
        if which in KEEP_VALUES:
            keep = pl.DataFrame(
                [("keep", v, which) for v in KEEP_VALUES[which]], schema=GOLD_SCHEMA, orient="row"
            )
            present = leaks(gcalls, keep)
            for b, c in curated.items():
                gone = sorted(set(present["value"]) - set(leaks(c, present)["value"]))
                print(f"{b:9s} non-personal values written in the {which} templates: {present.height - len(gone)}"
                      f"/{present.height} kept; removed: {gone}")  # fmt: skip

    sents = [(s, None) for _, s, _ in PRESIDIO_CONTEXT_SENTENCES]
    sents.append(("Here is the patient record you asked for.", json.dumps(SYNTHEA_PATIENT)))
    pcalls = _rows(sents)
    pgold = pl.DataFrame(
        [(k, v, "presidio") for k, _, vs in PRESIDIO_CONTEXT_SENTENCES for v in vs]
        + [(k, v, "synthea") for k, v in SYNTHEA_GOLD],
        schema=GOLD_SCHEMA, orient="row",
    ).unique(["kind", "value"])  # fmt: skip
    _show("4. Presidio context sentences + Synthea FHIR Patient (MIT / Apache-2.0)",
          {b: leak_table(pcalls, curate(pcalls, _cfg(b, drop_near_duplicates=False, drop_exact_duplicates=False)).calls, pgold)
           for b in BACKENDS})  # fmt: skip


def _recall(t: pl.DataFrame) -> pl.DataFrame:
    from slmlab.curate.gold import wilson

    ci = [wilson(v - k, v) for v, k in zip(t["values"], t["left"], strict=True)]
    return t.with_columns(
        ((pl.col("values") - pl.col("left")) / pl.col("values")).alias("recall"),
        pl.Series("ci_low", [c[0] for c in ci]),
        pl.Series("ci_high", [c[1] for c in ci]),
    ).sort("kind")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="3 tau2 files and 150 generated sessions")
    ap.add_argument("--timing-only", action="store_true", help="section 1 only")
    ap.add_argument("--skip-profiles", action="store_true", help="skip section 2 (the slowest)")
    args = ap.parse_args()
    main(args.quick, args.timing_only, args.skip_profiles)
