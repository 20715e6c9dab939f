"""Tests for the environment check of notebook 00."""

from __future__ import annotations

import importlib.metadata

import polars as pl

from slmlab.runtime import env


def test_environment_report_lists_real_versions_and_models():
    report = env.environment_report(check_bitsandbytes=False)
    assert report.columns == ["section", "check", "value", "ok", "note"]
    versions = dict(report.filter(pl.col("section") == "packages").select("check", "value").iter_rows())
    assert versions["polars"] == pl.__version__
    assert versions["transformers"] == importlib.metadata.version("transformers")
    checks = report["check"].to_list()
    assert "cpu cores" in checks and "memory" in checks and "SLMLAB_HOME" in checks
    assert any(c == "cuda" or c.startswith("cuda:") for c in checks)
    models = report.filter(pl.col("section") == "models")
    assert set(models["check"]) == {"smollm2-135m", "all-minilm-l6-v2"}
    assert models["ok"].all()  # both bundled models ship with the dev environment


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(env, "PACKAGES", [("surely-not-installed-pkg", "surely_not", "train")])
    row = env._packages()[0]
    assert row["ok"] is False and row["note"] == 'pip install "slmlab[train]"'


def test_bitsandbytes_nf4_round_trip():
    ok, note = env.bitsandbytes_check()
    assert ok, note  # bitsandbytes 0.50 quantizes nf4 on CPU too
    assert "mean abs error" in note


def test_notebook_guide_reads_what_each_notebook_needs(tmp_path):
    (tmp_path / "01_do_thing.py").write_text(
        "# %% [markdown]\n# # 01 · Do a thing\n#\n# Goal: do the thing\n# well.\n#\n"
        '# **What you need:** CPU, a minute.\n\n# %% tags=["parameters"]\nX = 1\n'
    )
    (tmp_path / "notes.py").write_text("# not a step notebook\n")
    guide = env.notebook_guide(tmp_path)
    assert guide.to_dicts() == [
        {
            "notebook": "01_do_thing",
            "title": "01 · Do a thing",
            "goal": "do the thing well.",
            "what_you_need": "CPU, a minute.",
        }
    ]
    assert env.notebook_guide().height >= 1  # the repository's own notebooks
