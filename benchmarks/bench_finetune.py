"""Benchmark: slmlab's packed LoRA trainer vs a plain transformers Trainer + peft run with padding.

Same model, same SFT examples, same LoRA settings, in one run. Prints real (non-pad) tokens per second and
peak memory of each, and the ratio. On a GPU, `--model <1.5B model> --method qlora` checks that QLoRA peaks
under 6 GB (`torch.cuda.max_memory_allocated`).

    python benchmarks/bench_finetune.py                       # CPU: SmolLM2-135M, tau-bench calls
    python benchmarks/bench_finetune.py --model Qwen/Qwen2.5-1.5B-Instruct --method qlora --steps 20
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import polars as pl

from slmlab.runtime.chat_format import PromptBudget

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "agent-logs"


def load_calls(n: int, seed: int) -> pl.DataFrame:
    """tau-bench airline calls (all actions, so lengths vary as in a real agent), via slmlab.collect if present."""
    from slmlab.collect import ingest

    calls = ingest(SHARED / "tau-bench-airline" / "gpt-4o-airline.json", count_missing_tokens=False).calls
    return calls.sample(n=min(n, calls.height), seed=seed, shuffle=True)


class PeakRSS:
    """Samples this process's RSS every 50 ms (CPU peak memory of a run)."""

    def __enter__(self):
        import psutil

        self.proc, self.peak, self._stop = psutil.Process(), 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.05)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def run_slmlab(data, args, out: Path) -> dict:
    import torch

    from slmlab.specialize import FinetuneConfig, finetune

    cfg = FinetuneConfig(
        base_model=args.model, method=args.method, max_steps=args.steps, batch_size=args.rows, max_len=args.max_len,
        save_every=0, eval_every=10**6, output_dir=str(out), gradient_checkpointing=args.gradient_checkpointing,
    )  # fmt: skip
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with PeakRSS() as rss:
        result = finetune(data.train, [], config=cfg, resume=False, data_hash=data.data_hash)
    h = result.history.slice(1)  # the first step pays one-off costs (allocations, kernel selection)
    real = sum(min(len(e), args.max_len) for e in data.train)
    steps_per_epoch = result.history.height
    return {
        "tokens_per_s": float(h["tokens"].sum() / h["step_s"].sum()),
        "peak_mb": result.peak_memory_mb if torch.cuda.is_available() else rss.peak / 2**20,
        "steps": result.steps,
        "examples_per_step": sum(len(x) for x in result.history["example_ids"].to_list()) / steps_per_epoch,
        "real_tokens": real,
    }


def run_baseline(data, args, out: Path) -> dict:
    """transformers Trainer + peft, one example per sequence, padded to the longest in the batch."""
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    from slmlab.runtime.models import LoadSpec, load_causal_lm

    model, tok = load_causal_lm(
        args.model,
        LoadSpec(
            quantization="nf4" if args.method == "qlora" else None,
            dtype=None if torch.cuda.is_available() else "float32",
        ),
    )
    model.config.use_cache = False
    if args.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=args.gradient_checkpointing)
    model = get_peft_model(
        model,
        LoraConfig(
            r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
        ),
    )
    features = [{"input_ids": list(e.input_ids), "labels": e.labels} for e in data.train]
    collator = transformers.DataCollatorForSeq2Seq(tok, padding="longest", label_pad_token_id=-100)
    times: list[tuple[float, int]] = []

    class Timer(transformers.TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            times.append(time.perf_counter() - self.t)

    class CountingTrainer(transformers.Trainer):
        def training_step(self, model, inputs, num_items_in_batch=None):
            counted.append(int(inputs["attention_mask"].sum()))
            return super().training_step(model, inputs, num_items_in_batch)

    counted: list[int] = []
    targs = transformers.TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=args.baseline_batch, max_steps=args.steps, learning_rate=2e-4,
        logging_steps=10**6, save_strategy="no", report_to=[], bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
        gradient_checkpointing=args.gradient_checkpointing, dataloader_num_workers=0, seed=0, remove_unused_columns=False,
        optim="paged_adamw_32bit" if (args.method == "qlora" and torch.cuda.is_available()) else "adamw_torch",
    )  # fmt: skip
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer = CountingTrainer(
        model=model, args=targs, train_dataset=features, data_collator=collator, callbacks=[Timer()]
    )
    with PeakRSS() as rss:
        trainer.train()
    return {
        "tokens_per_s": sum(counted[1:]) / sum(times[1:]),
        "peak_mb": torch.cuda.max_memory_allocated() / 2**20
        if torch.cuda.is_available()
        else rss.peak / 2**20,
        "steps": len(times),
        "examples_per_step": args.baseline_batch,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--method", choices=["lora", "qlora"], default="lora")
    p.add_argument("--steps", type=int, default=6, help="optimizer steps per trainer")
    p.add_argument("--n-calls", type=int, default=64, help="tau-bench calls to train on")
    p.add_argument("--max-tokens", type=int, default=448, help="prompt budget in tokens")
    p.add_argument("--max-len", type=int, default=1024, help="slmlab packed row length")
    p.add_argument("--rows", type=int, default=1, help="slmlab packed rows per batch")
    p.add_argument("--baseline-batch", type=int, default=2, help="examples per baseline batch (padded)")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--only", choices=["slmlab", "baseline"], default=None)
    args = p.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from slmlab.config import seed_everything
    from slmlab.runtime.models import load_tokenizer
    from slmlab.specialize import build_sft_dataset

    seed_everything(0)
    tok = load_tokenizer(args.model)
    budget = PromptBudget(
        max_system_chars=300,
        max_message_chars=600,
        max_turns=6,
        max_tokens=args.max_tokens,
        max_evidence_chars=400,
    )
    data = build_sft_dataset(
        load_calls(args.n_calls, 0), tok, budget, max_len=min(args.max_len, args.max_tokens + 256)
    )
    lengths = [len(e) for e in data.train]
    print(
        f"model={args.model} method={args.method} examples={len(lengths)} mean_len={sum(lengths) / len(lengths):.0f} max_len={max(lengths)}"
    )
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "baseline"):
            results["baseline (Trainer+peft, padded)"] = run_baseline(data, args, Path(tmp) / "base")
        if args.only in (None, "slmlab"):
            results["slmlab (packed)"] = run_slmlab(data, args, Path(tmp) / "slm")
    for name, r in results.items():
        print(
            f"{name:34s} tokens/s={r['tokens_per_s']:8.1f}  peak={r['peak_mb']:8.0f} MiB  steps={r['steps']}  examples/step={r['examples_per_step']:.1f}"
        )
    if len(results) == 2:
        base, ours = results.values()
        print(
            f"speed-up (real tokens/s): {ours['tokens_per_s'] / base['tokens_per_s']:.2f}x   peak memory ratio: {ours['peak_mb'] / base['peak_mb']:.2f}"
        )
    try:
        import torch

        if torch.cuda.is_available():
            peak = torch.cuda.max_memory_allocated() / 2**30
            print(f"torch.cuda.max_memory_allocated = {peak:.2f} GiB (last run)")
            if args.method == "qlora":
                print(f"QLoRA peak <= 6 GB: {'yes' if peak <= 6 else 'NO'}")
    except ImportError:
        pass


if __name__ == "__main__":
    main()
