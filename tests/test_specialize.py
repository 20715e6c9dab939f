"""SFT data, packing, LoRA / QLoRA fine-tuning with kill-and-resume, adapter config and export."""

from __future__ import annotations

import json

import polars as pl
import pytest

from slmlab.config import MissingDependencyError
from slmlab.runtime.chat_format import PromptBudget, evidence_note, fit_messages, render_tool_calls
from slmlab.schema import conform
from slmlab.specialize import (
    ADAPTER_CONFIG,
    FinetuneConfig,
    SFTExample,
    batch_schedule,
    budget_of,
    build_sft_dataset,
    collate_rows,
    export_gguf,
    finetune,
    merge_and_save,
    pack_examples,
    read_adapter_config,
    unpacked_rows,
)
from slmlab.specialize.splits import split_by_session

TINY = PromptBudget(max_system_chars=80, max_message_chars=80, max_turns=2, max_tokens=96)


def _calls(n_sessions: int = 12) -> pl.DataFrame:
    rows = []
    for s in range(n_sessions):
        for k in range(2):
            uid = f"user_{s:03d}"
            msgs = [
                {"role": "system", "content": "You are an airline agent."},
                {"role": "user", "content": f"Hi, I am {uid}, question {k}."},
            ]
            tool = k == 0
            rows.append(
                {
                    "call_id": f"s{s}-{k}",
                    "session_id": f"s{s}",
                    "step": k,
                    "messages": json.dumps(msgs),
                    "response_text": None if tool else f"Hello {uid}!",
                    "response_tool_calls": json.dumps(
                        [{"name": "get_user_details", "arguments": json.dumps({"user_id": uid})}]
                    )
                    if tool
                    else None,
                    "tool_name": "get_user_details" if tool else None,
                }
            )
    return conform(pl.DataFrame(rows))


@pytest.fixture(scope="session")
def tokenizer():
    from slmlab.runtime.models import load_tokenizer

    return load_tokenizer("smollm2-135m")


@pytest.fixture(scope="session")
def tiny_data(tokenizer):
    split = split_by_session(_calls(), test_size=0.0, val_size=0.2, seed=0)
    return build_sft_dataset(split, tokenizer, TINY, max_len=128)


def test_sft_labels_cover_only_the_answer(tiny_data, tokenizer):
    assert len(tiny_data.train) > 0 and len(tiny_data.val) > 0 and tiny_data.n_dropped == 0
    assert [t["function"]["name"] for t in tiny_data.tools] == ["get_user_details"]
    ex = tiny_data.train[0]
    labels = ex.labels
    assert all(x == -100 for x in labels[: ex.n_prompt]) and -100 not in labels[ex.n_prompt :]
    prompt = tokenizer.decode(ex.input_ids[: ex.n_prompt])
    target = tokenizer.decode(ex.input_ids[ex.n_prompt :])
    assert prompt.endswith("<|im_start|>assistant\n") and "get_user_details(user_id)" in prompt
    assert target.endswith(tokenizer.eos_token)
    assert target.startswith("<tool_call>") or target.startswith("Hello")
    frame = tiny_data.to_frame()
    assert set(frame["split"]) == {"train", "val"} and frame.height == len(tiny_data.train) + len(
        tiny_data.val
    )


def test_data_hash_is_stable_and_sensitive(tiny_data, tokenizer):
    split = split_by_session(_calls(), test_size=0.0, val_size=0.2, seed=0)
    assert build_sft_dataset(split, tokenizer, TINY, max_len=128).data_hash == tiny_data.data_hash
    other = PromptBudget(max_system_chars=40, max_message_chars=80, max_turns=2, max_tokens=96)
    assert build_sft_dataset(split, tokenizer, other, max_len=128).data_hash != tiny_data.data_hash


def test_pack_rows_respect_max_len_and_keep_every_example():
    exs = [SFTExample(str(i), tuple(range(10 + i)), 4) for i in range(20)]
    rows = pack_examples(exs, max_len=64, seed=1)
    assert all(r.n_tokens <= 64 for r in rows)
    assert sorted(cid for r in rows for cid in r.example_ids) == sorted(e.call_id for e in exs)
    assert len(rows) < len(exs)
    for r in rows:  # positions restart at each example; every example's first label is masked
        starts = [i for i, p in enumerate(r.position_ids) if p == 0]
        assert len(starts) == len(r.example_ids) and all(r.labels[i] == -100 for i in starts)
    with pytest.raises(ValueError, match="max_len"):
        pack_examples(exs, max_len=12)


def test_packed_loss_equals_separate_losses(tiny_data):
    """No cross-example attention: a packed row gives each example the same loss as alone."""
    import torch

    from slmlab.runtime.models import LoadSpec, load_causal_lm

    model, tok = load_causal_lm("smollm2-135m", LoadSpec(device="cpu", dtype="float32"))
    model.config.use_cache = False
    exs = list(tiny_data.train[:3])
    packed = pack_examples(exs, max_len=sum(len(e) for e in exs))
    assert len(packed) == 1 and len(packed[0].example_ids) == 3
    with torch.no_grad():
        batch = collate_rows(packed, tok.pad_token_id)
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
        total, count = 0.0, 0
        for row in unpacked_rows(exs):
            alone = collate_rows([row], tok.pad_token_id)
            out = model(**alone)
            n = int((alone["labels"][:, 1:] != -100).sum())
            total += float(out.loss) * n
            count += n
        labels = batch["labels"][0]
        packed_loss = torch.nn.functional.cross_entropy(logits[:-1], labels[1:], ignore_index=-100)
    assert float(packed_loss) == pytest.approx(total / count, rel=1e-4)
    # Padding-free collation pads rows with a restarting block and masks its labels.
    two = collate_rows(unpacked_rows(exs[:2]), tok.pad_token_id)
    assert "attention_mask" not in two and (two["labels"] != -100).sum() == sum(
        len(e) - e.n_prompt for e in exs[:2]
    )


def test_target_loss_equals_the_full_logits_loss_and_its_gradients(tiny_data):
    """Projecting only the answer positions onto the vocabulary changes neither the loss nor the gradients."""
    import torch

    from slmlab.runtime.models import LoadSpec, load_causal_lm
    from slmlab.specialize.finetune import target_loss

    model, tok = load_causal_lm("smollm2-135m", LoadSpec(device="cpu", dtype="float32"))
    model.config.use_cache = False
    exs = list(tiny_data.train[:3])
    for batch in (
        collate_rows(pack_examples(exs, max_len=sum(len(e) for e in exs)), tok.pad_token_id),
        collate_rows(unpacked_rows(exs[:2]), tok.pad_token_id),  # two rows, a padded tail
    ):
        head = model.get_output_embeddings().weight
        full = model(**batch).loss
        (g_full,) = torch.autograd.grad(full, head)
        kept = target_loss(model, batch)
        (g_kept,) = torch.autograd.grad(kept, head)
        assert float(kept) == pytest.approx(float(full), rel=1e-5)
        assert torch.allclose(g_kept, g_full, atol=1e-6, rtol=1e-4)


def test_batch_schedule_is_a_function_of_seed_and_index():
    a, b = batch_schedule(7, 2, seed=3), batch_schedule(7, 2, seed=3)
    assert [a(i) for i in range(10)] == [b(i) for i in range(10)]
    assert sorted(x for i in range(4) for x in a(i)) == list(range(7))
    assert [a(i) for i in range(4)] != [a(i) for i in range(4, 8)]  # epochs reshuffle


def test_config_checks():
    with pytest.raises(ValueError, match="method"):
        FinetuneConfig(method="full")
    with pytest.raises(ValueError, match="r must"):
        FinetuneConfig(r=0)
    with pytest.raises(ValueError, match="max_steps"):
        FinetuneConfig(max_steps=0, epochs=0)
    assert FinetuneConfig.__dataclass_fields__["lr"].metadata["help"]


class _Crash(RuntimeError):
    pass


def _crash_after(step_to_crash: int):
    def hook(step, row):
        if step == step_to_crash:
            raise _Crash(f"simulated crash after step {step}")

    return hook


@pytest.mark.slow
def test_kill_and_resume_reaches_same_step_with_same_data_order(tiny_data, tmp_path):
    cfg = dict(max_steps=4, batch_size=2, max_len=128, save_every=2, lr=5e-4, warmup_steps=0, seed=7)
    straight = finetune(
        tiny_data, config=FinetuneConfig(output_dir=str(tmp_path / "a"), **cfg), progress=False
    )
    crashed_cfg = FinetuneConfig(output_dir=str(tmp_path / "b"), **cfg)
    with pytest.raises(_Crash):
        finetune(tiny_data, config=crashed_cfg, on_step=_crash_after(3), progress=False)
    assert (tmp_path / "b" / "checkpoints" / "step-000002" / "state.pt").exists()
    resumed = finetune(tiny_data, config=crashed_cfg, progress=False)
    assert resumed.resumed_from == 2 and resumed.steps == 4
    assert resumed.history["step"].to_list() == [1, 2, 3, 4]
    assert resumed.history["example_ids"].to_list() == straight.history["example_ids"].to_list()
    assert resumed.history["loss"].to_list() == pytest.approx(straight.history["loss"].to_list(), rel=1e-3)
    assert resumed.eval_loss == pytest.approx(straight.eval_loss, rel=1e-3)

    # The adapter records what it was trained on and how.
    doc = read_adapter_config(resumed.adapter_dir)
    assert doc["data_hash"] == tiny_data.data_hash and doc["base_model"] == "smollm2-135m"
    assert doc["hyperparameters"]["r"] == 16 and doc["hyperparameters"]["seed"] == 7
    assert doc["metrics"]["steps"] == 4 and doc["metrics"]["resumed_from"] == 2
    assert doc["slmlab_version"] and doc["tools"][0]["function"]["name"] == "get_user_details"
    assert budget_of(resumed.adapter_dir) == TINY
    assert (resumed.adapter_dir / "adapter_config.json").exists()
    assert resumed.peak_memory_mb > 0 and resumed.model_memory_mb > 100

    # Merging gives a plain model that generates without peft.
    from slmlab.runtime.generate import TransformersGenerator

    merged = merge_and_save(resumed.adapter_dir, tmp_path / "merged")
    assert (merged / ADAPTER_CONFIG).exists() and any(merged.glob("*.safetensors"))
    gen = TransformersGenerator(str(merged), batch_size=1)
    out = gen.generate(
        [fit_messages([{"role": "user", "content": "Hi"}], budget=TINY)], max_new_tokens=4, progress=False
    )
    assert out[0].output_tokens > 0


def test_resume_refuses_other_data(tiny_data, tmp_path):
    cfg = FinetuneConfig(output_dir=str(tmp_path), max_steps=2, batch_size=2, max_len=128, save_every=1)
    with pytest.raises(_Crash):
        finetune(tiny_data, config=cfg, on_step=_crash_after(1), progress=False)
    with pytest.raises(ValueError, match="other data"):
        finetune(tiny_data.train[:3], [], config=cfg, progress=False)


@pytest.mark.slow
def test_qlora_nf4_two_steps_on_cpu(tiny_data, tmp_path):
    pytest.importorskip("bitsandbytes")
    cfg = FinetuneConfig(
        method="qlora",
        max_steps=2,
        batch_size=2,
        max_len=128,
        save_every=0,
        output_dir=str(tmp_path),
        device="cpu",
    )
    result = finetune(tiny_data, config=cfg, progress=False)
    losses = result.history["loss"].to_list()
    assert len(losses) == 2 and all(0 < x < 20 for x in losses)
    assert read_adapter_config(result.adapter_dir)["method"] == "qlora"
    # nf4 weights take far less memory than the fp32 model (~513 MiB).
    assert result.model_memory_mb < 300


@pytest.mark.cuda
def test_qlora_on_gpu_uses_bf16_and_paged_optimizer(tiny_data, tmp_path):
    import torch

    cfg = FinetuneConfig(method="qlora", max_steps=3, batch_size=2, max_len=128, output_dir=str(tmp_path))
    result = finetune(tiny_data, config=cfg, progress=False)
    assert result.history.height == 3 and result.peak_memory_mb < 2048
    assert torch.cuda.max_memory_allocated() > 0


def test_export_gguf_names_what_to_install(tmp_path, monkeypatch):
    monkeypatch.delenv("LLAMA_CPP_DIR", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingDependencyError, match="llama.cpp"):
        export_gguf(tmp_path, tmp_path / "m.gguf")


def test_evidence_note_keeps_ids_of_dropped_turns(tokenizer):
    msgs = [
        {"role": "system", "content": "policy"},
        {"role": "user", "content": "My user id is mia_li_3668 and booking AQLBTL."},
    ] + [{"role": "assistant" if i % 2 else "user", "content": f"filler turn {i} " * 20} for i in range(8)]
    plain = fit_messages(msgs, budget=PromptBudget(max_turns=3))
    assert "mia_li_3668" not in json.dumps(plain)
    kept = fit_messages(msgs, budget=PromptBudget(max_turns=3, max_evidence_chars=300), tokenizer=tokenizer)
    system = kept[0]["content"]
    assert "mia_li_3668" in system and "AQLBTL" in system and kept[-1]["content"].startswith("filler turn 7")
    assert evidence_note([{"role": "user", "content": "id 12345 only"}], [], 100) == ""


def test_evidence_note_lists_calls_made_and_the_ids_not_used_yet():
    profile = json.dumps(
        {"email": "ann.lee1990@example.com", "payment_methods": {"gift_card_1234567": {"id": "gift_card_1234567"}},
         "reservations": ["OI5L9G", "AQLBTL", "KA7I60", "Q0ZF0J"]}
    )  # fmt: skip
    dropped = [
        {"role": "user", "content": "I am ann_lee_1990"},
        {"role": "assistant", "content": render_tool_calls([{"name": "get_user", "arguments": '{"user_id": "ann_lee_1990"}'}])},
        {"role": "user", "content": f'<tool_response name="get_user">\n{profile}\n</tool_response>'},
        {"role": "assistant", "content": render_tool_calls([{"name": "get_res", "arguments": {"reservation_id": "OI5L9G"}}])},
        {"role": "assistant", "content": render_tool_calls([{"name": "get_res", "arguments": {"reservation_id": "AQLBTL"}}])},
    ]  # fmt: skip
    note = evidence_note(dropped, [{"role": "user", "content": "reservation AQLBTL: flights HAT249"}], 400)
    lines = note.splitlines()
    assert lines[0] == "Earlier in the conversation:"
    assert lines[1] == "- calls made: get_user(ann_lee_1990); get_res(OI5L9G); get_res(AQLBTL)"
    # the list the agent walks through comes first, without the ids already looked up, in its order
    assert lines[2] == "- not used yet (get_user, reservations): KA7I60, Q0ZF0J"
    assert "gift_card_1234567" in note and "payment_methods" not in lines[2]
    # a JSON key that looks like an id is not an id; the budget is a hard limit
    assert all(len(x) for x in lines) and len(evidence_note(dropped, [], 120)) <= 120 + len(lines[0]) + 1
    assert "KA7I60" not in evidence_note(dropped, [], 90)


def test_pick_targets_prefers_largest_tool_cluster_and_ranked_model(tmp_path, monkeypatch):
    from slmlab.runs import RunStore, conform_clusters
    from slmlab.schema import conform
    from slmlab.specialize import pick_targets

    monkeypatch.setenv("SLMLAB_HOME", str(tmp_path))
    run = "test-specialize-targets"
    store = RunStore(run)
    calls = conform(_calls()).with_columns(
        pl.when(pl.col("tool_name").is_null()).then(0).otherwise(1).cast(pl.Int32).alias("cluster")
    )
    store.write_clustered(calls)
    sizes = calls.group_by("cluster").len("size").with_columns(pl.lit(0.5).alias("suitability"))
    store.write_clusters(conform_clusters(sizes))
    target = pick_targets(run)[0]
    assert target.cluster == 1 and store.adapter_dir(target.cluster).name == "cluster_1"
    # the ranking may name the bundled model by hub id; both resolve to the same bundled weights
    from slmlab.runtime.models import resolve_model

    assert resolve_model(target.base_model) == resolve_model("smollm2-135m")
    assert target.calls.height == 12 and target.calls["tool_name"].null_count() == 0
    store.write_ranking(
        pl.DataFrame(
            {"cluster": [1], "rank": [1], "hub_id": ["HuggingFaceTB/SmolLM2-135M-Instruct"], "score": [1.0]}
        )
    )
    assert pick_targets(run)[0].base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert [t.cluster for t in pick_targets(run, clusters=[0, 1], base_model="x")] == [0, 1]


def test_plot_history_and_memory_stats():
    from slmlab.specialize import memory_stats, plot_history

    fig = plot_history(
        pl.DataFrame({"step": [1, 2, 3], "loss": [2.0, 1.5, 1.0], "eval_loss": [None, None, 1.2]})
    )
    assert [t.name for t in fig.data] == ["train loss", "val loss"]
    assert memory_stats()["rss_mb"] > 0
