"""The NER back-end, the context-keyed rules (health ids, dates of birth, zips), key context in FHIR JSON,
the gold sets and the `slmlab curate` command."""

from __future__ import annotations

import json

import polars as pl
import pytest

from slmlab.config import MissingDependencyError
from slmlab.curate import CurateConfig, PatternRedactor, context_spans, curate, redact_text, zip_placeholder
from slmlab.curate.gold import (
    PRESIDIO_CONTEXT_SENTENCES,
    SYNTHEA_GOLD,
    SYNTHEA_PATIENT,
    generated_calls,
    leak_table,
    leaks,
    profile_gold,
    texts_of,
    wilson,
)
from slmlab.schema import conform

SALT = "test-salt"


@pytest.fixture(scope="session")
def ner():
    from slmlab.curate.ner import SpacyNerRedactor

    return SpacyNerRedactor()


def _values(text: str, entity: str | None = None) -> list[str]:
    return [text[s:e] for s, e, ent, _ in context_spans(text) if entity is None or ent == entity]


@pytest.mark.parametrize(
    ("text", "value", "entity"),
    [
        (
            "What's the MRN of the patient with name Ana Silva and DOB of 1957-03-02?",
            "1957-03-02",
            "DATE_OF_BIRTH",
        ),
        ("born on the 2nd of March 1957 in Porto", "the 2nd of March 1957", "DATE_OF_BIRTH"),
        ("D.O.B. 02.03.1957", "02.03.1957", "DATE_OF_BIRTH"),
        ("Can you confirm her birth date? We have 3/2/57.", "3/2/57", "DATE_OF_BIRTH"),
        ("dob=19570302", "19570302", "DATE_OF_BIRTH"),
        ("The medical record number for that patient is P-64722217.", "P-64722217", "ID"),
        ("MRN: S6534835", "S6534835", "ID"),
        ("chart # A12-3456", "A12-3456", "ID"),
        ("my insurance member number is XJH123456789", "XJH123456789", "ID"),
        ("Transfer the records (acct #2541375286) now", "2541375286", "ID"),
        ("my zip code is 78750", "78750", "ZIP"),
        ("975 Sunset Drive, Austin, TX 78750-1234", "78750-1234", "ZIP"),
        ("We spoke with Mrs. O'Brien this morning.", "O'Brien", "PERSON"),
        ("GET Patient?family=Okafor&birthdate=1980-01-02", "Okafor", "QUERY_VALUE"),
    ],
)
def test_context_rules_find_the_value_not_the_cue(text, value, entity):
    found = _values(text, entity)
    assert value in found, (text, found)


@pytest.mark.parametrize(
    "text",
    [
        "Your flight departs on 2024-05-15 at 10:00.",
        "The patient portal is down; please call back.",
        "record 5 bags",
        "The account settings page has moved.",
        "Order #W2378156 ships to zip-free lockers.",
        "Released under the Apache license 2.0.",
    ],
)
def test_context_rules_leave_ordinary_text_alone(text):
    assert context_spans(text) == []


@pytest.mark.parametrize(
    ("text", "value", "entity"),
    [
        # a strong cue reaches across its clause, however many words stand between
        ("Her date of birth, as printed on the old paper intake form from the county, is 1961-07-30.",
         "1961-07-30", "DATE_OF_BIRTH"),
        ("the medical record number that the front desk wrote on my visit summary reads Q7741203",
         "Q7741203", "ID"),
        # the value before its cue, with linking words only
        ("Q7741203 is his chart number.", "Q7741203", "ID"),
        ("11/30/2019 was the day of her birth, per the certificate", "11/30/2019", "DATE_OF_BIRTH"),
        ("60614 is my zip", "60614", "ZIP"),
        # a value that carries its own label
        ("pull MRN00456123 for the consult", "MRN00456123", "ID"),
        # a bare 5-digit number in prose
        ("We just moved from Ohio and now live out past 60614, near the lake.", "60614", "ZIP"),
        ("Can you deliver to 94110 before Friday?", "94110", "ZIP"),
        # a full date at least `old_date_years` back, without a time
        ("Book the seat for Tomasz; his passport says 1979-11-04.", "1979-11-04", "DATE_OF_BIRTH"),
    ],
)  # fmt: skip
def test_clause_cues_values_before_cues_bare_zips_and_old_dates(text, value, entity):
    found = [text[s:e] for s, e, ent, _ in context_spans(text, old_before=2016) if ent == entity]
    assert value in found, (text, found)


@pytest.mark.parametrize(
    "text",
    [
        "You have 25000 miles and 12000 points left on the card.",  # quantities
        "Order 55210 and ticket 77301 were merged; room 10452 is free.",  # numbered things
        "The total is 624 + 402 + 16005 dollars.",  # a sum
        "Go to My Trips, select reservation PEP4E0, and enter the policy number in the form.",  # instruction
        "Articles published after 2012-05-16T05:50:06 are excluded.",  # a timestamp, not a birth date
        "Your flight departs on 2024-05-15; the member since 2015 discount applies, DL 1127 boards at 9.",
    ],
)
def test_new_rules_leave_quantities_instructions_and_recent_dates_alone(text):
    assert context_spans(text, old_before=2016) == [], context_spans(text, old_before=2016)


def test_keys_written_as_text_csv_rows_and_hl7_pid_are_redacted_by_their_key():
    text = (
        "Key: value dump - payer_member_id: QX7731902 | dependent_dob: 2019-06-04\n"
        "name,dob,mrn,ship zip\nTomasz Wrona,2019-06-04,K-4417102,60614\n"
        "PID|1||77120045^^^EHR^MR||Wrona^Tomasz^^^||20190604|M|||8 Birch Way^^Evanston^IL^60201\n"
        + "IN1|1|PPO01"
        + "|" * 34
        + "POL7719023\n"  # IN1-36: the policy number
        + "status: ok | billed_to_account: 4417203391 | plan_id: P1006"
    )
    calls, _ = generated_calls(n=3, seed=1)
    msgs = json.dumps([{"role": "user", "content": text}])
    out = curate(
        calls.head(1).with_columns(pl.lit(msgs).alias("messages")),
        CurateConfig(salt=SALT, redactor="patterns"),
    )
    got = json.loads(out.calls["messages"][0])[0]["content"]
    for value in (
        "QX7731902",
        "2019-06-04",
        "K-4417102",
        "60614",
        "77120045",
        "Wrona",
        "20190604",
        "8 Birch Way",
        "60201",
        "POL7719023",
        "4417203391",
    ):
        assert value not in got, (value, got)
    assert "P1006" in got and "PPO01" in got  # a plan's catalog id is not a person's
    assert "Key: value dump" in got and "PID|1||" in got  # the layout stays


def test_placeholder_dates_and_phone_groups_are_not_birth_dates():
    for text in ("Timestamps count seconds since Jan 1, 1970 in UTC.", "Phone: +687 27.25.92 or 26.11.11"):
        assert context_spans(text, old_before=2016) == [], text


def test_old_date_rule_follows_the_calls_timestamps():
    calls, _ = generated_calls(n=3, seed=1)
    text = "Please add the traveller, 1999-02-14, to my booking tomorrow."
    msgs = json.dumps([{"role": "user", "content": text}])
    calls = calls.head(1).with_columns(pl.lit(msgs).alias("messages"))
    stamp = pl.lit("2003-06-01T00:00:00Z").str.to_datetime(time_zone="UTC").dt.cast_time_unit("us")
    curated = lambda c, cfg: curate(c, cfg).calls["messages"][0]  # noqa: E731
    assert "1999-02-14" not in curated(calls, CurateConfig(salt=SALT, redactor="patterns"))
    assert "1999-02-14" in curated(calls, CurateConfig(salt=SALT, redactor="patterns", old_date_years=None))
    # logs from 2003: a 1999 date is four years old there, not a birth date by age alone
    assert "1999-02-14" in curated(
        calls.with_columns(stamp.alias("timestamp")), CurateConfig(salt=SALT, redactor="patterns")
    )


def test_zip_keeps_three_digits_and_zeroes_small_areas():
    assert zip_placeholder("94107") == "<ZIP_941XX>"
    assert zip_placeholder("03601-2234") == "<ZIP_000XX>"  # 036: fewer than 20,000 people
    assert redact_text("zip 10001, ZIP 10001", "patterns") == "zip <ZIP_100XX>, ZIP <ZIP_100XX>"


def test_ner_finds_names_of_several_cultures_in_sentences(ner):
    sents = [
        "Please book the flight for Oluwaseun Adeyemi tomorrow.",
        "I spoke to Hiroshi Tanaka about the refund yesterday.",
        "Could you check whether Svetlana Ivanova has paid?",
        "Send the invoice to María Fernández at the main office.",
    ]
    found = [s for s in sents if any(x.entity == "PERSON" for x in ner.detect(s))]
    assert len(found) >= 3, found  # measured: en_core_web_sm misses "Oluwaseun Adeyemi" in the first


def test_ner_leaves_short_json_values_to_the_key_rules(ner):
    assert [x for x in ner.detect("Austin") if x.entity == "PERSON"] == []
    assert [x for x in ner.detect("Basic Economy") if x.entity == "PERSON"] == []


def test_missing_spacy_model_names_the_install_command():
    from slmlab.curate.ner import load_spacy

    with pytest.raises(MissingDependencyError, match=r'pip install "slmlab\[pii\]"'):
        load_spacy("en_core_web_nonexistent")


def test_default_redactor_is_ner_and_patterns_stays_available():
    assert CurateConfig().redactor == "ner"
    assert "zip_code" in PatternRedactor.CONTEXT_RULES


def _frame(msgs: list[dict], text: str = "ok", tool_calls: list | None = None) -> pl.DataFrame:
    return conform(
        pl.DataFrame(
            [
                {
                    "call_id": "c1",
                    "session_id": "s1",
                    "step": 0,
                    "agent": "a",
                    "model": "m",
                    "source_format": "test",
                    "source_file": "test",
                    "source_line": 0,
                    "messages": json.dumps(msgs),
                    "response_text": text,
                    "response_tool_calls": json.dumps(tool_calls) if tool_calls else None,
                    "status": "ok",
                }
            ]  # fmt: skip
        )
    )


def test_fhir_patient_fields_by_parent_key_and_values_replaced_everywhere(ner):
    msgs = [
        {"role": "user", "content": "Is there a record for Walsh511?"},
        {"role": "tool", "tool_call_id": "1", "content": json.dumps(SYNTHEA_PATIENT)},
        {"role": "user", "content": "Great, and is 1965-09-03 right? Mail to 791 Upton Mall Unit 35 please."},
    ]
    df = _frame(
        msgs, tool_calls=[{"name": "fhir_read", "arguments": json.dumps({"url": "Patient?given=Roberto515"})}]
    )
    res = curate(df, CurateConfig(salt=SALT, redactor=ner, hash_columns=()))
    text = "\x00".join(texts_of(res.calls))
    for kind, v in SYNTHEA_GOLD:
        assert v not in text, (kind, v)
    tool = json.loads(json.loads(res.calls["messages"][0])[1]["content"])
    assert tool["address"][0]["postalCode"] == "<ZIP_012XX>"
    assert tool["address"][0]["city"].startswith("<CITY_")
    assert tool["gender"] == "male" and tool["resourceType"] == "Patient"
    json.loads(json.loads(res.calls["response_tool_calls"][0])[0]["arguments"])


def test_generated_free_text_recall(ner):
    calls, gold = generated_calls(n=90, seed=11)
    res = curate(calls, CurateConfig(salt=SALT, redactor=ner, drop_near_duplicates=False))
    table = leak_table(calls, res.calls, gold)
    recall = dict(zip(table["kind"], table["recall"], strict=True))
    # Measured at n=600: 1.000 for every kind on the dev templates.
    for kind in ("name", "mrn", "date_of_birth", "member_id", "account_id", "address", "zip"):
        assert recall[kind] >= 0.97, (kind, recall)
    for tc in res.calls["response_tool_calls"].drop_nulls().to_list():
        for c in json.loads(tc):
            json.loads(c["arguments"])


def test_presidio_sentences_and_wilson():
    assert wilson(10, 10)[0] > 0.69 and wilson(0, 10)[1] < 0.31
    got = [redact_text(s, "patterns") for _, s, _ in PRESIDIO_CONTEXT_SENTENCES]
    left = leaks(got, pl.DataFrame([(k, v, "p") for k, _, vs in PRESIDIO_CONTEXT_SENTENCES for v in vs],
                                   schema=["kind", "value", "source"], orient="row"))  # fmt: skip
    assert left.height <= 3, left  # measured: the ITIN forms are not a rule here


def test_curate_command_prints_redactions_per_kind(tmp_path):
    from typer.testing import CliRunner

    from slmlab.pipeline.cli import app

    calls, _ = generated_calls(n=12, seed=2)
    src = tmp_path / "calls.parquet"
    calls.write_parquet(src)
    out = tmp_path / "curated.parquet"
    r = CliRunner().invoke(app, ["curate", str(src), "--out", str(out), "--salt", "s"])
    assert r.exit_code == 0, r.output
    assert "redactions per kind:" in r.output and "PERSON" in r.output and "DATE_OF_BIRTH" in r.output
    assert pl.read_parquet(out).height == calls.height
    assert (tmp_path / "curated.audit.parquet").exists()
    bad = CliRunner().invoke(app, ["curate", str(tmp_path / "nope.parquet")])
    assert bad.exit_code == 1 and "nope.parquet: no such file" in bad.output


@pytest.mark.shared
@pytest.mark.slow
def test_tau_profiles_gold_recall(shared_logs, tmp_path, ner):
    from slmlab.collect import ingest

    path = shared_logs / "tau-bench-airline" / "gpt-4o-airline.json"
    calls = ingest(path, prices=False, count_missing_tokens=False, quarantine=tmp_path / "q.jsonl").calls
    gold = profile_gold([path])
    assert set(gold["kind"]) >= {"name", "email", "date_of_birth", "address", "zip", "payment_id", "user_id"}
    res = curate(calls, CurateConfig(salt=SALT, redactor=ner))
    table = leak_table(calls, res.calls, gold)
    assert table.filter(pl.col("recall") < 0.99).height == 0, table
    for tc in res.calls["response_tool_calls"].drop_nulls().to_list():
        for c in json.loads(tc):
            json.loads(c["arguments"])
