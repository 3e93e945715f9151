"""Chapter 4's measurement: a self-attention encoder in place of the bi-GRU, same decoder, same recipe.

Trains `speechmodels.attention.AttentionSeq2Seq` with chapter 3's attention decoder and
`speechmodels.transformer.SelfAttentionEncoder` (linear projection of the stacked frames,
sinusoidal positions, pre-norm encoder layers) by the one shared recipe
(`speechmodels.training.train` with `CONFIG`: same data, steps, batch size, schedule and
regularisers as chapter 3's bi-GRU model), then scores the length-stratified test set
(voices never heard in training). It also trains a small self-attention encoder on the
English -> French phrases (`speechcourse.phrases`) so the chapter can put the maps of the
two tasks side by side.

    python experiments/ch04_self_attention.py                 # about 6-8 minutes of one CPU core
    python experiments/ch04_self_attention.py --steps 20 --text-steps 20 --out /tmp/smoke.json

Writes book/results/ch04_self_attention.json and two state_dicts the chapter loads to
draw maps: ch04_self_attention.pt (float16, about 1 MB) and ch04_text_encoder.pt.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from speechcourse.corpus import DIGIT_VOCAB
from speechcourse.phrases import SOURCE_VOCAB, TARGET_VOCAB, make_pairs
from speechmodels.attention import AttentionDecoder, AttentionSeq2Seq
from speechmodels.batches import pad_targets
from speechmodels.experiment import RESULTS, experiment_parser, machine, run_record, save_half, train_and_evaluate
from speechmodels.training import CONFIG, FrontEnd, mean_every, sequence_loss
from speechmodels.transformer import SelfAttentionEncoder, TextSelfAttentionEncoder

OUT = RESULTS / "ch04_self_attention.json"
# The encoder replaces chapter 3's bi-GRU; the decoder and everything else are chapter 3's.
ENCODER = {"d_model": 96, "n_heads": 4, "n_layers": 3, "d_ff": 192, "dropout": 0.1}
SCORE = "location"
TEXT = {"d_model": 32, "n_heads": 2, "n_layers": 2, "d_ff": 64, "hidden": 32, "emb": 16,
        "pairs": 4000, "steps": 1500, "batch_size": 32, "lr": 3e-3, "seed": 0}


def speech_model(n_in: int, config: dict = CONFIG, encoder: dict = ENCODER, positions: bool = True):
    """FrontEnd -> SelfAttentionEncoder -> chapter 3's AttentionDecoder, sized by CONFIG and ENCODER."""
    front = FrontEnd.from_config(config)
    sa = SelfAttentionEncoder(n_in, encoder["d_model"], encoder["n_heads"], encoder["n_layers"],
                              encoder["d_ff"], encoder["dropout"], positions=positions)
    decoder = AttentionDecoder(sa.size, config["hidden"], len(DIGIT_VOCAB), emb=config["emb"], score=SCORE,
                               dropout=config["dropout"])
    return AttentionSeq2Seq(sa, decoder, front)


def text_model(text: dict = TEXT) -> AttentionSeq2Seq:
    encoder = TextSelfAttentionEncoder(len(SOURCE_VOCAB), text["d_model"], text["n_heads"], text["n_layers"],
                                       text["d_ff"])
    decoder = AttentionDecoder(encoder.size, text["hidden"], len(TARGET_VOCAB), emb=text["emb"], score="additive")
    return AttentionSeq2Seq(encoder, decoder)


def text_batch(pairs):
    """(English, French) pairs -> words (S, B), lengths (B,), y_in (U, B), y_out (U, B) tensors."""
    sources = [SOURCE_VOCAB.encode(en) for en, _ in pairs]
    lengths = np.array([len(s) for s in sources], dtype=np.int64)       # (B,)
    words = np.zeros((lengths.max(), len(pairs)), dtype=np.int64)         # (S, B)
    for b, s in enumerate(sources):
        words[:len(s), b] = s
    y_in, y_out, _, _ = pad_targets([fr for _, fr in pairs], TARGET_VOCAB)
    return (torch.from_numpy(words), torch.from_numpy(lengths), torch.from_numpy(y_in),
            torch.from_numpy(y_out))


def train_text(model, text: dict = TEXT) -> dict:
    """Adam, constant lr, exactly text['steps'] batches of fresh phrase pairs; sentence accuracy on new ones."""
    torch.manual_seed(text["seed"])
    pairs = make_pairs(text["pairs"], seed=text["seed"])
    optimizer = torch.optim.Adam(model.parameters(), lr=text["lr"])
    rng, losses = np.random.default_rng(text["seed"]), []
    started, cpu = time.perf_counter(), time.process_time()
    model.train()
    for _ in range(text["steps"]):
        chosen = [pairs[i] for i in rng.choice(len(pairs), text["batch_size"], replace=False)]
        words, lengths, y_in, y_out = text_batch(chosen)
        loss = sequence_loss(model(words, lengths, y_in), y_out)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    held_out = make_pairs(500, seed=text["seed"] + 1)
    words, lengths, y_in, _ = text_batch(held_out)
    hyps = model.greedy(words, lengths, int(y_in.shape[0]) + 3)
    right = [TARGET_VOCAB.decode(list(h) + [TARGET_VOCAB.eos]) == fr for h, (_, fr) in zip(hyps, held_out)]
    return {"sentence_accuracy": round(float(np.mean(right)), 4), "held_out_pairs": len(held_out),
            "train_seconds": round(time.perf_counter() - started, 1),
            "cpu_seconds": round(time.process_time() - cpu, 1), "loss_every_50_steps": mean_every(losses)}


def run(config: dict, text: dict, out: Path, contention: str = "none recorded") -> dict:
    trained = train_and_evaluate(lambda n_in: speech_model(n_in, config), config)
    model, test_split, scores = trained.model, trained.test_split, trained.evaluation
    hypotheses = scores.pop("hypotheses")
    text_net = text_model(text)
    text_log = train_text(text_net, text)
    result = {
        "model": "self-attention encoder (linear front on 4 stacked frames, sinusoidal positions, "
                 f"{ENCODER['n_layers']} pre-norm layers) + chapter 3's {SCORE}-aware attention decoder",
        "split": "test_by_length",
        **scores,
        "examples": [{"text": test_split.texts[i], "heard": hypotheses[i]} for i in range(0, len(hypotheses), 50)],
        "utterances_per_length": int(len(test_split) // len(scores["accuracy_by_length"])),
        "config": config, "encoder": ENCODER, "score": SCORE,
        **run_record(trained, contention),
        "encoder_parameters": sum(p.numel() for p in model.encoder.parameters()),
        "text_task": {"config": text, **text_log,
                      "parameters": sum(p.numel() for p in text_net.parameters())},
        "machine": machine(config["threads"]),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    save_half(model, out.with_suffix(".pt"))
    torch.save(text_net.state_dict(), out.with_name("ch04_text_encoder.pt") if out == OUT
               else out.with_name(out.stem + "_text.pt"))
    return result


def load_speech_model(path: Path = OUT.with_suffix(".pt"), n_in: int = 160) -> AttentionSeq2Seq:
    """The trained model the experiment saved (float16 on disk, float32 here), in eval mode."""
    model = speech_model(n_in)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v
                           for k, v in torch.load(path, weights_only=True).items()})
    return model.eval()


def load_text_model(path: Path = OUT.with_name("ch04_text_encoder.pt")) -> AttentionSeq2Seq:
    model = text_model()
    model.load_state_dict(torch.load(path, weights_only=True))
    return model.eval()


def main() -> None:
    parser = experiment_parser(__doc__, CONFIG["steps"], OUT)
    parser.add_argument("--text-steps", type=int, default=TEXT["steps"])
    args = parser.parse_args()
    result = run(dict(CONFIG, steps=args.steps), dict(TEXT, steps=args.text_steps), args.out, args.contention)
    print(f"trained {result['steps']} steps in {result['train_seconds']} s "
          f"({result['train_cpu_seconds']} s of CPU)")
    for source, scores in result["by_source"].items():
        print(f"{source}: sequence accuracy by length {scores['accuracy_by_length']}")
    print(f"text task: sentence accuracy {result['text_task']['sentence_accuracy']:.2f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
