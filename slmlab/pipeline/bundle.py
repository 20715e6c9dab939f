"""Hand-off to production: a self-contained bundle of the fitted router and the per-cluster adapters.

`export_bundle(run, out)` writes:

    bundle/
      bundle.json          manifest: base model per cluster, adapter names, LLM fallback, slmlab version
      router/              the fitted router (config + state), loadable without notebooks
      cascade/             optional: the cascade router (gate model + calibrated threshold)
      adapters/cluster_N/  one LoRA adapter per swapped cluster (merged weights on request)
      serve_vllm.sh        one vLLM server with every adapter (multi-LoRA), OpenAI-compatible
      README.md            what is inside and how to route a call

`load_bundle(path)` gives back the manifest and the router in a fresh process; `load_cascade(path)` the
cascade (`slmlab.route.CascadeRouter`), whose adapters are among those `serve_vllm.sh` serves.

Usage:
    >>> from slmlab.pipeline.bundle import export_bundle, load_bundle
    >>> path = export_bundle("demo", "bundle")  # doctest: +SKIP
    >>> manifest, router = load_bundle(path)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from slmlab import __version__
from slmlab.runs import RunStore


def _adapter_dirs(run: str) -> dict[str, Path]:
    root = RunStore(run).adapters_dir()
    if not root.exists():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if (p / "adapter_config.json").exists()}


def _base_model(adapter: Path) -> str:
    for name in ("slmlab_adapter.json", "adapter_config.json"):
        cfg_path = adapter / name
        if cfg_path.exists():
            cfg = json.loads(cfg_path.read_text())
            base = cfg.get("base_model") or cfg.get("base_model_name_or_path")
            if base:
                return str(base)
    return "unknown"


def serve_command(
    adapters: dict[str, str], base_model: str, port: int = 8000, max_lora_rank: int = 64
) -> str:
    """A vLLM command that serves `base_model` with every adapter as a named LoRA module."""
    modules = " ".join(f"{name}=adapters/{name}" for name in adapters)
    return (
        f"vllm serve {base_model} --port {port} --enable-lora --max-loras {max(len(adapters), 1)} "
        f"--max-lora-rank {max_lora_rank}" + (f" --lora-modules {modules}" if modules else "")
    )


def export_bundle(
    run: str = "demo", out: str | Path = "bundle", merge: bool = False, cascade: Any = None
) -> Path:
    """Write the router, adapters, serve script and README of a run into `out`.

    Args:
        run: the run folder whose artefacts (router, adapters) to export.
        out: the bundle folder (replaced if it exists).
        merge: also write merged full weights per adapter (`merged/cluster_N`), for servers without LoRA.
        cascade: a fitted `slmlab.route.CascadeRouter` (or its saved folder): saved as `cascade/` with
            its gate and threshold; the adapters its routes name are bundled and served too. With a
            cascade, a run without a prompt router exports the cascade alone.

    Raises:
        FileNotFoundError: when the run has no fitted router (run notebook 07 first) and no cascade is given.
    """
    out = Path(out)
    router_dir = RunStore(run).router_dir()
    if not router_dir.exists() and cascade is None:
        raise FileNotFoundError(f"{router_dir} is missing: fit the router (notebook 07) before exporting")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    if router_dir.exists():
        shutil.copytree(router_dir, out / "router")
    adapters = _adapter_dirs(run)
    cascade_info = _bundle_cascade(cascade, out, adapters) if cascade is not None else None
    bases = {name: _base_model(path) for name, path in adapters.items()}
    for name, path in adapters.items():
        shutil.copytree(
            path, out / "adapters" / name, ignore=shutil.ignore_patterns("checkpoint-*", "optimizer.pt")
        )
        if merge:
            from slmlab.specialize import merge_and_save

            merge_and_save(path, out / "merged" / name)
    base_models = sorted(set(bases.values()))
    scripts = [serve_command({n: "" for n, b in bases.items() if b == base}, base) for base in base_models]
    (out / "serve_vllm.sh").write_text(
        "#!/usr/bin/env bash\n# One server per base model; each adapter is a model name.\n"
        + "\n".join(scripts)
        + "\n"
    )
    (out / "serve_vllm.sh").chmod(0o755)
    manifest = {
        "slmlab_version": __version__,
        "run": run,
        "router": "router" if router_dir.exists() else None,
        "cascade": cascade_info,
        "adapters": {name: {"path": f"adapters/{name}", "base_model": bases[name]} for name in adapters},
        "serve": scripts,
    }
    (out / "bundle.json").write_text(json.dumps(manifest, indent=1))
    (out / "README.md").write_text(_readme(manifest))
    return out


def _readme(manifest: dict[str, Any]) -> str:
    rows = "\n".join(f"| {n} | {a['base_model']} | `{a['path']}` |" for n, a in manifest["adapters"].items())
    return f"""# slmlab bundle (run `{manifest["run"]}`, slmlab {manifest["slmlab_version"]})

A fitted router that sends each live agent call either to a small fine-tuned model (one LoRA adapter
per sub-task cluster) or back to the LLM, using only the prompt.

| adapter | base model | path |
|---|---|---|
{rows or "| (none) | | |"}

## Serve the adapters
```bash
{chr(10).join(manifest["serve"])}
```
Each adapter is then a model name on the OpenAI-compatible endpoint (`model="cluster_3"`). The lines above
are relative to this folder and name the base model as slmlab does; on the machine that serves, write the
checked plan (absolute paths, the adapters' chat template, a LoRA rank vLLM accepts) and a LiteLLM route
with the LLM as fallback: `python -m slmlab.pipeline.serving . --fallback-model openai/gpt-4o`.

## Route a call
```python
from slmlab.pipeline.bundle import load_bundle
manifest, router = load_bundle("path/to/bundle")
routed = router.route(calls)   # calls: the canonical call table (prompt columns are enough)
routed.select("call_id", "routed_to", "cluster")
```
"""


def load_bundle(path: str | Path) -> tuple[dict[str, Any], Any]:
    """Read a bundle's manifest and load its router (`slmlab.route.load_router`; the cascade when the
    bundle has no prompt router)."""
    from slmlab.route import load_router

    path = Path(path)
    manifest = json.loads((path / "bundle.json").read_text())
    name = manifest.get("router") or (manifest.get("cascade") or {}).get("router")
    return manifest, load_router(path / name)


def _bundle_cascade(cascade: Any, out: Path, adapters: dict[str, Path]) -> dict[str, Any]:
    """Save the cascade router into `out/cascade`, add the adapters its routes name (renamed to their
    bundle path) to `adapters`, and describe it for the manifest."""
    from slmlab.route import load_router

    router = load_router(cascade) if isinstance(cascade, (str, Path)) else cascade
    names = []
    routes = router.routes.to_dicts()
    for row in routes:
        if not row.get("adapter"):
            continue
        src = Path(row["adapter"])
        name = f"cascade_{src.name}"
        adapters[name] = src
        row["adapter"] = f"adapters/{name}"
        names.append(name)
    import polars as pl

    router.routes = pl.DataFrame(routes, schema=router.routes.schema)
    router.save(out / "cascade")
    return {
        "router": "cascade",
        "threshold": router.threshold,
        "target": getattr(router, "target", None),
        "gate": router.gate_.state() if hasattr(router, "gate_") else None,
        "adapters": names,
    }


def load_cascade(path: str | Path) -> Any:
    """The bundle's cascade router (gate + threshold), in any process.

    Example:
        >>> cascade = load_cascade("bundle")  # doctest: +SKIP
    """
    from slmlab.route import load_router

    path = Path(path)
    manifest = json.loads((path / "bundle.json").read_text())
    if not manifest.get("cascade"):
        raise FileNotFoundError(f"{path}: this bundle has no cascade (export_bundle(..., cascade=router))")
    return load_router(path / manifest["cascade"]["router"])
