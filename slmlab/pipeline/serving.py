"""Serving an export bundle: the vLLM multi-LoRA command and an OpenAI-compatible route config, checked.

`export_bundle` puts one LoRA adapter per swapped cluster into `bundle/adapters/`. This module turns that
folder into what a serving team runs, and checks it before anyone spends a GPU on it:

- `plan_serving(bundle)`: one `ServePlan` per base model: `vllm serve <base> --enable-lora --lora-modules
  cluster_3=<abs path> ... --max-lora-rank <smallest vLLM rank >= every adapter's r>` with the adapters'
  own chat template (the one their training prompts were rendered with) and vLLM's `hermes` tool-call
  parser, which reads exactly the `<tool_call>{json}</tool_call>` blocks the adapters were trained to
  write, so clients get OpenAI `tool_calls` back.
- `check_adapters(bundle)`: what vLLM would reject, found here: not a LoRA adapter, DoRA, `modules_to_save`
  (vLLM serves LoRA deltas only), a rank above vLLM's largest, missing weights, mixed base models.
- `route_config(plans, fallback_model=...)`: a LiteLLM router / proxy config (`litellm --config`): each
  adapter as a model name on the vLLM endpoint, plus the LLM the router falls back to, so agents keep one
  OpenAI-compatible base URL. vLLM itself already answers `model="cluster_3"` on `/v1/chat/completions`;
  the LiteLLM layer adds the fallback model, retries and keys.
- `check_serve_command(argv)`: parses the command with vLLM's own argument parser where vLLM is installed
  (a GPU machine), else checks its structure (paths exist, names unique, rank allowed).
- `write_serving(bundle)`: writes `serve_vllm.sh`, `litellm_config.yaml` and `serving.json` into the bundle.

Usage:
    >>> from slmlab.pipeline.serving import write_serving
    >>> info = write_serving("bundle", fallback_model="openai/gpt-4o")  # doctest: +SKIP
    >>> print(info["commands"][0])  # doctest: +SKIP

    $ python -m slmlab.pipeline.serving bundle/ --fallback-model openai/gpt-4o
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# LoRA ranks vLLM accepts for --max-lora-rank (vllm.config.LoRAConfig).
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")


class ServingError(ValueError):
    """A bundle or command that vLLM / LiteLLM would reject; the message names the file and the problem."""


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    path: Path
    base_model: str  # as trained (slmlab_adapter.json, else adapter_config.json)
    r: int
    target_modules: Any
    chat_template: Path | None


@dataclass(frozen=True)
class ServePlan:
    """One vLLM server: a base model and the adapters trained on it."""

    base_model: str  # what the adapters were trained on
    served_base: str  # what vLLM loads: a local folder or a hub id
    adapters: dict[str, str]  # adapter name -> absolute path
    max_lora_rank: int
    host: str = "0.0.0.0"
    port: int = 8000
    chat_template: str | None = None
    extra_args: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def argv(self) -> list[str]:
        cmd = ["vllm", "serve", self.served_base, "--host", self.host, "--port", str(self.port)]
        cmd += ["--served-model-name", served_name(self.base_model)]
        cmd += ["--enable-lora", "--max-loras", str(max(1, len(self.adapters)))]
        cmd += ["--max-lora-rank", str(self.max_lora_rank)]
        if self.adapters:
            cmd += ["--lora-modules", *[f"{n}={p}" for n, p in self.adapters.items()]]
        if self.chat_template:
            cmd += ["--chat-template", self.chat_template]
        cmd += ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"]
        return cmd + list(self.extra_args)

    def command(self) -> str:
        return shlex.join(self.argv)

    @property
    def base_url(self) -> str:
        host = "localhost" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}/v1"


def served_name(base_model: str) -> str:
    """The model name the base itself is served under (the adapters are served under their own names)."""
    return "base-" + Path(str(base_model)).name.lower().replace("/", "-")


def _adapter_info(path: Path) -> AdapterInfo:
    cfg_path = path / "adapter_config.json"
    if not cfg_path.exists():
        raise ServingError(f"{path}: no adapter_config.json (not a peft adapter folder)")
    cfg = json.loads(cfg_path.read_text())
    slm = path / "slmlab_adapter.json"
    base = json.loads(slm.read_text()).get("base_model") if slm.exists() else None
    base = base or cfg.get("base_model_name_or_path") or "unknown"
    template = next((path / f for f in CHAT_TEMPLATE_FILES if (path / f).exists()), None)
    if template is None and (path / "tokenizer_config.json").exists():
        tok = json.loads((path / "tokenizer_config.json").read_text())
        if isinstance(tok.get("chat_template"), str):
            template = path / "tokenizer_config.json"
    return AdapterInfo(
        path.name, path, str(base), int(cfg.get("r") or 0), cfg.get("target_modules"), template
    )


def adapters_of(bundle: str | os.PathLike) -> list[AdapterInfo]:
    """The adapters of a bundle (`bundle/adapters/<name>/`), sorted by name."""
    root = Path(bundle) / "adapters"
    if not root.is_dir():
        raise ServingError(f"{bundle}: no adapters/ folder (export a run with adapters first)")
    return [_adapter_info(p) for p in sorted(root.iterdir()) if p.is_dir()]


def check_adapters(bundle: str | os.PathLike) -> list[str]:
    """Problems vLLM would hit serving this bundle's adapters, one line each naming the file (empty: ok)."""
    problems = []
    root = Path(bundle) / "adapters"
    if not root.is_dir():
        return [f"{bundle}: no adapters/ folder"]
    for path in sorted(p for p in root.iterdir() if p.is_dir()):
        cfg_path = path / "adapter_config.json"
        if not cfg_path.exists():
            problems.append(f"{path}: no adapter_config.json (not a peft adapter folder)")
            continue
        try:
            cfg = json.loads(cfg_path.read_text())
        except json.JSONDecodeError as exc:
            problems.append(f"{cfg_path}: not JSON ({exc})")
            continue
        if str(cfg.get("peft_type", "LORA")).upper() != "LORA":
            problems.append(f"{cfg_path}: peft_type {cfg.get('peft_type')!r}; vLLM serves LoRA adapters only")
        if cfg.get("use_dora"):
            problems.append(f"{cfg_path}: a DoRA adapter; vLLM serves plain LoRA only (retrain without DoRA)")
        if cfg.get("modules_to_save"):
            problems.append(
                f"{cfg_path}: modules_to_save={cfg['modules_to_save']}; vLLM loads LoRA deltas only "
                "(merge the adapter and serve the merged model instead)"
            )
        r = int(cfg.get("r") or 0)
        if r < 1 or r > VLLM_LORA_RANKS[-1]:
            problems.append(f"{cfg_path}: rank r={r}; vLLM serves ranks 1..{VLLM_LORA_RANKS[-1]}")
        if not any((path / w).exists() for w in ADAPTER_WEIGHTS):
            problems.append(f"{path}: no {' or '.join(ADAPTER_WEIGHTS)} (adapter weights missing)")
    return problems


def _served_base(base_model: str) -> tuple[str, tuple[str, ...]]:
    """What vLLM should load for a base model name as slmlab recorded it, and why."""
    from slmlab.runtime.models import BUNDLED_SLM, SMOLLM2_HUB_ID, resolve_model

    if base_model in (BUNDLED_SLM, SMOLLM2_HUB_ID):
        try:
            local = resolve_model(base_model)
        except FileNotFoundError:
            local = SMOLLM2_HUB_ID
        if local != SMOLLM2_HUB_ID:
            return local, (
                f"{base_model}: serving the weights the adapters were trained on ({local}, the bundled GGUF "
                f"de-quantized); {SMOLLM2_HUB_ID} from the hub is the unquantized original, close but not the same",
            )
        return SMOLLM2_HUB_ID, ()
    return base_model, ()


def plan_serving(
    bundle: str | os.PathLike,
    port: int = 8000,
    host: str = "0.0.0.0",
    base_overrides: dict[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
) -> list[ServePlan]:
    """One `ServePlan` per base model of the bundle's adapters (ports `port`, `port + 1`, ...).

    Args:
        bundle: the bundle folder.
        port, host: where the first server listens.
        base_overrides: base model as recorded -> what vLLM should load instead (e.g. a local copy).
        extra_args: more `vllm serve` arguments for every server (`--gpu-memory-utilization 0.8`, ...).

    Raises:
        ServingError: a problem from `check_adapters`, or adapters of one base with different chat templates.
    """
    problems = check_adapters(bundle)
    if problems:
        raise ServingError("; ".join(problems))
    infos = adapters_of(bundle)
    by_base: dict[str, list[AdapterInfo]] = {}
    for a in infos:
        by_base.setdefault(a.base_model, []).append(a)
    plans = []
    for i, (base, group) in enumerate(sorted(by_base.items())):
        rank = next(r for r in VLLM_LORA_RANKS if r >= max(a.r for a in group))
        served, notes = _served_base(base)
        if base_overrides and base in base_overrides:
            served, notes = base_overrides[base], ()
        templates = {_template_text(a.chat_template) for a in group if a.chat_template is not None}
        if len(templates) > 1:
            raise ServingError(
                f"{bundle}: adapters of {base} were trained with different chat templates "
                f"({', '.join(a.name for a in group)}); serve them from separate servers"
            )
        template = next((a.chat_template for a in group if a.chat_template is not None), None)
        template_file = _template_file(template, Path(bundle)) if template is not None else None
        plans.append(
            ServePlan(
                base_model=base,
                served_base=served,
                adapters={a.name: str(a.path.resolve()) for a in group},
                max_lora_rank=rank,
                host=host,
                port=port + i,
                chat_template=template_file,
                extra_args=tuple(extra_args),
                notes=notes,
            )
        )
    return plans


def _template_text(path: Path) -> str:
    if path.name == "tokenizer_config.json":
        return json.loads(path.read_text())["chat_template"]
    if path.suffix == ".json":
        doc = json.loads(path.read_text())
        return doc.get("chat_template", "") if isinstance(doc, dict) else str(doc)
    return path.read_text()


def _template_file(path: Path, bundle: Path) -> str:
    """A .jinja file with the template (vLLM's --chat-template takes a file path or the template text)."""
    if path.suffix == ".jinja":
        return str(path.resolve())
    out = bundle / "serving" / f"chat_template_{path.parent.name}.jinja"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_template_text(path))
    return str(out.resolve())


def route_config(
    plans: list[ServePlan],
    fallback_model: str | None = "openai/gpt-4o",
    fallback_name: str = "llm",
    api_key_env: str = "OPENAI_API_KEY",
) -> dict[str, Any]:
    """A LiteLLM proxy / Router config: every adapter (and each base) as a model on its vLLM server, and
    the LLM as `fallback_name`, with adapter -> LLM fallbacks.

    Example:
        >>> cfg = route_config(plan_serving("bundle"))  # doctest: +SKIP
        >>> [m["model_name"] for m in cfg["model_list"]]  # doctest: +SKIP
        ['cluster_3', 'base-smollm2-135m', 'llm']
    """
    model_list: list[dict[str, Any]] = []
    fallbacks = []
    for plan in plans:
        for name in plan.adapters:
            model_list.append(
                {
                    "model_name": name,
                    # LiteLLM's "hosted_vllm/" provider speaks to a vLLM OpenAI server; the rest of the name is
                    # the model field vLLM receives: the adapter's --lora-modules name.
                    "litellm_params": {
                        "model": f"hosted_vllm/{name}",
                        "api_base": plan.base_url,
                        "api_key": "none",
                    },
                    "model_info": {"base_model": plan.base_model, "slmlab_adapter": name},
                }
            )
            if fallback_model:
                fallbacks.append({name: [fallback_name]})
        model_list.append(
            {
                "model_name": served_name(plan.base_model),
                "litellm_params": {
                    "model": f"hosted_vllm/{served_name(plan.base_model)}",
                    "api_base": plan.base_url,
                    "api_key": "none",
                },
            }
        )
    if fallback_model:
        model_list.append(
            {
                "model_name": fallback_name,
                "litellm_params": {"model": fallback_model, "api_key": f"os.environ/{api_key_env}"},
            }
        )
    cfg: dict[str, Any] = {"model_list": model_list, "router_settings": {"num_retries": 1}}
    if fallbacks:
        cfg["router_settings"]["fallbacks"] = fallbacks
    return cfg


def check_route_config(cfg: dict[str, Any], plans: list[ServePlan] | None = None) -> list[str]:
    """Problems of a route config (empty: ok): duplicate names, entries without a model, adapters of the
    plans without a route, fallbacks naming unknown models. With LiteLLM installed, it also builds a
    `litellm.Router` from the config (which validates it the way the proxy does)."""
    problems = []
    names = [m.get("model_name") for m in cfg.get("model_list", [])]
    if not names:
        problems.append("model_list is empty")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        problems.append(f"duplicate model_name {dup}")
    for m in cfg.get("model_list", []):
        params = m.get("litellm_params") or {}
        if not params.get("model"):
            problems.append(f"{m.get('model_name')}: litellm_params.model missing")
        if str(params.get("model", "")).startswith("hosted_vllm/") and not params.get("api_base"):
            problems.append(f"{m.get('model_name')}: a vLLM model needs api_base")
    for fb in (cfg.get("router_settings") or {}).get("fallbacks", []):
        for src, dst in fb.items():
            for n in [src, *dst]:
                if n not in names:
                    problems.append(f"fallback {src} -> {dst}: {n!r} is not in model_list")
    for plan in plans or []:
        for name in plan.adapters:
            if name not in names:
                problems.append(f"adapter {name} has no route")
    if not problems:
        try:
            import litellm  # noqa: F401
        except ImportError:
            return problems
        try:
            from litellm import Router

            Router(model_list=cfg["model_list"], **(cfg.get("router_settings") or {}))
        except Exception as exc:  # noqa: BLE001 - report what LiteLLM rejects
            problems.append(f"litellm.Router rejects the config: {type(exc).__name__}: {exc}")
    return problems


def check_serve_command(argv: list[str]) -> list[str]:
    """Problems of a `vllm serve` argv (empty: ok). Uses vLLM's own parser when vLLM is installed."""
    problems = []
    if argv[:2] != ["vllm", "serve"] or len(argv) < 3 or argv[2].startswith("-"):
        return ["not a `vllm serve <model> ...` command"]
    args = argv[3:]

    def values(flag: str) -> list[str]:
        if flag not in args:
            return []
        i = args.index(flag) + 1
        out = []
        while i < len(args) and not args[i].startswith("--"):
            out.append(args[i])
            i += 1
        return out

    modules = values("--lora-modules")
    if modules and "--enable-lora" not in args:
        problems.append("--lora-modules without --enable-lora")
    names = []
    for m in modules:
        name, sep, path = m.partition("=")
        if not sep or not name or not path:
            problems.append(f"--lora-modules entry {m!r} is not name=path")
            continue
        names.append(name)
        if not Path(path).is_absolute():
            problems.append(
                f"--lora-modules {name}: {path} is relative (vLLM resolves it from its working directory)"
            )
        elif not (Path(path) / "adapter_config.json").exists():
            problems.append(f"--lora-modules {name}: {path}/adapter_config.json does not exist")
    if len(set(names)) < len(names):
        problems.append(f"--lora-modules names repeat: {names}")
    rank = values("--max-lora-rank")
    if rank and (not rank[0].isdigit() or int(rank[0]) not in VLLM_LORA_RANKS):
        problems.append(f"--max-lora-rank {rank[0]} is not one of {VLLM_LORA_RANKS}")
    loras = values("--max-loras")
    if loras and (not loras[0].isdigit() or int(loras[0]) < 1):
        problems.append(f"--max-loras {loras[0]} must be >= 1")
    template = values("--chat-template")
    if template and not Path(template[0]).exists():
        problems.append(f"--chat-template {template[0]} does not exist")
    local_base = Path(argv[2])
    if (argv[2].startswith(("/", "./", "~")) or local_base.exists()) and not (
        local_base / "config.json"
    ).exists():
        problems.append(f"base model folder {argv[2]} has no config.json")
    if problems:
        return problems
    try:
        from vllm.entrypoints.openai.cli_args import make_arg_parser
        from vllm.utils import FlexibleArgumentParser
    except Exception:  # noqa: BLE001 - vLLM is not installed here (it needs a GPU build): structure only
        return problems
    try:
        parser = make_arg_parser(FlexibleArgumentParser())
        parser.parse_args([argv[2], *args])
    except SystemExit:
        problems.append("vLLM's argument parser rejects the command")
    return problems


def write_serving(
    bundle: str | os.PathLike,
    fallback_model: str | None = "openai/gpt-4o",
    port: int = 8000,
    host: str = "0.0.0.0",
    base_overrides: dict[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Plan, check and write `serve_vllm.sh`, `litellm_config.yaml` and `serving.json` into the bundle.

    Returns:
        What `serving.json` holds: the commands, the plans, the route config and the checks' results.

    Raises:
        ServingError: when a check fails (nothing is written then).
    """
    import yaml

    bundle = Path(bundle)
    plans = plan_serving(bundle, port, host, base_overrides, extra_args)
    problems = [p for plan in plans for p in check_serve_command(plan.argv)]
    cfg = route_config(plans, fallback_model)
    problems += check_route_config(cfg, plans)
    if problems:
        raise ServingError(f"{bundle}: " + "; ".join(problems))
    script = [
        "#!/usr/bin/env bash",
        "# One vLLM server per base model; each adapter is a model name.",
        "set -euo pipefail",
    ]
    for plan in plans:
        script += [f"# {n}" for n in plan.notes]
        script.append(plan.command() + " &")
    script.append("wait")
    (bundle / "serve_vllm.sh").write_text("\n".join(script) + "\n")
    (bundle / "serve_vllm.sh").chmod(0o755)
    (bundle / "litellm_config.yaml").write_text(
        "# LiteLLM proxy: litellm --config litellm_config.yaml (one OpenAI-compatible URL for adapters + LLM)\n"
        + yaml.safe_dump(cfg, sort_keys=False)
    )
    info = {
        "commands": [p.command() for p in plans],
        "plans": [asdict(p) | {"argv": p.argv, "base_url": p.base_url} for p in plans],
        "route_config": "litellm_config.yaml",
        "checked": {"adapters": "ok", "serve_command": _checker(), "route_config": _route_checker()},
    }
    (bundle / "serving.json").write_text(json.dumps(info, indent=1, default=str))
    return info


def _checker() -> str:
    try:
        import vllm  # noqa: F401

        return "vllm argument parser"
    except Exception:  # noqa: BLE001
        return "structure (vLLM not installed)"


def _route_checker() -> str:
    try:
        import litellm  # noqa: F401

        return "litellm.Router"
    except Exception:  # noqa: BLE001
        return "structure (LiteLLM not installed)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m slmlab.pipeline.serving", description=__doc__.split("\n")[0])
    p.add_argument("bundle", help="bundle folder (from slmlab export)")
    p.add_argument("--fallback-model", default="openai/gpt-4o", help="LiteLLM name of the LLM; '' for none")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="0.0.0.0")
    args = p.parse_args(argv)
    try:
        info = write_serving(args.bundle, args.fallback_model or None, args.port, args.host)
    except ServingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(info["commands"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
