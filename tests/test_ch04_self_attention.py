"""Lab 4 (self-attention): the reference, the hidden tests and the visible self-checks.

In-process and fast: each fixture's answers are exec'd over the reference answers (the
solution cells of the instructor notebook) and every hidden test runs on that namespace
through ``autograder.hidden.LocalStudent``. ``EXPECTED_FAILURES`` is the contract: for each
fixture, exactly the test cells that must fail. ``test_grading_ch04_self_attention.py`` checks
the same table through the sandboxed grader.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from labtests import LabContract, LabUnderTest, stub
from speechcourse.checks import CheckFailed
from speechcourse.selfcheck import ch04_self_attention as selfcheck

SLUG = "ch04_self_attention"
ROOT = Path(__file__).resolve().parents[1]

SOLUTION_IDS = ("scaled_dot_product_attention", "split_heads", "merge_heads", "MultiHeadSelfAttention",
                "sinusoidal_positions", "EncoderLayer", "Encoder")
# what the notebook's setup cell gives the solution cells
SETUP = "import math\nimport numpy as np\nimport torch\nfrom torch import nn\n"

TEST_POINTS = {
    "test_scaled_dot_product_attention": 2,
    "test_attention_mask": 1,
    "test_split_heads": 1,
    "test_merge_heads": 1,
    "test_mhsa_matches_torch": 2,
    "test_mhsa_key_padding": 1,
    "test_mhsa_head_count": 1,
    "test_sinusoidal_positions": 2,
    "test_encoder_layer": 2,
    "test_encoder_positions": 1,
    "test_encoder_padding": 1,
    "test_encoder_equivariance": 1,
}
MANUAL_POINTS = {"explain_positions": 2}

MHSA = {"test_mhsa_matches_torch", "test_mhsa_key_padding"}
# the encoder is compared with the reference with known weights (two and three layers) in each of
# its cells, so a mistake in anything it is built on costs them too; ENCODER_LAYERS when its
# property tests hold (the mistake keeps the encoder permutation-equivariant)
ENCODER = {"test_encoder_positions", "test_encoder_padding", "test_encoder_equivariance"}
ENCODER_LAYERS = {"test_encoder_positions", "test_encoder_padding"}
LAYER = {"test_encoder_layer"} | ENCODER
# fixture -> the test cells that must fail (empty: a correct alternative, full marks)
EXPECTED_FAILURES = {
    # split_heads is used by the attention module and so by the layer and the encoder
    "heads_view_without_transpose": {"test_split_heads"} | MHSA | LAYER,
    "scale_by_d_model": MHSA | LAYER,
    # a wrong attention used to waive the layer's full-weight check (issue 19): not any more
    "layer_bug_behind_wrong_attention": MHSA | LAYER,
    "padding_mask_wrong_axis": {"test_mhsa_key_padding", "test_encoder_layer", "test_encoder_padding"},
    "softmax_over_queries": {"test_scaled_dot_product_attention", "test_attention_mask"} | MHSA | LAYER,
    "mask_fills_zero": {"test_attention_mask", "test_mhsa_key_padding", "test_encoder_layer", "test_encoder_padding"},
    # -1e4 added instead of -inf: the +-1e4 cases of the mask and of the key padding
    "sdpa_mask_adds_minus_1e4": {"test_attention_mask", "test_mhsa_key_padding"},
    # the encoder's positions are the student's own, checked before the encoder is judged
    "sin_cos_swapped": {"test_sinusoidal_positions"} | ENCODER,
    "frequency_exponent_wrong": {"test_sinusoidal_positions"} | ENCODER,
    # right values as a numpy array: the type is checked in the sandbox, and the encoder breaks on it
    "positions_numpy": {"test_sinusoidal_positions"} | ENCODER,
    # values right, gradients wrong: training would never learn the queries and keys
    "weights_detached": {"test_scaled_dot_product_attention", "test_mhsa_matches_torch", "test_encoder_layer",
                         "test_encoder_positions"},
    "residual_missing": LAYER,
    "post_norm": LAYER,
    "positions_after_first_layer": ENCODER,
    # encoders that only a comparison with known weights at two layers or more finds
    "encoder_layers_not_chained": ENCODER,
    "encoder_norm_after_every_layer": ENCODER,
    "encoder_positions_before_every_layer": ENCODER,
    "encoder_ignores_lengths": {"test_encoder_padding"},
    # a real all-zero frame inside an utterance is not padding
    "encoder_pads_from_zero_frames": {"test_encoder_padding"},
    "no_head_count_check": {"test_mhsa_head_count"},
    "ok_einsum_and_additive_mask": set(),
    "ok_heads_by_transpose": set(),
    "ok_mhsa_loop_over_heads": set(),
    "ok_positions_interleaved": set(),
    "ok_sdpa_finfo_min": set(),
    "ok_encoder_zeroes_padded_states": set(),
}
# mistakes that only the hidden tests find (the visible self-checks use small scores, one layer
# or lengths that fill T): no visible check has to word them
HIDDEN_ONLY = {"sdpa_mask_adds_minus_1e4", "encoder_layers_not_chained", "encoder_norm_after_every_layer",
               "encoder_positions_before_every_layer", "encoder_pads_from_zero_frames", "positions_numpy"}

# visible self-check of each test cell, called with the student's functions and classes
VISIBLE = {
    "test_scaled_dot_product_attention": ("check_scaled_dot_product_attention", ("scaled_dot_product_attention",)),
    "test_attention_mask": ("check_attention_mask", ("scaled_dot_product_attention",)),
    "test_split_heads": ("check_split_heads", ("split_heads",)),
    "test_merge_heads": ("check_merge_heads", ("merge_heads",)),
    "test_mhsa_matches_torch": ("check_mhsa_matches_torch", ("MultiHeadSelfAttention",)),
    "test_mhsa_key_padding": ("check_mhsa_key_padding", ("MultiHeadSelfAttention",)),
    "test_mhsa_head_count": ("check_mhsa_head_count", ("MultiHeadSelfAttention",)),
    "test_sinusoidal_positions": ("check_sinusoidal_positions", ("sinusoidal_positions",)),
    "test_encoder_layer": ("check_encoder_layer", ("EncoderLayer",)),
    "test_encoder_positions": ("check_encoder_positions", ("Encoder", "sinusoidal_positions")),
    "test_encoder_padding": ("check_encoder_padding", ("Encoder",)),
    "test_encoder_equivariance": ("check_encoder_equivariance", ("Encoder",)),
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
    import nbformat
    first_code = next(c for c in nbformat.read(THIS_LAB.notebook, as_version=4).cells if c.cell_type == "code")
    assert all(line in first_code.source for line in SETUP.splitlines()), first_code.source


def test_setup_cell_is_locked_in_the_source_and_the_student_notebook():
    """Students cannot edit the imports (issue 19): nbgrader metadata, locked, not graded."""
    import nbformat
    for path in (THIS_LAB.notebook, ROOT / "labs" / SLUG / f"{SLUG}.ipynb"):
        first_code = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        meta = first_code.metadata.get("nbgrader", {})
        assert meta.get("grade_id") == "setup" and meta.get("locked") is True, path
        assert not meta.get("solution") and not meta.get("grade"), path


def test_training_and_plotting_cells_are_skipped_when_grading():
    import nbformat
    cells = nbformat.read(THIS_LAB.notebook, as_version=4).cells
    tagged = [c for c in cells if "skip-when-grading" in c.metadata.get("tags", [])]
    assert any("ctc(" in c.source for c in tagged) and any("heatmap" in c.source for c in tagged)
    assert not any("nbgrader" in c.metadata for c in tagged)


# -------------------------------------------------------------------- the notebook itself

def test_given_layers_survive_the_release():
    """__init__ of the modules is outside the solution regions: students get the layers."""
    for grade_id, layers in (("MultiHeadSelfAttention", ["self.W_q = nn.Linear(d_model, d_model)",
                                                         "self.W_o = nn.Linear(d_model, d_model)"]),
                             ("EncoderLayer", ["self.norm1 = nn.LayerNorm(d_model)",
                                               "self.attention = MultiHeadSelfAttention(d_model, n_heads)"]),
                             ("Encoder", ["self.front = nn.Linear(n_in, d_model)", "self.norm = nn.LayerNorm(d_model)"])):
        left = stub(reference_cells()[grade_id])
        assert "def __init__" in left and all(layer in left for layer in layers), grade_id
        assert "raise NotImplementedError()" in left


# ------------------------------------------------------------------------ hidden tests

def test_renamed_layers_fail_with_a_message_about_the_names():
    answers = reference_answers()
    answers["MultiHeadSelfAttention"] = answers["MultiHeadSelfAttention"].replace("self.W_q", "self.query")
    results = hidden_results(namespace(answers))
    assert not results["test_mhsa_matches_torch"][0]
    assert "Keep the layers" in results["test_mhsa_matches_torch"][1]


def test_modifying_an_argument_is_caught_and_costs_only_its_cell():
    """The lab says arguments are left alone: the observed call sees a scribbler, the other
    calls get copies, so nothing else is affected."""
    ns = namespace(reference_answers())
    original = ns["scaled_dot_product_attention"]

    def scribbling(q, k, v, mask=None):
        result = original(q, k, v, mask)
        if not q.requires_grad:          # (in a gradient check the inputs are autograd leaves)
            q.zero_()
        return result

    ns["scaled_dot_product_attention"] = scribbling
    results = hidden_results(ns)
    assert not results["test_scaled_dot_product_attention"][0]
    assert "modified" in results["test_scaled_dot_product_attention"][1]
    assert results["test_attention_mask"][0] and results["test_mhsa_matches_torch"][0]


def test_head_count_error_must_be_a_value_error():
    answers = reference_answers()
    answers["MultiHeadSelfAttention"] = answers["MultiHeadSelfAttention"].replace(
        "raise ValueError(", "raise RuntimeError(")
    results = hidden_results(namespace(answers))
    assert not results["test_mhsa_head_count"][0] and "ValueError" in results["test_mhsa_head_count"][1]


# ------------------------------------------------------------------ the reference itself

def test_reference_attention_is_torch_multihead_attention():
    from speechmodels.transformer import MultiHeadAttention
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(12, 3).eval()
    ours_lab = REF.MultiHeadSelfAttention(12, 3)
    ours_book = MultiHeadAttention.from_torch(theirs)
    ours_lab.load_state_dict(ours_book.state_dict())
    x = torch.randn(6, 2, 12)
    pad = torch.tensor([[False] * 6, [False] * 3 + [True] * 3])
    with torch.no_grad():
        want, want_w = theirs(x, x, x, key_padding_mask=pad, average_attn_weights=False)
        got, got_w = ours_lab(x, pad)
        book, book_w = ours_book(x, key_padding_mask=pad)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_w, want_w, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(book, want, rtol=1e-5, atol=1e-6)


def test_reference_positions_match_the_books_and_the_formula():
    from speechmodels.transformer import sinusoidal_positions
    P = REF.sinusoidal_positions(40, 16)
    torch.testing.assert_close(P, sinusoidal_positions(40, 16))
    t, i = 7, 3
    assert np.isclose(P[t, 2 * i].item(), np.sin(t / 10000 ** (2 * i / 16)), atol=1e-6)
    assert np.isclose(P[t, 2 * i + 1].item(), np.cos(t / 10000 ** (2 * i / 16)), atol=1e-6)


def test_reference_encoder_layer_matches_the_books():
    from speechmodels.transformer import EncoderLayer
    torch.manual_seed(1)
    book = EncoderLayer(8, 2, 16).eval()
    lab = REF.EncoderLayer(8, 2, 16)
    state = {k.replace("attention.", "attention.").replace("feed_forward.3", "feed_forward.2"): v
             for k, v in book.state_dict().items()}
    lab.load_state_dict(state)
    x = torch.randn(5, 3, 8)
    pad = torch.tensor([[False] * 5, [False] * 2 + [True] * 3, [False] * 4 + [True]])
    with torch.no_grad():
        torch.testing.assert_close(lab(x, pad)[0], book(x, key_padding_mask=pad)[0])


# --------------------------------------------------------------------- visible self-checks

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
        error = results[grade_id]
        assert type(error) is not AssertionError, f"{grade_id}: bare AssertionError"
        if isinstance(error, CheckFailed):
            assert len(str(error)) > 25


# ------------------------------------------------------- the book's model code (speechmodels)

def test_key_value_cache_gives_causal_self_attention():
    """Chapter 5 builds its cache on keys_values/attend: step by step equals one causal pass."""
    from speechmodels.transformer import MultiHeadAttention, causal_mask
    torch.manual_seed(2)
    mha = MultiHeadAttention(16, 4).eval()
    y = torch.randn(6, 3, 16)                                        # (U, B, d_model)
    with torch.no_grad():
        full, _ = mha(y, attn_mask=causal_mask(6))
        k = v = None
        steps = []
        for u in range(6):
            k_u, v_u = mha.keys_values(y[u:u + 1])
            k = k_u if k is None else torch.cat([k, k_u], dim=2)
            v = v_u if v is None else torch.cat([v, v_u], dim=2)
            steps.append(mha.attend(y[u:u + 1], k, v)[0])
    torch.testing.assert_close(torch.cat(steps), full, rtol=1e-5, atol=1e-6)
    assert causal_mask(2, 4).tolist() == [[False, False, False, True], [False, False, False, False]]


def test_speech_encoder_states_are_zero_on_padding_and_independent_of_it():
    from speechmodels.transformer import SelfAttentionEncoder
    torch.manual_seed(3)
    encoder = SelfAttentionEncoder(12, 16, n_heads=2, n_layers=2, d_ff=32, dropout=0.0).eval()
    x = torch.randn(9, 2, 12)
    x[4:, 1] = 0
    with torch.no_grad():
        states, lengths = encoder(x, torch.tensor([9, 4]))
        alone, _ = encoder(x[:4, 1:2], torch.tensor([4]))
    assert lengths.tolist() == [9, 4] and torch.all(states[4:, 1] == 0)
    torch.testing.assert_close(states[:4, 1], alone[:, 0], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="divisible"):
        SelfAttentionEncoder(12, 10, n_heads=3)


def _experiment():
    import importlib.util
    spec = importlib.util.spec_from_file_location("ch04_experiment", ROOT / "experiments" / "ch04_self_attention.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_results_match_the_script_and_chapter_3s_recipe():
    import json
    from speechmodels.training import CONFIG
    experiment = _experiment()
    result = json.loads(experiment.OUT.read_text())
    assert result["config"] == CONFIG, "rerun experiments/ch04_self_attention.py after changing CONFIG"
    assert result["encoder"] == experiment.ENCODER and result["steps"] == CONFIG["steps"]
    assert sorted(map(int, result["accuracy_by_length"])) == list(range(1, 11))
    assert result["text_task"]["config"] == experiment.TEXT
    for name in ("ch04_self_attention.pt", "ch04_text_encoder.pt"):
        assert (ROOT / "book" / "results" / name).stat().st_size < 2 * 2**20
    model = experiment.load_speech_model()                      # the weights fit the script's model
    assert sum(p.numel() for p in model.parameters()) == result["parameters"]

    # what chapter 4 says of the two encoders, source by source (corpus v2), each with its 95% interval
    from speechmodels.metrics import binomial_interval
    ch03 = json.loads((ROOT / "book" / "results" / "ch03_attention.json").read_text())
    assert ch03["config"] == CONFIG and ch03["split"] == result["split"]    # the bi-GRU compared with
    bigru = ch03["models"]["location"]
    per = 50                                                    # strings of each length and source
    lengths = list(range(1, 11))

    def accuracy(run, source):
        return {int(n): a for n, a in run["by_source"][source]["accuracy_by_length"].items()}

    def difference(a, b, n):
        """a - b with Newcombe's 95% interval from the two Wilson intervals."""
        (la, ua), (lb, ub) = (binomial_interval(round(x * n), n) for x in (a, b))
        return a - b - np.hypot(a - la, ub - b), a - b + np.hypot(ua - a, b - lb)

    for source in ("synthetic", "real"):
        ours, theirs = accuracy(result, source), accuracy(bigru, source)
        assert sorted(ours) == lengths and sorted(theirs) == lengths
        # pooled over lengths, self-attention is the weaker encoder beyond the noise on both sources
        low, high = difference(np.mean(list(ours.values())), np.mean(list(theirs.values())), per * len(lengths))
        assert high < 0, (source, low, high)
        # on one-digit strings the two are within the noise of each other
        low, high = difference(ours[1], theirs[1], per)
        assert low <= 0 <= high, (source, low, high)
        # the pooled top-level field is the mean of the two sources (50 strings each)
        for n in lengths:
            assert abs(result["accuracy_by_length"][str(n)] - (ours[n] + accuracy(result, "synthetic" if source == "real"
                                                                                   else "real")[n]) / 2) < 1e-9
    # both encoders do far worse on the real speakers than on the synthetic voices
    for run in (result, bigru):
        synthetic, real = (np.mean(list(accuracy(run, s).values())) for s in ("synthetic", "real"))
        assert difference(synthetic, real, per * len(lengths))[0] > 0.2
    # at ten digits: far apart on the synthetic voices, within the noise on the real speakers
    assert difference(accuracy(result, "synthetic")[10], accuracy(bigru, "synthetic")[10], per)[1] < 0
    low, high = difference(accuracy(result, "real")[10], accuracy(bigru, "real")[10], per)
    assert low <= 0 <= high
    # p^n at the pooled digit accuracy: inside the measured interval almost everywhere on the
    # synthetic voices, below it (errors bunched in some strings) at some length on the real speakers
    misses = {}
    for source in ("synthetic", "real"):
        error = {int(n): e for n, e in result["by_source"][source]["digit_error_rate_by_length"].items()}
        p = 1 - sum(n * error[n] for n in lengths) / sum(lengths)
        ours = accuracy(result, source)
        cis = {n: binomial_interval(round(ours[n] * per), per) for n in lengths}
        misses[source] = ([n for n in lengths if p ** n < cis[n][0]], [n for n in lengths if p ** n > cis[n][1]])
    assert len(misses["synthetic"][0]) + len(misses["synthetic"][1]) <= 2 and misses["real"][0], misses


def test_experiment_script_runs_and_writes_its_results(tmp_path):
    experiment = _experiment()
    from speechmodels.training import CONFIG
    result = experiment.run(dict(CONFIG, steps=2), dict(experiment.TEXT, steps=2), tmp_path / "smoke.json")
    assert (tmp_path / "smoke.json").exists() and (tmp_path / "smoke.pt").exists()
    assert result["steps"] == 2 and sorted(map(int, result["accuracy_by_length"])) == list(range(1, 11))


def test_committed_speech_weights_have_one_local_head_on_both_sources():
    """Chapter 4's per-head reading: one clearly local head, the same on both sources; layer 1 near uniform."""
    from speechcourse.corpus import load_split
    from speechmodels.batches import make_batch
    experiment = _experiment()
    model = experiment.load_speech_model()
    test = load_split("test_by_length", stack=4)
    sources = np.array(test.sources)
    ratios = {}
    for source in ("synthetic", "real"):
        per_utterance = []
        for i in np.flatnonzero(sources == source)[::25]:                 # 20 utterances, 2 of each length
            batch = make_batch(test, [int(i)])
            x, lengths = torch.from_numpy(batch.x), torch.from_numpy(batch.x_lengths)
            with torch.no_grad():
                _, _, maps = model.encoder(model.front(x, lengths), lengths, return_weights=True)
            T = x.shape[0]
            distance = torch.abs(torch.arange(T)[:, None] - torch.arange(T)[None, :]).float()
            per_utterance.append([((m[0] * distance).sum(-1).mean(-1) / distance.mean()).numpy() for m in maps])
        ratios[source] = np.mean(per_utterance, axis=0)                     # (n_layers, n_heads)
    local = {s: np.unravel_index(np.argmin(r), r.shape) for s, r in ratios.items()}
    assert local["synthetic"] == local["real"], local
    for source, r in ratios.items():
        rest = np.delete(r.ravel(), np.ravel_multi_index(local[source], r.shape))
        # one head clearly apart from the rest (chapter 4 calls the others milder or near uniform)
        assert r[local[source]] < 0.6 and rest.min() > r[local[source]] + 0.15, (source, r.round(2))
        assert r[0].min() > 0.75, (source, r[0])                            # layer 1: near uniform


def test_committed_cost_numbers_cover_one_second_to_one_minute():
    import json
    cost = json.loads((ROOT / "book" / "results" / "ch04_attention_cost.json").read_text())
    T = [row["T"] for row in cost["rows"]]
    assert T[0] == 50 and T[-1] == 3000 and T == sorted(T)
    memory = [row["self-attention"]["peak_bytes"] for row in cost["rows"]]
    # the attention weights alone are n_h * T * T floats: memory grows at least that fast
    assert all(m >= 4 * t * t * 4 for m, t in zip(memory[2:], T[2:]))
    assert memory[-1] > 50 * cost["rows"][-1]["GRU"]["peak_bytes"]
