"""Chapter 2's measurement: accuracy against utterance length, seq2seq without attention.

Trains `speechmodels.seq2seq.Seq2Seq` (a bidirectional GRU encoder whose final states are
the one fixed-size context vector, and a GRU decoder that sees that context at every step)
with the course's one recipe (`speechmodels.training.train` and `CONFIG`: per-utterance
normalisation, SpecAugment-style masks, dropout, label smoothing, a one-cycle schedule) on
the training split for a fixed number of steps, then decodes the length-stratified test
set (voices and real speakers never heard in training) greedily and scores it, for
both sources pooled and for each (`by_source`).

    python experiments/ch02_bottleneck.py            # about 4 minutes of one CPU core
    python experiments/ch02_bottleneck.py --steps 50 --out /tmp/smoke.json   # a smoke test

Deterministic: fixed seeds, a fixed number of steps (not of seconds) and one thread. It
writes book/results/ch02_bottleneck.json, which chapter 2 plots and chapter 3 overlays
with its attention models trained by the same `train` on the same `CONFIG`.
"""
from __future__ import annotations

import json
from pathlib import Path

from speechmodels.experiment import RESULTS, experiment_parser, machine, mistakes, run_record, train_and_evaluate
from speechmodels.seq2seq import from_config
from speechmodels.training import CONFIG

OUT = RESULTS / "ch02_bottleneck.json"

FIELDS = {
    "accuracy_by_length": "n digits -> sequence accuracy (whole string right) on test_by_length",
    "digit_error_rate_by_length": "n digits -> (substitutions + deletions + insertions) / reference digits",
    "position_accuracy_by_length": "n digits -> list of n accuracies, position 1..n of the reference "
                                   "matched exactly in the edit-distance alignment",
    "digit_accuracy": "p: fraction of all reference digits matched exactly (all lengths pooled)",
    "independent_errors_prediction": "n -> p ** n: sequence accuracy if every digit were right "
                                     "independently with probability p (no bottleneck)",
    "utterances_per_length": "test utterances of each length (both sources)",
    "by_source": "source ('synthetic': unseen espeak-ng voices, 'real': unseen FSDD speakers george and "
                 "lucas) -> the fields above over that source's utterances of test_by_length",
    "train_seconds": "wall-clock seconds of training (time.perf_counter)",
    "train_cpu_seconds": "process CPU seconds of training (time.process_time, all threads)",
    "eval_seconds": "wall-clock seconds of greedy decoding of test_by_length",
    "loss_every_50_steps": "mean training loss (label-smoothed cross-entropy) of each 50 steps",
    "contention": "what else ran on the machine while training",
    "config": "speechmodels.training.CONFIG as used",
}


def summarise(evaluation: dict) -> dict:
    """Add pooled digit accuracy p and the p ** n curve of independent errors."""
    positions = evaluation["position_accuracy_by_length"]
    hits = sum(sum(v) for v in positions.values())
    digits = sum(len(v) for v in positions.values())
    p = hits / digits
    return {"digit_accuracy": round(p, 4),
            "independent_errors_prediction": {n: round(p ** int(n), 4) for n in positions}}


def summarise_sources(evaluation: dict, split) -> dict:
    """`summarise` each source's scores in evaluation["by_source"] (and count its utterances
    per length in ``split``), in place; returns evaluation."""
    for source, scores in evaluation["by_source"].items():
        per_length = split.sources.count(source) // len(scores["accuracy_by_length"])
        scores.update(summarise(scores), utterances_per_length=per_length)
    return evaluation


def run(config: dict, out: Path, contention: str = "none recorded") -> dict:
    trained = train_and_evaluate(lambda n_in: from_config(n_in, config), config)
    test_split, evaluation = trained.test_split, trained.evaluation
    hypotheses = evaluation.pop("hypotheses")
    summarise_sources(evaluation, test_split)
    per_length = len(test_split) // len(evaluation["accuracy_by_length"])
    result = {
        "fields": FIELDS,
        "model": "seq2seq, no attention: bi-GRU encoder, final states as context, GRU decoder",
        "split": "test_by_length",
        **evaluation,
        **summarise(evaluation),
        "utterances_per_length": int(per_length),
        "config": config,
        **run_record(trained, contention),
        "machine": machine(config["threads"]),
        "examples": mistakes(test_split.texts, hypotheses),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    return result


def main() -> None:
    args = experiment_parser(__doc__, CONFIG["steps"], OUT).parse_args()
    result = run(dict(CONFIG, steps=args.steps), args.out, args.contention)
    print(f"trained {result['steps']} steps in {result['train_seconds']} s "
          f"({result['train_cpu_seconds']} s CPU)")
    for source, scores in result["by_source"].items():
        for n, a in scores["accuracy_by_length"].items():
            print(f"{source:>9} {n:>2} digits: sequence accuracy {a:.2f}  digit error rate "
                  f"{scores['digit_error_rate_by_length'][n]:.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
