"""`--executor ray` on a real local Ray instance (2 CPUs, shared by this module): the same rows as the local
executor, failures as statuses, retries, timeouts, resume after the driver is killed, and placement."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from attnzoo.harness.runner import run_suite
from attnzoo.harness.suite import load_suite
from tests.test_harness import write_suite

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'attnzoo[ray]'")
pytestmark = pytest.mark.slow  # a Ray instance per module, a run per test

PLUGIN = """
import os
import time
from pathlib import Path

import torch
from pydantic import Field

import attnzoo
from attnzoo.zoo.base import ProjectedAttention
from attnzoo.zoo.params import VariantParams
from attnzoo.zoo.registry import Capabilities

LOG = Path(__file__).with_name("calls.log")


class Params(VariantParams):
    behaviour: str = Field("sleep", description="sleep | crash | crash_once | hang")
    seconds: float = Field(0.3, description="sleep per call")
    tag: int = Field(0, description="tells settings apart")


@attnzoo.register_variant(
    "probe-attention", description="exact attention that logs its calls", source="tests", params=Params,
    capabilities=Capabilities(approximates_softmax=True),
)
class Probe(ProjectedAttention):
    def __init__(self, dim, heads, max_seq_len=None, behaviour="sleep", seconds=0.3, tag=0):
        super().__init__(dim, heads, max_seq_len)
        self.behaviour, self.seconds, self.tag = behaviour, seconds, tag

    def attend(self, q, k, v, mask=None):
        start = time.time()
        marker = LOG.with_name(f"crashed-{self.tag}")
        if self.behaviour == "crash" or (self.behaviour == "crash_once" and not marker.exists()):
            marker.touch()
            os._exit(3)
        time.sleep(600 if self.behaviour == "hang" else self.seconds)
        with LOG.open("a") as log:
            log.write(f"{self.tag} {os.getpid()} {start} {time.time()}\\n")
        return torch.nn.functional.scaled_dot_product_attention(q, k, v)
"""


@pytest.fixture(scope="module")
def cluster():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)  # never a running cluster
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def probe_suite(tmp_path: Path, settings: list[dict], **extra) -> Path:
    (tmp_path / "probes.py").write_text(PLUGIN)
    suite = {
        "name": "probes",
        "variants": [{"name": "probes:Probe", "params": p} for p in settings],
        "layer": {"dim": 16, "heads": 2},
        "seq_lens": [32],
        "benchmarks": {"approximation": {"inputs": ["gaussian"], "seeds": 1}},
        "execution": {"timeout_s": 60, "threads": 1, "executor": "ray"},
        **extra,
    }
    return write_suite(tmp_path, suite)


def calls(tmp_path: Path) -> list[tuple[int, int, float, float]]:
    """(tag, pid, start, end) of every attend call that finished."""
    log = tmp_path / "calls.log"
    lines = log.read_text().split("\n") if log.exists() else []
    return [(int(t), int(p), float(a), float(b)) for t, p, a, b in (line.split() for line in lines if line)]


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals], key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def per_process(found: list[tuple[int, int, float, float]]) -> list[tuple[float, float]]:
    """One interval per worker process (a cell): from its first call's start to its last call's end."""
    spans: dict[int, tuple[float, float]] = {}
    for _, pid, start, end in found:
        a, b = spans.get(pid, (start, end))
        spans[pid] = (min(a, start), max(b, end))
    return list(spans.values())


def comparable(rows: list[dict]) -> list[tuple]:
    """What must not depend on where a cell ran: everything but timings, environment and placement."""
    keep = lambda r: (r["key"], r["metric"], r["pass"], r["input"], r["status"])  # noqa: E731
    return sorted(keep(r) + (None if r["metric"] == "time" else r["value"],) for r in rows)


def test_rows_match_the_local_executor_apart_from_timing(tmp_path, cluster):
    suite = {
        "name": "parity",
        "variants": ["vanilla", {"name": "s3attention", "params": {"s1": 4}}],
        "layer": {"dim": 16, "heads": 2},
        "seq_lens": [32, 64],
        "benchmarks": {
            "efficiency": {"metrics": ["flops", "memory"], "passes": ["forward"]},
            "approximation": {"inputs": ["gaussian", "text"], "seeds": 1},
            "accuracy": {
                "seeds": 1,
                "recipe": {"steps": 4, "batch_size": 8, "eval_every": 2, "warmup_steps": 1, "dim": 16, "ffn_dim": 32},
                "tasks": {"listops": {"seq_len": 32, "size": 80, "max_depth": 2, "max_args": 3}},
            },
        },
        "execution": {"timeout_s": 120, "threads": 1},
    }
    path = write_suite(tmp_path, suite)
    local = run_suite(load_suite(path), path.read_text(), tmp_path / "local").rows
    remote = run_suite(load_suite(path), path.read_text(), tmp_path / "ray", executor="ray").rows
    assert comparable(remote) == comparable(local)
    assert {r["status"] for r in remote} == {"ok", "unsupported"}  # s3attention approximates no softmax
    assert {r["where"]["executor"] for r in remote} == {"ray"} and {r["where"]["executor"] for r in local} == {"local"}
    assert all(r["where"]["attempt"] == 1 and r["where"]["pid"] for r in remote if r["benchmark"] != "efficiency")
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["executor"]["executor"] == "ray" and manifest["executor"]["nodes"][0]["cpus"] == 2


def test_crashes_are_retried_then_errors_and_hangs_time_out(tmp_path, cluster):
    settings = [
        {"behaviour": "crash_once", "tag": 1},
        {"behaviour": "crash", "tag": 2},
        {"behaviour": "hang", "tag": 3},
        {"behaviour": "sleep", "tag": 4},
    ]
    execution = {"timeout_s": 20, "threads": 1, "executor": "ray", "ray": {"max_retries": 1}}
    path = probe_suite(tmp_path, settings, execution=execution)
    rows = run_suite(load_suite(path), path.read_text(), tmp_path / "run").rows
    by_tag = {r["parameters"]["tag"]: r for r in rows}
    assert by_tag[1]["status"] == "ok" and by_tag[1]["where"]["attempt"] == 2  # died once, succeeded on retry
    assert by_tag[2]["status"] == "error" and "died on each of 2 attempts" in by_tag[2]["error"]
    assert by_tag[3]["status"] == "timeout" and "20 s" in by_tag[3]["error"]
    assert by_tag[4]["status"] == "ok" and by_tag[4]["value"] < 1e-5


def test_one_cpu_cells_pack_up_to_the_cpus(tmp_path, cluster):
    path = probe_suite(tmp_path, [{"tag": t, "seconds": 3} for t in range(1, 5)])
    rows = run_suite(load_suite(path), path.read_text(), tmp_path / "run").rows
    assert {r["status"] for r in rows} == {"ok"}
    assert max_overlap(per_process(calls(tmp_path))) == 2  # both CPUs busy at once, never more


def test_a_timing_cell_overlaps_nothing(tmp_path, cluster):
    path = probe_suite(tmp_path, [{"tag": t, "seconds": 0.05} for t in (1, 2)])
    suite = yaml.safe_load(path.read_text())
    suite["benchmarks"]["efficiency"] = {"metrics": ["time"], "passes": ["forward"], "repetitions": 2}
    path.write_text(yaml.safe_dump(suite))
    rows = run_suite(load_suite(path), path.read_text(), tmp_path / "run").rows
    assert {r["status"] for r in rows} == {"ok"}
    timed = [r for r in rows if r["benchmark"] == "efficiency"]
    assert {r["where"]["node"] for r in timed} == {ray.get_runtime_context().get_node_id()}
    found = calls(tmp_path)
    timing_pids = {pid for _, pid, *_ in found} - {r["where"]["pid"] for r in rows if r["benchmark"] != "efficiency"}
    spans = per_process([c for c in found if c[1] not in timing_pids])
    timing = per_process([c for c in found if c[1] in timing_pids])
    assert timing and spans and all(b <= a0 or a >= b0 for a, b in timing for a0, b0 in spans)
    assert max_overlap(timing) == 1


def test_resume_after_the_driver_is_killed_runs_only_the_missing_cells(tmp_path, cluster):
    settings = [{"tag": t, "seconds": 1.0} for t in range(1, 9)]
    path = probe_suite(tmp_path, settings)
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "attnzoo.cli", "run", str(path), "--out", str(run_dir), "--address", cluster]
    driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    results = run_dir / "results.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not results.exists() or len(results.read_text().splitlines()) < 3):
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    before = {json.loads(line)["parameters"]["tag"] for line in results.read_text().splitlines()}
    assert 3 <= len(before) < 8
    calls_before = Counter(tag for tag, *_ in calls(tmp_path))

    summary = run_suite(load_suite(path), path.read_text(), run_dir, resume=True)
    keys = [r["key"] for r in summary.rows]
    assert len(keys) == len(set(keys)) == 8 and summary.skipped_as_done == len(before)
    calls_after = Counter(tag for tag, *_ in calls(tmp_path))
    assert all(calls_after[tag] == calls_before[tag] for tag in before)  # finished cells were not run again
    assert all(calls_after[tag] > calls_before[tag] for tag in set(range(1, 9)) - before)


def test_an_unreachable_cluster_is_one_clear_error_and_writes_nothing(tmp_path):
    path = probe_suite(tmp_path, [{"tag": 1}])
    cmd = [sys.executable, "-m", "attnzoo.cli", "run", str(path), "--out", str(tmp_path / "run")]
    done = subprocess.run([*cmd, "--address", "127.0.0.1:9"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "cannot reach the Ray cluster at 127.0.0.1:9" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "run").exists()
