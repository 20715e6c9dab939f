"""Packaging: pyproject and environment.yml agree, `import slmlab` stays light, extras errors are clear."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml

from slmlab.config import MissingDependencyError, require

REPO = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for extra, reqs in project["optional-dependencies"].items():
        if extra != "all":
            wanted |= {_name(r) for r in reqs}
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    in_env = {_name(r) for r in pip_section if not r.startswith("-e")}
    assert wanted == in_env


def test_import_slmlab_does_not_import_torch():
    code = "import sys, slmlab, slmlab.schema, slmlab.config, slmlab.savings, slmlab.runtime.chat_format; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_extra_names_pip_install():
    with pytest.raises(MissingDependencyError, match=r'pip install "slmlab\[train\]"'):
        require("surely_not_a_real_module_xyz", "train")


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    assert "make test" in readme and "make run" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()
