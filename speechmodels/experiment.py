"""What every experiment of `experiments/` shares: how it trains and scores a model, its
command line and its run record.

Each experiment trains a model on `train` with `speechmodels.training.train` and scores it
on `test_by_length` (`train_and_evaluate`), then writes a result file under
`book/results/`. The file says, in the same fields for every chapter, how the model was
trained and on what (`run_record`, `machine`), and the experiment takes the same three
options (`experiment_parser`). The weights go beside the file in float16 (`save_half`),
half the size and the same transcripts.
"""
from __future__ import annotations

import argparse
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from speechcourse.corpus import Split, load_split
from speechmodels.training import evaluate, mean_every, train

ROOT = Path(__file__).resolve().parents[1]
# what the experiments write and the book's pages read, wherever a page (book/ or book/ko/) runs
RESULTS = ROOT / "book" / "results"
EXPERIMENTS = ROOT / "experiments"

@dataclass
class Trained:
    """A model trained by `train_and_evaluate`, the splits it saw and its scores."""
    model: nn.Module
    log: dict                 # speechmodels.training.train's: losses, seconds, cpu_seconds
    train_split: Split
    test_split: Split         # test_by_length
    evaluation: dict          # speechmodels.training.evaluate's, "hypotheses" included
    eval_seconds: float


def train_and_evaluate(make_model: Callable[[int], nn.Module], config: dict) -> Trained:
    """Seed, build ``make_model(n_features)``, train it on `train` with the recipe ``config``
    (one thread per ``config["threads"]``), then decode and score `test_by_length`."""
    torch.set_num_threads(config["threads"])
    torch.manual_seed(config["seed"])
    train_split = load_split("train", stack=config["stack"])
    test_split = load_split("test_by_length", stack=config["stack"])
    model = make_model(train_split.features[0].shape[1])
    log = train(model, train_split, config, log_every=200)
    started = time.perf_counter()
    evaluation = evaluate(model, test_split)
    return Trained(model, log, train_split, test_split, evaluation, time.perf_counter() - started)


def experiment_parser(doc: str, steps: int, out: Path) -> argparse.ArgumentParser:
    """The options every experiment takes: --steps, --out and --contention (the first line of
    the script's docstring is its description)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--steps", type=int, default=steps, help=f"training steps (default {steps})")
    parser.add_argument("--out", type=Path, default=out, help="the result file to write")
    parser.add_argument("--contention", default="none recorded",
                        help="what else ran on the machine meanwhile (stored in the JSON)")
    return parser


def machine(threads: int) -> str:
    """The machine and torch version a result was measured with, and how many threads."""
    return (f"{platform.machine()}, torch {torch.__version__}, {threads} thread"
            + ("s" if threads > 1 else ""))


def run_record(trained: Trained, contention: str) -> dict:
    """How a model of `train_and_evaluate` was trained and measured: its size, the training
    log (seconds, CPU seconds, the loss of every 50 steps), the seconds its evaluation took and
    what else ran meanwhile."""
    log = trained.log
    return {
        "parameters": sum(p.numel() for p in trained.model.parameters()),
        "train_seconds": round(log["seconds"], 1),
        "train_cpu_seconds": round(log["cpu_seconds"], 1),
        "eval_seconds": round(trained.eval_seconds, 1),
        "steps": len(log["losses"]),
        "loss_every_50_steps": mean_every(log["losses"], 50),
        "contention": contention,
    }


def mistakes(refs: list[str], hyps: list[str], k: int = 10) -> list[dict]:
    """The first k utterances transcribed wrong, as {"ref", "hyp"}."""
    return [{"ref": r, "hyp": h} for r, h in zip(refs, hyps) if r != h][:k]


def save_half(model: nn.Module, path: Path) -> None:
    """The model's weights in float16 (integers as they are)."""
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}, path)
