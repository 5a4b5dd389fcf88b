"""Runs that cannot mix or lie: one suite and one environment per run directory, suites that fail early rather
than cell by cell, interrupts that say how to resume, and plain classes next to the suite."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

import attnzoo
from attnzoo.harness.rundir import RunStore
from attnzoo.harness.runner import RunDirError, run_suite
from attnzoo.harness.suite import load_suite
from tests.test_harness import TINY, problems, write_suite

FAST = {
    **TINY,
    "variants": ["vanilla"],
    "benchmarks": {"efficiency": {"metrics": ["flops"], "passes": ["forward"]}},
}
PLUGIN = '''
import torch


class Doubler(torch.nn.Module):
    """Multiplies by FACTOR."""

    def __init__(self, dim, heads):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x, mask=None):
        return x * self.scale * FACTOR

    def attend(self, q, k, v, mask=None):
        return v


FACTOR = {factor}
'''


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "attnzoo.cli", *args], capture_output=True, text=True, cwd=cwd)


def plugin_suite(tmp_path: Path, factor: int = 2) -> Path:
    (tmp_path / "myattn.py").write_text(PLUGIN.format(factor=factor))
    suite = {**FAST, "variants": ["myattn:Doubler", "vanilla"], "benchmarks": {"approximation": {"seeds": 1}}}
    return write_suite(tmp_path, suite)


@pytest.mark.slow
def test_a_run_directory_refuses_another_run(tmp_path):
    path = write_suite(tmp_path, FAST)
    run_dir = tmp_path / "run"
    run_suite(load_suite(path), path.read_text(), run_dir)
    before = (run_dir / "results.jsonl").read_text()
    other = write_suite(tmp_path, {**FAST, "layer": {"dim": 32, "heads": 2}}, "other.yaml")
    with pytest.raises(RunDirError, match="already holds a run of suite 'tiny'.*--resume"):
        run_suite(load_suite(other), other.read_text(), run_dir)
    assert (run_dir / "results.jsonl").read_text() == before
    assert yaml.safe_load((run_dir / "suite.yaml").read_text())["layer"] == FAST["layer"]

    done = cli("run", str(other), "--resume", str(run_dir))  # a different suite cannot resume this run
    assert done.returncode == 2 and "is not the suite" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_resume_refuses_a_changed_environment_and_force_records_it(tmp_path):
    path = write_suite(tmp_path, {**FAST, "seq_lens": [32, 64]})
    run_dir = tmp_path / "run"
    run_suite(load_suite(path), path.read_text(), run_dir)
    store = RunStore(run_dir)
    # Pretend the run started on another machine and lost its last cell.
    manifest = store.manifest()
    store.write_manifest({**manifest, "device_name": "NVIDIA A100", "numerics": {"cpu_capability": "AVX512"}})
    rows = store.rows()
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows if r["seq_len"] == 32))
    with pytest.raises(RunDirError) as err:
        run_suite(load_suite(path), path.read_text(), run_dir, resume=True)
    assert "device_name: 'NVIDIA A100' -> " in str(err.value) and "--force" in str(err.value)
    run_suite(load_suite(path), path.read_text(), run_dir, resume=True, force=True)
    new = [r for r in store.rows() if r["seq_len"] == 64]
    assert new and all(r["env"]["device_name"] == manifest["device_name"] for r in new)  # measured here
    assert "cpu_capability" in new[0]["env"]
    assert store.manifest()["resumed"][0]["changes"][0].startswith("device_name")


@pytest.mark.slow
def test_changed_variant_code_is_not_reused(tmp_path):
    path = plugin_suite(tmp_path, factor=2)
    run_dir = tmp_path / "run"
    run_suite(load_suite(path), path.read_text(), run_dir)
    old_keys = {r["key"] for r in RunStore(run_dir).rows() if r["variant"] == "myattn:Doubler"}
    (tmp_path / "myattn.py").write_text(PLUGIN.format(factor=3))
    # A fresh process, as a user editing their plugin would start one.
    done = cli("run", "--resume", str(run_dir), "--quiet")
    assert done.returncode == 2 and "variants.myattn:Doubler" in done.stderr, done.stderr
    done = cli("run", "--resume", str(run_dir), "--quiet", "--force")
    assert done.returncode == 0, done.stderr
    rows = RunStore(run_dir).rows()
    keys = {r["key"] for r in rows if r["variant"] == "myattn:Doubler"}
    assert keys and not keys & old_keys and len(rows) == len({(r["key"], r["input"]) for r in rows})
    superseded = (run_dir / "superseded.jsonl").read_text().splitlines()
    assert {json.loads(line)["key"] for line in superseded} == old_keys


def test_validate_builds_every_setting_and_reports_everything_at_once(tmp_path):
    path = write_suite(
        tmp_path,
        textwrap.dedent("""\
        name: bad
        variants:
          - sdpa
          - {name: s3attention, params: {r: 7}}
          - {name: s3attention, params: {s2: 1000}}
          - vanilla
          - sdpa
        layer: {dim: 64, heads: 2}
        seq_lens: [64]
        benchmarks:
          efficiency: {metrics: [flops]}
        """),
    )
    found = problems(path)
    text = (
        path.read_text()
        .replace("heads: 2}", "heads: 2, dtyp: float32}")
        .replace("- vanilla", "- {name: vanilla, params: {casual: true}}")
    )
    both = problems(write_suite(tmp_path, text, "s.yaml"))  # a schema error hides no parameter error
    assert "layer.dtyp: unknown field; did you mean 'dtype'?" in both[0]
    assert "s.yaml:6: variants[3].params: vanilla: unknown parameter 'casual'; did you mean 'causal'?" in both[1]
    assert any(f"{path}:4: variants[1].params: s3attention: r=7 must divide dim=64" in p for p in found), found
    assert any(f"{path}:5: variants[2].params: s3attention: s2=1000 exceeds the head width" in p for p in found)
    assert any(f"{path}:7: variants[4]: label 'sdpa' is already used by variants[0]" in p for p in found)
    half = {
        **FAST,
        "variants": ["linformer", "performer", "sdpa"],
        "layer": {"dim": 16, "heads": 2, "dtype": "float16"},
    }
    found = problems(write_suite(tmp_path, half, "half.yaml"))
    assert found == [  # once for the field, naming every variant it concerns
        f"{tmp_path / 'half.yaml'}:9: layer.dtype: float16 is not supported by linformer (variants[0]), performer "
        "(variants[1]) (`attnzoo show NAME` lists each one's devices and dtypes); change it, drop those variants, "
        "or set execution.on_unavailable: skip to record them as unsupported"
    ]
    skip = {**half, "variants": ["linformer"], "execution": {"on_unavailable": "skip"}}
    assert (
        "none of them supports layer.device cpu with layer.dtype float16"
        in problems(write_suite(tmp_path, skip, "skip.yaml"))[0]
    )


@pytest.mark.slow
def test_binary_suite_file_is_a_clear_error(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert "not a UTF-8 text file" in problems(path)[0]
    path.write_bytes(b"name: x\x00")
    assert "binary" in problems(path)[0]
    done = cli("validate", str(path))
    assert done.returncode == 2 and "Traceback" not in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "executor"), [(signal.SIGINT, "local"), (signal.SIGTERM, "local"), (signal.SIGTERM, "ray")]
)
def test_ctrl_c_or_kill_says_what_was_saved_and_how_to_resume(tmp_path, signum, executor):
    suite = {**TINY, "seq_lens": [32, 48, 64, 96, 128, 192, 256, 384]}
    suite["benchmarks"] = {
        "efficiency": {"metrics": ["time"], "passes": ["forward"], "repetitions": 1, "min_run_time": 0.5}
    }
    path = write_suite(tmp_path, suite)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "attnzoo.cli", "run", str(path), "--out", str(run_dir), "--executor", executor],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # as a terminal's foreground job has it: a runner started in the background (nohup, `&`) ignores SIGINT, and
        # its children would inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # Timing cells' rows are written after their last round; each repetition is saved as it finishes.
    repetitions, deadline = run_dir / "repetitions.jsonl", time.time() + 60
    while (not repetitions.exists() or len(repetitions.read_text().splitlines()) < 2) and time.time() < deadline:
        time.sleep(0.05)
    if signum == signal.SIGINT:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends: the whole foreground process group
    else:
        proc.send_signal(signal.SIGTERM)  # what `kill PID` sends: the driver alone
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and f"continue with: attnzoo run --resume {run_dir}" in " ".join(err.split())
    deadline = time.time() + 10
    while _group_alive(proc.pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not _group_alive(proc.pid), "a worker outlived the run"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class Sleeper(attnzoo.zoo.base.ProjectedAttention):
    def attend(self, q, k, v, mask=None):
        time.sleep(30)
        return v


@pytest.mark.slow
def test_a_timeout_skips_longer_lengths(tmp_path):
    suite = {
        **FAST,
        "variants": ["tests.test_integrity:Sleeper"],
        "seq_lens": [32, 64, 128],
        "execution": {"timeout_s": 2, "threads": 1},
    }
    path = write_suite(tmp_path, suite)
    rows = run_suite(load_suite(path), path.read_text(), tmp_path / "run").rows
    assert {r["seq_len"]: r["status"] for r in rows} == {32: "timeout", 64: "skipped", 128: "skipped"}
    assert "skipped after timeout at n=32" in rows[-1]["error"]


@pytest.mark.slow
def test_a_class_next_to_the_suite_runs_and_renders_without_it(tmp_path):
    path = plugin_suite(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = cli("run", str(path), "--out", str(tmp_path / "run"), cwd=elsewhere)  # not on the path from here
    assert done.returncode == 0, done.stderr
    rows = RunStore(tmp_path / "run").rows()
    doubler = [r for r in rows if r["variant"] == "myattn:Doubler"]
    assert doubler[0]["status"] == "unsupported" and "cannot declare capabilities" in doubler[0]["error"]
    (tmp_path / "myattn.py").unlink()  # the plugin is gone; its stored rows still render
    done = cli("leaderboard", str(tmp_path / "run"), cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert "myattn:Doubler" in (tmp_path / "run" / "leaderboard.md").read_text()


REGISTERED = """
import torch
import attnzoo
from attnzoo import VariantParams
from pydantic import Field


class WindowParams(VariantParams):
    window: int = Field(16, ge=1)


@attnzoo.register_variant("my_window", description="Scales by its window", source="here", params=WindowParams)
class MyWindow(torch.nn.Module):
    def __init__(self, dim, heads, max_seq_len=None, window=16):
        super().__init__()
        self.proj = torch.nn.Linear(dim, dim)
        self.window = window

    def forward(self, x, mask=None):
        return self.proj(x) * self.window
"""


@pytest.mark.slow
def test_a_variant_registered_next_to_the_suite_is_known_by_its_name_in_workers_and_tables(tmp_path):
    (tmp_path / "myattn.py").write_text(REGISTERED)
    (tmp_path / "plain.py").write_text(PLUGIN.format(factor=2).replace("heads):", "heads, width=5):"))
    variants = [{"name": "my_window", "sweep": {"window": [8]}}, "myattn:MyWindow", "plain:Doubler"]  # any order
    benchmarks = {"efficiency": {"metrics": ["memory"], "passes": ["forward"]}, "approximation": {"seeds": 1}}
    path = write_suite(tmp_path, {**FAST, "variants": variants, "seq_lens": [32], "benchmarks": benchmarks})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = cli("run", str(path), "--out", str(tmp_path / "run"), cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert "│ my_window(window=8) " in done.stdout  # the summary names it as the tables do, brackets and all
    rows = RunStore(tmp_path / "run").rows()
    assert {r["status"] for r in rows} <= {"ok", "unsupported"}  # no approximation without capabilities
    assert {r["variant"] for r in rows} == {"my_window", "plain:Doubler"}
    done = cli("leaderboard", str(tmp_path / "run"), cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    board = (tmp_path / "run" / "leaderboard.md").read_text()
    headline, tables = board.split("## Peak memory")
    names = {line.split(" | ")[0].strip("| ") for line in tables.splitlines() if line.startswith("| my_window")}
    assert names == {"my_window(window=16)", "my_window(window=8)"}  # one name per setting, in every table
    assert "| my_window | window=16 |" in headline and "| ↳ my_window(window=8) | window=8 |" in headline
    assert "| plain:Doubler | width=5 |" in board  # a plain class's defaults sized, rendered from elsewhere


@pytest.mark.slow
def test_without_a_terminal_each_finished_cell_prints_a_line(tmp_path):
    path = write_suite(tmp_path, {**FAST, "seq_lens": [32, 64]})
    done = cli("run", str(path), "--out", str(tmp_path / "run"))  # stderr is a pipe here
    assert done.returncode == 0, done.stderr
    assert "profiler_start" not in done.stderr  # native libraries' logs stay off the progress display
    lines = [line for line in done.stderr.splitlines() if line.startswith("[")]
    assert lines == [
        "[1/2] tiny: efficiency vanilla n=32: ok" + lines[0].split(": ok")[1],
        "[2/2] tiny: efficiency vanilla n=64: ok" + lines[1].split(": ok")[1],
    ]


@pytest.mark.slow
def test_cli_list_has_one_line_per_variant_json_and_version():
    done = cli("list")  # piped: whole lines, reasons not cut
    xformers = attnzoo.variant_info("xformers").available
    assert done.returncode == 0 and (xformers.ok or f"no: {xformers}" in done.stdout)
    assert len(done.stdout.splitlines()) == len(attnzoo.list_variants()) + 1  # a header, one line each
    listed = json.loads(cli("list", "--json").stdout)
    assert {v["name"] for v in listed} >= {"s3attention", "sdpa"} and "capabilities" in listed[0]
    nothing = cli("list", "nothing*")
    assert nothing.returncode == 1 and "no variant matches 'nothing*'" in nothing.stderr
    assert cli("--version").stdout.startswith("attnzoo ")
    shown = cli("show", "s3attention").stdout
    assert "available: available" not in shown and "available: yes" in shown and "relu | elu" in shown
    assert "clamped to max_seq_len" in " ".join(shown.replace("│", " ").split())  # s1, a documented clamp
    types = {row["name"]: row["type"] for row in attnzoo.variant_info("s3attention").parameter_table()}
    assert types["activation"] == "relu | elu | gelu"
    assert "min(sample_size, n)" in " ".join(cli("show", "skeinformer").stdout.split())


def test_max_seq_len_must_be_positive():
    for bad in (0, -4):
        with pytest.raises(attnzoo.zoo.ParameterError, match="max_seq_len must be a positive integer"):
            attnzoo.create_attention("s3attention", 32, 2, max_seq_len=bad)


@pytest.mark.slow
def test_retry_errors_runs_errored_cells_again_and_keeps_their_rows_aside(tmp_path):
    ready = tmp_path / "dataset-installed"
    (tmp_path / "needy.py").write_text(
        textwrap.dedent(f"""
        from pathlib import Path
        import torch

        class Needy(torch.nn.Module):
            def __init__(self, dim, heads):
                super().__init__()

            def forward(self, x, mask=None):
                if not Path({str(ready)!r}).exists():
                    raise FileNotFoundError("the data this variant needs is not installed")
                return x
        """)
    )
    path = write_suite(tmp_path, {**FAST, "variants": ["needy:Needy"]})
    run_dir = tmp_path / "run"
    assert {r["status"] for r in run_suite(load_suite(path), path.read_text(), run_dir).rows} == {"error"}
    ready.touch()
    again = run_suite(load_suite(path), path.read_text(), run_dir, resume=True)
    assert again.skipped_as_done == 2 and {r["status"] for r in again.rows} == {"error"}  # errors are results
    retried = run_suite(load_suite(path), path.read_text(), run_dir, resume=True, retry_errors=True)
    assert retried.skipped_as_done == 0 and {r["status"] for r in retried.rows} == {"ok"}
    superseded = (run_dir / "superseded.jsonl").read_text().splitlines()
    assert len(superseded) == 2 and all(json.loads(line)["status"] == "error" for line in superseded)


def test_installing_the_executor_does_not_count_as_a_changed_environment():
    from attnzoo.harness.environment import changes

    before = {"packages": {"torch": "2.13.0"}}
    assert changes(before, {"packages": {"torch": "2.13.0", "ray": "2.60.0"}}) == []
    assert changes(before, {"packages": {"torch": "2.14.0"}}) == ["packages.torch: '2.13.0' -> '2.14.0'"]


@pytest.mark.slow
def test_errored_cells_are_named_with_their_task_and_their_tracebacks_are_one_command_away(tmp_path):
    (tmp_path / "broken.py").write_text(
        "import torch\n\n\nclass Broken(torch.nn.Module):\n    def __init__(self, dim, heads):\n"
        "        super().__init__()\n\n    def forward(self, x, mask=None):\n"
        "        raise RuntimeError('this layer is broken')\n"
    )
    tasks = {"listops": {"seq_len": 32, "size": 40, "max_depth": 2}}
    accuracy = {"seeds": 1, "recipe": {"steps": 2, "eval_every": 1, "batch_size": 4, "dim": 16}, "tasks": tasks}
    path = write_suite(tmp_path, {**FAST, "variants": ["broken:Broken"], "benchmarks": {"accuracy": accuracy}})
    done = cli("run", str(path), "--out", str(tmp_path / "run"), "--quiet")
    assert done.returncode == 1
    assert f"(their tracebacks: attnzoo errors {tmp_path / 'run'})" in " ".join(done.stderr.split())
    assert "accuracy listops broken:Broken n=32 seed 0: RuntimeError: this layer is broken" in done.stderr
    shown = cli("errors", str(tmp_path / "run"))
    assert shown.returncode == 0 and "Traceback (most recent call last)" in shown.stdout
    assert 'raise RuntimeError("this layer is broken")' in shown.stdout.replace("'", '"')


@pytest.mark.slow
def test_resume_only_flags_without_resume_are_refused(tmp_path):
    path = write_suite(tmp_path, FAST)
    for flag in ("--force", "--retry-errors"):
        done = cli("run", str(path), flag, "--out", str(tmp_path / "run"))
        assert done.returncode == 2 and f"{flag} only apply to a resumed run: add --resume RUN_DIR" in done.stderr
        assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_check_runs_the_conformance_checks_on_an_unpackaged_class_and_says_what_to_declare(tmp_path):
    (tmp_path / "bucketed.py").write_text(
        textwrap.dedent("""
        import torch
        import torch.nn.functional as F
        import attnzoo


        @attnzoo.register_variant("bucketed", description="Pads to a bucket of 16", source="here")
        class Bucketed(attnzoo.ProjectedAttention):
            def attend(self, q, k, v, mask=None):
                n = q.shape[-2]
                pad = -n % 16  # pads internally, so the result depends on the padded length
                k, v = F.pad(k, (0, 0, 0, pad)), F.pad(v, (0, 0, 0, pad))
                keep = F.pad(mask, (0, pad), value=True) if mask is not None else None
                bias = None if keep is None else keep[:, None, None, :]
                return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        """)
    )
    done = cli("check", "bucketed:Bucketed", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    text = " ".join(done.stdout.replace("│", " ").split())
    assert "padded equals unpadded fail" in text and "Capabilities(padding_equivalent= False)" in text
    assert "padded positions do not leak pass" in text and "1 failed" in text
    assert cli("check", "sdpa", "-p", "causal=true").returncode == 0
    reformer = cli("check", "reformer")  # its check_params: one bucket of 64 would cover the checks' 40 tokens
    assert reformer.returncode == 0 and "(built with bucket_size=4)" in " ".join(reformer.stdout.split())
    bad = cli("check", "sdpa", "-p", "casual=true")
    assert bad.returncode == 2 and "did you mean 'causal'" in bad.stderr


@pytest.mark.slow
def test_command_line_overrides_shape_the_run_and_are_what_it_stores(tmp_path):
    path = write_suite(tmp_path, {**TINY, "variants": ["vanilla", {"name": "s3attention", "params": {"s1": 4}}]})
    args = ["--variants", "s3attention,sdpa", "--seq-lens", "48", "--benchmarks", "efficiency"]
    dry = cli("run", str(path), *args, "--dry-run", "--out", str(tmp_path / "run"))
    assert dry.returncode == 0 and not (tmp_path / "run").exists()
    assert dry.stdout.splitlines()[:2] == ["efficiency s3attention(s1=4) n=48", "efficiency sdpa n=48"]
    assert "2 cells would run" in dry.stdout
    done = cli("run", str(path), *args, "--out", str(tmp_path / "run"), "--quiet")
    assert done.returncode == 0, done.stderr
    stored = load_suite(tmp_path / "run" / "suite.yaml")
    assert [e.name for e in stored.variants] == ["s3attention", "sdpa"] and stored.variants[0].params == {"s1": 4}
    assert stored.seq_lens == [48] and list(stored.benchmarks.enabled()) == ["efficiency"]
    assert cli("run", "--resume", str(tmp_path / "run"), "--quiet").returncode == 0  # resumes the stored suite
    refused = cli("run", "--resume", str(tmp_path / "run"), "--seq-lens", "64")
    assert refused.returncode == 2 and "a resumed run keeps its suite" in refused.stderr


@pytest.mark.slow
def test_help_says_what_attnzoo_is_and_shows_examples():
    done = cli("--help")
    assert done.returncode == 0 and "compares efficient attention mechanisms" in done.stdout
    assert "examples:" in done.stdout and "attnzoo check my_module:MyAttention" in done.stdout


@pytest.mark.slow
def test_the_readme_adapter_example_runs_and_passes_check(tmp_path):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme[readme.index("## Registering a variant") :]
    (tmp_path / "my_local.py").write_text(section.split("```python\n")[1].split("```")[0])
    done = cli("check", "my_local:LocalWindow", "-p", "window_size=16", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    variants = ["my_local:LocalWindow", {"name": "local_window", "params": {"window_size": 8}}]
    path = write_suite(tmp_path, {**FAST, "variants": variants, "seq_lens": [48]})
    done = cli("run", str(path), "--out", str(tmp_path / "run"), "--quiet")
    assert done.returncode == 0, done.stderr
    assert {r["variant"] for r in RunStore(tmp_path / "run").rows()} == {"local_window"}
