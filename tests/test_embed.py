"""Embedders: TF-IDF fit/embed, the on-disk cache, the bundled MiniLM, the selector, the missing-extra error."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from slmlab.cluster.embed import (
    Embedder,
    EmbeddingCache,
    SentenceTransformerEmbedder,
    TfidfEmbedder,
    _digest,
    select_embedder,
)
from slmlab.config import MissingDependencyError

TEXTS = [
    "cancel my flight to Boston",
    "please cancel the reservation",
    "what is the weather in Paris",
    "weather forecast for London tomorrow",
    "book a hotel room in Rome",
]


class CountingEmbedder(Embedder):
    """A real (deterministic, character-count) embedder that records what it was asked to compute."""

    name = "counting-test"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen: list[str] = []

    def _embed(self, texts):
        self.seen.extend(texts)
        return np.array([[len(t), t.count("a") + 1, 1.0] for t in texts], dtype=np.float32)


@pytest.fixture(scope="session")
def minilm():
    return SentenceTransformerEmbedder()


def test_tfidf_fit_embed_is_normalized_and_named_by_corpus():
    e = TfidfEmbedder(n_components=3).fit(TEXTS)
    x = e.embed(TEXTS)
    assert x.shape == (5, 3) and x.dtype == np.float32
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    other = TfidfEmbedder(n_components=3).fit(TEXTS[:4])
    assert e.name != other.name and e.name.startswith("tfidf3-")


def test_tfidf_must_be_fit():
    with pytest.raises(RuntimeError, match="fit"):
        TfidfEmbedder().embed(["x"])


def test_cache_computes_each_text_once_and_truncates(tmp_path, monkeypatch):
    monkeypatch.setenv("SLMLAB_CACHE", str(tmp_path / "cache"))
    e = CountingEmbedder(max_chars=10)
    first = e.embed(["a" * 30, "bb", "bb"])
    assert sorted(e.seen) == ["a" * 10, "bb"]  # truncated, and the duplicate computed once
    again = CountingEmbedder(max_chars=10).embed(["bb", "a" * 30])
    assert np.allclose(again, first[[1, 0]])
    folder = tmp_path / "cache" / "embeddings" / "counting-test-c10"
    assert len(list(folder.glob("*.npz"))) == 1
    fresh = EmbeddingCache(folder)  # another process reads the chunk back
    got = fresh.get([_digest("bb"), _digest("a" * 10), _digest("zz")])
    assert np.allclose(got[0], first[1]) and np.allclose(got[1], first[0]) and got[2] is None


def test_cache_off_recomputes(tmp_path, monkeypatch):
    monkeypatch.setenv("SLMLAB_CACHE", str(tmp_path / "cache"))
    e = CountingEmbedder(cache=False)
    e.embed(["x"])
    e.embed(["x"])
    assert e.seen == ["x", "x"]


def test_select_embedder_by_name_and_object():
    assert isinstance(select_embedder("tfidf"), TfidfEmbedder)
    assert isinstance(select_embedder(None), SentenceTransformerEmbedder)
    assert select_embedder("all-minilm-l6-v2", precision="fp32").name == "st-all-minilm-l6-v2"
    assert select_embedder("all-minilm-l6-v2", precision="bf16").name == "st-all-minilm-l6-v2-bf16"
    obj = TfidfEmbedder()
    assert select_embedder(obj) is obj
    assert select_embedder("tfidf", max_chars=7).max_chars == 7


def test_missing_sentence_transformers_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    e = SentenceTransformerEmbedder("some/other-model")
    with pytest.raises(MissingDependencyError, match=r'pip install "slmlab\[embed\]"'):
        e.embed(["hello"])


def test_minilm_is_offline_normalized_and_semantic(minilm):
    x = minilm.embed(TEXTS)
    assert x.shape == (5, 384)
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-4)
    sim = x @ x.T
    assert sim[0, 1] > sim[0, 2] and sim[2, 3] > sim[2, 4]


def test_bf16_autocast_keeps_the_fp32_vectors(minilm):
    texts = TEXTS + ["get_reservation_details(reservation_id='ZFA04Y')", "x" * 900]
    fp32 = SentenceTransformerEmbedder(precision="fp32", cache=False).embed(texts)
    bf16 = SentenceTransformerEmbedder(precision="bf16", cache=False).embed(texts)
    assert bf16.dtype == np.float32 and np.allclose(np.linalg.norm(bf16, axis=1), 1.0, atol=1e-4)
    assert (fp32 * bf16).sum(axis=1).min() > 0.99
    with pytest.raises(ValueError, match="precision"):
        SentenceTransformerEmbedder(precision="int4")


def test_tfidf_on_a_tiny_corpus_skips_the_svd():
    x = TfidfEmbedder().fit(["hi"]).embed(["hi", "other"])
    assert x.shape == (2, 1) and np.allclose(x[0], 1.0)
