"""Gold sets for the redactor, from data it was not written against, and the leak search that scores it.

- `profile_gold`: the personal fields of the user profiles that tau-bench / tau2-bench tools return
  (names, emails, dates of birth, street lines, zips, user and payment ids), to be searched for
  everywhere in the curated calls, free-text turns included.
- `PRESIDIO_CONTEXT_SENTENCES`, `SYNTHEA_PATIENT`: published test data of Microsoft Presidio
  (`presidio-analyzer/tests/data/context_sentences_tests.txt` and `synthetic.json`, a Synthea FHIR
  Patient; Presidio is MIT-licensed, Synthea Apache-2.0), with the identifying values marked.
- `generated_calls`: a call table of free-text sentences from templates (names from a dozen naming
  cultures, dates in eleven formats) in user turns, answers, tool arguments and FHIR tool results: the dev
  and first held-out templates here, and nine blind sets by authors who never read the rules
  (`slmlab/resources/pii_blind_templates.json`, with each author's note and non-personal `keep` values).
- `leak_table`: recall per kind (share of distinct gold values found nowhere in the curated text), with a
  Wilson 95% interval.

Usage:
    >>> calls, gold = generated_calls(n=20, seed=0)
    >>> sorted(gold["kind"].unique())[:3]
    ['account_id', 'address', 'date_of_birth']
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import polars as pl

from slmlab.schema import conform

GOLD_SCHEMA = {"kind": pl.String(), "value": pl.String(), "source": pl.String()}

# ---------------------------------------------------------------------------------------- tau profiles
_PROFILE_KEYS = {
    "first_name": "name", "last_name": "name", "full_name": "name", "email": "email", "dob": "date_of_birth",
    "date_of_birth": "date_of_birth", "address1": "address", "street": "address", "zip": "zip",
    "zip_code": "zip", "user_id": "user_id", "customer_id": "user_id", "phone_number": "phone",
}  # fmt: skip


def _profile_values(obj, out: set, parent: str = "") -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, str) and k in _PROFILE_KEYS and v.strip():
                out.add((_PROFILE_KEYS[k], v.strip()))
            elif parent == "payment_methods" and isinstance(v, dict):
                out.add(("payment_id", k))
            elif k == "payment_methods" and isinstance(v, list):
                out.update(("payment_id", p) for p in v if isinstance(p, str))
            _profile_values(v, out, k)
    elif isinstance(obj, list):
        for v in obj:
            _profile_values(v, out, parent)


def profile_gold(paths: Iterable[str | Path]) -> pl.DataFrame:
    """Personal values of every user profile returned by a tool in tau-bench / tau2-bench result files.

    A profile is a tool result that parses to a JSON object with an `email` or a name field. Full names
    are split into their tokens too (a bare last name in a later turn is a leak).
    """
    rows: set[tuple[str, str, str]] = set()
    for path in paths:
        raw = json.loads(Path(path).read_text())
        sims = raw["simulations"] if isinstance(raw, dict) else raw
        for sim in sims:
            task_user = ((sim.get("info") or {}).get("task") or {}).get("user_id")
            if task_user:
                rows.add(("user_id", task_user, Path(path).name))
            for m in sim.get("messages") or sim.get("traj") or []:
                for tc in m.get("tool_calls") or []:
                    args = (tc.get("function") or tc).get("arguments")
                    try:
                        args = json.loads(args) if isinstance(args, str) else args
                    except ValueError:
                        continue
                    for k in ("user_id", "customer_id"):
                        if isinstance(args, dict) and isinstance(args.get(k), str) and args[k].strip():
                            rows.add(("user_id", args[k].strip(), Path(path).name))
                content = m.get("content")
                if m.get("role") != "tool" or not isinstance(content, str) or not content.startswith("{"):
                    continue
                try:
                    obj = json.loads(content)
                except ValueError:
                    continue
                if not isinstance(obj, dict) or not ({"email", "name", "full_name"} & obj.keys()):
                    continue
                found: set = set()
                _profile_values(obj, found)
                for kind, v in found:
                    rows.add((kind, v, Path(path).name))
                    if kind == "name" and " " in v:
                        rows.update(("name", t, Path(path).name) for t in v.split())
    return pl.DataFrame(sorted(rows), schema=GOLD_SCHEMA, orient="row")


# ---------------------------------------------------------------------------------- published test data
#: (kind, sentence, values) from Presidio's `context_sentences_tests.txt` (MIT, github.com/microsoft/presidio)
PRESIDIO_CONTEXT_SENTENCES = [
    ("ip_address", "my ip: 192.168.0.1", ["192.168.0.1"]),
    ("ssn", "my social security number is 078051120", ["078051120"]),
    ("ssn", "my social security number is 078-05-1120", ["078-05-1120"]),
    ("phone", "my phone number is (425) 882-9090", ["(425) 882-9090"]),
    ("phone", "my phone number is:(425) 882-9090", ["(425) 882-9090"]),
    ("phone", "my phone number is 425 8829090", ["425 8829090"]),
    ("phone", "my phone number is 4258829090", ["4258829090"]),
    ("tax_id", "my itin: 911701234", ["911701234"]),
    ("tax_id", "my itin is 911-70-1234", ["911-70-1234"]),
    ("license", "my driver license is H12234567", ["H12234567"]),
    ("license", "my driver license is: 1234567901234", ["1234567901234"]),
    ("account_id", "my bank account number is 912803456", ["912803456"]),
    ("account_id", "my banking account number is 912803456", ["912803456"]),
    ("license", "my passport number is 912803456", ["912803456"]),
]
#: A Synthea FHIR Patient from Presidio's `tests/data/synthetic.json` (trimmed to the identifying fields)
SYNTHEA_PATIENT = {
    "resourceType": "Patient",
    "id": "110bcd25-a55d-453a-8046-1297901ea002",
    "identifier": [
        {"system": "https://github.com/synthetichealth/synthea", "value": "b1b1c937-adf9-4c5e-987c-8f88e9c7121f"},
        {"type": {"text": "Social Security Number"}, "system": "http://hl7.org/fhir/sid/us-ssn", "value": "999-90-5728"},
        {"type": {"text": "Driver's License"}, "system": "urn:oid:2.16.840.1.113883.4.3.25", "value": "S99966334"},
        {"type": {"text": "Passport Number"}, "value": "X52092396X"},
    ],
    "name": [{"use": "official", "family": "Walsh511", "given": ["Roberto515"], "prefix": ["Mr."]}],
    "telecom": [{"system": "phone", "value": "555-780-8673", "use": "home"}],
    "gender": "male",
    "birthDate": "1965-09-03",
    "address": [{"line": ["791 Upton Mall Unit 35"], "city": "Pittsfield", "state": "Massachusetts",
                 "postalCode": "01201", "country": "US"}],
}  # fmt: skip
SYNTHEA_GOLD = [
    ("mrn", "b1b1c937-adf9-4c5e-987c-8f88e9c7121f"), ("ssn", "999-90-5728"), ("license", "S99966334"),
    ("license", "X52092396X"), ("name", "Walsh511"), ("name", "Roberto515"), ("phone", "555-780-8673"),
    ("date_of_birth", "1965-09-03"), ("address", "791 Upton Mall Unit 35"), ("zip", "01201"),
]  # fmt: skip

# ----------------------------------------------------------------------------------- generated free text
_FIRST = (
    "Aarav Priya Wei Mei Hiroshi Yuki Min-jun Ji-woo Oluwaseun Chiamaka Kwame Amara Mohammed Fatima Omar "
    "Layla Dmitri Svetlana Ivan Olga José María Sofía Diego João Ana Thanh Linh Giorgos Eleni Siobhan "
    "Padraig Astrid Lars Nia Tane Kalani Ravi Anjali Emily James Zeynep Mehmet Ngozi Tendai Ines Mateus"
).split()
_LAST = (
    "Sharma Patel Zhang Chen Tanaka Sato Kim Park Adeyemi Okafor Mensah Diallo Al-Sayed Haddad Khan "
    "Ivanova Petrov García Fernández Oliveira Santos Nguyen Tran Papadopoulos O'Brien McCarthy Lindqvist "
    "Johansson Kahananui Reddy Iyer Smith Johnson Yilmaz Demir Mwangi Moyo Kowalski Rossi Dubois"
).split()
_MONTHS = "January February March April May June July August September October November December".split()


def _date(rng: random.Random, years: tuple[int, int] = (1931, 2006)) -> str:
    y, m, d = rng.randint(*years), rng.randint(1, 12), rng.randint(1, 28)
    mon = _MONTHS[m - 1]
    fmts = [
        f"{y}-{m:02d}-{d:02d}", f"{m:02d}/{d:02d}/{y}", f"{m}/{d}/{y}", f"{d:02d}.{m:02d}.{y}",
        f"{mon} {d}, {y}", f"{d} {mon} {y}", f"{mon[:3]} {d} {y}", f"{d}-{mon[:3]}-{y}",
        f"{y}/{m:02d}/{d:02d}", f"{mon} {d}{'th' if d > 3 else ['st', 'nd', 'rd'][d - 1]}, {y}",
        f"{d:02d}/{m:02d}/{y % 100:02d}",
    ]  # fmt: skip
    return rng.choice(fmts)


def _mrn(rng: random.Random) -> str:
    n = rng.randint(10**6, 10**8 - 1)
    return rng.choice([f"S{n}", f"MRN{n}", f"{n:08d}", f"A{n % 1000:03d}-{n // 1000 % 10000:04d}", f"P-{n}"])


def _member(rng: random.Random) -> str:
    letters = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(3))
    return rng.choice([f"{letters}{rng.randint(10**8, 10**9 - 1)}", f"W{rng.randint(10**7, 10**8 - 1)}",
                       f"{rng.randint(100, 999)}-{rng.randint(10**5, 10**6 - 1)}"])  # fmt: skip


def _street(rng: random.Random) -> str:
    return (
        f"{rng.randint(2, 9899)} {rng.choice(['Maple', 'Jefferson', 'Harbor View', 'Old Mill', 'Cedar Ridge', 'Pine'])} "
        f"{rng.choice(['Street', 'Avenue', 'Road', 'Lane', 'Drive', 'Court', 'Boulevard'])}"
    )


# {n} full name, {f} first name, {l} last name, {d} date of birth, {m} record number, {b} member id,
# {a} account number, {z} zip, {s} street line. Written for this set: plain, clinical, chatty, terse.
_TEMPLATES = [
    "What's the MRN of the patient with name {n} and DOB of {d}?",
    "Can you pull up the chart for {n}? She was born {d}.",
    "{n} (DOB {d}) is asking about her lab results.",
    "Patient {n}, date of birth {d}, MRN {m}, presented with chest pain.",
    "I'm calling on behalf of my father, {n}. His birthday is {d} and his member ID is {b}.",
    "Hello, this is {f} {l}. I was born on {d}, zip code {z}.",
    "Look up record {m} please, last name {l}.",
    "The medical record number for {n} is {m}.",
    "Schedule a follow-up for {f} {l} (born {d}) at the clinic near {z}.",
    "hi its {n} again, my account number is {a}",
    "Send the discharge summary of {n} to the address on file, {s}, ZIP {z}.",
    "{l}, {f} - DOB: {d} - MRN: {m}",
    "Does {n} have any allergies on file? Chart number {m}.",
    "My name is {n} and my insurance member number is {b}.",
    "Please verify the identity of {n}, born {d}, living at {s}.",
    "Refill request from {f} {l}; patient ID {m}; date of birth {d}.",
    "We spoke with Mrs. {l} this morning about her appointment.",
    "Dr. {l} asked whether {f}'s MRN is {m}.",
    "Can you confirm {n}'s birth date? We have {d}.",
    "Policy number {b} belongs to {n}, postal code {z}.",
    "The caller gave her name as {n} and her DOB as {d}.",
    "Transfer the records of {n} (acct #{a}) to the new provider.",
    "Is {f} {l} still listed at {s}, {z}?",
    "Note: {n} was born on {d}; mother's maiden name withheld.",
    "Find appointments for the patient named {n}.",
    "{f} {l} called about a billing issue on account {a}.",
    "Thanks {f}, I have updated your address to {s}.",
    "Subscriber ID {b}, member {n}, DOB {d}.",
]
# Held out when written (after the rules); its misses (a DOB far from its cue, a zip with no cue) later shaped
# the sentence-wide DOB cue and the bare-zip rule, so it is no longer blind (the "blind*" sets are).
HELDOUT_TEMPLATES = [
    "Quick question about {n} - they were born {d} and their chart # is {m}",
    "Could you tell me if there's an MRN on file for {l}, {f}? Birthdate {d}.",
    "Our records show {n} moved to {s} (zip {z}) last spring.",
    "Please locate the patient whose date of birth is {d} and surname is {l}.",
    "Member {b} ({n}) needs a prior authorization.",
    "I think my DOB is wrong in your system: it should be {d}. I'm {n}.",
    "For {f} {l}: appointment confirmed. Account {a}.",
    "Good morning, {f} here; my medical record number is {m} and I live in {z}.",
    "Check whether the record {m} matches {n} born {d}.",
    "Add a note to {n}'s file: lives at {s}, postal code {z}.",
]
_KIND_OF = {"n": "name", "f": "name", "l": "name", "d": "date_of_birth", "m": "mrn", "b": "member_id",
            "a": "account_id", "z": "zip", "s": "address"}  # fmt: skip
_SLOT = re.compile(r"\{(\w)\}")


def _fill(
    template: str, rng: random.Random, years: tuple[int, int]
) -> tuple[str, list[tuple[str, str]], dict]:
    f, last = rng.choice(_FIRST), rng.choice(_LAST)
    vals = {"n": f"{f} {last}", "f": f, "l": last, "d": _date(rng, years), "m": _mrn(rng), "b": _member(rng),
            "a": str(rng.randint(10**7, 10**10)), "z": f"{rng.randint(1001, 99950):05d}", "s": _street(rng)}  # fmt: skip
    used = {k for k in _SLOT.findall(template)}
    gold = [(_KIND_OF[k], vals[k]) for k in used if k != "n"]
    if "n" in used:
        gold += [("name", f), ("name", last)]
    return template.format(**vals), gold, vals


def _blind_sets() -> dict:
    """The blind template sets (`slmlab/resources/pii_blind_templates.json`): written by sixteen authors who
    never read the rules; each set's provenance says how it was used (see the README's curate section)."""
    path = Path(str(resources.files("slmlab") / "resources" / "pii_blind_templates.json"))
    return json.loads(path.read_text(encoding="utf-8"))["sets"]


_BLIND = _blind_sets()
#: template set -> (templates, birth years drawn): the blind sets also have children (born up to 2024)
TEMPLATE_SETS = {
    "dev": (_TEMPLATES, (1931, 2006)),
    "heldout": (HELDOUT_TEMPLATES, (1931, 2006)),
    **{name: (b["templates"], tuple(b["birth_years"])) for name, b in _BLIND.items()},
}
#: template set -> the non-personal values written in its templates (a redactor should leave them)
KEEP_VALUES = {name: b["keep"] for name, b in _BLIND.items()}


def generated_calls(n: int = 600, seed: int = 0, templates: str = "dev") -> tuple[pl.DataFrame, pl.DataFrame]:
    """A call table of `n` medical / customer-service sessions built from free-text templates.

    Each session puts one filled template in a user turn; one in three sessions also has the agent search
    a FHIR server (`Patient?family=...&birthdate=...`), get a Patient resource back and answer in prose.

    Args:
        n: sessions.
        seed: random seed.
        templates: "dev" (written with the rules), "heldout" (written after them; its misses then widened
            the rules) or "blind", "blind2", ... (each by an author who never read the rules; the misses of
            each set but blind6 and the newest changed the rules in turn: `TEMPLATE_SETS` lists them, the
            resource file gives each set's provenance).

    Returns:
        (calls in `schema.CALL_SCHEMA`, gold values with `GOLD_SCHEMA`).
    """
    rng = random.Random(seed)
    if templates not in TEMPLATE_SETS:
        raise ValueError(f"templates must be one of {sorted(TEMPLATE_SETS)}, not {templates!r}")
    chosen, years = TEMPLATE_SETS[templates]
    rows, gold = [], []
    for i in range(n):
        sid = f"gen-{seed}-{i}"
        sentence, g, v = _fill(rng.choice(chosen), rng, years)
        gold += [(k, val, sid) for k, val in g]
        msgs = [{"role": "system", "content": "You are a clinical assistant with FHIR tools."},
                {"role": "user", "content": sentence}]  # fmt: skip
        calls = []
        if i % 3 == 0:
            y, mth, day = rng.randint(1931, 2006), rng.randint(1, 12), rng.randint(1, 28)
            iso = f"{y}-{mth:02d}-{day:02d}"
            gold += [("date_of_birth", iso, sid), ("mrn", v["m"], sid), ("zip", v["z"], sid)]
            url = f"Patient?family={v['l']}&given={v['f']}&birthdate={iso}"
            tc = {"id": f"call_{i:06d}", "name": "fhir_search", "arguments": json.dumps({"url": url})}
            calls.append((list(msgs), None, [tc]))
            patient = {"resourceType": "Bundle", "entry": [{"resource": {
                "resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": v["m"]}],
                "name": [{"family": v["l"], "given": [v["f"]]}], "birthDate": iso,
                "address": [{"line": [v["s"]], "city": "Springfield", "postalCode": v["z"]}]}}]}  # fmt: skip
            gold.append(("address", v["s"], sid))
            msgs += [{"role": "assistant", "content": None, "tool_calls": [{"id": tc["id"], "type": "function",
                      "function": {"name": tc["name"], "arguments": tc["arguments"]}}]},
                     {"role": "tool", "tool_call_id": tc["id"], "content": json.dumps(patient)}]  # fmt: skip
            answer = rng.choice([
                f"I found {v['f']} {v['l']}, born {iso}. The MRN is {v['m']}.",
                f"The record for {v['l']} ({iso}) has identifier {v['m']}.",
                f"Found one match: MRN {v['m']}, DOB {iso}.",
            ])  # fmt: skip
            calls.append((list(msgs), answer, []))
        else:
            calls.append((list(msgs), "Sure, let me check that for you.", []))
        for step, (prompt, text, tcs) in enumerate(calls):
            rows.append({
                "call_id": f"{sid}-{step}", "session_id": sid, "step": step, "agent": "clinic_agent",
                "model": "gpt-4o", "messages": json.dumps(prompt), "response_text": text,
                "response_tool_calls": json.dumps(tcs) if tcs else None, "tool_name": tcs[0]["name"] if tcs else None,
                "n_tool_calls": len(tcs), "status": "ok", "finish_reason": "tool_calls" if tcs else "stop",
                "source_format": "generated", "source_file": f"generated-seed{seed}", "source_line": i,
            })  # fmt: skip
    gold_df = (
        pl.DataFrame(gold, schema=GOLD_SCHEMA, orient="row").unique(["kind", "value"]).sort("kind", "value")
    )
    return conform(pl.DataFrame(rows)), gold_df


# ------------------------------------------------------------------------------------------ scoring
def _needles(value: str) -> list[str]:
    once = json.dumps(value)[1:-1]
    return sorted({value, once, json.dumps(once)[1:-1]})


def texts_of(calls: pl.DataFrame) -> list[str]:
    """Every string cell of a call table (the text a leak could hide in)."""
    cols = [c for c, t in calls.schema.items() if t == pl.String]
    return [v for c in cols for v in calls.get_column(c).drop_nulls().to_list()]


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    mid, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return ((mid - half) / (1 + z * z / n), (mid + half) / (1 + z * z / n))


def leaks(texts: Iterable[str] | pl.DataFrame, gold: pl.DataFrame) -> pl.DataFrame:
    """The gold values still present in `texts` as a whole word (case-sensitive; raw or JSON-escaped).

    One pass of one trie regex over the text, so thousands of values cost about as much as one.
    """
    from slmlab.curate.engine import trie_regex

    strings = texts_of(texts) if isinstance(texts, pl.DataFrame) else list(texts)
    blob = "\x00".join(dict.fromkeys(strings))
    values = gold.get_column("value").to_list()
    needles = {n: v for v in values for n in _needles(v)}
    if not needles:
        return gold.head(0)
    rx = re.compile(rf"(?<![A-Za-z0-9])(?:{trie_regex(sorted(needles))})(?![A-Za-z0-9])")
    hits = set(rx.findall(blob))
    present = {needles[h] for h in hits}
    for v in set(values) - present:  # a value inside a longer match ("Li" in "Mia Li") is found there
        inner = re.compile(rf"(?<![A-Za-z0-9])(?:{'|'.join(map(re.escape, _needles(v)))})(?![A-Za-z0-9])")
        if any(inner.search(h) for h in hits):
            present.add(v)
    return gold.filter(pl.col("value").is_in(sorted(present)))


def leak_table(raw: pl.DataFrame, curated: pl.DataFrame, gold: pl.DataFrame) -> pl.DataFrame:
    """Recall per kind: of the gold values present in the raw calls, the share found nowhere after curation."""
    present = gold.join(leaks(raw, gold).select("kind", "value").unique(), on=["kind", "value"], how="semi")
    left = leaks(curated, present).select("kind", "value").unique().with_columns(pl.lit(True).alias("left"))
    rows = []
    for kind, part in present.unique(["kind", "value"]).group_by("kind"):
        n = part.height
        k_left = part.join(left, on=["kind", "value"], how="semi").height
        lo, hi = wilson(n - k_left, n)
        rows.append((kind[0], n, k_left, (n - k_left) / n, lo, hi))
    schema = {"kind": pl.String, "values": pl.Int64, "left": pl.Int64, "recall": pl.Float64,
              "ci_low": pl.Float64, "ci_high": pl.Float64}  # fmt: skip
    return pl.DataFrame(rows, schema=schema, orient="row").sort("kind")
