"""Benchmark: slmlab's clustering vs BERTopic's default pipeline on the same precomputed embeddings.

Two workloads, each run in one process:
- tau-bench airline (2,454 real GPT-4o calls from ../shared; label = the action taken), MiniLM text blocks;
- N generated calls from `slmlab.demo.synth` (default 100,000; label = the hidden sub-task), TF-IDF + SVD text
  blocks (MiniLM on 100k texts takes too long on a laptop CPU).

Both pipelines get the same matrix: slmlab's feature blocks for `--features` (embeddings of the last user
turn and last message, one-hots of template / last role+tool, and offline the action). BERTopic runs
its defaults (UMAP 5-d + HDBSCAN + c-TF-IDF) with `min_topic_size` = slmlab's `min_cluster_size`;
slmlab runs `TaskClusterer` (PCA 10-d + HDBSCAN + the prompt-only assigner) and `describe_clusters`.
BERTopic is also run on the embedding of the message before each call alone (the usual setup), for
reference. Prints time and ARI/NMI per pipeline and the ratios.

Usage:
    .venv/bin/python benchmarks/bench_cluster.py            # both workloads
    .venv/bin/python benchmarks/bench_cluster.py --n 20000  # a smaller generated workload
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl

from slmlab.cluster import FeatureEncoder, TaskClusterer, call_states, cluster_quality, describe_clusters
from slmlab.cluster.model import attach_truth
from slmlab.collect import ingest
from slmlab.cluster.embed import select_embedder
from slmlab.schema import action_expr

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "agent-logs"


def run_bertopic(docs: list[str], x: np.ndarray, min_size: int) -> tuple[np.ndarray, float]:
    from bertopic import BERTopic

    t = time.perf_counter()
    topics, _ = BERTopic(min_topic_size=min_size, verbose=False).fit_transform(docs, embeddings=x)
    return np.asarray(topics), time.perf_counter() - t


def run_slmlab(calls: pl.DataFrame, **kw) -> tuple[np.ndarray, float]:
    t = time.perf_counter()
    tc = TaskClusterer(**kw).fit(calls)
    describe_clusters(calls.with_columns(pl.Series("cluster", tc.labels_)), vectors=tc.vectors_)
    return tc.labels_, time.perf_counter() - t


def compare(name: str, calls: pl.DataFrame, embedder: str, features: str) -> None:
    truth = calls["truth"].to_numpy()
    mcs = max(10, calls.height // 100)
    states = call_states(calls, 500)
    docs = states["last_message"].to_list()
    t = time.perf_counter()
    enc = FeatureEncoder(features, embedder, max_chars=500)
    x = enc.fit_transform(calls, states)
    t_embed = time.perf_counter() - t
    kw = {"features": features, "embedder": embedder, "min_cluster_size": mcs}
    print(
        f"\n== {name}: {calls.height:,} calls, {len(set(truth))} labels, features={features}, embedder={embedder}"
    )
    print(f"   feature matrix {x.shape} built once in {t_embed:.1f}s (BERTopic gets it precomputed)")
    rows = []
    # slmlab's time includes its own feature encoding: cache look-ups for MiniLM (the same vectors BERTopic
    # gets), a deterministic re-fit of the same TF-IDF bases for "tfidf", plus the prompt-only assigner.
    labels, t_slm = run_slmlab(calls, **kw)
    rows.append(("slmlab TaskClusterer", labels, t_slm))
    topics, t_bt = run_bertopic(docs, x, mcs)
    rows.append(("BERTopic (same features)", topics, t_bt))
    emb = select_embedder(embedder, max_chars=500)
    if embedder == "tfidf":
        emb.fit(docs)
    x_last = emb.embed(docs)
    topics_last, t_bt_last = run_bertopic(docs, x_last, mcs)
    rows.append(("BERTopic (last message only)", topics_last, t_bt_last))
    for label, lab, secs in rows:
        q = cluster_quality(lab, truth)
        print(
            f"   {label:30s} time {secs:7.1f}s  ARI {q['ari']:.3f}  NMI {q['nmi']:.3f}  "
            f"hom {q['homogeneity']:.3f}  clusters {q['n_clusters']:4d}  noise {q['noise_share']:.2f}"
        )
    q_s, q_b = cluster_quality(labels, truth), cluster_quality(topics, truth)
    print(
        f"   ratio slmlab/BERTopic: time {t_slm / t_bt:.2f}x, ARI {q_s['ari'] / max(q_b['ari'], 1e-9):.2f}x "
        f"(goal: time <= 0.5x at ARI >= 1x)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="generated calls")
    ap.add_argument("--features", default="prompt_state+action")
    ap.add_argument("--skip-tau", action="store_true")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    if not args.skip_tau and SHARED.is_dir():
        calls = ingest(SHARED / "tau-bench-airline", prices=False, count_missing_tokens=False).calls
        compare(
            "tau-bench airline",
            calls.with_columns(action_expr().alias("truth")),
            "all-minilm-l6-v2",
            args.features,
        )
    elif not args.skip_tau:
        print("../shared/data/agent-logs not found: skipping tau-bench")
    if args.n:
        from slmlab.demo.synth import load_demo_labels, write_demo_logs

        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            path = write_demo_logs(tmp, n_calls=args.n, seed=1)
            calls = ingest(path, prices=False, count_missing_tokens=False).calls
            calls = attach_truth(calls, load_demo_labels(Path(tmp) / "demo_labels.csv"))
            print(f"\ngenerated and ingested {calls.height:,} calls in {time.perf_counter() - t:.1f}s")
        compare(f"synth {args.n:,}", calls, "tfidf", args.features)


if __name__ == "__main__":
    main()
