"""Shared test fixtures: paths to the real agent logs in ../shared, a per-session SLMLAB_HOME, CUDA skips."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_LOGS = REPO.parent / "shared" / "data" / "agent-logs"

# Keep test caches out of the developer's own SLMLAB_HOME, but share them across the session (model
# conversion, embeddings) so expensive artefacts are built once per test run.
os.environ.setdefault("SLMLAB_HOME", str(REPO / ".slmlab" / "test-home"))
os.environ.setdefault("SLMLAB_CACHE", str(REPO / ".slmlab" / "test-home" / "cache"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def shared_logs() -> Path:
    """Folder of the real agent logs (tau-bench, tau2-bench, ToolBench); skips where ../shared is absent."""
    if not SHARED_LOGS.is_dir():
        pytest.skip("../shared/data/agent-logs is not present on this machine")
    return SHARED_LOGS


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip_cuda = pytest.mark.skip(reason="needs an NVIDIA GPU (CUDA not available)")
    for item in items:
        if "cuda" in item.keywords and not has_cuda:
            item.add_marker(skip_cuda)
