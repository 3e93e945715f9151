"""The self-checks and the hidden tests speak Korean under ``use("ko")`` and exactly the old English
under ``use("en")``.

The Korean release of a lab runs ``use("ko")`` (speechcourse/language.py): every sentence a
student can read from a check (speechcourse/checks.py, gradcheck.py, selfcheck/) is then
Korean, and so is every sentence of the hidden tests (solutions/<lab>/hidden_tests.py, and
what autograder/hidden.py adds to them) when they run in Korean. Three kinds of test:

- a few deliberately wrong submissions per lab (the fixtures of tests/fixtures/<lab>/, as in
  the chapter tests) fail with a Korean sentence under ``use("ko")`` and with an English one,
  with no Hangul, under ``use("en")``; the stubs and the "✓ ... passed" lines likewise;
- the shared checks (expect_shape, expect_close, describe, gradcheck) directly;
- an AST scan: no string literal or f-string is handed straight to CheckFailed,
  SelfCheckFailed, NotWrittenYet, TooLargeForGradcheck, ValueError, expect_true or print in
  those modules and in the hidden tests; each goes through ``say(english, korean)``, so a later
  English-only message fails here. Nor is an English phrase handed straight to a comparison
  (expect_close, expect_shape, ...) as the name or the ``what`` of a compared value: a code
  name ("causal_mask(6)") or a formula may be, a phrase ("returned by ...") must be said.

The hidden tests are driven as the chapter tests drive them (tests/labtests.py): a fixture's
answers over the reference, one hidden test through ``autograder.hidden.LocalStudent``.
"""
from __future__ import annotations

import ast
import io
import re
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

import test_ch01_vanilla_rnn as lab1
import test_ch02_seq2seq as lab2
import test_ch03_attention as lab3
import test_ch04_self_attention as lab4
import test_ch05_autoregression as lab5
from autograder import calls
from autograder.hidden import NOTES_KO, LocalStudent, run_test
from labtests import stub
from speechcourse.checks import CheckFailed, describe, expect_close, expect_dtype, expect_shape
from speechcourse.gradcheck import TooLargeForGradcheck, expect_gradient_close, numerical_gradient
from speechcourse.language import current, use

ROOT = Path(__file__).resolve().parents[1]
HANGUL = re.compile("[가-힣]")
MODULES = [ROOT / "speechcourse" / "checks.py", ROOT / "speechcourse" / "gradcheck.py",
           ROOT / "speechcourse" / "selfcheck" / "__init__.py",
           *sorted((ROOT / "speechcourse" / "selfcheck").glob("ch0*_*.py"))]
HIDDEN_TESTS = sorted((ROOT / "solutions").glob("ch0*_*/hidden_tests.py"))


@pytest.fixture(autouse=True)
def english_afterwards():
    """Each test starts and ends in English, whatever it switched to."""
    use("en")
    yield
    use("en")


# (lab, fixture, grade_id, an English fragment of its message, a Korean fragment of it)
WRONG = [
    (lab1, "tanh_missing", "test_rnn_step", "apply tanh to it", "tanh를 적용하십시오"),
    (lab1, "bias_grad_mean_over_batch", "test_rnn_backward_one_step", "averaged over the batch",
     "배치에 대해 평균을 냈습니다"),
    (lab1, "clip_per_tensor", "test_clip_gradients_scales", "ONE global norm", "전역 노름을 하나만"),
    (lab1, "gradient_norms_reversed", "test_gradient_norms_shape", "differs from", "차이가 납니다"),
    (lab2, "loss_mean_over_padding", "test_masked_cross_entropy", "padding included", "패딩을 포함한"),
    (lab2, "decoder_state_reset", "test_decoder_forward", "starts every step from the context",
     "모든 단계를 context에서 시작합니다"),
    (lab2, "greedy_no_eos_stop", "test_greedy_decode_eos", "It contains </s>", "</s> (= 2)가 들어 있습니다"),
    (lab3, "mask_fills_zero", "test_masked_softmax", "on a padded frame", "패딩 프레임에"),
    (lab3, "softmax_unstable", "test_masked_softmax_stable", "exp(1e4) overflows", "넘칩니다"),
    (lab3, "mask_after_softmax", "test_decoder_step", "returned by AttentionDecoder.step",
     "AttentionDecoder.step이(가) 돌려준 weights"),
    (lab4, "post_norm", "test_encoder_layer", "that is post-norm", "post-norm"),
    (lab4, "no_head_count_check", "test_mhsa_head_count", "did not raise", "오류를 일으키지 않았습니다"),
    (lab4, "weights_detached", "test_scaled_dot_product_attention", "no gradient reaches q", "기울기가 없습니다"),
    (lab5, "mask_transposed", "test_causal_mask", "causal_mask is transposed", "전치되어 있습니다"),
    (lab5, "causal_mask_numpy", "test_causal_mask", "got an array of shape (4, 4) and dtype bool",
     "모양 (4, 4), dtype bool인 배열"),
    (lab5, "cache_appended_twice", "test_decoder_step_cache", "expected shape (B, n_h, u + 1, d_head)",
     "모양이 (B, n_h, u + 1, d_head)"),
    (lab5, "beam_keeps_eos_token", "test_beam_search_scores", "leave </s> (= 2) out", "</s> (= 2)는 빼십시오"),
    (lab5, "wer_insertions_not_counted", "test_word_error_rate_counts", "(worked by hand)", "손으로 계산한 값"),
]


def _message(lab, fixture, grade_id, language) -> str:
    use(language)
    with redirect_stdout(io.StringIO()):
        error = lab.THIS_LAB.visible_results(lab.THIS_LAB.submission(fixture))[grade_id]
    assert isinstance(error, CheckFailed), (fixture, grade_id, error)
    return str(error)


@pytest.mark.parametrize("lab, fixture, grade_id, english, korean", WRONG,
                         ids=[f"{w[0].SLUG}-{w[1]}" for w in WRONG])
def test_a_wrong_answer_fails_in_the_language_in_use(lab, fixture, grade_id, english, korean):
    ko = _message(lab, fixture, grade_id, "ko")
    assert korean in ko and english not in ko.replace("post-norm", ""), ko
    assert HANGUL.search(ko), ko
    en = _message(lab, fixture, grade_id, "en")
    assert english in en and not HANGUL.search(en), en


# hidden tests: (lab, fixture, grade_id, an English fragment of its message, a Korean fragment of it)
HIDDEN_WRONG = [
    (lab1, "clip_in_place", "test_clip_gradients_scales", "changed its argument grads['Wxh']",
     "제자리에서 바꾸었습니다"),
    (lab1, "clip_returns_input_dict", "test_clip_gradients_below_threshold", "itself, not a new dict",
     "새 dict가 아니라"),
    (lab1, "output_bias_missing", "test_rnn_forward_outputs", "ys returned by rnn_forward differs from",
     "rnn_forward가 돌려준 ys: 인덱스"),
    (lab2, "greedy_stops_batch_at_first_eos", "test_greedy_decode_batch", "must stop at its own </s>",
     "발화마다 자기 </s>에서 멈추고"),
    (lab2, "step_always_eos", "test_decoder_forward", "Fix step first", "step부터 고치십시오"),
    # the sandbox's note on a loss built with .item() is said in Korean too (autograder.hidden.NOTES_KO)
    (lab2, "loss_through_item", "test_masked_cross_entropy", "requires_grad is False",
     "requires_grad가 False입니다"),
    (lab3, "mask_fills_zero", "test_masked_softmax", "set their scores to -inf", "-inf로 두십시오"),
    (lab3, "attend_ignores_mask", "test_decoder_step", "which is wrong: fix it first",
     "attend (또는 그것이 쓰는 masked_softmax)이(가) 틀렸습니다"),
    (lab3, "softmax_detached", "test_attend", "no gradient can flow back to its inputs",
     "거슬러 흐를 수 없습니다"),
    (lab4, "no_head_count_check", "test_mhsa_head_count", "did not raise", "오류를 일으키지 않았습니다"),
    (lab4, "positions_numpy", "test_sinusoidal_positions", "should return a torch tensor",
     "torch 텐서를 돌려주어야 하는데"),
    (lab4, "sin_cos_swapped", "test_encoder_positions", "Encoder cannot be checked while",
     "Encoder를 확인할 수 없습니다"),
    (lab5, "causal_mask_numpy", "test_causal_mask", "does not work as attn_mask", "attn_mask로 작동하지 않습니다"),
    (lab5, "beam_keeps_eos_token", "test_beam_search_scores", "a finished hypothesis leaves the beam",
     "</s>를 뺀 채로 빔을 떠납니다"),
    (lab5, "wer_insertions_not_counted", "test_word_error_rate_counts", "but the Levenshtein distance is",
     "레벤슈타인 거리는 2입니다"),
]


def _hidden_message(lab, fixture, grade_id, language=None) -> str:
    """The message of one hidden test on a fixture, run as labtests.LabUnderTest runs it."""
    if language is not None:
        use(language)
    passed, message = run_test(lab.THIS_LAB.hidden[grade_id], LocalStudent(lab.THIS_LAB.submission(fixture)))
    assert not passed, (fixture, grade_id)
    return message


@pytest.mark.parametrize("lab, fixture, grade_id, english, korean", HIDDEN_WRONG,
                         ids=[f"{w[0].SLUG}-{w[1]}" for w in HIDDEN_WRONG])
def test_a_hidden_test_fails_in_the_language_in_use(lab, fixture, grade_id, english, korean):
    ko = _hidden_message(lab, fixture, grade_id, "ko")
    assert korean in ko and english not in ko, ko
    en = _hidden_message(lab, fixture, grade_id, "en")
    assert english in en and not HANGUL.search(en), en


def test_run_test_runs_one_test_in_the_language_asked_for():
    """The grader's process never runs the student's use("ko"): it names the language per test."""
    assert current() == "en"
    ko = _hidden_message(lab4, "no_head_count_check", "test_mhsa_head_count")
    assert "did not raise" in ko
    passed, ko = run_test(lab4.THIS_LAB.hidden["test_mhsa_head_count"],
                          LocalStudent(lab4.THIS_LAB.submission("no_head_count_check")), language="ko")
    assert not passed and "오류를 일으키지 않았습니다" in ko, ko
    assert current() == "en"
    use("ko")
    passed, en = run_test(lab4.THIS_LAB.hidden["test_mhsa_head_count"],
                          LocalStudent(lab4.THIS_LAB.submission("no_head_count_check")), language="en")
    assert not passed and "did not raise" in en and not HANGUL.search(en), en
    assert current() == "ko"


def test_every_fixed_note_of_the_sandbox_has_a_korean_twin():
    """autograder.calls._loss says why no loss could be formed; the grader says it in Korean."""
    import torch
    notes = [calls._loss(torch.ones(2), None)[1],                       # not one number
             calls._loss(torch.ones(1), None)[1],                       # not connected
             calls._loss((torch.ones(1),), (torch.ones(1), torch.ones(1)))[1],
             calls._loss((None, torch.ones(1)), (torch.ones(1), None))[1],
             calls._loss(torch.ones(1), (None,))[1]]                    # nothing to differentiate
    assert all(note in NOTES_KO for note in notes), [n for n in notes if n not in NOTES_KO]
    assert all(HANGUL.search(ko) for ko in NOTES_KO.values())


@pytest.mark.parametrize("lab", [lab1, lab2, lab3, lab4], ids=lambda lab: lab.SLUG)
def test_the_stub_message_is_korean(lab):
    ns = lab.THIS_LAB.namespace({g: stub(s) for g, s in lab.THIS_LAB.reference_cells().items()})
    for language, words in (("ko", "아직 빈 틀(stub) 그대로입니다"), ("en", "it is still the stub")):
        use(language)
        for grade_id, error in lab.THIS_LAB.visible_results(ns).items():
            assert isinstance(error, NotImplementedError) and words in str(error), (grade_id, error)
            assert bool(HANGUL.search(str(error))) == (language == "ko"), (grade_id, error)


def test_the_passed_lines_are_korean(capsys):
    """'✓ ... 통과' for every check of Labs 1 and 5 on the reference; '✓ ... passed' in English."""
    for lab in (lab1, lab5):
        ns = lab.THIS_LAB.namespace(lab.THIS_LAB.reference_answers())
        for language, word in (("ko", " 통과"), ("en", " passed")):
            use(language)
            assert all(e is None for e in lab.THIS_LAB.visible_results(ns).values())
            lines = capsys.readouterr().out.splitlines()
            assert len(lines) == len(lab.VISIBLE), lines
            assert all(line.startswith("✓ ") and line.endswith(word) for line in lines), lines
    use("ko")
    assert current() == "ko"


def test_the_shared_checks_speak_korean():
    use("ko")
    with pytest.raises(CheckFailed, match=r"x: 모양이 \(T, B\) = \(2, 3\)이어야 하는데 \(3, 2\)입니다\. 크기는 맞지만"):
        expect_shape("x", np.zeros((3, 2)), (2, 3), "T, B")
    with pytest.raises(CheckFailed, match=r"y: 인덱스 \(1,\)에서 1\.0e\+00만큼 차이가 납니다 \(받은 값 1, 기대값 0\)\. 비교 대상: 기대값\."):
        expect_close("y", np.array([0.0, 1.0]), np.array([0.0, 0.0]))
    with pytest.raises(CheckFailed, match=r"z: numpy 배열이어야 하는데 길이 2인 list입니다\."):
        expect_close("z", [1.0, 2.0], np.zeros(2))
    with pytest.raises(CheckFailed, match=r"ids: dtype이 int64 \(torch\.long\)이어야 하는데 float64입니다\."):
        expect_dtype("ids", np.zeros(2), "int64")
    with pytest.raises(CheckFailed, match=r"W의 기울기: 인덱스 \(0,\)에서 .* 비교 대상: 수치 기울기\."):
        expect_gradient_close("W", np.array([1.0]), np.array([0.0]))
    with pytest.raises(TooLargeForGradcheck, match=r"작은 예만 확인합니다: .*\(5, 5\).*25개"):
        numerical_gradient(lambda x: float(x.sum()), np.zeros((5, 5)))
    assert describe((1, 2, 3)) == "길이 3인 tuple"
    use("en")
    assert describe((1, 2, 3)) == "a tuple of length 3"
    with pytest.raises(CheckFailed, match=r"y differs from the expected value by 1\.0e\+00 at index \(1,\)"):
        expect_close("y", np.array([0.0, 1.0]), np.array([0.0, 0.0]))


# ------------------------------------------------------------------ every message goes through say()

RAISERS = {"CheckFailed", "SelfCheckFailed", "NotWrittenYet", "TooLargeForGradcheck", "ValueError", "print"}


def _is_text(node: ast.AST) -> bool:
    """A literal sentence: a string, an f-string, or one glued from them with +."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return True
    if isinstance(node, ast.JoinedStr):
        return True
    return isinstance(node, ast.BinOp) and (_is_text(node.left) or _is_text(node.right))


def _name(func: ast.AST) -> str | None:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def english_only_messages(path: Path) -> list[str]:
    """'file:line' of each message handed to a raiser (or to expect_true) without say()."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        if name in RAISERS:
            messages = node.args[:1]
        elif name == "expect_true":
            messages = node.args[1:2] + [k.value for k in node.keywords if k.arg == "message"]
        else:
            continue
        found += [f"{path.name}:{m.lineno}" for m in messages if _is_text(m)]
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_every_message_goes_through_say(path):
    assert english_only_messages(path) == []


@pytest.mark.parametrize("path", HIDDEN_TESTS, ids=lambda p: p.parent.name)
def test_every_hidden_test_message_goes_through_say(path):
    assert len(HIDDEN_TESTS) == 5
    assert english_only_messages(path) == []
    assert english_only_names(path) == []


PROSE = re.compile(r"\b[A-Za-z][a-z']+ [a-z]{2,}\b")      # "returned by ...", "the reference's ..."
COMPARERS = {"expect_close", "expect_shape", "expect_dtype", "as_array", "_close", "_values",
             "expect_gradient_close"}


def _literal_text(node: ast.AST) -> str | None:
    """The literal words of a string, an f-string (its fields as {}) or a + of them, else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    if isinstance(node, ast.BinOp):
        left, right = _literal_text(node.left), _literal_text(node.right)
        return None if left is None and right is None else (left or "") + (right or "")
    return None


def english_only_names(path: Path) -> list[str]:
    """'file:line' of each English phrase handed to a comparison as a name or a ``what`` without say()."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and _name(node.func) in COMPARERS):
            continue
        for given in node.args[:1] + [k.value for k in node.keywords if k.arg in ("name", "what")]:
            text = _literal_text(given)
            if text is not None and PROSE.search(text):
                found.append(f"{path.name}:{given.lineno}")
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_every_compared_value_is_named_through_say(path):
    assert english_only_names(path) == []


def test_the_scan_finds_an_english_only_message(tmp_path):
    bad = tmp_path / "probe.py"
    bad.write_text('def check(x):\n    expect_true(x, f"x is {x}")\n    raise CheckFailed("plain English")\n'
                   '    raise CheckFailed(say("fine", "좋습니다"))\n')
    assert english_only_messages(bad) == ["probe.py:2", "probe.py:3"]


def test_the_scan_finds_an_english_only_name(tmp_path):
    bad = tmp_path / "probe.py"
    bad.write_text('def check(x, n):\n    expect_close(f"x returned by f (n = {n})", x, 0)\n'
                   '    expect_close("causal_mask(6)", x, 0, what="the reference\'s mask")\n'
                   '    expect_shape(say("x returned by f", "f가 돌려준 x"), x, (2,), "T")\n'
                   '    expect_close(f"f(x)[{n}]", x, 0, what="out([s; context])")\n')
    assert english_only_names(bad) == ["probe.py:2", "probe.py:3"]
