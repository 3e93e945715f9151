"""Lab 5 (autoregression): the reference, the hidden tests and the visible self-checks.

In-process and fast, as for the other labs (tests/labtests.py): each fixture's answers are
exec'd over the reference answers and every hidden test runs on that namespace through
``autograder.hidden.LocalStudent``. ``EXPECTED_FAILURES`` is the contract, checked again
through the sandboxed grader by ``test_grading_ch05_autoregression.py``.
"""
from __future__ import annotations


import numpy as np
import pytest
import torch

from labtests import LabContract, LabUnderTest, stub
from speechcourse.checks import CheckFailed
from speechcourse.selfcheck import ch05_autoregression as selfcheck

SLUG = "ch05_autoregression"
SOLUTION_IDS = ("causal_mask", "DecoderLayer", "greedy_decode", "beam_search", "word_error_rate")

TEST_POINTS = {
    "test_causal_mask": 1,
    "test_decoder_layer": 2,
    "test_decoder_step_cache": 2,
    "test_greedy_decode": 2,
    "test_beam_search_scores": 2,
    "test_beam_search_length_penalty": 1,
    "test_beam_search_wide": 1,
    "test_word_error_rate": 2,
    "test_word_error_rate_counts": 1,
}
MANUAL_POINTS = {"explain_exposure_bias": 2}

BEAM = {"test_beam_search_scores", "test_beam_search_length_penalty", "test_beam_search_wide"}
CACHE = {"test_decoder_step_cache", "test_greedy_decode"}
EXPECTED_FAILURES = {
    "mask_off_by_one": {"test_causal_mask"},
    "mask_transposed": {"test_causal_mask"},
    # the type is judged in the sandbox (fed to the given MultiHeadAttention); U goes past 64
    "causal_mask_numpy": {"test_causal_mask"},
    "causal_mask_prebuilt_64": {"test_causal_mask"},
    "layer_post_norm": {"test_decoder_layer"},
    "layer_ignores_mask": {"test_decoder_layer"},
    "layer_no_cross_padding_mask": {"test_decoder_layer"},
    # attn_mask None and a band, not only the causal mask
    "layer_builds_own_causal_mask": {"test_decoder_layer"},
    # a real all-zero memory frame, and padding that is not zero
    "layer_pads_memory_from_zero_frames": {"test_decoder_layer"},
    # right values, gradients checked in the sandbox as in Labs 3-4
    "layer_detaches_memory": {"test_decoder_layer"},
    "layer_feed_forward_no_grad": {"test_decoder_layer"},
    "cache_appended_twice": CACHE,
    "cache_position_always_zero": CACHE,
    "greedy_no_eos_stop": {"test_greedy_decode"},
    "greedy_ignores_padding_mask": {"test_greedy_decode"},
    "beam_sums_probabilities": BEAM,
    "beam_expands_finished": BEAM,
    "beam_no_length_normalisation": {"test_beam_search_length_penalty"},
    "beam_keeps_eos_token": BEAM,
    "wer_by_hypothesis_length": {"test_word_error_rate"},
    "wer_insertions_not_counted": {"test_word_error_rate", "test_word_error_rate_counts"},
    # alignments chosen with the wrong costs: cases where the cost model decides
    "wer_substitution_costs_two": {"test_word_error_rate", "test_word_error_rate_counts"},
    "wer_insertion_costs_two": {"test_word_error_rate", "test_word_error_rate_counts"},
    "ok_mask_by_comparison": set(),
    "ok_layer_unpacked_attention": set(),
    "ok_greedy_per_utterance": set(),
    "ok_beam_topk_tensor": set(),
    "ok_wer_two_rows_backtrace": set(),
    "ok_causal_mask_loop": set(),
}

VISIBLE = {
    "test_causal_mask": ("check_causal_mask", ("causal_mask",)),
    "test_decoder_layer": ("check_decoder_layer", ("DecoderLayer",)),
    "test_decoder_step_cache": ("check_decoder_step", ("decoder_step", "Decoder")),
    "test_greedy_decode": ("check_greedy_decode", ("greedy_decode", "Decoder")),
    "test_beam_search_scores": ("check_beam_search_scores", ("beam_search", "Scorer")),
    "test_beam_search_length_penalty": ("check_beam_search_length_penalty", ("beam_search", "Scorer")),
    "test_beam_search_wide": ("check_beam_search_wide", ("beam_search", "Scorer")),
    "test_word_error_rate": ("check_word_error_rate", ("word_error_rate",)),
    "test_word_error_rate_counts": ("check_word_error_rate_counts", ("word_error_rate",)),
}


def _given_code() -> str:
    """What the notebook's setup and given cells define before and between the solution cells."""
    import nbformat
    from autograder.course import source_notebook
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source
             for c in nbformat.read(source_notebook(SLUG), as_version=4).cells}
    setup = "\n".join(line for line in cells["setup"].splitlines()
                      if not line.startswith(("from speechcourse.plots", "import matplotlib")))
    return setup + "\n\n" + cells["given_decoder"] + "\n"


THIS_LAB = LabUnderTest(SLUG, SOLUTION_IDS, _given_code(), selfcheck, VISIBLE)
REF = THIS_LAB.reference
reference_answers, namespace, submission = THIS_LAB.reference_answers, THIS_LAB.namespace, THIS_LAB.submission
hidden_results, visible_results = THIS_LAB.hidden_results, THIS_LAB.visible_results


class TestLabContract(LabContract):
    """Notebook, reference, fixtures and hidden tests agree (tests/labtests.py)."""
    lab, test_points, manual_points = THIS_LAB, TEST_POINTS, MANUAL_POINTS
    expected_failures = EXPECTED_FAILURES
    min_mistakes, min_alternatives = 8, 3

    def test_reference_module_passes_every_hidden_test(self):
        """As the contract's, plus the given code the hidden tests build on (it is in reference.py too)."""
        names = SOLUTION_IDS + ("decoder_step", "Decoder", "Scorer", "MultiHeadAttention")
        ns = {name: getattr(self.lab.reference, name) for name in names}
        assert all(ok for ok, _ in self.lab.hidden_results(ns).values())


# -------------------------------------------------------------------- the notebook itself

def test_given_code_is_the_reference_given_code():
    """The setup and given cells define exactly the classes the hidden tests rebuild from reference.py."""
    reference = (THIS_LAB.folder / "reference.py").read_text()
    cells = THIS_LAB.notebook_cells()
    for name in ("class MultiHeadAttention", "def sinusoidal_positions", "class Scorer"):
        start = cells["setup"].source.index(name)
        chunk = cells["setup"].source[start:].split("\n\n\n")[0]
        assert chunk.strip() in reference, name
    assert cells["given_decoder"].source.strip() in reference


def test_given_layers_survive_the_release():
    left = stub(THIS_LAB.reference_cells()["DecoderLayer"])
    assert "def __init__" in left and "self.norm3 = nn.LayerNorm(d_model)" in left
    assert "raise NotImplementedError()" in left


def test_training_cells_are_skipped_when_grading():
    import nbformat
    from autograder.course import source_notebook
    notebook = nbformat.read(source_notebook(SLUG), as_version=4)
    training = [c for c in notebook.cells if c.cell_type == "code" and "nbgrader" not in c.metadata]
    assert training and all("skip-when-grading" in c.metadata.get("tags", []) for c in training)


# ------------------------------------------------------------------ the reference itself

def _decoder(seed=0, d=16, n_h=4, d_ff=24, n_layers=2):
    torch.manual_seed(seed)
    return REF.Decoder(13, d, n_h, d_ff, n_layers).eval()


def test_reference_mask_is_pytorchs_causal_mask():
    for U in (1, 4, 9):
        want = torch.nn.Transformer.generate_square_subsequent_mask(U) == float("-inf")
        assert torch.equal(REF.causal_mask(U), want)


def test_reference_layer_agrees_with_torch_transformer_decoder_layer():
    """Pre-norm, ReLU, no dropout: the same as torch.nn.TransformerDecoderLayer(norm_first=True)."""
    torch.manual_seed(0)
    d, n_h, d_ff = 8, 2, 16
    theirs = torch.nn.TransformerDecoderLayer(d, n_h, d_ff, dropout=0.0, norm_first=True).eval()
    ours = REF.DecoderLayer(d, n_h, d_ff).eval()
    with torch.no_grad():
        for mine, torchs in ((ours.self_attention, theirs.self_attn), (ours.cross_attention, theirs.multihead_attn)):
            for linear, w, b in zip((mine.W_q, mine.W_k, mine.W_v), torchs.in_proj_weight.chunk(3),
                                    torchs.in_proj_bias.chunk(3)):
                linear.weight.copy_(w)
                linear.bias.copy_(b)
            mine.W_o.load_state_dict(torchs.out_proj.state_dict())
        for mine, torchs in ((ours.norm1, theirs.norm1), (ours.norm2, theirs.norm2), (ours.norm3, theirs.norm3)):
            mine.load_state_dict(torchs.state_dict())
        ours.feed_forward[0].load_state_dict(theirs.linear1.state_dict())
        ours.feed_forward[2].load_state_dict(theirs.linear2.state_dict())
        y, memory = torch.randn(5, 3, d), torch.randn(7, 3, d)
        pad = torch.zeros(3, 7, dtype=torch.bool)
        pad[1, 4:] = True
        want = theirs(y, memory, tgt_mask=REF.causal_mask(5), memory_key_padding_mask=pad)
        torch.testing.assert_close(ours(y, memory, REF.causal_mask(5), pad), want, rtol=1e-5, atol=1e-5)


def test_reference_cache_gives_the_uncached_logits():
    """The cached steps equal one causal pass (the speed-up is measured by the experiment, not asserted)."""
    decoder = _decoder()
    memory = torch.randn(6, 2, 16)
    y_in = torch.randint(3, 13, (40, 2))
    with torch.no_grad():
        full = decoder(y_in, memory, REF.causal_mask(40))
        cache, steps = None, []
        for u in range(40):
            logits, cache = REF.decoder_step(decoder, y_in[u], memory, cache)
            steps.append(logits)
    torch.testing.assert_close(torch.stack(steps), full, rtol=1e-4, atol=1e-5)


def test_reference_beam_one_is_greedy_and_a_full_beam_is_exhaustive():
    import itertools
    for seed in range(4):
        scorer = REF.Scorer(4, seed=seed, sharpness=2.0)
        prefix = []
        for _ in range(5):
            z = int(np.argmax(scorer.log_probs(prefix)))
            if z == REF.EOS:
                break
            prefix.append(z)
        assert REF.beam_search(scorer, 1, 5)[0][0] == prefix
        # every sequence of at most 3 steps: the best one is what a beam of V**3 finds first
        best, best_score = None, -np.inf
        for n in range(1, 4):
            for tokens in itertools.product(range(4), repeat=n):
                if REF.EOS in tokens[:-1] or (n < 3 and tokens[-1] != REF.EOS):
                    continue
                score = sum(scorer.log_probs(list(tokens[:i]))[z] for i, z in enumerate(tokens))
                if score > best_score:
                    best, best_score = [z for z in tokens if z != REF.EOS], score
        top = REF.beam_search(scorer, 64, 3)[0]
        assert top[0] == best and np.isclose(top[1], best_score)


def test_reference_wer_on_cases_worked_by_hand():
    for references, hypotheses, (S, D, I, N) in selfcheck.WER_HAND:
        got = REF.word_error_rate(references, hypotheses)
        assert (got["substitutions"], got["deletions"], got["insertions"], got["reference_words"]) == (S, D, I, N)
        assert np.isclose(got["wer"], (S + D + I) / N)


def test_hidden_wide_scorer_defeats_greedy_and_narrow_beams():
    tests_module = next(iter(THIS_LAB.hidden.values())).__globals__    # hidden_tests.py's names
    for rank, V in ((1, 5), (3, 7)):
        scorer = REF.Scorer(V, 10 + rank, 1.0, tests_module["_wide_table"](rank, V))
        best = [3 + rank, 3]
        assert REF.beam_search(scorer, 1, 4)[0][0] != best
        assert REF.beam_search(scorer, rank, 4)[0][0] != best
        assert REF.beam_search(scorer, rank + 1, 4)[0][0] == best


# --------------------------------------------------------------------- visible self-checks

def test_visible_self_checks_pass_on_the_reference(capsys):
    results = visible_results(namespace(reference_answers()))
    assert {g: e for g, e in results.items() if e is not None} == {}
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == len(VISIBLE) and all(line.startswith("✓ ") for line in printed)


def test_visible_self_checks_on_untouched_stubs_raise_not_implemented():
    ns = namespace({g: stub(s) for g, s in THIS_LAB.reference_cells().items()})
    for grade_id, error in visible_results(ns).items():
        assert isinstance(error, NotImplementedError), (grade_id, error)


@pytest.mark.parametrize("fixture", sorted(EXPECTED_FAILURES))
def test_visible_self_checks_agree_with_the_hidden_tests(fixture):
    """A wrong submission trips no visible check of a cell it does not fail; a right one trips none."""
    results = visible_results(submission(fixture))
    failed = {g for g, e in results.items() if e is not None}
    allowed = EXPECTED_FAILURES[fixture]
    assert failed <= allowed, {g: repr(results[g]) for g in failed - allowed}
    for grade_id in failed:
        error = results[grade_id]
        assert isinstance(error, CheckFailed) and len(str(error)) > 25, (grade_id, error)


# --------------------------------------------------------------------------- committed results

def _ch05_experiment():
    import importlib.util
    import sys
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "experiments" / "ch05_recogniser.py"
    spec = importlib.util.spec_from_file_location("ch05_recogniser_experiment", path)
    module = sys.modules["ch05_recogniser_experiment"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_capstone_results_match_the_script_its_budget_and_its_targets():
    """The capstone's JSON: trained by CAPSTONE, within five minutes of one core, tested on
    at least 1,000 real strings and all 1,000 isolated recordings, every score inside its own
    interval, and `targets_met` as the scores and TARGETS say; the mask ablation's causal row
    is the capstone itself; every ablation row changes one thing against CAPSTONE."""
    import json
    experiment = _ch05_experiment()
    result = json.loads(experiment.OUT.read_text())
    assert result["config"] == experiment.CAPSTONE, "rerun experiments/ch05_recogniser.py capstone"
    assert result["steps"] == experiment.CAPSTONE["steps"] == len(result["loss_every_50_steps"]) * 50
    assert result["train_cpu_seconds"] <= 300, "the capstone's budget is five minutes of one core"
    test, isolated = result["test"], result["test_isolated"]["real"]
    assert test["real"]["utterances"] >= 1000 and isolated["utterances"] == 1000
    assert result["targets"] == experiment.TARGETS
    for score in (test["synthetic"], test["real"], isolated):
        for field in ("wer", "sequence_accuracy"):
            low, high = score[f"{field}_95"]
            assert low <= score[field] <= high, field
    reached = {level: [test["real"]["wer"] <= bars["real_wer"], isolated["sequence_accuracy"] >= bars["isolated_accuracy"],
                       test["synthetic"]["wer"] <= bars["synthetic_wer"]] for level, bars in experiment.TARGETS.items()}
    assert result["targets_met"] == {level: all(ok) for level, ok in reached.items()}
    masks = json.loads(experiment.MASKS_OUT.read_text())
    assert masks["config"] == experiment.CAPSTONE and masks["steps"] == experiment.CAPSTONE["steps"]
    for source in ("synthetic", "real"):
        assert masks["masks"]["causal"][source] == test[source]
    ablations = json.loads(experiment.ABLATIONS_OUT.read_text())
    assert len(ablations) >= 4
    for name, row in ablations.items():
        change = row["change"]
        assert sum([bool(change["config"]), bool(change["train_source"]), bool(change["corpus"])]) == 1, name
        assert set(change["config"]) <= set(experiment.CAPSTONE), name
        assert row["steps"] == experiment.CAPSTONE["steps"] and row["lr"] == experiment.CAPSTONE["lr"], name
        assert row["test_isolated"]["real"]["utterances"] == 1000, name
