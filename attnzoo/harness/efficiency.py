"""The efficiency benchmark: FLOPs, time and peak memory of one layer, forward and forward+backward."""

from __future__ import annotations

import torch

from attnzoo.harness.measure import count_flops, layer_call, peak_memory, peak_rss_growth, time_call
from attnzoo.harness.plan import Cell
from attnzoo.zoo import create_attention


def run(cell: Cell, **_: object) -> list[dict]:
    layer_cfg, config = cell.layer, cell.config
    device, dtype = torch.device(layer_cfg["device"]), getattr(torch, layer_cfg["dtype"])
    torch.manual_seed(0)
    layer = create_attention(
        cell.variant, layer_cfg["dim"], layer_cfg["heads"], max_seq_len=cell.seq_len, **cell.params
    ).to(device=device, dtype=dtype)
    x = torch.randn(layer_cfg["batch"], cell.seq_len, layer_cfg["dim"], device=device, dtype=dtype)
    rows = []
    for pass_name in config["passes"]:
        backward = pass_name == "forward_backward"
        layer.train(backward)  # a training step, or inference
        call = layer_call(layer, x, None, backward)
        if "time" in config["metrics"]:
            timing = time_call(call, torch.get_num_threads(), config["min_run_time"])
            rows.append(
                dict(
                    metric="time",
                    pass_=pass_name,
                    value=timing.median_s,
                    unit="s",
                    extra={"iqr_s": timing.iqr_s, "runs": timing.runs},
                )
            )
        if "memory" in config["metrics"]:
            if not rows:
                call()  # first-call allocations (thread pools, caches) are not the layer's
            extra = {"rss_growth_bytes": peak_rss_growth(call)} if device.type == "cpu" else {}
            rows.append(
                dict(metric="memory", pass_=pass_name, value=peak_memory(call, device), unit="bytes", extra=extra)
            )
        if "flops" in config["metrics"]:
            rows.append(dict(metric="flops", pass_=pass_name, value=count_flops(call), unit="FLOP"))
    return rows
