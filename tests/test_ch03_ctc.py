"""Chapter 3's CTC model (speechmodels.ctc), its experiment and its committed results."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from speechcourse.corpus import DIGIT_VOCAB
from speechmodels.ctc import BLANK, LABELS, CTCModel, best_path, ctc_model, ctc_targets
from speechmodels.training import CONFIG, train

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "book" / "results" / "ch03_ctc.json"
SOURCES = ("synthetic", "real")


def _one_hot_log_probs(paths, C=len(LABELS)):
    """Frame labellings (B lists of CTC classes, equal length) -> log-probs (T, B, C) peaked on them."""
    T, B = len(paths[0]), len(paths)
    logits = torch.full((T, B, C), -10.0)
    for b, path in enumerate(paths):
        for t, c in enumerate(path):
            logits[t, b, c] = 10.0
    return logits.log_softmax(-1)


def test_labels_are_blank_then_the_ten_digits():
    assert LABELS[BLANK] == "_" and LABELS[1:] == DIGIT_VOCAB.tokens[3:]


def test_best_path_merges_repeats_then_drops_blanks():
    # "_ _ three three _ one _ _ four four _" -> three one four; "one _ one" keeps the repeat
    three, one, four = (LABELS.index(w) for w in ("three", "one", "four"))
    paths = [[0, 0, three, three, 0, one, 0, 0, four, four, 0],
             [one, 0, one, one, 0, 0, 0, 0, 0, 0, 0],
             [one, one, one, 0, 0, 0, 0, 0, 0, 0, 0]]
    log_probs = _one_hot_log_probs(paths)
    assert best_path(log_probs, torch.tensor([11, 11, 11])) == [[three, one, four], [one, one], [one]]
    # padded frames are not read; max_len truncates
    assert best_path(log_probs, torch.tensor([3, 1, 11]), max_len=1) == [[three], [one], [one]]


def test_targets_are_the_digits_of_y_out_as_ctc_classes():
    y_out = torch.tensor([[6, 4], [4, 2], [7, 0], [2, 0]])                 # "three one four", "one"
    targets, lengths = ctc_targets(y_out)
    assert lengths.tolist() == [3, 1]
    assert targets[0].tolist() == [LABELS.index(w) for w in ("three", "one", "four")]
    assert targets[1, :1].tolist() == [LABELS.index("one")]


def test_shapes_loss_and_greedy_follow_the_training_interface():
    torch.manual_seed(0)
    model = ctc_model(160, dict(CONFIG, hidden=8, layers=1))
    T, B = 30, 3
    x, lengths = torch.randn(T, B, 160), torch.tensor([30, 17, 9])
    y_in = torch.tensor([[1, 1, 1], [6, 4, 5], [4, 5, 0], [0, 0, 0]])
    y_out = torch.tensor([[6, 4, 5], [4, 5, 2], [2, 2, 0], [0, 0, 0]])
    model.train()
    log_probs = model(x, lengths, y_in)
    assert log_probs.shape == (T, B, len(LABELS))
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(T, B))
    loss = model.loss(x, lengths, y_in, y_out)
    assert loss.ndim == 0 and math.isfinite(loss.item()) and loss.item() > 0
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    tokens = model.greedy(x, lengths, max_len=5)
    assert len(tokens) == B and all(len(t) <= 5 and all(3 <= i <= 12 for i in t) for t in tokens)
    assert model.posteriors(x, lengths).shape == (T, B, len(LABELS))


def test_loss_is_torch_ctc_loss_of_the_digits():
    """The loss is nn.CTCLoss (mean over the batch of each utterance's loss per target digit)."""
    torch.manual_seed(1)
    model = CTCModel(12, hidden=4, layers=1).eval()
    x, lengths = torch.randn(8, 2, 12), torch.tensor([8, 5])
    y_out = torch.tensor([[3, 12], [12, 2], [2, 0]])                        # "zero nine", "nine"
    with torch.no_grad():
        log_probs = model(x, lengths)
        want = torch.nn.functional.ctc_loss(log_probs, torch.tensor([[1, 10], [10, 0]]), lengths,
                                            torch.tensor([2, 1]), blank=0)
        torch.testing.assert_close(model.loss(x, lengths, None, y_out), want)


def test_train_uses_the_models_own_loss_and_leaves_other_models_on_cross_entropy():
    """train() minimises model.loss when the model has one; a few steps lower the CTC loss."""
    from speechcourse.corpus import Split
    from speechcourse.corpus import load_split
    split = load_split("train", stack=CONFIG["stack"])
    small = Split("small", split.features[:64], split.texts[:64], split.voices[:64], split.sources[:64])
    torch.manual_seed(0)
    model = ctc_model(small.features[0].shape[1], dict(CONFIG, hidden=16, layers=1))
    log = train(model, small, dict(CONFIG, steps=12, batch_size=16, lr=1e-2))
    assert len(log["losses"]) == 12 and all(math.isfinite(v) for v in log["losses"])
    assert sum(log["losses"][-3:]) < sum(log["losses"][:3])
    from speechmodels.seq2seq import from_config
    assert not hasattr(from_config(160, CONFIG), "loss")              # cross-entropy models keep theirs
    from speechmodels.attention import speech_model
    assert not hasattr(speech_model(160, "location", CONFIG), "loss")


def test_ctc_script_smoke(tmp_path):
    spec = importlib.util.spec_from_file_location("ch03_ctc_experiment", ROOT / "experiments" / "ch03_ctc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.run(dict(CONFIG, steps=2), tmp_path / "ctc.json", "smoke test")
    assert result["steps"] == 2 and (tmp_path / "ch03_ctc.pt").exists()
    assert set(result["by_source"]) == set(SOURCES) and len(result["hypotheses"]) == 1000
    for source in SOURCES:
        scores = result["by_source"][source]
        low, high = scores["wer"]["interval"]
        assert low <= scores["wer"]["rate"] <= high
        assert sorted(map(int, scores["accuracy_interval_by_length"])) == list(range(1, 11))
    assert module.needed_frames("one one two") == 4


@pytest.mark.skipif(not RESULTS.exists(), reason="experiments/ch03_ctc.py has not been run")
def test_committed_ctc_results_use_the_shared_budget():
    """The committed run used CONFIG and chapter 3's split, and its scores hang together."""
    result = json.loads(RESULTS.read_text())
    assert result["config"] == CONFIG, "rerun experiments/ch03_ctc.py after changing CONFIG"
    assert result["steps"] == CONFIG["steps"] and result["split"] == "test_by_length"
    assert result["train_seconds"] > 0 and result["train_cpu_seconds"] > 0 and result["contention"]
    assert result["infeasible_train_utterances"] == 0
    assert (ROOT / "book" / "results" / result["weights"]).stat().st_size < 2_000_000
    for source in SOURCES:
        scores = result["by_source"][source]
        assert scores["utterances_per_length"] == 50
        assert sorted(map(int, scores["accuracy_by_length"])) == list(range(1, 11))
        for n, (low, high) in scores["accuracy_interval_by_length"].items():
            assert low <= scores["accuracy_by_length"][n] <= high, (source, n)
        assert scores["wer"]["interval"][0] <= scores["wer"]["rate"] <= scores["wer"]["interval"][1]
    # trained, not stuck on blanks: most short synthetic strings right
    assert result["by_source"]["synthetic"]["accuracy_by_length"]["1"] >= 0.7


@pytest.mark.skipif(not RESULTS.exists(), reason="experiments/ch03_ctc.py has not been run")
def test_committed_ctc_weights_reproduce_the_committed_transcripts():
    from speechcourse.corpus import load_split
    from speechmodels.training import transcribe
    result = json.loads(RESULTS.read_text())
    split = load_split("test_by_length", stack=CONFIG["stack"])
    model = ctc_model(split.features[0].shape[1], CONFIG)
    state = torch.load(ROOT / "book" / "results" / result["weights"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    model.eval()
    hyps = transcribe(model, split)
    same = sum(h == c for h, c in zip(hyps, result["hypotheses"]))
    assert same >= 0.98 * len(split), same                      # float16 weights: a few may flip
