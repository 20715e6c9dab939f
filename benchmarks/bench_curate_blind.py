"""One blind template set, measured once: section 3 of bench_curate.py for that set alone (recall per kind
with Wilson 95% CI for both back-ends, non-personal values kept), and each value left with its context
written to `--leaks` (what the next round of rules is made from, once the set has been measured).

    python benchmarks/bench_curate_blind.py blind16 [--leaks FILE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_curate import BACKENDS, _cfg, _show  # noqa: E402

from slmlab.curate import curate  # noqa: E402
from slmlab.curate.gold import GOLD_SCHEMA, KEEP_VALUES, generated_calls, leak_table, leaks, texts_of  # noqa: E402


def main(which: str, leaks_file: str) -> None:
    gcalls, ggold = generated_calls(n=600, seed=7, templates=which)
    curated = {b: curate(gcalls, _cfg(b, drop_near_duplicates=False)).calls for b in BACKENDS}
    _show(
        f"generated free text, {which}, 600 sessions",
        {b: leak_table(gcalls, c, ggold) for b, c in curated.items()},
    )
    keep = pl.DataFrame([("keep", v, which) for v in KEEP_VALUES[which]], schema=GOLD_SCHEMA, orient="row")
    present = leaks(gcalls, keep)
    for b, c in curated.items():
        gone = sorted(set(present["value"]) - set(leaks(c, present)["value"]))
        print(f"{b}: non-personal values {present.height - len(gone)}/{present.height} kept; removed: {gone}")
    left = leaks(curated["ner"], ggold)
    texts = list(dict.fromkeys(texts_of(curated["ner"])))
    with open(leaks_file, "w") as fh:
        for r in left.iter_rows(named=True):
            ctx = next((t for t in texts if r["value"] in t), "")
            i = ctx.find(r["value"])
            fh.write(f"{r['kind']}\t{r['value']}\t{ctx[max(0, i - 150) : i + 100]!r}\n")
    print(f"{left.height} values left (ner): {leaks_file}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", nargs="?", default="blind16")
    ap.add_argument("--leaks", default=None)
    a = ap.parse_args()
    main(a.which, a.leaks or f"/tmp/{a.which}_leaks.txt")
