"""The `slmlab` console command, for headless runs of the steps the notebooks walk through.

Usage:
    slmlab run                      # the whole conversion on the bundled demo logs, then report.html
    slmlab ingest LOGS... --out calls.parquet
    slmlab profile calls.parquet
    slmlab report --run demo
    slmlab export bundle/ --run demo
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="slmlab: move an agent's repetitive LLM calls to small models.",
)


@app.command()
def ingest(
    paths: list[Path] = typer.Argument(..., help="log files or folders"),
    out: Path = typer.Option(Path("calls.parquet"), help="where to write the canonical call table"),
    format: str = typer.Option("auto", "--format", "-f", help="reader name, or auto"),
    quarantine: Path | None = typer.Option(
        None, help="quarantine JSONL for malformed records (default beside --out)"
    ),
) -> None:
    """Read agent logs into the canonical call table (parquet); malformed records go to quarantine."""
    from slmlab.collect import ingest as _ingest

    res = _ingest(
        [str(p) for p in paths], format=format, quarantine=quarantine or out.with_suffix(".quarantine.jsonl")
    )
    res.calls.write_parquet(out)
    typer.echo(f"{res.summary}\nwrote {out} ({res.calls.height} calls); quarantine: {res.quarantine_path}")


@app.command()
def profile(calls: Path = typer.Argument(..., help="call table parquet (from `slmlab ingest`)")) -> None:
    """Print the profile of a call table: calls, tokens, cost and latency by model and agent; templates."""
    import polars as pl

    from slmlab.collect import profile as prof

    df = pl.read_parquet(calls)
    with pl.Config(tbl_rows=40, tbl_cols=16, fmt_str_lengths=60, tbl_width_chars=200):
        typer.echo(prof.summary(df))
        typer.echo(prof.profile_calls(df))
        typer.echo(prof.detect_templates(df))


@app.command()
def run(
    run_name: str = typer.Option("demo", "--run", help="run folder name under SLMLAB_HOME/runs"),
    from_step: str | None = typer.Option(None, help="re-run from this notebook number on, e.g. 05"),
    until_step: str | None = typer.Option(None, help="stop after this notebook number"),
    force: bool = typer.Option(False, help="ignore cached steps"),
    smoke: bool = typer.Option(False, help="tiny sizes (SLMLAB_SMOKE=1), for a quick check"),
) -> None:
    """Run the whole conversion (every notebook in order) on the bundled defaults, then write report.html."""
    if smoke:
        os.environ["SLMLAB_SMOKE"] = "1"
    from slmlab.pipeline.run import run_pipeline

    res = run_pipeline(run_name, from_step=from_step, until_step=until_step, force=force)
    for s in res.steps:
        typer.echo(f"{s.notebook:40s} {s.status:7s} {s.seconds:7.1f} s")
    if res.report:
        typer.echo(f"report: {res.report}")
    if not res.ok:
        failed = next(s for s in res.steps if s.status == "failed")
        typer.echo(f"FAILED in {failed.notebook}:\n{failed.error}", err=True)
        raise typer.Exit(1)


@app.command()
def export(
    out: Path = typer.Argument(Path("bundle"), help="bundle folder to write"),
    run_name: str = typer.Option("demo", "--run", help="run folder name"),
    merge: bool = typer.Option(False, help="also write merged full weights per adapter"),
) -> None:
    """Write the fitted router, per-cluster adapters, a vLLM multi-LoRA serve script and a README."""
    from slmlab.pipeline.bundle import export_bundle

    typer.echo(str(export_bundle(run_name, out, merge=merge)))


@app.command()
def report(run_name: str = typer.Option("demo", "--run", help="run folder name")) -> None:
    """(Re)write the HTML report of a run from its artefacts."""
    from slmlab.pipeline.report import write_report

    typer.echo(str(write_report(run_name)))


@app.command()
def workshop(
    action: str = typer.Argument(..., help="prepare: pre-compute the run folder and caches for a workshop"),
    run_name: str = typer.Option("workshop", "--run", help="run folder participants open (SLMLAB_RUN)"),
    smoke: bool = typer.Option(False, help="tiny sizes (SLMLAB_SMOKE=1), a dry run of the preparation"),
    force: bool = typer.Option(False, help="re-run every notebook even if cached"),
    archive: Path | None = typer.Option(None, help="also pack SLMLAB_HOME into this .tar.gz"),
) -> None:
    """Workshop mode: `slmlab workshop prepare` runs every notebook once (embeddings, adapters, run folder)."""
    if action != "prepare":
        raise typer.BadParameter(f"unknown action {action!r}; use: slmlab workshop prepare")
    from slmlab.pipeline.workshop import prepare

    prep = prepare(run_name, smoke=smoke, force=force, archive=archive)
    typer.echo(prep.summary())
    if not prep.ok:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
