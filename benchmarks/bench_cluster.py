"""Benchmark: `TaskClusterer()` defaults vs BERTopic on six log shapes, and the embedding speed-up.

The same defaults on every shape (no knob changes), each against ground truth:

| shape | source | truth |
|---|---|---|
| demo | `slmlab.demo.synth` (3,000 calls, 6 agents, 12 sub-tasks) | the hidden sub-task |
| tau-bench | ../shared tau-bench airline (2,454 GPT-4o calls, 14 tools) | the action (tool or respond) |
| tau2-bench | ../shared tau2-bench, every file (60 tools, six agents + user simulators), a seeded sample | the action |
| toolbench | ../shared ToolBench train_messages (52 calls) | the action |
| many-tool | `slmlab.demo.many_tools` (>200 functions, <=10 calls each, single-turn) | the function called |
| text-action | `slmlab.demo.text_actions` (10 templates, 5 models, tool calls written as text) | template x action |

Per shape, with a cold embedding cache (a fresh SLMLAB_CACHE), so times include embedding:
- slmlab: the cold embedding of its feature texts + `TaskClusterer().fit` (reading those vectors back from
  the cache) + `describe_clusters`;
- BERTopic (its default pipeline: UMAP 5-d, HDBSCAN min_topic_size=10, c-TF-IDF) on the same feature
  matrix slmlab clusters (embeddings of the last user turn and last message, one-hots of template, last
  role/tool and the action), and on the embedding of the last message alone (the usual setup); both are
  charged the embedding time.
ARI and NMI count unassigned calls as one more cluster (`cluster_quality`), with a 95% bootstrap CI on ARI.

`--embed` measures the embedder on the tau-bench texts: the previous path (input order, chunks of 64, fp32)
vs length-sorted batches in fp32 and the default (length-sorted, bf16 autocast where the CPU computes bf16
natively), alternated twice so that load from other jobs hits all, plus the cosine of the vectors.

Usage:
    .venv/bin/python benchmarks/bench_cluster.py                    # all six shapes, MiniLM
    .venv/bin/python benchmarks/bench_cluster.py --shapes many-tool text-action --embedder tfidf
    .venv/bin/python benchmarks/bench_cluster.py --embed            # embedding speed only
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "agent-logs"
SHAPES = ("demo", "tau-bench", "tau2-bench", "toolbench", "many-tool", "text-action")


def _truth_from_action(calls: pl.DataFrame) -> pl.DataFrame:
    from slmlab.schema import action_expr

    return calls.with_columns(action_expr().alias("truth"))


def load_shape(name: str, tau2_sample: int = 2000) -> pl.DataFrame | None:
    """The call table of one shape with a `truth` column, or None when its data is absent."""
    from slmlab.cluster.model import attach_truth
    from slmlab.collect import ingest

    def _read(path: Path) -> pl.DataFrame:
        return ingest(path, prices=False, count_missing_tokens=False).calls

    if name in ("tau-bench", "tau2-bench", "toolbench"):
        folder = (
            SHARED
            / {"tau-bench": "tau-bench-airline", "tau2-bench": "tau2-bench", "toolbench": "toolbench"}[name]
        )
        if not folder.is_dir():
            return None
        calls = _truth_from_action(_read(folder))
        if name == "tau2-bench" and calls.height > tau2_sample:
            calls = calls.sample(tau2_sample, seed=0).sort("call_id")
        return calls
    with tempfile.TemporaryDirectory() as tmp:
        if name == "demo":
            from slmlab.demo.synth import load_demo_labels, write_demo_logs

            path = write_demo_logs(tmp, n_calls=3000, seed=1)
            labels = load_demo_labels(Path(tmp) / "demo_labels.csv")
        elif name == "many-tool":
            from slmlab.demo.many_tools import LABEL_FILE, write_many_tool_logs

            path = write_many_tool_logs(tmp, seed=1)
            labels = pl.read_csv(
                Path(tmp) / LABEL_FILE, schema={"call_id": pl.String, "task_label": pl.String}
            )
        elif name == "text-action":
            from slmlab.demo.text_actions import LABEL_FILE, write_text_action_logs

            path = write_text_action_logs(tmp, seed=1)
            labels = pl.read_csv(
                Path(tmp) / LABEL_FILE, schema={"call_id": pl.String, "task_label": pl.String}
            )
        else:
            raise ValueError(f"unknown shape {name!r}; known: {', '.join(SHAPES)}")
        return attach_truth(_read(path), labels)


def ari_ci(labels: np.ndarray, truth: np.ndarray, n_boot: int = 200, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of ARI over calls."""
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(seed)
    n = len(labels)
    vals = [
        adjusted_rand_score(truth[idx], labels[idx]) for idx in (rng.integers(0, n, n) for _ in range(n_boot))
    ]
    return float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))


def _timed(fn: Callable[[], object]) -> tuple[object, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def run_shape(name: str, calls: pl.DataFrame, embedder: str | None) -> list[dict]:
    from bertopic import BERTopic

    from slmlab.cluster import FeatureEncoder, TaskClusterer, call_states, cluster_quality, describe_clusters
    from slmlab.cluster.embed import select_embedder
    from slmlab.cluster.features import DEFAULT_FEATURES, EMBED_MAX_CHARS

    truth = calls["truth"].to_numpy()
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        os.environ["SLMLAB_CACHE"] = cache  # cold: every text is embedded once, inside the timed region
        states = call_states(calls, EMBED_MAX_CHARS)
        x, t_x = _timed(
            lambda: FeatureEncoder(DEFAULT_FEATURES, embedder, max_chars=EMBED_MAX_CHARS).fit_transform(
                calls, states
            )
        )
        # slmlab re-reads the same vectors from the cache; it is charged the cold embedding time t_x.
        tc, t_slm = _timed(lambda: TaskClusterer(embedder=embedder).fit(calls))
        _, t_desc = _timed(lambda: describe_clusters(
            calls.with_columns(pl.Series("cluster", tc.labels_)), vectors=tc.vectors_))  # fmt: skip
        rows.append(("slmlab TaskClusterer()", tc.labels_, t_x + t_slm + t_desc, tc.confidence_))
        del os.environ["SLMLAB_CACHE"]
    docs = states["last_message"].to_list()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["SLMLAB_CACHE"] = cache
        emb = select_embedder(embedder, max_chars=EMBED_MAX_CHARS)
        emb.fit(docs)
        x_last, t_last = _timed(lambda: emb.embed(docs))
        del os.environ["SLMLAB_CACHE"]
    for label, mat, t_emb in (
        ("BERTopic (same features)", x, t_x),
        ("BERTopic (last message)", x_last, t_last),
    ):
        (topics, _), t_bt = _timed(lambda m=mat: BERTopic(verbose=False).fit_transform(docs, embeddings=m))
        rows.append((label, np.asarray(topics), t_emb + t_bt, None))
    print(f"   embedding (cold) {t_x:.1f}s of the features, {t_last:.1f}s of the last messages", flush=True)
    out = []
    for label, lab, secs, conf in rows:
        q = cluster_quality(lab, truth)
        lo, hi = ari_ci(np.asarray(lab), truth)
        out.append({"shape": name, "calls": calls.height, "labels": len(set(truth.tolist())), "method": label,
                    "ari": q["ari"], "ari_lo": lo, "ari_hi": hi, "nmi": q["nmi"], "clusters": q["n_clusters"],
                    "unassigned": q["noise_share"], "seconds": secs,
                    "mean_confidence": float(conf[lab >= 0].mean()) if conf is not None and (lab >= 0).any() else None})  # fmt: skip
    return out


def bench_embed(n: int = 1200, reps: int = 2) -> None:
    """Previous embedding path vs the current ones on tau-bench texts (cold, alternated)."""
    from slmlab.cluster.embed import SentenceTransformerEmbedder, _normalize
    from slmlab.cluster.features import EMBED_MAX_CHARS, call_states
    from slmlab.runtime.models import cpu_has_native_bf16

    calls = load_shape("tau-bench")
    if calls is None:
        print("tau-bench not found: skipping --embed")
        return
    st = call_states(calls, EMBED_MAX_CHARS)
    texts = sorted(set(st["last_user"].to_list() + st["last_message"].to_list()))
    rng = np.random.default_rng(0)
    # cut as the embedder cuts (its max_chars), so that the previous path embeds the same strings
    texts = [texts[i][:EMBED_MAX_CHARS] for i in rng.permutation(len(texts))[:n]]
    fp32 = SentenceTransformerEmbedder(max_chars=EMBED_MAX_CHARS, cache=False, precision="fp32")
    default = SentenceTransformerEmbedder(max_chars=EMBED_MAX_CHARS, cache=False)
    model = fp32._load()

    def previous() -> np.ndarray:  # the path before length batching: input order, chunks of 64
        out = [
            model.encode(texts[i : i + 64], batch_size=64, show_progress_bar=False)
            for i in range(0, len(texts), 64)
        ]
        return _normalize(np.concatenate(out))

    paths = {
        "previous (input order, chunks of 64, fp32)": previous,
        f"length-sorted batches of {fp32.batch_size}, fp32": lambda: fp32.embed(texts),
        f"default: length-sorted, {default.precision}": lambda: default.embed(texts),
    }
    times: dict[str, list[float]] = {k: [] for k in paths}
    vecs = {}
    for _ in range(reps):
        for key, fn in paths.items():
            vecs[key], secs = _timed(fn)
            times[key].append(secs)
    keys = list(paths)
    cpu = "AVX512-BF16/AMX" if cpu_has_native_bf16() else "no native bf16 (AVX2 or less)"
    print(f"\n== embedding {len(texts)} distinct tau-bench texts (<= {EMBED_MAX_CHARS} chars), MiniLM, "
          f"best of {reps} alternated runs; CPU: {cpu}, {os.cpu_count()} cores")  # fmt: skip
    t_prev = min(times[keys[0]])
    for key in keys:
        t = min(times[key])
        cos_prev = (vecs[keys[0]] * vecs[key]).sum(axis=1)
        cos_fp32 = (vecs[keys[1]] * vecs[key]).sum(axis=1)
        print(
            f"   {key:45s} {t:6.1f}s {len(texts) / t:6.1f} texts/s  {t_prev / t:5.2f}x  "
            f"cosine to previous mean {cos_prev.mean():.5f} min {cos_prev.min():.5f}; "
            f"to sorted fp32 mean {cos_fp32.mean():.5f} min {cos_fp32.min():.5f}  runs {[round(x, 1) for x in times[key]]}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", nargs="*", default=list(SHAPES), choices=SHAPES)
    ap.add_argument("--embedder", default=None, help="default: the bundled MiniLM; 'tfidf' for a quick run")
    ap.add_argument(
        "--precision",
        default=None,
        choices=("fp32", "bf16"),
        help="MiniLM's precision (default: bf16 where the CPU computes it natively, else fp32)",
    )
    ap.add_argument("--embed", action="store_true", help="only the embedding speed comparison")
    ap.add_argument("--embed-texts", type=int, default=1200, help="texts for --embed")
    ap.add_argument("--out", type=Path, default=None, help="write the table as CSV")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    print(f"CPU cores visible: {os.cpu_count()}; load average at start: {os.getloadavg()}")
    if args.embed:
        bench_embed(args.embed_texts)
        return
    embedder = args.embedder
    if args.precision and embedder != "tfidf":
        from slmlab.cluster.embed import DEFAULT_EMBEDDER, SentenceTransformerEmbedder
        from slmlab.cluster.features import EMBED_MAX_CHARS

        embedder = SentenceTransformerEmbedder(
            embedder or DEFAULT_EMBEDDER, precision=args.precision, max_chars=EMBED_MAX_CHARS
        )
    results = []
    for name in args.shapes:
        calls = load_shape(name)
        if calls is None:
            print(f"{name}: data not found under {SHARED}, skipped")
            continue
        print(f"\n== {name} (load {os.getloadavg()[0]:.1f})", flush=True)
        rows = run_shape(name, calls, embedder)
        results += rows
        print(
            f"\n== {name}: {rows[0]['calls']:,} calls, {rows[0]['labels']} truth labels (load {os.getloadavg()[0]:.1f})"
        )
        for r in rows:
            conf = f"  conf {r['mean_confidence']:.2f}" if r["mean_confidence"] is not None else ""
            print(f"   {r['method']:26s} ARI {r['ari']:.3f} [{r['ari_lo']:.3f}, {r['ari_hi']:.3f}]  NMI {r['nmi']:.3f}  "
                  f"clusters {r['clusters']:4d}  unassigned {r['unassigned']:.3f}  time {r['seconds']:6.1f}s{conf}")  # fmt: skip
        best_bt = max(r["ari"] for r in rows[1:])
        print(f"   ARI slmlab - best BERTopic: {rows[0]['ari'] - best_bt:+.3f}")
    if args.out and results:
        pl.DataFrame(results).write_csv(args.out)


if __name__ == "__main__":
    main()
