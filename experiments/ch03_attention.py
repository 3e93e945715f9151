"""Chapter 3's measurement: the bottleneck closed. Accuracy against length with attention.

Trains chapter 3's attention models (`speechmodels.attention.speech_model`: the same
FrontEnd and bi-GRU encoder as chapter 2, and an `AttentionDecoder` with a dot-product
or a location-aware score) with the same `train`, the same `CONFIG` budget and the same
data as `experiments/ch02_bottleneck.py`, then decodes `test_by_length` (unseen voices)
greedily. The curve without attention is chapter 2's run (same code, CONFIG and seed:
rerunning it here would repeat it bit for bit), read from book/results/ch02_bottleneck.json.
It also trains the small English -> French attention model the chapter maps.

    python experiments/ch03_attention.py                     # dot, location, phrases
    python experiments/ch03_attention.py --scores location   # one of them
    python experiments/ch03_attention.py --steps 50 --out /tmp/smoke.json

Writes book/results/ch03_attention.json (merging into what is there, so the runs can be
made one at a time) and the trained weights the chapter draws its maps with:
book/results/ch03_{dot,location}.pt (float16 state_dicts, < 2 MB) and ch03_phrases.pt.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ch02_bottleneck import summarise, summarise_sources  # noqa: E402

from speechcourse.phrases import SOURCE_VOCAB, TARGET_VOCAB, make_pairs  # noqa: E402
from speechmodels.batches import pad_targets  # noqa: E402
from speechmodels.attention import speech_model, text_model  # noqa: E402
from speechmodels.experiment import RESULTS, experiment_parser, machine, mistakes, run_record, save_half, train_and_evaluate  # noqa: E402
from speechmodels.training import CONFIG, sequence_loss  # noqa: E402

OUT = RESULTS / "ch03_attention.json"
CH02 = RESULTS / "ch02_bottleneck.json"

DESCRIPTIONS = {
    "none": "no attention (chapter 2): bi-GRU encoder, final states as the one context",
    "dot": "dot-product attention: content only, (s W_q) . (h_t W_k) / sqrt(A)",
    "location": "location-aware attention (Chorowski et al. 2015): additive score that also "
                "sees a convolution of the previous step's weights",
}
FIELDS = {
    "models": "score name -> the ch02_bottleneck.json fields (accuracy_by_length, "
              "digit_error_rate_by_length, position_accuracy_by_length, digit_accuracy, "
              "independent_errors_prediction, train_seconds, train_cpu_seconds, ...) of that model",
    "models.none": "copied from ch02_bottleneck.json: the same model, code, CONFIG and seed",
    "weights": "score name -> state_dict file (float16) in book/results",
    "phrases": "the English -> French attention model: training size, steps, seconds, "
               "exact-match accuracy on held-out phrases, weights file",
}

PHRASES = {"train_pairs": 4000, "test_pairs": 300, "steps": 1500, "batch_size": 32, "lr": 3e-3,
           "hidden": 32, "emb": 16, "score": "additive", "seed": 0}


def train_speech(score: str, config: dict, contention: str, folder: Path = RESULTS) -> dict:
    trained = train_and_evaluate(lambda n_in: speech_model(n_in, score, config), config)
    model, test_split, evaluation = trained.model, trained.test_split, trained.evaluation
    hypotheses = evaluation.pop("hypotheses")
    summarise_sources(evaluation, test_split)
    save_half(model, folder / f"ch03_{score}.pt")
    return {
        "model": DESCRIPTIONS[score],
        **evaluation,
        **summarise(evaluation),
        **run_record(trained, contention),
        "examples": mistakes(test_split.texts, hypotheses),
    }


def phrase_tensors(pairs):
    """(English, French) pairs -> words (S, B), lengths (B,), y_in (U, B), y_out (U, B)."""
    source = [SOURCE_VOCAB.encode(e) for e, _ in pairs]
    lengths = torch.tensor([len(s) for s in source])                      # (B,)
    words = torch.zeros(int(lengths.max()), len(pairs), dtype=torch.long)  # (S, B)
    for b, s in enumerate(source):
        words[:len(s), b] = torch.tensor(s)
    y_in, y_out, _, _ = pad_targets([f for _, f in pairs], TARGET_VOCAB)
    return words, lengths, torch.from_numpy(y_in), torch.from_numpy(y_out)


def train_phrases(p: dict, folder: Path = RESULTS) -> dict:
    torch.manual_seed(p["seed"])
    train_pairs = make_pairs(p["train_pairs"], seed=p["seed"])
    test_pairs = make_pairs(p["test_pairs"], seed=p["seed"] + 1)
    model = text_model(len(SOURCE_VOCAB), len(TARGET_VOCAB), p["score"], p["hidden"], p["emb"])
    optimizer = torch.optim.Adam(model.parameters(), lr=p["lr"])
    rng, started, cpu_started = np.random.default_rng(p["seed"]), time.perf_counter(), time.process_time()
    model.train()
    for _ in range(p["steps"]):
        batch = [train_pairs[i] for i in rng.integers(0, len(train_pairs), p["batch_size"])]
        words, lengths, y_in, y_out = phrase_tensors(batch)
        loss = sequence_loss(model(words, lengths, y_in), y_out)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    words, lengths, _, _ = phrase_tensors(test_pairs)
    hyps = [TARGET_VOCAB.decode(t + [TARGET_VOCAB.eos]) for t in model.greedy(words, lengths, 12)]
    torch.save(model.state_dict(), folder / "ch03_phrases.pt")
    return dict(p, test_accuracy=round(float(np.mean([h == f for h, (_, f) in zip(hyps, test_pairs)])), 4),
                train_seconds=round(seconds, 1), train_cpu_seconds=round(cpu, 1),
                weights="ch03_phrases.pt", final_loss=round(loss.item(), 4))


def main() -> None:
    parser = experiment_parser(__doc__, CONFIG["steps"], OUT)
    parser.add_argument("--scores", nargs="*", default=["dot", "location", "phrases"],
                        choices=["dot", "location", "phrases"])
    args = parser.parse_args()
    config = dict(CONFIG, steps=args.steps)
    torch.set_num_threads(config["threads"])
    trained, phrases = {}, None
    folder = args.out.parent                   # the weights go beside the JSON (a smoke run's too)
    folder.mkdir(parents=True, exist_ok=True)
    for score in args.scores:
        if score == "phrases":
            phrases = train_phrases(PHRASES, folder)
            print(f"phrases: test accuracy {phrases['test_accuracy']}")
            continue
        trained[score] = train_speech(score, config, args.contention, folder)
        print(f"{score}: {trained[score]['train_seconds']} s; accuracy by length "
              + "; ".join(f"{source} {scores['accuracy_by_length']}"
                          for source, scores in trained[score]["by_source"].items()))
    # merge into the file as it is now (another run may have written its model meanwhile)
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    result.update(fields=FIELDS, split="test_by_length", config=config,
                  machine=machine(config["threads"]))
    models, weights = result.setdefault("models", {}), result.setdefault("weights", {})
    if CH02.exists():
        ch02 = json.loads(CH02.read_text())
        if ch02["config"] != config:
            print("warning: ch02_bottleneck.json was trained with another config; rerun it")
        models["none"] = {k: v for k, v in ch02.items() if k not in ("fields", "config", "machine", "split")}
    for score, model in trained.items():
        models[score] = model
        weights[score] = f"ch03_{score}.pt"
    if phrases is not None:
        result["phrases"] = phrases
    result["models"] = {k: models[k] for k in ("none", "dot", "location") if k in models}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
