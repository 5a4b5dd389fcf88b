"""The `attnzoo` command."""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import textwrap
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from attnzoo.harness.benchmark import BenchmarkError, get_benchmark
from attnzoo.harness.ray_executor import ExecutorError
from attnzoo.harness.rundir import RunDirError
from attnzoo.harness.suite import SuiteError
from attnzoo.zoo import VariantError, list_variants, plugin_errors, variant_info

console = Console()


class UsageError(Exception):
    """A command-line mistake; reported as one line, exit status 2."""


err_console = Console(stderr=True)


def _availability(spec) -> str:
    avail = spec.available
    return "yes" if avail.ok else f"no: {avail}"


def cmd_list(args: argparse.Namespace) -> int:
    names = list_variants(args.pattern)
    failed = plugin_errors()
    if args.json:
        rows = [
            {
                "name": n,
                "family": (s := variant_info(n)).family,
                "cost": s.cost,
                "description": s.description,
                "source": s.source,
                "plugin": s.plugin,
                "available": s.available.ok,
                "unavailable_reason": None if s.available.ok else str(s.available),
                "capabilities": vars(s.capabilities),
                "parameters": s.parameter_table(),
            }
            for n in names
        ]
        rows += [{"name": n, "plugin_error": e} for n, e in failed.items()]
        print(json.dumps(rows, indent=2))
        return 0
    if not names:
        err_console.print(
            f"no variant matches {args.pattern!r}; `attnzoo list` shows all {len(list_variants())}", highlight=False
        )
        return 1
    # One line per variant, cut to a terminal's width (piped: whole, for grep); `attnzoo show NAME` has the rest.
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
    rows = [("name", "family", "mask", "causal", "available")]
    for name in names:
        spec = variant_info(name)
        caps = spec.capabilities
        flags = ("yes" if caps.key_padding_mask else "no", "yes" if caps.causal else "no")
        rows.append((name, spec.family, *flags, _availability(spec)))
    rows += [(name, "plugin", "", "", f"failed to load: {error}") for name, error in failed.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[4]
        print(line if width is None or len(line) <= width else line[: width - 1] + "…")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from attnzoo.timeseries.backbones import BACKBONES, describe

    if args.name in BACKBONES:
        console.print(f"[bold]{args.name}[/] — a forecasting backbone (`backbone: {args.name}` in a suite)")
        console.print(describe(args.name), markup=False, highlight=False)
        return 0
    spec = variant_info(args.name)
    console.print(f"[bold]{spec.name}[/] — {escape(spec.description)}")
    console.print(f"source: {spec.source}", markup=False)
    console.print(f"family: {spec.family}    cost: {spec.cost}    available: {_availability(spec)}", markup=False)
    if spec.plugin:
        console.print(f"plugin: {spec.plugin}    code: {spec.code_version}", markup=False)
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


def cmd_check(args: argparse.Namespace) -> int:
    import yaml

    from attnzoo.zoo.conformance import check_variant

    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # `module:Class` next to you, as `python -m` would find it
    params = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"-p {item}: give a parameter as NAME=VALUE, e.g. -p window=64")
        params[key] = yaml.safe_load(value)
    spec = variant_info(args.variant)
    spec.validate_params(params)
    results = check_variant(args.variant, **params)
    used = {**spec.check_params, **params}
    title = f"{spec.name}: the properties every variant must have"
    if used:
        title += " (built with " + ", ".join(f"{k}={v}" for k, v in used.items()) + ")"
    table = Table(title=title, title_justify="left")
    for column in ("check", "result", "what failed, and the fix"):
        table.add_column(column, overflow="fold")
    for r in results:
        style = {"pass": "green", "fail": "red"}.get(r.status, "dim")
        detail = f"{r.error}\nfix: {r.check.fix}" if r.status == "fail" else ""
        table.add_row(r.check.name, f"[{style}]{r.status}[/]", escape(detail))
    console.print(table)
    caps = ", ".join(f"{k}={v}" for k, v in vars(spec.capabilities).items())
    console.print(f"capabilities: {caps}", markup=False, highlight=False)
    if spec.origin is not None and spec.plugin is None and ":" in spec.name:
        console.print(
            "a plain nn.Module class is checked with the default capabilities; to declare others, register it with "
            "@attnzoo.register_variant(..., capabilities=attnzoo.Capabilities(...))",
            highlight=False,
        )
    failed = sum(r.status == "fail" for r in results)
    console.print(
        f"{len(results) - failed} of {len(results)} checks pass or do not apply; {failed} failed", highlight=False
    )
    return 1 if failed else 0


def cmd_validate(args: argparse.Namespace) -> int:
    from attnzoo.harness.plan import plan
    from attnzoo.harness.suite import default_suite_path, load_suite, runtime_problems
    from attnzoo.leaderboards.tables import plural

    path = Path(args.suite) if args.suite else default_suite_path()
    suite = load_suite(path, text=_overridden(args, path))
    for problem in runtime_problems(suite):  # fine to validate here, not to run here
        err_console.print(f"[yellow]warning:[/] {escape(problem)}", highlight=False, soft_wrap=True)
    cells = plan(suite)
    console.print(
        f"{args.suite or default_suite_path()}: valid suite [bold]{suite.name}[/]: {plural(len(cells), 'cell')} "
        f"({plural(len(list(suite.settings())), 'variant setting')}; benchmarks: "
        f"{', '.join(suite.benchmarks.enabled())})",
        soft_wrap=True,
    )
    return 0


def _overridden(args: argparse.Namespace, path: Path) -> str | None:
    """The suite's text with the command line's overrides, or None (the file as it is) without any."""
    from attnzoo.harness.suite import with_overrides

    given = {k: getattr(args, k) for k in ("variants", "seq_lens", "benchmarks")}
    if all(v is None for v in given.values()):
        return None
    if not path.exists():
        return None  # load_suite says so
    return with_overrides(path.read_text(), **given)


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _lengths(text: str) -> list[int]:
    try:
        return [int(n) for n in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give lengths as integers, e.g. 512,1024") from None


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--variants",
        type=_names,
        metavar="A,B",
        help="only these variants (the suite's entries of those names, else by name)",
    )
    p.add_argument("--seq-lens", type=_lengths, metavar="N,M", help="these sequence lengths instead of the suite's")
    p.add_argument(
        "--benchmarks", type=_names, metavar="A,B", help="only these benchmarks (defaults where the suite has none)"
    )


def _suite_for_run(args: argparse.Namespace):
    """(suite, its text, run directory) for a new run or a resumed one."""
    from attnzoo.harness.rundir import RunStore
    from attnzoo.harness.runner import default_run_dir
    from attnzoo.harness.suite import default_suite_path, load_suite

    if not args.resume:
        if flags := [flag for flag, given in (("--force", args.force), ("--retry-errors", args.retry_errors)) if given]:
            raise UsageError(f"{' and '.join(flags)} only apply to a resumed run: add --resume RUN_DIR")
        path = Path(args.suite) if args.suite else default_suite_path()
        text = _overridden(args, path)
        suite = load_suite(path, text=text)  # the suite as run, overrides applied, is what the run stores
        return suite, text or path.read_text(), Path(args.out) if args.out else default_run_dir(suite)
    if any(getattr(args, k) is not None for k in ("variants", "seq_lens", "benchmarks")):
        raise UsageError("--variants, --seq-lens and --benchmarks shape a new run; a resumed run keeps its suite")
    if args.out:
        raise UsageError("--resume continues a run in its own directory; drop --out")
    store = RunStore(args.resume)
    if not store.exists():
        raise UsageError(f"{args.resume}: not a run directory (no suite.yaml); start a new run instead")
    suite = load_suite(store.dir / "suite.yaml", import_dir=store.manifest().get("suite_dir"))
    if args.suite and load_suite(args.suite).model_dump() != suite.model_dump():
        raise UsageError(
            f"{args.suite} is not the suite {args.resume} was run with ({store.dir / 'suite.yaml'}); resume "
            f"without a suite argument (`attnzoo run --resume {args.resume}`), or start a new run with --out"
        )
    return suite, store.suite_text(), store.dir


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_run(args: argparse.Namespace) -> int:
    from attnzoo.harness.plan import plan
    from attnzoo.harness.runner import progress_units, run_suite
    from attnzoo.leaderboards.publish import publish_run
    from attnzoo.leaderboards.tables import plural

    suite, text, run_dir = _suite_for_run(args)
    cells = plan(suite)
    if args.dry_run:
        for cell in cells:
            print(_describe(cell))
        console.print(f"{plural(len(cells), 'cell')} would run in {run_dir} (nothing was run)", highlight=False)
        return 0
    report = _progress(suite.name, progress_units(cells), len(cells), args.quiet)
    # `kill PID` stops a run as Ctrl-C does (a run started in the background ignores Ctrl-C's SIGINT).
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with report:
            summary = run_suite(
                suite,
                text,
                run_dir,
                resume=bool(args.resume),
                force=args.force,
                retry_errors=args.retry_errors,
                on_cell=report.finished,
                on_start=report.started,
                on_progress=report.training,
                on_warning=lambda text: err_console.print(f"[yellow]warning:[/] {escape(text)}", soft_wrap=True),
                executor=args.executor,
                address=args.address,
            )
    except KeyboardInterrupt:
        from attnzoo.harness.rundir import RunStore

        store = RunStore(run_dir)
        if store.exists():
            done = store.finished_keys()
            partial = sum(len(reps) for key, reps in store.repetitions().items() if key not in done)
            extra = f" and {partial} repetition(s) of unfinished time cells" if partial else ""
            err_console.print(
                f"interrupted: {len(done)} finished cell(s){extra} are saved in {run_dir}; continue with: "
                f"attnzoo run --resume {run_dir}",
                highlight=False,
                soft_wrap=True,
            )
        else:
            err_console.print("interrupted before the run started; nothing was saved")
        return 130

    publish_run(run_dir)
    if not args.quiet:
        _print_summary(summary.rows)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.status_counts().items()))
    console.print(
        f"run {run_dir}: {plural(len(cells), 'cell')} ({counts}); leaderboard {run_dir / 'leaderboard.md'}",
        highlight=False,
        soft_wrap=True,
    )
    if summary.errors:
        err_console.print(
            f"[red]{len(summary.errors)} cell(s) errored unexpectedly[/] (their tracebacks: attnzoo errors {run_dir}):",
            highlight=False,
            soft_wrap=True,
        )
        for row in summary.errors:
            first = str(row["error"]).splitlines()[0]
            err_console.print(f"  {escape(_row_name(row))}: {escape(first)}", highlight=False, soft_wrap=True)
        return 1
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Two back-to-back runs of the packaged calibrate suite: how far their speed-ups agree, and how wide their
    intervals are, give the smallest speed-up difference this machine resolves at the default settings."""
    import statistics
    import tempfile
    import time

    from attnzoo.harness import noise
    from attnzoo.harness.rundir import RunStore
    from attnzoo.harness.runner import run_suite
    from attnzoo.harness.suite import default_suite_path, load_suite
    from attnzoo.leaderboards.agreement import agreement, speedups

    path = default_suite_path("calibrate.yaml")
    suite, started = load_suite(path), time.monotonic()
    warn = lambda text: err_console.print(f"[yellow]warning:[/] {escape(text)}", soft_wrap=True)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for name in ("a", "b"):
            console.print(f"calibrate: run {name} of 2 ({suite.description})", highlight=False)
            run_suite(suite, path.read_text(), Path(tmp) / name, on_warning=warn)
            store = RunStore(Path(tmp) / name)
            runs.append((store.rows(), store.manifest()))
    baseline = suite.benchmarks.efficiency.baseline
    found = agreement(*(speedups(rows, baseline) for rows, _ in runs))
    if found is None:
        raise UsageError("calibrate: the two runs share no speed-up (every cell failed?); see the warnings above")
    resolves = max(2 * found.median_half_width, found.worst - 1)
    probes = [m.get("calibrations", {}).get("efficiency", [{}])[0].get("probe_s") for _, m in runs]
    result = {
        "date": runs[1][1]["date"],
        "seconds": round(time.monotonic() - started, 1),
        "cells": found.cells,
        "within_10": found.within_10,
        "worst_ratio": round(found.worst, 4),
        "median_half_width": round(found.median_half_width, 4),
        "intervals_holding_other_median": f"{found.held}/{2 * found.cells}",
        "resolves": round(resolves, 4),
        "probe_s": probes,
    }
    for line in found.lines():
        console.print(f"  {line}", highlight=False, soft_wrap=True)
    if all(probes):
        drift = max(probes) / min(probes) - 1
        mean_ms = statistics.fmean(probes) * 1e3
        text = f"  machine speed: the contention probe took {mean_ms:.1f} ms on average, the runs {drift:.0%} apart"
        console.print(text, highlight=False)
    console.print(
        f"this machine resolves speed-up differences of about {resolves:.0%} at the default settings (the larger "
        f"of twice the median interval half-width and the worst run-to-run difference); smaller differences "
        f"between two variants here are noise",
        highlight=False,
        soft_wrap=True,
    )
    saved = noise.save(runs[1][1], result)
    console.print(f"saved to {saved}; every later run on this machine records it in its manifest", soft_wrap=True)
    return 0


def _row_name(row: dict) -> str:
    """A result row's cell as one line: benchmark, what the benchmark tells cells apart by (a task), label, n."""
    try:
        own = [str(row.get(c)) for c in get_benchmark(row["benchmark"]).columns if row.get(c) is not None]
    except BenchmarkError:  # a plugin benchmark not installed here
        own = []
    seed = [f"seed {row['seed']}"] if row.get("seed") is not None else []
    return " ".join([row["benchmark"], *own, row["label"], f"n={row['seq_len']}", *seed])


def cmd_errors(args: argparse.Namespace) -> int:
    from attnzoo.harness.rundir import RunStore

    store = RunStore(args.run)
    if not store.exists():
        raise UsageError(f"{args.run}: not a run directory (no suite.yaml)")
    errored = {row["key"]: row for row in store.rows() if row["status"] == "error"}  # one per cell
    if not errored:
        console.print(f"{args.run}: no cell errored", highlight=False)
        return 0
    for row in errored.values():
        console.rule(escape(_row_name(row)), align="left")
        console.print(str(row["error"]).rstrip(), markup=False, highlight=False, soft_wrap=True)
    console.print(f"{len(errored)} cell(s) errored; `attnzoo run --resume {args.run} --retry-errors` runs them again")
    return 0


class _LineProgress:
    """Progress without a terminal (CI, nohup, a pipe): one line per finished cell, as it finishes."""

    def __init__(self, suite: str, total: int):
        self.suite, self.total, self.count = suite, total, 0
        self.starts: dict[str, float] = {}  # per cell: on Ray, several run at once
        self.repeated: set[str] = set()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def started(self, cell, what: str = "") -> None:
        self.starts[cell.key] = time.monotonic()
        if what:  # a cell measured in rounds: its time is spread over the run
            self.repeated.add(cell.key)

    def finished(self, cell, status: str, units: int = 1) -> None:
        if status.startswith("repetition"):
            return  # one line per finished cell, not per repetition
        self.count += 1
        start = self.starts.pop(cell.key, None)
        timed = status != "done earlier" and cell.key not in self.repeated and start is not None
        took = f" ({time.monotonic() - start:.1f} s)" if timed else ""
        line = f"[{self.count}/{self.total}] {self.suite}: {_describe(cell)}: {status}{took}"
        print(line, file=sys.stderr, flush=True)

    def training(self, cell, message: dict) -> None:
        return None


class _BarProgress:
    """A live progress bar on a terminal."""

    def __init__(self, suite: str, total: int, quiet: bool, unit: str):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.suite = suite
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err_console,
            disable=quiet,
        )
        self.task = self.bar.add_task(f"{suite}: starting", total=total)

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def started(self, cell, what: str = "") -> None:
        note = f" ({what})" if what else ""
        self.bar.update(self.task, description=f"{self.suite}: {escape(_describe(cell))}{note}")

    def finished(self, cell, status: str, units: int = 1) -> None:
        self.bar.advance(self.task, units)

    def training(self, cell, message: dict) -> None:
        self.bar.update(
            self.task,
            description=f"{self.suite}: {escape(_describe(cell))}: step {message['step']}/{message['steps']} "
            f"loss {message['loss']:.3f}"
            + (f" {message.get('val_metric', 'val')} {message['val']:.3f}" if message.get("val") is not None else ""),
        )


def _describe(cell) -> str:
    return get_benchmark(cell.benchmark).describe(cell)


def _progress(suite: str, units: int, cells: int, quiet: bool):
    if not quiet and not err_console.is_terminal:
        return _LineProgress(suite, cells)
    # A time cell takes one worker run per repetition: the bar counts worker runs then, and says so.
    return _BarProgress(suite, units, quiet, "worker runs" if units != cells else "cells")


def _print_summary(rows: list[dict]) -> None:
    from attnzoo.leaderboards.sources import setting_names

    table = Table(title="cells by status")
    table.add_column("variant", no_wrap=True)
    seen = sorted({r["status"] for r in rows})
    for status in seen:
        table.add_column(status, justify="right")
    by_label: dict[str, dict[str, set]] = {}
    names = setting_names(
        [r["variant"] or r["label"] for r in rows],
        [r.get("parameters") or {} for r in rows],
        [r["label"] for r in rows],
    )
    for r, name in zip(rows, names, strict=True):  # named as the leaderboard names them
        by_label.setdefault(name, {}).setdefault(r["status"], set()).add(r["key"])
    for label, counts in by_label.items():
        table.add_row(escape(label), *(str(len(counts.get(s, ()))) for s in seen))
    console.print(table)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from attnzoo.leaderboards.markdown import build
    from attnzoo.leaderboards.publish import FORMATS, write
    from attnzoo.leaderboards.sources import load_run

    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    if unknown := [f for f in formats if f not in FORMATS]:
        raise UsageError(f"--format {','.join(unknown)}: choose from {', '.join(FORMATS)} (comma-separated)")
    if len(args.runs) > 1 and not args.out:
        raise UsageError("several runs are merged into a new leaderboard: name its directory with -o DIR")
    # The stored rows and suites alone: variants (plugins) need not be installed to re-render.
    runs = [load_run(path) for path in args.runs]
    written = write(build(runs, args.prefer), Path(args.out or args.runs[0]), formats, plots=not args.no_plots)
    for path in written:
        console.print(f"wrote {path}", highlight=False)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from attnzoo.leaderboards.compare import compare, report
    from attnzoo.leaderboards.sources import load_run

    if args.threshold < 0:
        raise UsageError(f"--threshold {args.threshold}: give a relative change such as 0.05 (5%)")
    base, new = load_run(args.base), load_run(args.new)
    changes = compare(base, new, args.threshold)
    text = report(base, new, changes, args.threshold, fold=args.format == "md")
    if args.format == "md":
        sys.stdout.write(text)
    else:
        from rich.markdown import Markdown

        console.print(Markdown(text))
    worse = sum(c.regression() for c in changes)
    if args.fail_on_regression and worse:
        err_console.print(f"[red]{worse} cell(s) significantly worse[/]")
        return 1
    return 0


def _version() -> str:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import torch

    try:
        ours = version("attnzoo")
    except PackageNotFoundError:  # imported from a source tree that was never installed
        ours = "(not installed)"
    return f"attnzoo {ours} (torch {torch.__version__}, Python {platform.python_version()})"


DESCRIPTION = """attnzoo compares efficient attention mechanisms honestly: every variant behind one
interface, measured by one harness (time, memory, FLOPs, approximation error, accuracy and forecasting with one
training recipe) side by side on your machine, and published as a markdown leaderboard. A suite (YAML) says which
variants, lengths and benchmarks; each cell runs in its own worker process, a failure is recorded and the run
goes on, and a killed run resumes where it stopped."""

EXAMPLES = """\
examples:
  attnzoo run                          the default suite (about five minutes on 2 CPU cores)
  attnzoo run suite.yaml --variants sdpa,s3attention --seq-lens 1024,4096 --dry-run
  attnzoo run --resume runs/quick-20260101-120000
  attnzoo check my_module:MyAttention  check your own variant before you run it
  attnzoo list '*former'; attnzoo show s3attention
  attnzoo leaderboard runs/a runs/b -o published --format md,csv,json
  attnzoo compare runs/base runs/new --fail-on-regression
  attnzoo calibrate                    how far this machine's speed-ups can be trusted (under a minute)

`attnzoo COMMAND --help` describes each command."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attnzoo",
        description=textwrap.fill(DESCRIPTION, 79),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="the registered variants, their capabilities and availability")
    p.add_argument("pattern", nargs="?", help="glob over names, e.g. '*former'")
    p.add_argument("--json", action="store_true", help="everything about each variant, as JSON")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("show", help="one variant (parameters, capabilities, paper, deviations) or forecasting backbone")
    p.add_argument("name")
    p.set_defaults(func=cmd_show)
    p = sub.add_parser(
        "check", help="check a variant (a registered name or module:Class) for the properties every variant needs"
    )
    p.add_argument("variant", help="a registered name, or module:Class (imported from the current directory)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="a parameter (repeatable)")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("run", help="run a suite (default: the embedded quick suite) and write a leaderboard")
    p.add_argument("suite", nargs="?", help="suite YAML; omitted: the packaged default suite")
    p.add_argument("--out", help="run directory (default: runs/<suite>-<timestamp>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run, skipping finished cells")
    p.add_argument(
        "--force", action="store_true", help="with --resume: continue although the environment or code changed"
    )
    p.add_argument(
        "--retry-errors",
        action="store_true",
        help="with --resume: run cells that ended in error again (their rows move to superseded.jsonl)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress display or summary table")
    p.add_argument("--dry-run", action="store_true", help="list the cells the run would measure, and stop")
    _add_overrides(p)
    p.add_argument(
        "--executor",
        choices=["local", "ray"],
        help="run cells as local worker processes or as Ray tasks (default: the suite's execution.executor, local)",
    )
    p.add_argument("--address", help="with --executor ray: a running cluster (`auto` or host:port); default: local")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser(
        "calibrate", help="this machine's run-to-run timing noise: the smallest speed-up difference it resolves"
    )
    p.set_defaults(func=cmd_calibrate)
    p = sub.add_parser("validate", help="check a suite without running it; prints the planned cell count")
    p.add_argument("suite", nargs="?")
    _add_overrides(p)
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("errors", help="every cell of a run that errored, with its traceback")
    p.add_argument("run", metavar="RUN", help="run directory")
    p.set_defaults(func=cmd_errors)
    p = sub.add_parser("leaderboard", help="render runs' results as a leaderboard (several runs: merged into one)")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    p.add_argument("-o", "--out", help="output directory (default: the run's own directory; required for several)")
    p.add_argument("--format", default="md", help="comma-separated: md (with figures), csv, json (default: md)")
    p.add_argument(
        "--prefer",
        choices=["error", "first", "last"],
        default="error",
        help="a cell stored in two runs: refuse (default), or keep the first or last run's copy",
    )
    p.add_argument("--no-plots", action="store_true", help="markdown without figures (no matplotlib needed)")
    p.set_defaults(func=cmd_leaderboard)
    p = sub.add_parser("compare", help="cell-by-cell change between two runs, with a verdict per cell")
    p.add_argument("base", metavar="BASE", help="run directory to compare against")
    p.add_argument("new", metavar="NEW", help="run directory with the changes")
    p.add_argument("--threshold", type=float, default=0.05, help="smallest relative change that counts (0.05)")
    p.add_argument("--fail-on-regression", action="store_true", help="exit 1 when any cell is significantly worse")
    p.add_argument("--format", choices=["text", "md"], default="text", help="md: a pull-request comment")
    p.set_defaults(func=cmd_compare)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (VariantError, BenchmarkError, SuiteError, UsageError, RunDirError, ExecutorError) as err:
        for line in str(err).splitlines():
            err_console.print(f"[red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
