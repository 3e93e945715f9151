"""Lab 3 (attention): the reference, the hidden tests, the visible self-checks and the chapter's results.

In-process and fast, as for Lab 2 (tests/labtests.py). ``EXPECTED_FAILURES`` is the
contract: for each fixture, exactly the test cells that must fail.
``test_grading_ch03_attention.py`` checks the same table through the sandboxed grader.

A mistake in ``masked_softmax`` or in the scores also fails ``test_decoder_step``, and a
mistake in ``masked_softmax`` fails ``attend``'s cells: every part is compared with the
reference, never with the student's own other part (issue 19: a stateful ``masked_softmax``
that replayed ``attend``'s output kept full marks), so a failed precondition costs points.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from labtests import LabContract, LabUnderTest, stub
from speechcourse.checks import CheckFailed
from speechcourse.selfcheck import ch03_attention as selfcheck

SLUG = "ch03_attention"
ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "solutions" / SLUG

SOLUTION_IDS = ("dot_scores", "general_scores", "additive_scores", "masked_softmax", "attend",
                "AttentionDecoder")
SETUP = "import math\nimport numpy as np\nimport torch\nfrom torch import nn\n"

TEST_POINTS = {
    "test_dot_scores": 2,
    "test_dot_scores_scaled": 1,
    "test_general_scores": 2,
    "test_additive_scores": 2,
    "test_masked_softmax": 2,
    "test_masked_softmax_stable": 1,
    "test_attend": 2,
    "test_attend_invariances": 1,
    "test_decoder_step": 3,
}
MANUAL_POINTS = {"explain_diagonal": 2, "explain_sizes": 2}

STEP = "test_decoder_step"
SOFTMAX = {"test_masked_softmax", "test_masked_softmax_stable", STEP}
ATTEND = {"test_attend", "test_attend_invariances"}
EXPECTED_FAILURES = {
    # a wrong masked_softmax inside attend costs attend's cells too: attend is judged against
    # the reference, never against the student's own masked_softmax (issue 19)
    "softmax_over_batch": SOFTMAX | ATTEND,
    "mask_after_softmax": SOFTMAX | ATTEND,
    "mask_fills_zero": SOFTMAX | ATTEND,
    # overflows at scores of 1e4 (inf * 0 on padding): every masked test has a case of that size
    "softmax_unstable": SOFTMAX | ATTEND,
    # -1e4 added instead of -inf: every masked test has a case of that size
    "softmax_adds_minus_1e4": SOFTMAX | ATTEND,
    # a mask read as lengths: test_masked_softmax has a mask that is not a prefix
    "softmax_mask_as_counts": {"test_masked_softmax", "test_attend_invariances"},
    # right values through numpy: no gradient reaches the scores, so neither attend nor the step trains
    "softmax_detached": {"test_masked_softmax", "test_attend", STEP},
    "sqrt_d_missing": {"test_dot_scores_scaled", STEP},
    "general_w_transposed": {"test_general_scores"},
    "additive_tanh_missing": {"test_additive_scores"},
    "attend_ignores_mask": ATTEND | {STEP},
    "attend_unweighted_mean": ATTEND | {STEP},
    # masked_softmax replays attend's (unmasked) weights: attend is not judged by it any more
    "attend_replays_softmax": ATTEND | {STEP},
    # -1e4 added instead of -inf: the +-1e4 cases of attend and the step's huge padding
    "attend_adds_minus_1e4": ATTEND | {STEP},
    "context_from_keys": {STEP},
    "same_context_every_step": {STEP},
    "mask_from_padded_end": {STEP},
    "no_mask_in_step": {STEP},
    # lengths whose longest is shorter than T; a real all-zero frame inside an utterance
    "step_mask_from_longest": {STEP},
    "step_pads_from_zero_frames": {STEP},
    "ok_einsum": set(),
    "ok_bmm": set(),
    "ok_loop": set(),
    "ok_softmax_by_hand": set(),
    "ok_attend_finfo_min": set(),
}
# mistakes that only the hidden tests find (the visible self-checks use small scores and
# lengths that fill T): no visible check has to word them
HIDDEN_ONLY = {"attend_adds_minus_1e4", "step_mask_from_longest"}

VISIBLE = {
    "test_dot_scores": ("check_dot_scores", ("dot_scores",)),
    "test_dot_scores_scaled": ("check_dot_scores_scaled", ("dot_scores",)),
    "test_general_scores": ("check_general_scores", ("general_scores",)),
    "test_additive_scores": ("check_additive_scores", ("additive_scores",)),
    "test_masked_softmax": ("check_masked_softmax", ("masked_softmax",)),
    "test_masked_softmax_stable": ("check_masked_softmax_stable", ("masked_softmax",)),
    "test_attend": ("check_attend", ("attend", "masked_softmax")),
    "test_attend_invariances": ("check_attend_invariances", ("attend", "masked_softmax")),
    "test_decoder_step": ("check_decoder_step", ("AttentionDecoder",)),
}

THIS_LAB = LabUnderTest(SLUG, SOLUTION_IDS, SETUP, selfcheck, VISIBLE)
REF = THIS_LAB.reference
notebook_cells, reference_cells = THIS_LAB.notebook_cells, THIS_LAB.reference_cells
reference_answers, namespace, submission = THIS_LAB.reference_answers, THIS_LAB.namespace, THIS_LAB.submission
hidden_results, visible_results = THIS_LAB.hidden_results, THIS_LAB.visible_results


class TestLabContract(LabContract):
    """Notebook, reference, fixtures and hidden tests agree (tests/labtests.py)."""
    lab, test_points, manual_points = THIS_LAB, TEST_POINTS, MANUAL_POINTS
    expected_failures = EXPECTED_FAILURES
    min_mistakes, min_alternatives = 8, 3


def test_setup_cell_gives_what_the_solution_cells_need():
    setup = notebook_cells()["setup"].source
    assert all(line in setup for line in SETUP.splitlines())


def test_training_and_plotting_cells_are_skipped_when_grading():
    """Every given code cell after the decoder's test trains or plots: nothing graded depends on it."""
    notebook = notebook_cells()
    import nbformat
    cells = nbformat.read(THIS_LAB.notebook, as_version=4).cells
    last_test = max(i for i, c in enumerate(cells) if c.metadata.get("nbgrader", {}).get("grade_id") == STEP)
    given = [c for c in cells[last_test + 1:] if c.cell_type == "code" and "nbgrader" not in c.metadata]
    assert len(given) == 3 and all("skip-when-grading" in c.metadata.get("tags", []) for c in given)
    assert "plot_alignment" in notebook and not notebook["plot_alignment"].metadata["nbgrader"]["grade"]


def test_given_layers_and_methods_survive_the_release():
    left = stub(reference_cells()["AttentionDecoder"])
    for given in ("self.key = nn.Linear(enc_size, hidden, bias=False)", "def start(self, states, lengths):",
                  "def forward(self, states, lengths, y_in):", "raise NotImplementedError()"):
        assert given in left, given
    assert "dot_scores(s_prev" not in left


# ------------------------------------------------------------------------ hidden tests

def test_step_message_points_at_the_broken_part():
    results = hidden_results(submission("softmax_over_batch"))
    assert "fix it first" in results[STEP][1] and "attend" in results[STEP][1]


def test_attend_is_judged_against_the_reference_not_the_students_softmax():
    """A wrong masked_softmax costs attend's cells too; replaying attend's output from
    masked_softmax gains nothing (issue 19)."""
    results = hidden_results(submission("mask_fills_zero"))
    assert not results["test_attend"][0] and not results["test_attend_invariances"][0]
    results = hidden_results(submission("attend_replays_softmax"))
    assert results["test_masked_softmax"][0] and not results["test_attend"][0]


def test_float64_inputs_are_accepted():
    ns = namespace(reference_answers())
    q, k = torch.randn(2, 3, dtype=torch.float64), torch.randn(4, 2, 3, dtype=torch.float64)
    assert ns["dot_scores"](q, k).dtype == torch.float64


# ------------------------------------------------------------------ the reference itself

def test_reference_attend_equals_scaled_dot_product_attention():
    torch.manual_seed(0)
    T, B, H, D = 7, 3, 4, 5
    q, k, v = torch.randn(B, H), torch.randn(T, B, H), torch.randn(T, B, D)
    mask = torch.arange(T)[:, None] < torch.tensor([7, 3, 1])[None, :]
    _, context = REF.attend(REF.dot_scores(q, k, scaled=True), v, mask)
    want = torch.nn.functional.scaled_dot_product_attention(q[:, None], k.transpose(0, 1), v.transpose(0, 1),
                                                            attn_mask=mask.T[:, None])[:, 0]
    torch.testing.assert_close(context, want)


def test_reference_general_score_with_identity_is_the_dot_score():
    q, k = torch.randn(3, 4), torch.randn(5, 3, 4)
    torch.testing.assert_close(REF.general_scores(q, k, torch.eye(4)), REF.dot_scores(q, k))


def test_reference_masked_softmax_gradient_is_zero_on_padding_and_finite():
    scores = torch.tensor([[1e4, 0.0], [-1e4, 3.0], [5.0, 1e4]], requires_grad=True)
    mask = torch.tensor([[True, True], [True, True], [True, False]])
    weights = REF.masked_softmax(scores, mask)
    (weights * torch.randn(3, 2)).sum().backward()
    assert torch.all(torch.isfinite(scores.grad)) and scores.grad[2, 1] == 0


def test_reference_decoder_matches_the_books_model_on_shared_weights():
    """The lab's step is speechmodels.attention's dot decoder without the query projection's bias."""
    from speechmodels.attention import AttentionDecoder as BookDecoder
    torch.manual_seed(0)
    lab = REF.AttentionDecoder(13, 4, 5, 6)
    book = BookDecoder(6, 5, 13, emb=4, score="dot", attention_size=5)
    with torch.no_grad():
        book.key.weight.copy_(lab.key.weight)
        book.query.weight.copy_(torch.eye(5))
        for name in ("init", "embed", "cell", "out"):
            getattr(book, name).load_state_dict(getattr(lab, name).state_dict())
    states, lengths = torch.randn(7, 3, 6), torch.tensor([7, 4, 1])
    y_in = torch.tensor([[1, 1, 1], [5, 6, 7]])
    with torch.no_grad():
        lab_logits, lab_weights = lab(states, lengths, y_in)
        book_logits, book_weights = book(states, lengths, y_in)
    torch.testing.assert_close(lab_logits, book_logits)
    torch.testing.assert_close(lab_weights, book_weights)


# --------------------------------------------------------------------- visible self-checks

def test_selfcheck_data_is_what_the_reference_writes():
    import importlib.util
    spec = importlib.util.spec_from_file_location("ch03_selfcheck_data", LAB / "selfcheck_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built = module.build()
    with np.load(selfcheck.DATA) as committed:
        assert set(committed.files) == set(built)
        for key, value in built.items():
            np.testing.assert_allclose(committed[key], value, rtol=1e-6, atol=1e-7, err_msg=key)


def test_visible_self_checks_pass_on_the_reference(capsys):
    results = visible_results(namespace(reference_answers()))
    assert {g: e for g, e in results.items() if e is not None} == {}
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == len(VISIBLE) and all(line.startswith("✓ ") and line.endswith(" passed")
                                                for line in printed)


def test_visible_self_checks_on_untouched_stubs_raise_not_implemented():
    ns = namespace({g: stub(s) for g, s in reference_cells().items()})
    for grade_id, error in visible_results(ns).items():
        assert isinstance(error, NotImplementedError), (grade_id, error)


@pytest.mark.parametrize("fixture", sorted(EXPECTED_FAILURES))
def test_visible_self_checks_agree_with_the_hidden_tests(fixture):
    """A wrong submission trips a visible self-check, in words; a right one trips none."""
    results = visible_results(submission(fixture))
    failed = {g for g, e in results.items() if e is not None}
    allowed = EXPECTED_FAILURES[fixture]
    assert failed <= allowed, {g: repr(results[g]) for g in failed - allowed}
    if allowed and fixture not in HIDDEN_ONLY:
        worded = [e for e in results.values() if isinstance(e, CheckFailed)]
        assert worded, f"{fixture}: no visible check explains the mistake in words: {results}"
    for grade_id in failed:
        assert type(results[grade_id]) is not AssertionError, f"{grade_id}: bare AssertionError"


# ------------------------------------------------------------ the chapter's experiment

RESULTS = ROOT / "book" / "results" / "ch03_attention.json"


SOURCES = ("synthetic", "real")


def _right(model: dict, source: str, lengths) -> tuple[int, int]:
    """(strings right, strings) of one model on one source of test_by_length over some lengths."""
    scores = model["by_source"][source]
    n = scores["utterances_per_length"]
    return sum(round(scores["accuracy_by_length"][str(L)] * n) for L in lengths), n * len(lengths)


def _difference(a: tuple[int, int], b: tuple[int, int]) -> tuple[float, float]:
    """95% interval of rate a minus rate b (Newcombe, from Wilson intervals), as chapter 3 computes it."""
    import math
    from speechmodels.metrics import binomial_interval
    (k1, n1), (k2, n2) = a, b
    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = binomial_interval(k1, n1), binomial_interval(k2, n2)
    return p1 - p2 - math.hypot(p1 - l1, u2 - p2), p1 - p2 + math.hypot(u1 - p1, p2 - l2)


def test_committed_attention_results_use_the_shared_budget():
    """The committed run used CONFIG, and, per source, shows what chapter 3 says it shows
    (every comparison with the chapter's 95% intervals)."""
    from speechmodels.metrics import binomial_interval
    from speechmodels.training import CONFIG
    result = json.loads(RESULTS.read_text())
    assert result["config"] == CONFIG, "rerun experiments/ch03_attention.py after changing CONFIG"
    models = result["models"]
    assert set(models) == {"none", "dot", "location"}
    for name, model in models.items():
        assert model["steps"] == CONFIG["steps"], name
        assert sorted(map(int, model["accuracy_by_length"])) == list(range(1, 11)), name
        assert model["train_seconds"] > 0 and model["train_cpu_seconds"] > 0, name
        assert set(model["by_source"]) == set(SOURCES), name
        for source in SOURCES:
            assert model["by_source"][source]["utterances_per_length"] == 50, (name, source)
            assert sorted(map(int, model["by_source"][source]["accuracy_by_length"])) == list(range(1, 11))
    for name in ("dot", "location"):
        path = ROOT / "book" / "results" / result["weights"][name]
        assert path.exists() and path.stat().st_size < 2_000_000, name
    interval = lambda name, source, lengths: binomial_interval(*_right(models[name], source, lengths))
    short, long = range(1, 4), range(8, 11)
    for source in SOURCES:
        # no attention falls with length on both sources: 1-3 digits wholly above 8-10
        assert interval("none", source, short)[0] > interval("none", source, long)[1], source
    # both attention models beat no attention by more than the noise at every length from
    # 4 digits on for the synthetic voices and at 5-9 for the real speakers (at 10 digits
    # the real speakers' 0 of 50 against 2-4 of 50 is inside the noise)
    beats = {(name, source): {L for L in range(1, 11)
                              if _difference(_right(models[name], source, [L]), _right(models["none"], source, [L]))[0] > 0}
             for name in ("dot", "location") for source in SOURCES}
    for name in ("dot", "location"):
        assert beats[name, "synthetic"] >= set(range(4, 11)), (name, sorted(beats[name, "synthetic"]))
        assert beats[name, "real"] >= set(range(5, 10)), (name, sorted(beats[name, "real"]))
    for name in ("dot", "location"):
        synthetic = [models[name]["by_source"]["synthetic"]["accuracy_by_length"][str(n)] for n in range(1, 11)]
        # synthetic voices: high at every length (0.74 is 13 errors of 50), at most one length
        # measurably below one digit, and not two neighbours; the chapter asserts it too
        assert min(synthetic) >= 0.7 and np.mean(synthetic) >= 0.85, (name, synthetic)
        below = [L for L in range(1, 11) if interval(name, "synthetic", [L])[1] < interval(name, "synthetic", [1])[0]]
        assert len(below) <= 1, (name, below)
        # real speakers: lower than the synthetic voices over all lengths, and falling with length
        assert interval(name, "real", range(1, 11))[1] < interval(name, "synthetic", range(1, 11))[0], name
        assert interval(name, "real", [1])[0] > interval(name, "real", [10])[1], name
        # ... as compounding, not a bottleneck: p^n inside the measured interval at 9 lengths
        # of 10 on each source, and a real digit no more often wrong in 8-10-digit strings
        for source in SOURCES:
            scores = models[name]["by_source"][source]
            inside = [L for L in range(1, 11) if interval(name, source, [L])[0]
                      <= scores["independent_errors_prediction"][str(L)] <= interval(name, source, [L])[1]]
            assert len(inside) >= 9, (name, source, inside)
        der = models[name]["by_source"]["real"]["digit_error_rate_by_length"]
        pooled = {g: sum(der[str(L)] * L for L in g) / sum(g) for g in (short, long)}
        assert pooled[long] <= pooled[short], (name, pooled)
    # location-aware attention is not measurably better than dot-product on either source,
    # over all lengths or on 8-10 digits, and over all lengths the two cannot be told apart
    for source in SOURCES:
        for lengths in (range(1, 11), long):
            low, high = _difference(_right(models["location"], source, lengths), _right(models["dot"], source, lengths))
            assert low <= 0, (source, lengths, low, high)
            if lengths == range(1, 11):
                assert high >= 0, (source, low, high)


def test_committed_weights_reproduce_the_committed_accuracy():
    """The attention models' state_dicts, loaded into fresh models, transcribe each source's 1- and
    2-digit utterances as the JSON says (chapter 3 draws its maps and finds its examples with them)."""
    from speechcourse.corpus import load_split
    from speechmodels.attention import speech_model
    from speechmodels.training import CONFIG, transcribe
    result = json.loads(RESULTS.read_text())
    split = load_split("test_by_length", stack=CONFIG["stack"])
    keep = [i for i, n in enumerate(split.n_digits) if n <= 2]
    from speechcourse.corpus import Split
    small = Split("small", [split.features[i] for i in keep], [split.texts[i] for i in keep],
                  [split.voices[i] for i in keep], [split.sources[i] for i in keep])
    for name in ("dot", "location"):
        model = speech_model(small.features[0].shape[1], name, CONFIG)
        state = torch.load(ROOT / "book" / "results" / result["weights"][name])
        model.load_state_dict({k: v.float() for k, v in state.items()})
        model.eval()
        for source in SOURCES:
            part = small.only(source)
            assert len(part) == 100, (name, source)
            hyps = transcribe(model, part)
            for n in (1, 2):
                acc = np.mean([h == t for h, t, d in zip(hyps, part.texts, part.n_digits) if d == n])
                committed = result["models"][name]["by_source"][source]["accuracy_by_length"][str(n)]
                assert abs(acc - committed) <= 0.04, (name, source, n, acc, committed)


def test_attention_script_smoke(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location("ch03_attention_experiment", ROOT / "experiments" / "ch03_attention.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from speechmodels.training import CONFIG
    result = module.train_speech("dot", dict(CONFIG, steps=2), "smoke test", folder=tmp_path)
    assert result["steps"] == 2 and (tmp_path / "ch03_dot.pt").exists()
    assert [len(result["position_accuracy_by_length"][str(n)]) for n in range(1, 11)] == list(range(1, 11))
