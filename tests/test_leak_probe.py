"""Leak probe: canary values planted in raw calls never reach the SFT set, a tuned adapter's generations,
the export bundle or the report, after the default curate step."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from slmlab.schema import conform

# One patient, written the ways people and tools write it: free text, a FHIR resource, tool arguments.
CANARY = {
    "name": "Zephyrine Okonkwo-Blakely",
    "first": "Zephyrine",
    "last": "Okonkwo-Blakely",
    "mrn": "ZQ7731995",
    "dob": "1947-11-23",
    "dob_text": "November 23, 1947",
    "email": "zephy.ok.blakely@example.org",
    "member": "HXK448190273",
    "street": "4417 Quillfeather Lane",
    "zip": "59871",
}


def _canary_calls(n_sessions: int = 12) -> pl.DataFrame:
    c = CANARY
    rows = []
    for s in range(n_sessions):
        q = [
            f"What's the MRN of the patient with name {c['name']} and DOB of {c['dob']}?",
            f"Hi, this is {c['first']} {c['last']}, born {c['dob_text']}; my member ID is {c['member']}.",
            f"Please email the summary to {c['email']}, I moved to {c['street']}, zip {c['zip']}.",
        ][s % 3] + f" Ticket {s}."
        patient = {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": c["mrn"]}],
                   "name": [{"family": c["last"], "given": [c["first"]]}], "birthDate": c["dob"],
                   "address": [{"line": [c["street"]], "postalCode": c["zip"]}]}  # fmt: skip
        args = json.dumps({"url": f"Patient?family={c['last']}&birthdate={c['dob']}"})
        msgs = [
            {"role": "system", "content": "You are a clinical assistant with FHIR tools."},
            {"role": "user", "content": q},
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": f"call_{s}", "type": "function", "function": {"name": "fhir_search", "arguments": args}}]},
            {"role": "tool", "tool_call_id": f"call_{s}", "content": json.dumps(patient)},
        ]  # fmt: skip
        rows.append({
            "call_id": f"s{s}-0", "session_id": f"s{s}", "step": 0, "agent": "clinic", "model": "gpt-4o",
            "messages": json.dumps(msgs[:2]), "response_tool_calls": json.dumps([{"name": "fhir_search", "arguments": args}]),
            "tool_name": "fhir_search", "n_tool_calls": 1, "status": "ok", "source_line": 2 * s, "source_format": "probe", "source_file": "probe",
        })  # fmt: skip
        rows.append({
            "call_id": f"s{s}-1", "session_id": f"s{s}", "step": 1, "agent": "clinic", "model": "gpt-4o",
            "messages": json.dumps(msgs), "status": "ok", "source_line": 2 * s + 1, "n_tool_calls": 0, "source_format": "probe", "source_file": "probe",
            "response_text": f"{c['first']} {c['last']} (DOB {c['dob']}) has MRN {c['mrn']}; visit {s}.",
        })  # fmt: skip
    return conform(pl.DataFrame(rows))


def _needles() -> list[str]:
    out = set()
    for v in CANARY.values():
        out |= {v, json.dumps(v)[1:-1]}
    out |= set(CANARY["last"].split("-"))
    return sorted(out)


def _left(texts: list[str]) -> list[str]:
    blob = "\x00".join(texts)
    return [n for n in _needles() if n in blob]


def _files_text(root: Path) -> list[str]:
    out = []
    for p in root.rglob("*"):
        if p.is_file() and p.stat().st_size < 5_000_000:
            try:
                out.append(p.read_text())
            except UnicodeDecodeError:
                out.append(p.read_bytes().decode("latin-1"))
    return out


@pytest.mark.slow
def test_canaries_reach_no_sft_set_generation_bundle_or_report(tmp_path, monkeypatch):
    from slmlab.curate import CurateConfig, curate
    from slmlab.curate.gold import texts_of
    from slmlab.pipeline.bundle import export_bundle
    from slmlab.pipeline.report import write_report
    from slmlab.route.routers import ClusterRouter
    from slmlab.runs import RunStore
    from slmlab.runtime.chat_format import PromptBudget
    from slmlab.runtime.generate import TransformersGenerator
    from slmlab.runtime.models import load_tokenizer
    from slmlab.specialize import FinetuneConfig, build_sft_dataset, finetune
    from slmlab.specialize.sft_data import call_prompts
    from slmlab.specialize.splits import split_by_session

    monkeypatch.setenv("SLMLAB_HOME", str(tmp_path / "home"))
    import time

    t0 = time.perf_counter()
    tick = lambda what: print(f"{what}: {time.perf_counter() - t0:.1f} s", flush=True)  # noqa: E731
    raw = _canary_calls()
    assert len(_left(texts_of(raw))) == len(_needles())  # every canary is there before curation
    res = curate(raw, CurateConfig(salt="probe", drop_near_duplicates=False))  # the default (NER) back-end
    assert res.calls.height == raw.height
    assert _left(texts_of(res.calls)) == []

    tick("curate")
    store = RunStore("probe")
    store.write_curated(res.calls)
    store.write_audit(res.audit)

    tok = load_tokenizer("smollm2-135m")
    split = split_by_session(res.calls, test_size=0.17, val_size=0.0, seed=0)
    budget = PromptBudget(max_system_chars=120, max_message_chars=300, max_turns=4, max_tokens=192)
    data = build_sft_dataset(split, tok, budget, max_len=256)
    assert len(data.train) > 0
    sft_text = [tok.decode(ex.input_ids) for ex in data.train + data.val]
    assert _left(sft_text) == [], "a canary reached the SFT set"

    adapter_dir = store.adapter_dir(0)
    cfg = FinetuneConfig(max_steps=3, batch_size=2, max_len=256, warmup_steps=1, output_dir=str(adapter_dir))
    result = finetune(data, config=cfg, resume=False, progress=False)
    tick("sft + finetune")
    gen = TransformersGenerator("smollm2-135m", adapter=str(result.adapter_dir), batch_size=4)
    test_calls = split.filter(pl.col("split") == "test")
    outs = gen.generate(
        call_prompts(test_calls, tok, data.budget, data.tools), max_new_tokens=32, progress=False
    )
    assert len(outs) == test_calls.height > 0
    assert _left([o.text for o in outs]) == [], "a tuned adapter generated a canary"

    router = ClusterRouter(method="centroid", features="tfidf").fit(
        res.calls.with_columns(pl.lit(0).alias("cluster")), routes={0: str(result.adapter_dir)}
    )
    router.save(store.router_dir())
    bundle = export_bundle("probe", tmp_path / "bundle")
    report = write_report("probe")
    tick("bundle + report")
    assert _left(_files_text(bundle)) == [], "a canary reached the export bundle"
    assert _left([Path(report).read_text()]) == [], "a canary reached the report"
    assert _left(_files_text(store.root if hasattr(store, "root") else tmp_path / "home")) == []
