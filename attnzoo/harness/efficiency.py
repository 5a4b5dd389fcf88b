"""The efficiency benchmark: FLOPs, time and peak memory of one layer, forward and forward+backward.

A worker runs one repetition of one cell: a timed block per pass (see measure.time_call); in the first
repetition also the deterministic metrics, FLOPs and peak memory. The runner repeats time in fresh workers."""

from __future__ import annotations

import torch

from attnzoo.harness.measure import (
    Probe,
    count_flops,
    keep_freed_memory,
    layer_call,
    peak_memory,
    peak_rss_growth,
    time_call,
)
from attnzoo.harness.plan import Cell
from attnzoo.zoo import create_attention


def run(cell: Cell, repetition: int = 0, probe_s: float | None = None, **_: object) -> list[dict]:
    layer_cfg, config = cell.layer, cell.config
    if config["allocator"] == "retain":
        keep_freed_memory()
    device, dtype = torch.device(layer_cfg["device"]), getattr(torch, layer_cfg["dtype"])
    torch.manual_seed(0)
    layer = create_attention(
        cell.variant, layer_cfg["dim"], layer_cfg["heads"], max_seq_len=cell.seq_len, **cell.params
    ).to(device=device, dtype=dtype)
    x = torch.randn(layer_cfg["batch"], cell.seq_len, layer_cfg["dim"], device=device, dtype=dtype)
    probe = Probe(probe_s, config["contention_margin"])
    rows = []
    for pass_name in config["passes"]:
        backward = pass_name == "forward_backward"
        layer.train(backward)  # a training step, or inference
        call = layer_call(layer, x, None, backward)
        if "time" in config["metrics"]:
            t = time_call(call, torch.get_num_threads(), config["min_run_time"], probe, config["contention_retries"])
            extra = {
                "iqr_s": t.iqr_s,
                "runs": t.runs,
                "faults_per_call": round(t.faults_per_call, 1),
                "probe_ratios": t.probe_ratios,
                "contended": t.contended,
            }
            rows.append(dict(metric="time", pass_=pass_name, value=t.median_s, unit="s", extra=extra))
        if repetition:
            continue  # FLOPs and memory do not vary between processes: measured once
        if "memory" in config["metrics"]:
            call()  # first-call allocations (thread pools, caches) are not the layer's
            extra = {"rss_growth_bytes": peak_rss_growth(call)} if device.type == "cpu" else {}
            rows.append(
                dict(metric="memory", pass_=pass_name, value=peak_memory(call, device), unit="bytes", extra=extra)
            )
        if "flops" in config["metrics"]:
            rows.append(dict(metric="flops", pass_=pass_name, value=count_flops(call), unit="FLOP"))
    return rows


def calibrate_probe(cell: Cell, **_: object) -> list[dict]:
    """The probe's time on this machine with the suite's threads, at the start of a run."""
    return [dict(metric="probe", value=Probe().calibrate(), unit="s")]
