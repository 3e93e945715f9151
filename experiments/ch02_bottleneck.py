"""Chapter 2's measurement: accuracy against utterance length, seq2seq without attention.

Trains `speechmodels.seq2seq.Seq2Seq` (a bidirectional GRU encoder whose final states are
the one fixed-size context vector, and a GRU decoder that sees that context at every step)
on the training split for a fixed number of steps, then decodes the length-stratified
test set (voices never heard in training) greedily and scores whole digit strings.

    python experiments/ch02_bottleneck.py            # about 4 minutes of one CPU core
    python experiments/ch02_bottleneck.py --steps 50 --out /tmp/smoke.json   # a smoke test

Deterministic: fixed seeds, a fixed number of steps (not of seconds) and one thread (the
matrices are small: a second thread only adds synchronisation, and on a busy machine it
makes each step many times slower). It
writes book/results/ch02_bottleneck.json, which chapter 2 plots and chapter 3 overlays
with its attention model trained by the same `train` on the same budget (use CONFIG).
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from speechcourse.corpus import load_split
from speechmodels.seq2seq import Seq2Seq, accuracy_by_length, train

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "book" / "results" / "ch02_bottleneck.json"
# The budget chapter 3 must reuse so the two curves are comparable.
CONFIG = {"stack": 4, "hidden": 96, "emb": 32, "steps": 6000, "batch_size": 32, "lr": 2e-3,
          "clip": 5.0, "seed": 0, "threads": 1}


def run(config: dict, out: Path) -> dict:
    torch.set_num_threads(config["threads"])
    torch.manual_seed(config["seed"])
    train_split = load_split("train", stack=config["stack"])
    test_split = load_split("test_by_length", stack=config["stack"])
    n_in = train_split.features[0].shape[1]
    model = Seq2Seq(n_in, hidden=config["hidden"], emb=config["emb"])
    log = train(model, train_split, config["steps"], batch_size=config["batch_size"], lr=config["lr"],
                clip=config["clip"], seed=config["seed"], log_every=250)
    started = time.perf_counter()
    accuracy = accuracy_by_length(model, test_split)
    result = {
        "model": "seq2seq, no attention: bi-GRU encoder, final states as context, GRU decoder",
        "split": "test_by_length",
        "accuracy_by_length": {str(n): round(a, 4) for n, a in accuracy.items()},
        "utterances_per_length": int(len(test_split) // len(accuracy)),
        "config": config,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(log["seconds"], 1),
        "eval_seconds": round(time.perf_counter() - started, 1),
        "steps": len(log["losses"]),
        "loss_every_50_steps": [round(sum(log["losses"][i:i + 50]) / len(log["losses"][i:i + 50]), 4)
                                for i in range(0, len(log["losses"]), 50)],
        "machine": f"{platform.machine()}, torch {torch.__version__}, {config['threads']} thread" + ("s" if config["threads"] > 1 else ""),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=CONFIG["steps"])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    result = run(dict(CONFIG, steps=args.steps), args.out)
    print(f"trained {result['steps']} steps in {result['train_seconds']} s")
    for n, a in result["accuracy_by_length"].items():
        print(f"{n:>2} digits: sequence accuracy {a:.2f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
