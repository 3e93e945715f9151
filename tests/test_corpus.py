"""The committed digit corpus and its loader: splits, vocabulary, padding, batches."""
import time
from collections import Counter

import numpy as np
import pytest

from speechcourse import corpus
from speechcourse.corpus import DIGIT_VOCAB, SPLITS, load_split


@pytest.fixture(scope="module")
def splits():
    start = time.perf_counter()
    loaded = {name: load_split(name) for name in SPLITS}
    print(f"\nloaded all splits in {time.perf_counter() - start:.2f} s")   # shown with pytest -s
    return loaded


def test_every_split_is_well_formed(splits):
    for name, split in splits.items():
        assert len(split) == len(split.features) == len(split.voices) > 0, name
        for f, text in zip(split.features[:50], split.texts[:50]):
            assert f.dtype == np.float32 and f.ndim == 2 and f.shape[1] == corpus.N_MELS
            assert corpus.LOG_MEL_MIN <= f.min() and f.max() <= corpus.LOG_MEL_MAX
            assert 1 <= len(text.split()) <= 10 and set(text.split()) <= set(corpus.DIGITS)
        # about 50 frames a second and a few tenths of a second per digit, never absurd
        assert np.all(split.n_frames >= 5 * split.n_digits), name


def test_splits_are_disjoint_by_voice_and_by_speaker(splits):
    """Synthetic: disjoint by espeak-ng variant (accents are shared). Real: the test speakers
    george and lucas are in no training or validation utterance, and the validation takes
    (FSDD's takes 0-4) of the training speakers are in no training utterance (checked in
    the recipes, which name each take)."""
    def variants(name):      # the speaker is the variant after '+'; accents are shared
        return {v.split("+")[1] for v, s in zip(splits[name].voices, splits[name].sources) if s == "synthetic"}
    train, valid, test = variants("train"), variants("valid"), variants("test")
    assert not train & valid and not train & test and not valid & test
    assert variants("test_by_length") <= test and not variants("test_isolated")
    assert len(train) >= 40 and len(test) >= 10

    def speakers(name):
        return {v for v, s in zip(splits[name].voices, splits[name].sources) if s == "real"}
    real_train = {"fsdd:jackson", "fsdd:nicolas", "fsdd:theo", "fsdd:yweweler"}
    real_test = {"fsdd:george", "fsdd:lucas"}
    assert speakers("train") == speakers("valid") == real_train
    for name in ("test", "test_by_length", "test_isolated"):
        assert speakers(name) == real_test, name

    import importlib.util
    import sys
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("make_corpus", Path(__file__).resolve().parents[1] / "data" / "make_corpus.py")
    make_corpus = sys.modules["make_corpus"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_corpus)
    recipes = make_corpus.draw_recipes()
    takes = {split: {(r.speaker, w, t) for r in recipes if r.split == split and r.source == "real"
                     for w, t in zip(r.text.split(), r.takes)} for split in SPLITS}
    assert not takes["train"] & takes["valid"]
    assert {t for _, _, t in takes["valid"]} <= set(make_corpus.VALID_TAKES)
    for split in SPLITS:   # the recipes are the committed corpus's (same texts, same order)
        mine = [r for r in recipes if r.split == split]
        assert [r.text for r in mine] == splits[split].texts and [r.voice for r in mine] == splits[split].voices


def test_both_sources_in_every_split_and_isolated_real_digits(splits):
    for name in ("train", "valid", "test", "test_by_length"):
        s = splits[name]
        assert set(s.sources) == {"synthetic", "real"}, name
        first_real = s.sources.index("real")         # synthetic voices first, then real speakers
        assert set(s.sources[first_real:]) == {"real"}
        assert len(s.only("real")) + len(s.only("synthetic")) == len(s)
    iso = splits["test_isolated"]
    assert len(iso) == 1000 and set(iso.sources) == {"real"} and set(iso.n_digits.tolist()) == {1}
    assert Counter(iso.texts) == {d: 100 for d in corpus.DIGITS}
    assert len(splits["test"].only("real")) >= 1000
    with pytest.raises(ValueError, match="unknown source"):
        splits["test"].only("human")


def test_data_card_describes_the_committed_corpus(splits):
    """data/README.md's contents table is the committed digits.npz: utterances, hours of
    features (frames / 50), voices or speakers, counts by length, mean digits and seconds."""
    from pathlib import Path
    card = (Path(__file__).resolve().parents[1] / "data" / "README.md").read_text()
    rows = {}
    for line in card.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 17 and cells[0] in SPLITS:
            rows[cells[0], cells[1]] = cells
    assert len(rows) == 9, sorted(rows)
    total_hours = 0.0
    for (name, source), cells in rows.items():
        s = splits[name].only(source)
        if source == "synthetic":
            voices = {v.split("+")[1] for v in s.voices}     # the espeak-ng variant
        else:
            voices = set(s.voices)
        by_length = Counter(s.n_digits.tolist())
        seconds = s.n_frames / corpus.FRAME_RATE
        total_hours += seconds.sum() / 3600
        assert int(cells[2]) == len(s), (name, source)
        assert cells[3] == f"{seconds.sum() / 3600:.2f}", (name, source)
        assert int(cells[4]) == len(voices), (name, source)
        assert cells[5:15] == [str(by_length[n]) if by_length[n] else "" for n in range(1, 11)], (name, source)
        assert cells[15] == f"{s.n_digits.mean():.2f}" and cells[16] == f"{seconds.mean():.2f}", (name, source)
    assert f"**{sum(len(s) for s in splits.values())}** | **{total_hours:.2f}**" in card


def test_length_stratified_test_set_is_balanced(splits):
    for source in ("synthetic", "real"):
        counts = Counter(splits["test_by_length"].only(source).n_digits.tolist())
        assert sorted(counts) == list(range(1, 11))
        assert len(set(counts.values())) == 1, counts


def test_unknown_split_lists_the_valid_ones():
    with pytest.raises(ValueError, match="train, valid, test, test_by_length, test_isolated"):
        load_split("dev")


def test_stacking_on_load(splits):
    stacked = load_split("valid", stack=3)
    f, g = splits["valid"].features[0], stacked.features[0]
    assert g.shape == (len(f) // 3, 3 * corpus.N_MELS)
    np.testing.assert_array_equal(g[0], f[:3].reshape(-1))


def test_quantisation_round_trip():
    x = np.linspace(corpus.LOG_MEL_MIN - 3, corpus.LOG_MEL_MAX + 3, 1000).reshape(100, 10)
    back = corpus.dequantize(corpus.quantize(x))
    step = (corpus.LOG_MEL_MAX - corpus.LOG_MEL_MIN) / 255
    inside = (x >= corpus.LOG_MEL_MIN) & (x <= corpus.LOG_MEL_MAX)
    assert np.abs(back - x)[inside].max() <= step / 2 + 1e-6
    assert back.min() == corpus.LOG_MEL_MIN and back.max() == pytest.approx(corpus.LOG_MEL_MAX)


def test_vocab_round_trip_and_specials():
    v = DIGIT_VOCAB
    assert v.tokens[:3] == ["<pad>", "<s>", "</s>"] and (v.pad, v.bos, v.eos) == (0, 1, 2)
    assert len(v) == 13
    text = "three one four one five nine"
    ids = v.encode(text, bos=True, eos=True)
    assert ids[0] == v.bos and ids[-1] == v.eos and len(ids) == 8
    assert v.decode(ids) == text
    assert v.decode(ids + [v.index["two"], v.pad]) == text        # stops at </s>
    assert v.decode([v.bos, v.index["zero"], v.pad, v.index["one"]]) == "zero one"   # skips <s>, <pad>
    with pytest.raises(ValueError, match="not in the vocabulary"):
        v.encode("three ten")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        v.encode("three </s>")                                      # specials are not words
    with pytest.raises(ValueError, match="outside the vocabulary"):
        v.decode([99])


def test_pad_features_values_lengths_and_mask():
    a, b = np.ones((3, 2), np.float32), 2 * np.ones((5, 2), np.float32)
    x, lengths, mask = corpus.pad_features([a, b])
    assert x.shape == (5, 2, 2) and lengths.tolist() == [3, 5] and mask.shape == (5, 2)
    assert mask.dtype == bool and mask[:, 0].tolist() == [True] * 3 + [False] * 2 and mask[:, 1].all()
    np.testing.assert_array_equal(x[:3, 0], a)
    assert np.all(x[3:, 0] == 0) and np.all(x[:, 1] == 2)
    with pytest.raises(ValueError, match="expected"):
        corpus.pad_features([a, np.ones((4, 3), np.float32)])


def test_pad_labels_pads_each_column_after_its_own_words():
    labels, lengths = corpus.pad_labels(["one two three", "nine"])
    v = DIGIT_VOCAB
    assert labels.shape == (3, 2) and labels.dtype == np.int64 and lengths.tolist() == [3, 1]
    assert labels[:, 0].tolist() == v.encode("one two three")
    assert labels[:, 1].tolist() == [v.index["nine"], v.pad, v.pad]


def test_teacher_forcing_lives_with_the_models_not_in_the_student_package():
    """<s> y1 .. yn / y1 .. yn </s> is Lab 2's shift_targets: only speechmodels builds it."""
    from speechmodels.batches import pad_targets
    assert not hasattr(corpus, "pad_targets") and "y_in" not in corpus.Batch.__dataclass_fields__
    y_in, y_out, lengths, mask = pad_targets(["one two three", "nine"])
    v = DIGIT_VOCAB
    assert y_in.shape == y_out.shape == mask.shape == (4, 2)
    assert y_in[:, 0].tolist() == [v.bos] + v.encode("one two three")
    assert y_out[:, 0].tolist() == v.encode("one two three", eos=True)
    assert y_in[:, 1].tolist() == [v.bos, v.index["nine"], v.pad, v.pad]
    assert y_out[:, 1].tolist() == [v.index["nine"], v.eos, v.pad, v.pad]
    assert lengths.tolist() == [4, 2] and mask.sum(0).tolist() == [4, 2]
    assert np.all(y_out[~mask] == v.pad) and np.all(y_in[~mask] == v.pad)


def test_iterate_batches_covers_the_split_once_in_a_seeded_order(splits):
    valid = splits["valid"]
    batches = list(corpus.iterate_batches(valid, 64, seed=3))
    seen = np.concatenate([b.index for b in batches])
    assert sorted(seen.tolist()) == list(range(len(valid)))
    again = np.concatenate([b.index for b in corpus.iterate_batches(valid, 64, seed=3)])
    other = np.concatenate([b.index for b in corpus.iterate_batches(valid, 64, seed=4)])
    assert np.array_equal(seen, again) and not np.array_equal(seen, other)
    b = batches[0]
    B = len(b.index)
    assert b.x.shape[1:] == (B, corpus.N_MELS) and b.x_mask.shape == (b.x.shape[0], B)
    assert b.x_lengths.tolist() == [len(valid.features[i]) for i in b.index]
    assert [DIGIT_VOCAB.decode(b.labels[:, j]) for j in range(B)] == b.texts
    assert b.label_lengths.tolist() == [len(t.split()) for t in b.texts]
    from speechmodels.batches import iterate_batches
    tf = next(iterate_batches(valid, 64, seed=3))       # the same order, with teacher forcing
    assert np.array_equal(tf.index, b.index) and np.array_equal(tf.y_in[1:], b.labels)
    assert [DIGIT_VOCAB.decode(tf.y_out[:, j]) for j in range(B)] == b.texts
    assert len(list(corpus.iterate_batches(valid, 64, drop_last=True))) == len(valid) // 64


def test_bucketed_batches_cover_the_split_once_with_little_padding(splits):
    """The training recipe's batches: every utterance once per pass, a seeded order, and
    about half the padded frames of random batches (which pad to the longest of 1-10 digits)."""
    from speechmodels.batches import bucketed_batches, iterate_batches
    train = splits["train"]
    batches = list(bucketed_batches(train, 32, seed=5, window=20))
    seen = np.concatenate([b.index for b in batches])
    assert sorted(seen.tolist()) == list(range(len(train)))
    assert np.array_equal(seen, np.concatenate([b.index for b in bucketed_batches(train, 32, seed=5, window=20)]))
    assert not np.array_equal(seen, np.concatenate([b.index for b in bucketed_batches(train, 32, seed=6, window=20)]))
    padded = lambda bs: sum(b.x.shape[0] * b.x.shape[1] for b in bs)           # noqa: E731
    real = sum(len(f) for f in train.features)
    assert padded(batches) < 1.15 * real < 0.6 * padded(iterate_batches(train, 32, seed=5))
    lengths = [len(b.index) for b in batches]
    assert max(lengths) == 32 and sum(lengths) == len(train)


def test_committed_wavs_match_their_stored_features(splits):
    """The stored features are exactly the front end applied to the audio: regenerating
    them with `speechcourse.frontend.log_mel` gives the same bytes."""
    import wave
    from speechcourse.frontend import log_mel
    rows = [line.split("\t") for line in (corpus.DATA_DIR / "wav" / "examples.tsv").read_text().splitlines()[1:]]
    assert len(rows) >= 6 and {row[3] for row in rows} == {"synthetic", "real"}
    for name, split, index, source, voice, text in rows:
        with wave.open(str(corpus.DATA_DIR / "wav" / name)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        assert splits[split].texts[int(index)] == text and splits[split].voices[int(index)] == voice
        assert splits[split].sources[int(index)] == source
        recomputed = corpus.dequantize(corpus.quantize(log_mel(pcm / 32768, hop_ms=1000 / corpus.FRAME_RATE)))
        np.testing.assert_array_equal(recomputed, splits[split].features[int(index)])
