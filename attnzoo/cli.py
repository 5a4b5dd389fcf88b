"""The `attnzoo` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from attnzoo.harness.suite import SuiteError
from attnzoo.zoo import VariantError, list_variants, plugin_errors, variant_info

console = Console()


class UsageError(Exception):
    """A command-line mistake; reported as one line, exit status 2."""


err_console = Console(stderr=True)


def _yes(flag: bool) -> str:
    return "[green]yes[/]" if flag else "[dim]no[/]"


def cmd_list(args: argparse.Namespace) -> int:
    table = Table(title="attnzoo variants", show_lines=False)
    table.add_column("name", no_wrap=True)
    for column in ("family", "cost", "mask", "causal", "available", "source"):
        table.add_column(column, overflow="fold")
    for name in list_variants(args.pattern):
        spec = variant_info(name)
        avail = spec.available
        table.add_row(
            name,
            spec.family,
            spec.cost,
            _yes(spec.capabilities.key_padding_mask),
            _yes(spec.capabilities.causal),
            "[green]yes[/]" if avail.ok else f"[red]no[/]: {escape(str(avail))}",
            spec.source if not spec.plugin else f"plugin {spec.plugin}",
        )
    for name, error in plugin_errors().items():
        table.add_row(name, "plugin", "", "", "", f"[red]failed to load[/]: {escape(error)}", "entry point")
    console.print(table)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    spec = variant_info(args.name)
    console.print(f"[bold]{spec.name}[/] — {spec.description}")
    console.print(f"source: {spec.source}")
    console.print(f"family: {spec.family}    cost: {spec.cost}    available: {spec.available}", markup=False)
    params = Table(title="parameters")
    for column in ("name", "type", "default", "bounds", "description"):
        params.add_column(column, overflow="fold")
    for row in spec.parameter_table():
        params.add_row(*(escape(v) for v in row.values()))
    console.print(params)
    caps = Table(title="capabilities")
    caps.add_column("capability")
    caps.add_column("value")
    for key, value in vars(spec.capabilities).items():
        caps.add_row(key, ", ".join(value) if isinstance(value, tuple) else str(value))
    console.print(caps)
    if spec.deviations:
        console.print("[bold]deviations from the original[/]")
        for line in spec.deviations:
            console.print(f"  • {line}", markup=False)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from attnzoo.harness.plan import plan
    from attnzoo.harness.suite import default_suite_path, load_suite

    suite = load_suite(args.suite)
    cells = plan(suite)
    console.print(
        f"{args.suite or default_suite_path()}: valid suite [bold]{suite.name}[/]: {len(cells)} cells "
        f"({len(suite.variants)} variant entries; benchmarks: {', '.join(suite.benchmarks.enabled())})",
        soft_wrap=True,
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from attnzoo.harness.plan import plan
    from attnzoo.harness.results import RunStore
    from attnzoo.harness.runner import default_run_dir, run_suite
    from attnzoo.harness.suite import default_suite_path, load_suite

    if args.resume:
        store = RunStore(args.resume)
        if not store.exists():
            raise UsageError(f"{args.resume}: not a run directory (no suite.yaml); start a new run instead")
        text, suite_path = store.suite_text(), Path(args.resume) / "suite.yaml"
        run_dir = Path(args.resume)
    else:
        suite_path = Path(args.suite) if args.suite else default_suite_path()
        text = None
        run_dir = None
    suite = load_suite(suite_path)
    text = text or suite_path.read_text()
    run_dir = run_dir or (Path(args.out) if args.out else default_run_dir(suite))
    total = len(plan(suite))

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err_console,
        disable=args.quiet,
    ) as progress:
        task = progress.add_task(f"{suite.name}: starting", total=total)

        def started(cell) -> None:
            progress.update(task, description=f"{suite.name}: {escape(cell.describe())}")

        def finished(cell, status: str) -> None:
            progress.advance(task)

        def training(cell, message: dict) -> None:
            progress.update(
                task,
                description=f"{suite.name}: {escape(cell.describe())}: step {message['step']}/"
                f"{message['steps']} loss {message['loss']:.3f} val acc {message['val']:.3f}",
            )

        summary = run_suite(
            suite, text, run_dir, resume=bool(args.resume), on_cell=finished, on_start=started, on_progress=training
        )

    if not args.quiet:
        _print_summary(summary.rows)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.status_counts().items()))
    console.print(f"run {run_dir}: {counts}; leaderboard {run_dir / 'leaderboard.md'}", highlight=False, soft_wrap=True)
    if summary.errors:
        err_console.print(f"[red]{len(summary.errors)} cell(s) errored unexpectedly:[/]")
        for row in summary.errors:
            first = str(row["error"]).splitlines()[0]
            err_console.print(f"  {row['benchmark']} {row['label']} n={row['seq_len']}: {escape(first)}")
        return 1
    return 0


def _print_summary(rows: list[dict]) -> None:
    table = Table(title="cells by status")
    table.add_column("variant", no_wrap=True)
    seen = sorted({r["status"] for r in rows})
    for status in seen:
        table.add_column(status, justify="right")
    by_label: dict[str, dict[str, set]] = {}
    for r in rows:
        by_label.setdefault(r["label"], {}).setdefault(r["status"], set()).add(r["key"])
    for label, counts in by_label.items():
        table.add_row(label, *(str(len(counts.get(s, ()))) for s in seen))
    console.print(table)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from attnzoo.harness.results import LEADERBOARD_FILE, RunStore
    from attnzoo.harness.suite import load_suite
    from attnzoo.leaderboards.markdown import render

    store = RunStore(args.run_dir)
    if not store.exists():
        raise UsageError(f"{args.run_dir}: not a run directory (no suite.yaml)")
    text = render(store.rows(), store.manifest(), load_suite(store.dir / "suite.yaml"))
    (store.dir / LEADERBOARD_FILE).write_text(text)
    console.print(f"wrote {store.dir / LEADERBOARD_FILE}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attnzoo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="the registered variants, their capabilities and availability")
    p.add_argument("pattern", nargs="?", help="glob over names, e.g. '*former'")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("show", help="one variant: parameters, capabilities, paper, deviations")
    p.add_argument("name")
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("run", help="run a suite (default: the embedded quick suite) and write a leaderboard")
    p.add_argument("suite", nargs="?", help="suite YAML; omitted: the packaged default suite")
    p.add_argument("--out", help="run directory (default: runs/<suite>-<timestamp>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run, skipping finished cells")
    p.add_argument("--quiet", action="store_true", help="no progress display or summary table (for CI)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("validate", help="check a suite without running it; prints the planned cell count")
    p.add_argument("suite", nargs="?")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("leaderboard", help="re-render a run directory's leaderboard.md from its results")
    p.add_argument("run_dir")
    p.set_defaults(func=cmd_leaderboard)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (VariantError, SuiteError, UsageError) as err:
        for line in str(err).splitlines():
            err_console.print(f"[red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
