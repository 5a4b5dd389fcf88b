"""The environment manifest recorded with every run, so a number can be traced to where it was measured."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import platform
import re
import subprocess
import time
from importlib import metadata
from pathlib import Path

import torch

PACKAGES = ["attnzoo", "torch", "linformer", "performer-pytorch", "xformers", "pydantic", "pandas", "ray"]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_revision() -> str | None:
    """The checkout's revision, with "+dirty" when the attnzoo package has uncommitted changes (results and
    suites elsewhere in the tree do not make the code dirty); None outside a checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", "attnzoo"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def code_fingerprint() -> str:
    """Hash of the attnzoo package's source files: tells two code versions apart with or without git."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


# CPU features that select different kernels, and so can change the last bits of results.
_CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile")


def cpu_flags() -> list[str]:
    try:
        line = next(x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("flags"))
    except (OSError, StopIteration):
        return []
    present = set(line.split(":", 1)[1].split())
    return [f for f in _CPU_FLAGS if f in present]


def numerics() -> dict:
    """What decides which kernels run, and so the last bits of every result: torch's CPU dispatch level, the
    BLAS and oneDNN builds, determinism settings; on CUDA the GPU, its capability, driver and cuDNN."""
    config = torch.__config__.show()
    found = lambda pattern: m.group(1).strip() if (m := re.search(pattern, config)) else None  # noqa: E731
    info = {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_flags": cpu_flags(),
        "blas": found(r"BLAS_INFO=(\w+)"),
        "mkl": found(r"Math Kernel Library Version ([^\n]+)"),
        "onednn": found(r"MKL-DNN (v[\d.]+)"),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }
    if torch.cuda.is_available():
        info.update(
            gpu=torch.cuda.get_device_name(),
            gpu_capability=".".join(map(str, torch.cuda.get_device_capability())),
            cudnn=torch.backends.cudnn.version(),
            cuda_driver=_nvidia_driver(),
        )
    return info


def _nvidia_driver() -> str | None:
    try:
        return Path("/proc/driver/nvidia/version").read_text().split("Kernel Module", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _cpu_times() -> list[int] | None:
    try:
        return [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None


BUSY = 0.15  # share of all cores in use by other processes above which a timing run is warned about


def load(window_s: float = 0.5) -> dict:
    """Load average and, sampled over window_s, the share of all cores busy with other work and (where Linux
    reports it) the share stolen by the hypervisor."""
    out: dict = {"cpu_count": os.cpu_count()}
    with contextlib.suppress(OSError):
        out["loadavg"] = [round(v, 2) for v in os.getloadavg()]
    before = _cpu_times()
    if before is None:
        return out
    time.sleep(window_s)
    after = _cpu_times() or before
    delta = [a - b for a, b in zip(after, before, strict=False)]
    total = sum(delta) or 1
    idle = delta[3] + (delta[4] if len(delta) > 4 else 0)  # idle + iowait
    out["busy"] = round(1 - idle / total, 3)
    if len(delta) > 7:
        out["steal"] = round(delta[7] / total, 3)
    return out


def device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return cpu_name()


def manifest(device: str, threads: int) -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        "device_name": device_name(device),
        "cpu": cpu_name(),
        "threads": threads,
        "torch": torch.__version__,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git": git_revision(),
        "code": code_fingerprint(),
        "host": platform.node(),
        "numerics": numerics(),
        "packages": versions,
    }


# What must match for rows measured at different times to belong in one run.
COMPARED = ("device", "device_name", "threads", "torch", "cuda", "python", "code", "numerics", "packages", "variants")
RECORDED_ONLY = {"packages.ray"}  # the executor: where cells run, not what they compute


# What identifies the machine and kernels a time or a result was measured with.
MACHINE_FIELDS = ("device_name", "cpu_capability", "torch", "threads")


def machine(manifest: dict) -> dict:
    """MACHINE_FIELDS of a run's manifest."""
    return {
        **{f: manifest.get(f) for f in MACHINE_FIELDS},
        "cpu_capability": manifest.get("numerics", {}).get("cpu_capability"),
    }


def row_environment(full: dict) -> dict:
    """The short form carried by every result row: enough to tell machines and code versions apart."""
    short = {k: full.get(k) for k in ("torch", "device_name", "threads", "git", "code", "host")}
    return {**short, "cpu_capability": full.get("numerics", {}).get("cpu_capability")}


def changes(before: dict, now: dict) -> list[str]:
    """Human-readable differences between two manifests in what decides a result."""
    out = []
    for key in COMPARED:
        old, new = before.get(key), now.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            out += [
                f"{key}.{k}: {old.get(k)!r} -> {new.get(k)!r}"
                for k in sorted(set(old) | set(new))
                if old.get(k) != new.get(k) and f"{key}.{k}" not in RECORDED_ONLY
            ]
        elif old != new:
            out.append(f"{key}: {old!r} -> {new!r}")
    return out
