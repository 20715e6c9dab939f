"""Workshop mode: pre-compute on one machine what a room of weak laptops would otherwise wait for.

`slmlab workshop prepare` runs the whole conversion once (every notebook, at the scale asked for) into a
run folder, which fills the embeddings cache, trains the adapters and writes every artefact. Copy
`SLMLAB_HOME` (or point it at a shared folder) to each laptop: there the notebooks find the cached
embeddings (re-clustering takes seconds), the tuned adapter and the run folder, so each participant runs
every notebook in minutes. It then checks that no executed notebook printed a warning or an error, the
red boxes that confuse a room.

Usage:
    slmlab workshop prepare --run workshop            # at the default scale ("cpu" without a GPU)
    slmlab workshop prepare --run workshop --smoke    # a quick dry run
    >>> from slmlab.pipeline.workshop import noisy_outputs
    >>> noisy_outputs("executed/03_cluster_tasks.ipynb")  # doctest: +SKIP
    []
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slmlab.config import cache_dir, home_dir


def noisy_outputs(notebook: str | Path) -> list[str]:
    """Outputs of an executed notebook that a participant would read as something gone wrong.

    Error outputs, anything written to stderr (Python warnings, library log lines, tracebacks), and
    widgets shown as their text repr instead of a view.

    Returns:
        One line per such output: "<notebook> cell <n>: <first 200 characters>".
    """
    path = Path(notebook)
    nb = json.loads(path.read_text(encoding="utf-8"))
    found: list[str] = []
    for i, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []) or []:
            kind = out.get("output_type")
            text = ""
            if kind == "error":
                text = f"{out.get('ename')}: {out.get('evalue')}"
            elif kind == "stream" and out.get("name") == "stderr":
                text = _join(out.get("text"))
            elif kind in ("display_data", "execute_result"):
                data = out.get("data", {})
                plain = _join(data.get("text/plain"))
                if "application/vnd.jupyter.widget-view+json" not in data and plain.startswith(
                    ("VBox(", "HBox(", "FigureWidget(", "Box(")
                ):
                    text = "widget shown as text: " + plain
            if text.strip():
                found.append(f"{path.name} cell {i}: {' '.join(text.split())[:200]}")
    return found


def _join(text: Any) -> str:
    return "".join(text) if isinstance(text, list) else str(text or "")


@dataclass
class WorkshopPrep:
    """What `prepare` did: the run, where everything is, the steps and the noisy outputs left."""

    run: str
    home: Path
    steps: list[Any] = field(default_factory=list)
    noisy: list[str] = field(default_factory=list)
    ok: bool = False

    def summary(self) -> str:
        lines = [f"{s.notebook:40s} {s.status:7s} {s.seconds:7.1f} s" for s in self.steps]
        lines.append(f"run folder: {self.home / 'runs' / self.run}")
        cache = cache_dir("embeddings").parent
        if cache.exists():
            lines.append(f"caches: {cache} ({_size_mb(cache):,.0f} MB)")
        if self.noisy:
            lines.append(f"{len(self.noisy)} warning/error outputs in the executed notebooks:")
            lines += [f"  {n}" for n in self.noisy]
        else:
            lines.append("no warning or error output in any executed notebook")
        lines.append(
            f"copy {self.home} to each laptop (or set SLMLAB_HOME to it) and open the notebooks with "
            f"SLMLAB_RUN={self.run}"
        )
        return "\n".join(lines)


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def prepare(
    run: str = "workshop", smoke: bool = False, force: bool = False, archive: Path | None = None
) -> WorkshopPrep:
    """Run every notebook once into `run` (embeddings cache, adapters, run folder), then check the outputs.

    Args:
        run: the run folder participants will open (`SLMLAB_RUN`).
        smoke: tiny sizes (`SLMLAB_SMOKE=1`) for a dry run of the preparation itself.
        force: re-run every notebook even if its step is cached.
        archive: also pack `SLMLAB_HOME` into this `.tar.gz` to hand out.

    Returns:
        A `WorkshopPrep`; `ok` is False when a notebook failed or printed a warning or an error.
    """
    if smoke:
        os.environ["SLMLAB_SMOKE"] = "1"
    from slmlab.pipeline.run import run_pipeline
    from slmlab.runs import RunStore

    res = run_pipeline(run, force=force)
    prep = WorkshopPrep(run=run, home=home_dir(), steps=res.steps)
    executed = RunStore(run).root / "executed"
    for nb in sorted(executed.glob("*.ipynb")):
        prep.noisy += noisy_outputs(nb)
    prep.ok = res.ok and not prep.noisy
    if archive is not None:
        base = str(archive).removesuffix(".tar.gz")
        shutil.make_archive(base, "gztar", root_dir=prep.home.parent, base_dir=prep.home.name)
    return prep
