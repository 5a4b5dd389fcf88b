"""The harness: suite validation, isolated cells and their statuses, resume after a kill, measurements."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml

import attnzoo
from attnzoo.harness.flops import count_flops
from attnzoo.harness.measure import layer_call, peak_memory
from attnzoo.harness.plan import plan
from attnzoo.harness.rundir import RunStore
from attnzoo.harness.runner import run_suite
from attnzoo.harness.suite import SuiteError, load_suite
from attnzoo.leaderboards.publish import publish_run

TINY = {
    "name": "tiny",
    "variants": ["vanilla", {"name": "s3attention", "params": {"s1": 4}}],
    "layer": {"dim": 16, "heads": 2},
    "seq_lens": [32, 64],
    "benchmarks": {
        "efficiency": {
            "metrics": ["time", "memory", "flops"],
            "passes": ["forward"],
            "repetitions": 2,
            "min_run_time": 0.02,
        },
        "approximation": {"inputs": ["gaussian", "text"], "seeds": 1},
    },
    "execution": {"timeout_s": 60, "threads": 1},
}


def write_suite(tmp_path: Path, suite: dict | str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(suite if isinstance(suite, str) else yaml.safe_dump(suite, sort_keys=False))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    return err.value.problems


def run(tmp_path: Path, suite: dict) -> tuple[list[dict], Path]:
    path = write_suite(tmp_path, suite)
    run_dir = tmp_path / "run"
    summary = run_suite(load_suite(path), path.read_text(), run_dir)
    publish_run(run_dir)
    return summary.rows, run_dir


def test_schema_problems_name_file_line_field_and_fix(tmp_path):
    path = write_suite(
        tmp_path,
        textwrap.dedent("""\
        name: bad
        variants: [sdpa]
        layer:
          dim: 64
          dtyp: float32
        seq_lens: [512, 1]
        benchmarks:
          efficency: {}
        """),
    )
    found = problems(path)
    assert f"{path}:5: layer.dtyp: unknown field; did you mean 'dtype'?" in found[0]
    assert found[1].startswith(f"{path}:6: seq_lens: every sequence length must be at least 2")
    assert "benchmarks.efficency: unknown field; did you mean 'efficiency'?" in found[2]


def test_variant_problems_use_the_registry(tmp_path):
    suite = {**TINY, "variants": ["skeinfomer", {"name": "nystromformer", "params": {"num_landmark": 8}}, "xformers"]}
    found = problems(write_suite(tmp_path, suite))
    assert "variants[0].name: unknown attention variant 'skeinfomer'; did you mean 'skeinformer'" in found[0]
    assert "unknown parameter 'num_landmark'; did you mean 'num_landmarks'?" in found[1]
    if not torch.cuda.is_available():
        assert "variants[2]: variant 'xformers' cannot run here: xformers is not installed" in found[-2]
        assert "on_unavailable: skip" in found[-2]
        assert "layer.device: cpu is not supported by xformers (variants[2])" in found[-1]
        skip = {**TINY, "variants": ["xformers"], "layer": {"device": "cuda"}, "execution": {"on_unavailable": "skip"}}
        load_suite(write_suite(tmp_path, skip, "skip.yaml"))


def test_a_half_precision_gpu_suite_validates_for_the_exact_kernels(tmp_path):
    half = {**TINY, "variants": ["sdpa", "vanilla", "xformers"], "layer": {"device": "cuda", "dtype": "float16"}}
    suite = load_suite(write_suite(tmp_path, {**half, "execution": {"on_unavailable": "skip"}}))
    assert [entry.name for entry in suite.variants] == ["sdpa", "vanilla", "xformers"]
    refused = problems(write_suite(tmp_path, {**half, "variants": ["linformer"]}, "linformer.yaml"))
    assert "layer.dtype: float16 is not supported by linformer (variants[0])" in refused[0]


@pytest.mark.slow
def test_missing_file_yaml_syntax_and_missing_cuda(tmp_path):
    assert "no such file" in problems(tmp_path / "absent.yaml")[0]
    unclosed = write_suite(tmp_path, "name: x\nvariants: [sdpa\nseq_lens: [64]\n", "bad.yaml")
    assert problems(unclosed)[0].startswith(f"{unclosed}:3: YAML syntax error: expected ',' or ']'")
    if not torch.cuda.is_available():  # a GPU suite validates here (with a warning) and refuses to run
        path = write_suite(tmp_path, {**TINY, "layer": {"device": "cuda"}}, "gpu.yaml")
        suite = load_suite(path)
        with pytest.raises(SuiteError, match="CUDA is not available"):
            run_suite(suite, path.read_text(), tmp_path / "gpu-run")
        assert not (tmp_path / "gpu-run").exists()
        validated = subprocess.run([sys.executable, "-m", "attnzoo.cli", "validate", str(path)], capture_output=True)
        assert (
            validated.returncode == 0 and b"warning: layer.device: cuda but CUDA is not available" in validated.stderr
        )


@pytest.mark.slow
def test_cli_reports_a_bad_suite_without_traceback(tmp_path):
    path = write_suite(tmp_path, {**TINY, "seq_lens": "long"})
    done = subprocess.run([sys.executable, "-m", "attnzoo.cli", "run", str(path)], capture_output=True, text=True)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "seq_lens" in done.stderr


def test_validate_counts_cells(tmp_path, capsys):
    from attnzoo.cli import main

    assert main(["validate", str(write_suite(tmp_path, TINY))]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "8 cells (2 variant settings;" in out  # 2 variants x 2 lengths x 2 benchmarks
    assert len(plan(load_suite())) > 0  # the packaged default suite is valid


@pytest.mark.slow
def test_a_run_writes_results_manifest_and_leaderboard(tmp_path):
    rows, run_dir = run(tmp_path, TINY)
    by_status = {(r["variant"], r["benchmark"], r["status"]) for r in rows}
    assert ("vanilla", "efficiency", "ok") in by_status
    assert ("s3attention", "approximation", "unsupported") in by_status  # no softmax-approximating kernel
    approx = [r for r in rows if r["variant"] == "vanilla" and r["metric"] == "rel_error"]
    assert {r["input"] for r in approx} == {"gaussian", "text"} and max(r["value"] for r in approx) < 1e-5
    assert all(r["env"]["torch"] == torch.__version__ and r["key"] for r in rows)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["threads"] == 1 and "torch" in manifest["packages"]
    board = (run_dir / "leaderboard.md").read_text()
    assert "CPU results" in board and "| s3attention(s1=4) | unsupported |" in board and "Relative error" in board


class Exploder(torch.nn.Module):
    def __init__(self, dim, heads, how="raise"):
        super().__init__()
        self.how = how

    def forward(self, x, mask=None):
        if self.how == "exit":
            os._exit(7)
        raise RuntimeError("boom")


@pytest.mark.slow
def test_crashes_and_timeouts_are_recorded_and_the_run_goes_on(tmp_path):
    suite = {
        **TINY,
        "variants": [
            {"name": "tests.test_harness:Exploder", "sweep": {"how": ["raise", "exit"]}},
            "vanilla",
        ],
        "seq_lens": [2048],
        "benchmarks": {
            "efficiency": {"metrics": ["time"], "passes": ["forward_backward"], "repetitions": 1, "min_run_time": 30}
        },
        "execution": {"timeout_s": 3, "threads": 1},
    }
    rows, _ = run(tmp_path, suite)
    status = {r["label"]: (r["status"], r["error"]) for r in rows}
    assert status["tests.test_harness:Exploder[how=raise]"][0] == "error"
    assert "boom" in status["tests.test_harness:Exploder[how=raise]"][1]
    assert status["tests.test_harness:Exploder[how=exit]"] == ("error", "worker crashed with exit code 7")
    assert status["vanilla"][0] == "timeout"


@pytest.mark.slow
def test_oom_is_recorded_and_larger_lengths_are_skipped(tmp_path):
    vm_size = int(re.search(r"VmSize:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024
    suite = {
        **TINY,
        "variants": ["vanilla"],
        "layer": {"dim": 16, "heads": 2, "batch": 4},
        "seq_lens": [64, 8192, 16384],
        "benchmarks": {"efficiency": {"metrics": ["memory"], "passes": ["forward"]}},
        # Room for the worker itself, not for 4 x 2 x 8192^2 floats of attention scores (4 GiB).
        "execution": {"memory_limit_gb": (vm_size + 1.5 * 2**30) / 2**30, "threads": 1},
    }
    rows, run_dir = run(tmp_path, suite)
    status = {r["seq_len"]: r["status"] for r in rows}
    assert status == {64: "ok", 8192: "oom", 16384: "skipped"}
    assert "OOM" in (run_dir / "leaderboard.md").read_text()

    # A run killed after the OOM resumes knowing it: the longer length is skipped, not tried.
    results = run_dir / "results.jsonl"
    results.write_text(
        "".join(line + "\n" for line in results.read_text().splitlines() if '"seq_len": 16384' not in line)
    )
    path = tmp_path / "suite.yaml"
    rows = run_suite(load_suite(path), path.read_text(), run_dir, resume=True).rows
    assert {r["seq_len"]: r["status"] for r in rows} == {64: "ok", 8192: "oom", 16384: "skipped"}


@pytest.mark.slow
def test_resume_after_kill_redoes_nothing_finished(tmp_path):
    suite = {
        **TINY,
        "seq_lens": [32, 48, 64, 96, 128, 192],
        "benchmarks": {
            "efficiency": {"metrics": ["time"], "passes": ["forward"], "repetitions": 1, "min_run_time": 0.3}
        },
    }
    path = write_suite(tmp_path, suite)
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "attnzoo.cli", "run", str(path), "--out", str(run_dir), "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = RunStore(run_dir)
    deadline = time.time() + 60
    while len(store.finished_keys()) < 3 and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {r["key"]: r for r in store.rows()}
    assert 3 <= len(before) < 12, "the kill should land mid-run"

    done = subprocess.run(
        [sys.executable, "-m", "attnzoo.cli", "run", "--resume", str(run_dir), "--quiet"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    after = store.rows()
    keys = [r["key"] for r in after]
    assert sorted(set(keys)) == sorted(c.key for c in plan(load_suite(path))) and len(keys) == len(set(keys))
    for row in after:  # finished cells were not measured again
        if row["key"] in before:
            assert row == before[row["key"]]


def test_flop_counts_match_the_analytic_formula():
    b, n, dim, heads = 2, 128, 32, 2
    x = torch.randn(b, n, dim)
    projections = 2 * b * n * dim * (3 * dim) + 2 * b * n * dim * dim
    attention = 2 * (2 * b * n * n * dim)  # q k^T and attn v, summed over heads
    for name in ("vanilla", "sdpa"):  # sdpa's fused CPU kernel is counted by our registered formula
        layer = attnzoo.create_attention(name, dim, heads)
        assert count_flops(layer_call(layer, x, None, backward=False)) == projections + attention
    signal_ = torch.randn(3, 1024, 4)
    assert count_flops(lambda: torch.fft.rfft(signal_, dim=1)) == int(3 * 4 * 2.5 * 1024 * 10)


@pytest.mark.parametrize("name, n, expected", [("vanilla", 1024, 4.0), ("sdpa", 4096, 2.0)])
def test_peak_memory_grows_as_the_algorithm_says(name, n, expected):
    peaks = []
    for length in (n, 2 * n):
        torch.manual_seed(0)
        layer = attnzoo.create_attention(name, 64, 2)
        call = layer_call(layer, torch.randn(1, length, 64), None, backward=True)
        call()
        peaks.append(peak_memory(call, torch.device("cpu")))
    assert peaks[1] / peaks[0] == pytest.approx(expected, rel=0.15)


@pytest.mark.slow
def test_accuracy_smoke_suite_trains_every_task(tmp_path):
    path = Path(__file__).resolve().parents[1] / "suites" / "accuracy-smoke.yaml"
    summary = run_suite(load_suite(path), path.read_text(), tmp_path / "run")
    publish_run(tmp_path / "run")
    rows = summary.rows
    assert {r["task"] for r in rows} == {"listops", "text", "retrieval", "image", "pathfinder", "recall"}
    failed = "\n".join(f"{r['task']} {r['label']}: {r['status']}: {r['error']}" for r in rows if r["status"] != "ok")
    assert not failed, failed
    assert all(0 <= r["value"] <= 1 and r["seed"] == 0 for r in rows)
    board = (tmp_path / "run" / "leaderboard.md").read_text()
    assert "## Accuracy" in board and "| chance (majority class) |" in board and "stand-in" in board


def test_task_options_are_checked(tmp_path):
    suite = {**TINY, "benchmarks": {"accuracy": {"tasks": {"listops": {"seq_length": 64}, "pathfindr": {}}}}}
    found = problems(write_suite(tmp_path, suite))
    assert "tasks.listops: task 'listops' has no option 'seq_length'; did you mean 'seq_len'?" in found[0]
    assert "unknown task 'pathfindr'; did you mean 'pathfinder'?" in found[1]
