"""The `attnzoo` command."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from attnzoo.zoo import VariantError, list_variants, plugin_errors, variant_info

console = Console()
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attnzoo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="the registered variants, their capabilities and availability")
    p.add_argument("pattern", nargs="?", help="glob over names, e.g. '*former'")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("show", help="one variant: parameters, capabilities, paper, deviations")
    p.add_argument("name")
    p.set_defaults(func=cmd_show)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except VariantError as err:
        err_console.print(f"[red]error:[/] {escape(str(err))}", highlight=False)
        return 2


if __name__ == "__main__":
    sys.exit(main())
