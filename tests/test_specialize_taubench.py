"""Fine-tuning SmolLM2-135M on GPT-4o's tau-bench lookups raises agreement with GPT-4o on held-out sessions."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from slmlab.runtime.chat_format import PromptBudget
from slmlab.specialize.splits import check_leakage, split_by_session

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_splits import load_taubench_calls  # noqa: E402

# A CPU budget: ~450-token prompts (system head, tool list, latest turns, ids from older turns), packed
# two to a 1024-token row.
BUDGET = PromptBudget(
    max_system_chars=300, max_message_chars=600, max_turns=6, max_tokens=448, max_evidence_chars=400
)
STEPS = 24
N_TEST = 24


def _agreement(generations, calls: pl.DataFrame) -> dict[str, float]:
    name = exact = 0
    for gen, raw in zip(generations, calls.get_column("response_tool_calls").to_list(), strict=True):
        want = json.loads(raw)[0]
        got = gen.tool_calls[0] if gen.tool_calls else {}
        if got.get("name") == want["name"]:
            name += 1
            try:
                exact += json.loads(got["arguments"]) == json.loads(want["arguments"])
            except (TypeError, json.JSONDecodeError):
                pass
    return {"tool_name_acc": name / len(generations), "exact_match": exact / len(generations)}


@pytest.mark.slow
@pytest.mark.shared
def test_finetune_raises_agreement_on_heldout_lookups(shared_logs, tmp_path):
    from slmlab.runtime.generate import TransformersGenerator
    from slmlab.runtime.models import load_tokenizer
    from slmlab.specialize import FinetuneConfig, build_sft_dataset, call_prompts, finetune, merge_and_save

    split = check_leakage(split_by_session(load_taubench_calls(shared_logs), group_col="task", seed=0))
    tools = split.filter(pl.col("tool_name").is_not_null() & (pl.col("split") == "train"))
    action = tools.group_by("tool_name").len().sort("len", descending=True)["tool_name"][0]
    group = split.filter(pl.col("tool_name") == action)
    tok = load_tokenizer("smollm2-135m")
    data = build_sft_dataset(group, tok, BUDGET, max_len=512)
    cfg = FinetuneConfig(
        max_steps=STEPS,
        batch_size=1,
        max_len=1024,
        lr=1e-3,
        warmup_steps=2,
        save_every=0,
        eval_every=STEPS,
        output_dir=str(tmp_path / "ft"),
    )
    start = time.perf_counter()
    result = finetune(data, config=cfg, progress=False)
    train_s = time.perf_counter() - start

    test = group.filter(pl.col("split") == "test").head(N_TEST)
    prompts = call_prompts(test, tok, data.budget, data.tools)
    base = _agreement(
        TransformersGenerator("smollm2-135m", batch_size=4).generate(prompts, 48, progress=False), test
    )
    merged = merge_and_save(result.adapter_dir, tmp_path / "merged")
    tuned = _agreement(
        TransformersGenerator(str(merged), batch_size=4).generate(prompts, 48, progress=False), test
    )
    print(
        f"\n[tau-bench {action}] train={len(data.train)} examples, {STEPS} steps in {train_s:.0f}s, "
        f"eval_loss={result.eval_loss:.3f}; held-out n={test.height}: zero-shot {base} -> tuned {tuned}"
    )
    assert tuned["tool_name_acc"] > base["tool_name_acc"]
    assert tuned["exact_match"] > base["exact_match"]
    assert result.history["loss"].tail(5).mean() < result.history["loss"].head(3).mean()
