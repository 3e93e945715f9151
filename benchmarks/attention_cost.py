"""Cost of one self-attention encoder layer against one recurrent layer, as T grows.

    .venv/bin/python benchmarks/attention_cost.py               # writes book/results/ch04_attention_cost.json
    .venv/bin/python benchmarks/attention_cost.py --lengths 50 200 --out /tmp/cost.json

For each number of frames T (50 frames = 1 s of speech at 50 frames/s; 3000 = one minute),
one utterance (B = 1) goes forward, without gradients, through

* ``EncoderLayer`` of ``speechmodels.transformer`` (pre-norm, d_model = 128, 4 heads,
  d_ff = 256): its scores are a (n_h, T, T) array, O(T^2) memory and time, computed for
  all frames at once;
* ``nn.GRU(128, 128)``: T steps, one after the other, O(T) time and O(T) memory.

One thread (``--threads``): on a 2-core machine shared with other jobs a second thread
waits for a busy core and makes timings erratic, and one thread already shows the point,
since attention does its T x T work as a few large matrix products while the GRU takes
T small sequential steps. Wall time is the best of at least ``--repeats`` runs (10; the best run is the one least
disturbed by other jobs), and the median is kept beside it. Peak memory is the largest amount of memory the
forward pass itself held at one time, taken from PyTorch's profiler (every allocation and
free of the CPU allocator, in order), so the interpreter and libraries are not counted.
Chapter 4 plots the committed JSON; it never runs this script.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from speechmodels.transformer import EncoderLayer

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "book" / "results" / "ch04_attention_cost.json"
LENGTHS = [50, 100, 200, 400, 700, 1000, 1500, 2000, 3000]
D_MODEL, N_HEADS, D_FF = 128, 4, 256


def peak_bytes(forward) -> int:
    """Largest sum of live bytes the CPU allocator held while ``forward()`` ran (op by op)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        forward()
    live = peak = 0   # each allocation or free is counted once, in the innermost op that made it
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


def timings(forward, min_repeats: int = 3, budget: float = 2.0, most: int = 20) -> list[float]:
    """Seconds of each run of ``forward``: at least ``min_repeats`` runs, then more while the
    budget of seconds lasts, at most ``most``."""
    times, started = [], time.perf_counter()
    while len(times) < min_repeats or (time.perf_counter() - started < budget and len(times) < most):
        tic = time.perf_counter()
        forward()
        times.append(time.perf_counter() - tic)
    return times


def measure(lengths, threads: int, repeats: int = 3) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    layers = {"self-attention": EncoderLayer(D_MODEL, N_HEADS, D_FF).eval(),
              "GRU": nn.GRU(D_MODEL, D_MODEL).eval()}
    rows = []
    for T in lengths:
        x = torch.randn(T, 1, D_MODEL)                     # (T, B = 1, d_model)
        row = {"T": T, "seconds_of_speech": T / 50}
        for name, layer in layers.items():
            def forward(layer=layer):
                with torch.no_grad():
                    return layer(x)
            forward()                                      # warm-up
            times = timings(forward, min_repeats=repeats, most=max(20, repeats))
            row[name] = {"seconds": min(times), "median_seconds": float(np.median(times)),
                         "repeats": len(times), "peak_bytes": peak_bytes(forward)}
        rows.append(row)
        print(f"T = {T:5d}  self-attention {row['self-attention']['seconds'] * 1e3:8.2f} ms "
              f"{row['self-attention']['peak_bytes'] / 2**20:8.1f} MiB   "
              f"GRU {row['GRU']['seconds'] * 1e3:8.2f} ms {row['GRU']['peak_bytes'] / 2**20:8.1f} MiB",
              flush=True)
    return {"layers": {"self-attention": f"EncoderLayer(d_model={D_MODEL}, n_heads={N_HEADS}, d_ff={D_FF}), pre-norm",
                       "GRU": f"nn.GRU({D_MODEL}, {D_MODEL}), one direction"},
            "batch": 1, "grad": False, "repeats": repeats, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=LENGTHS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10, help="runs at least, per layer and length")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--contention", default="shared with other jobs",
                        help="what else ran on the machine meanwhile (stored in the note)")
    args = parser.parse_args()
    started, cpu = time.perf_counter(), time.process_time()
    result = measure(args.lengths, args.threads, args.repeats)
    result.update(threads=args.threads, wall_seconds=round(time.perf_counter() - started, 1),
                  cpu_seconds=round(time.process_time() - cpu, 1),
                  machine=f"{platform.machine()}, {platform.processor() or 'cpu'}, torch {torch.__version__}",
                  note=f"measured on a 2-core machine ({args.contention}); times are the best of at least "
                       f"{args.repeats} repeats (median_seconds: their median)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
