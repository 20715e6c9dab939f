"""The `slmlab` console command, for headless runs of the steps the notebooks walk through.

Usage:
    slmlab run                      # the whole conversion on the bundled demo logs, then report.html
    slmlab ingest LOGS... --out calls.parquet
    slmlab profile calls.parquet
    slmlab cluster calls.parquet --out clustered.parquet
    slmlab report --run demo
    slmlab export bundle/ --run demo
    slmlab --debug ingest logs/      # a traceback instead of the one-line error

Errors: every command reports an ordinary mistake (a missing file, an unknown format, a bad parquet) as one
line, `slmlab: error: <file>: <problem> (<fix>)`, and exits 1; `--debug` (or SLMLAB_DEBUG=1) shows the
traceback instead. A command gets this for free from the app; inside a command, use
`with cli_errors():` around work whose exceptions (EOFError included, which click would print as a bare
"Aborted!") should become that line, and `fail(path, problem, fix)` to stop with one yourself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

DEBUG = {"on": os.environ.get("SLMLAB_DEBUG", "") not in ("", "0")}


class CliError(Exception):
    """An error already worded for the user (`fail`): printed as it is, on one line."""


def fail(path: object, problem: str, fix: str | None = None) -> None:
    """Stop the command with `slmlab: error: <path>: <problem> (<fix>)` and exit status 1.

    Example:
        >>> fail("calls.parquet", "not a parquet file", "pass the file `slmlab ingest --out` wrote")  # doctest: +SKIP
    """
    msg = f"{path}: {problem}" if path not in (None, "") else problem
    raise CliError(f"{msg} ({fix})" if fix else msg)


def error_line(exc: BaseException) -> str:
    """One line for an exception: the file and the problem, with a fix where there is an obvious one."""
    if isinstance(exc, CliError):
        return str(exc)
    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str):
        return exc.args[0]
    if isinstance(exc, PermissionError):
        return f"{exc.filename}: permission denied (check the file's owner and mode)"
    if isinstance(exc, IsADirectoryError):
        return f"{exc.filename}: is a folder, expected a file"
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"{exc.filename}: no such file"
    if isinstance(exc, EOFError):
        return f"unexpected end of data: {exc} (a truncated file?)"
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, (OSError, ValueError, LookupError)) and not isinstance(exc, UnicodeError):
        return text[:500]
    return f"{type(exc).__name__}: {text[:500]} (run `slmlab --debug ...` for the traceback)"


def _print_error(exc: BaseException) -> None:
    typer.echo(f"slmlab: error: {error_line(exc)}", err=True)


class cli_errors:  # noqa: N801 - used as `with cli_errors():`
    """Context manager: an exception inside becomes the one-line error and exit status 1 (unless --debug)."""

    def __enter__(self) -> cli_errors:
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is None or DEBUG["on"] or isinstance(exc, (typer.Exit, typer.Abort, KeyboardInterrupt)):
            return False
        if isinstance(exc, (SystemExit, click_exceptions())):
            return False
        if isinstance(exc, BrokenPipeError):  # `slmlab profile x | head`: the reader left, nothing to say
            raise typer.Exit(0)
        _print_error(exc)
        raise typer.Exit(1)


def click_exceptions() -> tuple[type[BaseException], ...]:
    import click

    return (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort)


class _OneLineErrorsTyper(typer.Typer):
    """The app: any exception a command lets out is printed as one line (a traceback with --debug)."""

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except Exception as exc:
            if DEBUG["on"]:
                raise
            _print_error(exc)
            raise SystemExit(1) from None


app = _OneLineErrorsTyper(
    add_completion=False,
    no_args_is_help=True,
    help="slmlab: move an agent's repetitive LLM calls to small models.",
)


@app.callback()
def _main(
    debug: bool = typer.Option(False, "--debug", help="show tracebacks instead of one-line errors"),
) -> None:
    """slmlab: move an agent's repetitive LLM calls to small models."""
    DEBUG["on"] = debug or os.environ.get("SLMLAB_DEBUG", "") not in ("", "0")


def load_reader(spec: str):
    """A custom reader from `module:Class` or `path/to/file.py:Class`, registered for this run."""
    import importlib
    import importlib.util

    from slmlab.collect import Reader, register_reader

    mod_name, sep, attr = spec.partition(":")
    if not sep or not mod_name or not attr:
        fail(f"--reader {spec}", "expected module:Class or path/to/reader.py:Class")
    try:
        if mod_name.endswith(".py"):
            path = Path(mod_name)
            if not path.is_file():
                fail(f"--reader {spec}", f"no such file {path}")
            loader_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(mod_name)
    except CliError:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken user module is reported, not a traceback
        fail(f"--reader {spec}", f"cannot import {mod_name}: {type(exc).__name__}: {exc}")
    cls = getattr(module, attr, None)
    if cls is None:
        fail(f"--reader {spec}", f"{mod_name} has no attribute {attr!r}")
    if not (isinstance(cls, Reader) or (isinstance(cls, type) and issubclass(cls, Reader))):
        fail(f"--reader {spec}", f"{attr} is not a slmlab.collect.Reader subclass")
    return register_reader(cls)


def plugin_readers() -> list[str]:
    """Readers other packages register under the `slmlab.readers` entry-point group (`name = "pkg.mod:Class"`
    in their `[project.entry-points."slmlab.readers"]`); a broken one is reported on one line."""
    from importlib.metadata import entry_points

    from slmlab.collect import register_reader

    names = []
    for ep in entry_points(group="slmlab.readers"):
        try:
            names.append(register_reader(ep.load()).name)
        except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, not a traceback
            fail(
                f"entry point slmlab.readers:{ep.name}",
                f"cannot load {ep.value}: {type(exc).__name__}: {exc}",
            )
    return names


@app.command()
def ingest(
    paths: list[Path] = typer.Argument(..., help="log files or folders"),
    out: Path = typer.Option(Path("calls.parquet"), help="where to write the canonical call table"),
    format: str = typer.Option("auto", "--format", "-f", help="reader name, or auto"),
    quarantine: Path | None = typer.Option(
        None, help="quarantine JSONL for malformed records (default beside --out)"
    ),
    reader: list[str] = typer.Option(
        [], "--reader", help="a reader of your own, module:Class or file.py:Class (repeatable)"
    ),
) -> None:
    """Read agent logs into the canonical call table (parquet, streamed); malformed records go to quarantine.

    Prints each file's detected format and counts, the files it ignored and why, then the totals.
    """
    with cli_errors():
        from slmlab.collect import READERS
        from slmlab.collect import ingest as _ingest

        custom = [*plugin_readers(), *(load_reader(spec).name for spec in reader)]
        if format != "auto" and format not in READERS:
            fail(f"--format {format}", "no such reader", f"known: {', '.join(sorted(READERS))}, or auto")
        res = _ingest(
            [str(p) for p in paths],
            format=format,
            quarantine=quarantine or out.with_name(out.stem + ".quarantine.jsonl"),
            out=out,
        )
        typer.echo(res.summary.report())
        if custom:
            typer.echo(f"custom readers: {', '.join(custom)}")
        typer.echo(f"wrote {out} ({res.summary.calls} calls); quarantine: {res.quarantine_path}")


@app.command()
def profile(calls: Path = typer.Argument(..., help="call table parquet (from `slmlab ingest`)")) -> None:
    """Print the profile of a call table: calls, tokens, cost and latency by model and agent; templates."""
    with cli_errors():
        import polars as pl

        from slmlab.collect import profile as prof
        from slmlab.schema import validate_calls

        if not calls.exists():
            fail(calls, "no such file", "pass the parquet that `slmlab ingest --out` wrote")
        try:
            df = validate_calls(pl.read_parquet(calls))
        except (pl.exceptions.ComputeError, OSError, ValueError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            fail(
                calls,
                f"not a call table ({' '.join(str(exc).split())[:200]})",
                "pass the parquet that `slmlab ingest` wrote",
            )
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


if TYPE_CHECKING:  # polars is imported inside the commands, so `slmlab --help` stays fast
    import polars as pl


def _read_call_table(calls: Path) -> pl.DataFrame:
    """A canonical call table from parquet, or a one-line error naming the file and the fix."""
    import polars as pl

    from slmlab.schema import validate_calls

    if not calls.exists():
        fail(calls, "no such file", "pass the parquet that `slmlab ingest --out` wrote")
    try:
        return validate_calls(pl.read_parquet(calls))
    except Exception as exc:  # noqa: BLE001 - one line naming the file
        fail(
            calls, f"not a call table: {error_line(exc)}", "pass the parquet that `slmlab ingest --out` wrote"
        )


@app.command()
def curate(
    calls: Path = typer.Argument(..., help="call table parquet (from `slmlab ingest`)"),
    out: Path = typer.Option(Path("curated.parquet"), help="where to write the curated call table"),
    redactor: str = typer.Option("ner", help="ner (names by spaCy NER + patterns) or patterns (no model)"),
    salt: str | None = typer.Option(
        None, help="HMAC salt for ids (default: SLMLAB_SALT or a per-install one)"
    ),
    audit: Path | None = typer.Option(None, help="audit parquet (default beside --out)"),
) -> None:
    """Redact personal and health data and secrets in a call table; prints the redactions per kind."""
    with cli_errors():
        import polars as pl

        from slmlab.curate import CurateConfig, audit_summary
        from slmlab.curate import curate as _curate

        df = _read_call_table(calls)
        res = _curate(df, CurateConfig(salt=salt, redactor=redactor))
        res.calls.write_parquet(out)
        audit_path = audit or out.with_name(out.stem + ".audit.parquet")
        res.audit.write_parquet(audit_path)
        s = res.summary
        typer.echo(
            f"curated {s['calls_out']} of {s['calls_in']} calls in {s['seconds_total']:.1f} s; dropped {s['dropped']}"
        )
        typer.echo(
            "redactions per kind: " + ", ".join(f"{k} {v}" for k, v in s["redactions_by_entity"].items())
        )
        with pl.Config(tbl_rows=40, fmt_str_lengths=40):
            typer.echo(audit_summary(res.audit))
        typer.echo(f"wrote {out} and {audit_path}")


@app.command()
def cluster(
    calls: Path = typer.Argument(..., help="call table parquet (from `slmlab ingest` or `slmlab curate`)"),
    out: Path = typer.Option(Path("clustered.parquet"), help="where to write the clustered call table"),
    embedder: str | None = typer.Option(None, help="default: the bundled MiniLM; or tfidf, a model id/path"),
) -> None:
    """Cluster calls into sub-tasks with the defaults; writes the call table plus cluster and cluster_confidence."""
    with cli_errors():
        import polars as pl

        from slmlab.cluster import TaskClusterer, assign_clusters

        df = _read_call_table(calls)
        if df.height < 2:
            fail(calls, f"{df.height} call(s); clustering needs at least 2")
        clusterer = TaskClusterer(embedder=embedder)
        clustered = assign_clusters(df, clusterer)
        clustered.write_parquet(out)
        unassigned = float((clustered["cluster"] < 0).mean())
        typer.echo(
            f"{clusterer.n_clusters_} clusters over {df.height} calls; unassigned {unassigned:.1%}; "
            f"mean confidence {clustered.filter(pl.col('cluster') >= 0)['cluster_confidence'].mean() or 0:.2f}"
        )
        typer.echo(f"wrote {out}")


if __name__ == "__main__":
    app()
