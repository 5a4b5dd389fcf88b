"""What `attnzoo calibrate` measured on a machine, kept per machine in the user's cache directory
(ATTNZOO_CACHE, else $XDG_CACHE_HOME/attnzoo, else ~/.cache/attnzoo) so that every later run's manifest records
how far this machine's speed-ups can be trusted."""

from __future__ import annotations

import json
import os
from pathlib import Path

from attnzoo.harness.environment import machine


def cache_file() -> Path:
    root = os.environ.get("ATTNZOO_CACHE")
    if root:
        return Path(root) / "calibration.json"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "attnzoo" / "calibration.json"


def machine_key(manifest: dict) -> str:
    """The host and what decides its timings (device, CPU kernels, torch, threads), from a run's manifest."""
    return json.dumps({"host": manifest.get("host"), **machine(manifest)}, sort_keys=True)


def _all() -> dict[str, dict]:
    try:
        return json.loads(cache_file().read_text())
    except (OSError, ValueError):
        return {}


def save(manifest: dict, result: dict) -> Path:
    found = _all() | {machine_key(manifest): result}
    path = cache_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(found, indent=2) + "\n")
    tmp.replace(path)
    return path


def load(manifest: dict) -> dict | None:
    """The last calibration of the machine this manifest describes, or None."""
    return _all().get(machine_key(manifest))
