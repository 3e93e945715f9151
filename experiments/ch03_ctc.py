"""Chapter 3's CTC model: the attention models' encoder, trained with CTC instead of a decoder.

Trains `speechmodels.ctc.ctc_model` (the same FrontEnd and bi-GRU encoder as chapter 3's
attention models, a linear layer over the blank and the ten digits, `torch.nn.CTCLoss`)
with the same `train`, the same `CONFIG` budget and the same data as
`experiments/ch03_attention.py`, then decodes `test_by_length` (unseen voices and
speakers) by best path and scores it per source: sequence accuracy by length, word (digit)
error rate, each with its 95% interval.

    python experiments/ch03_ctc.py                            # about five minutes of one core
    python experiments/ch03_ctc.py --steps 50 --out /tmp/smoke.json   # a smoke test

Deterministic: fixed seeds, a fixed number of steps and one thread. Writes
book/results/ch03_ctc.json and the trained weights book/results/ch03_ctc.pt (a float16
state_dict) beside it, which chapter 3 loads to draw the CTC spikes.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ch02_bottleneck import summarise, summarise_sources  # noqa: E402

from speechmodels.ctc import LABELS, ctc_model  # noqa: E402
from speechmodels.metrics import binomial_interval, bootstrap_interval, wer  # noqa: E402
from speechmodels.experiment import RESULTS, experiment_parser, machine, mistakes, run_record, save_half, train_and_evaluate  # noqa: E402
from speechmodels.training import CONFIG  # noqa: E402

OUT = RESULTS / "ch03_ctc.json"

FIELDS = {
    "accuracy_by_length": "n digits -> sequence accuracy (whole string right) on test_by_length, both sources",
    "digit_error_rate_by_length": "n digits -> (substitutions + deletions + insertions) / reference digits",
    "position_accuracy_by_length": "n digits -> accuracy of each reference position (edit-distance alignment)",
    "by_source": "source -> the fields above over that source's utterances, plus utterances_per_length, "
                 "accuracy_interval_by_length (Wilson 95%), sequence_accuracy {rate, interval} (Wilson) "
                 "and wer {rate, interval, substitutions, deletions, insertions} (interval: bootstrap over "
                 "utterances, speechmodels.metrics.bootstrap_interval)",
    "hypotheses": "the best-path transcript of every utterance of test_by_length, in the split's order",
    "infeasible_train_utterances": "training utterances with fewer encoder frames than CTC needs "
                                   "(digits + repeated neighbours); CTCLoss(zero_infinity=True) gives them no gradient",
    "train_seconds": "wall-clock seconds of training (time.perf_counter)",
    "train_cpu_seconds": "process CPU seconds of training (time.process_time, all threads)",
    "eval_seconds": "wall-clock seconds of best-path decoding of test_by_length",
    "loss_every_50_steps": "mean training loss (CTC, per target digit) of each 50 steps",
    "contention": "what else ran on the machine while training",
    "config": "speechmodels.training.CONFIG as used (label_smoothing is not used by the CTC loss)",
}


def needed_frames(text: str) -> int:
    """The fewest frames a CTC path for text needs: one per symbol, one blank between repeats."""
    words = text.split()
    return len(words) + sum(a == b for a, b in zip(words, words[1:]))


def source_scores(split, hyps: list[str], scores: dict) -> dict:
    """Add intervals, sequence accuracy and WER to one source's scores (in place)."""
    n = scores["utterances_per_length"]
    scores["accuracy_interval_by_length"] = {
        L: [round(v, 4) for v in binomial_interval(round(a * n), n)] for L, a in scores["accuracy_by_length"].items()}
    right = sum(h == r for h, r in zip(hyps, split.texts))
    scores["sequence_accuracy"] = {"rate": round(right / len(split), 4),
                                   "interval": [round(v, 4) for v in binomial_interval(right, len(split))],
                                   "utterances": len(split)}
    w = wer(split.texts, hyps)
    scores["wer"] = {"rate": round(w["rate"], 4),
                     "interval": [round(v, 4) for v in bootstrap_interval(split.texts, hyps)],
                     **{k: w[k] for k in ("substitutions", "deletions", "insertions", "reference_units")}}
    return scores


def run(config: dict, out: Path, contention: str = "none recorded") -> dict:
    trained = train_and_evaluate(lambda n_in: ctc_model(n_in, config), config)
    model, test_split, evaluation = trained.model, trained.test_split, trained.evaluation
    train_split = trained.train_split
    infeasible = sum(len(f) < needed_frames(t) for f, t in zip(train_split.features, train_split.texts))
    hypotheses = evaluation["hypotheses"]
    summarise_sources(evaluation, test_split)
    for source, scores in evaluation["by_source"].items():
        keep = [i for i, s in enumerate(test_split.sources) if s == source]
        source_scores(test_split.only(source), [hypotheses[i] for i in keep], scores)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_half(model, out.parent / "ch03_ctc.pt")
    result = {
        "fields": FIELDS,
        "model": "CTC: chapter 3's FrontEnd and bi-GRU encoder, a linear layer over blank + 10 digits, "
                 "torch.nn.CTCLoss; best-path decoding (most likely class per frame, repeats merged, blanks dropped)",
        "labels": LABELS,
        "split": "test_by_length",
        **evaluation,
        **summarise(evaluation),
        "utterances_per_length": len(test_split) // len(evaluation["accuracy_by_length"]),
        "config": config,
        "weights": "ch03_ctc.pt",
        "infeasible_train_utterances": int(infeasible),
        **run_record(trained, contention),
        "machine": machine(config["threads"]),
        "examples": mistakes(test_split.texts, hypotheses),
    }
    out.write_text(json.dumps(result, indent=1) + "\n")
    return result


def main() -> None:
    args = experiment_parser(__doc__, CONFIG["steps"], OUT).parse_args()
    result = run(dict(CONFIG, steps=args.steps), args.out, args.contention)
    print(f"trained {result['steps']} steps in {result['train_seconds']} s ({result['train_cpu_seconds']} s CPU)")
    for source, scores in result["by_source"].items():
        print(f"{source:>9}: sequence accuracy {scores['sequence_accuracy']}, WER {scores['wer']['rate']} "
              f"{scores['wer']['interval']}; by length {scores['accuracy_by_length']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
