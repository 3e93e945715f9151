"""The self-checks speak Korean under ``use("ko")`` and exactly the old English under ``use("en")``.

The Korean release of a lab runs ``use("ko")`` (speechcourse/language.py): every sentence a
student can read from a check (speechcourse/checks.py, gradcheck.py, selfcheck/) is then
Korean. Three kinds of test:

- a few deliberately wrong submissions per lab (the fixtures of tests/fixtures/<lab>/, as in
  the chapter tests) fail with a Korean sentence under ``use("ko")`` and with an English one,
  with no Hangul, under ``use("en")``; the stubs and the "✓ ... passed" lines likewise;
- the shared checks (expect_shape, expect_close, describe, gradcheck) directly;
- an AST scan: no string literal or f-string is handed straight to CheckFailed,
  SelfCheckFailed, NotWrittenYet, TooLargeForGradcheck, ValueError, expect_true or print in
  those modules; each goes through ``say(english, korean)``, so a later English-only message
  fails here.
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
from labtests import stub
from speechcourse.checks import CheckFailed, describe, expect_close, expect_dtype, expect_shape
from speechcourse.gradcheck import TooLargeForGradcheck, expect_gradient_close, numerical_gradient
from speechcourse.language import current, use

ROOT = Path(__file__).resolve().parents[1]
HANGUL = re.compile("[가-힣]")
MODULES = [ROOT / "speechcourse" / "checks.py", ROOT / "speechcourse" / "gradcheck.py",
           ROOT / "speechcourse" / "selfcheck" / "__init__.py",
           *sorted((ROOT / "speechcourse" / "selfcheck").glob("ch0*_*.py"))]


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


def test_the_scan_finds_an_english_only_message(tmp_path):
    bad = tmp_path / "probe.py"
    bad.write_text('def check(x):\n    expect_true(x, f"x is {x}")\n    raise CheckFailed("plain English")\n'
                   '    raise CheckFailed(say("fine", "좋습니다"))\n')
    assert english_only_messages(bad) == ["probe.py:2", "probe.py:3"]
