"""The English -> French contrast task: reordering, agreement, alignments, vocabularies."""
import numpy as np
import pytest

from speechcourse import phrases
from speechcourse.phrases import SOURCE_VOCAB, TARGET_VOCAB, alignment, make_pairs, translate


@pytest.mark.parametrize("english, french", [
    ("the red car", "la voiture rouge"),
    ("the black dog", "le chien noir"),
    ("the white houses", "les maisons blanches"),
    ("the big green boats", "les grands bateaux verts"),
    ("the small grey cat", "le petit chat gris"),
    ("the cats like the blue flower", "les chats aiment la fleur bleue"),
    ("the dog sees the big books", "le chien voit les grands livres"),
])
def test_translations(english, french):
    assert translate(english) == french


def test_colour_moves_after_the_noun_size_stays_before():
    assert alignment("the red car") == [0, 2, 1]
    assert alignment("the big red car") == [0, 1, 3, 2]
    assert alignment("the big car") == [0, 1, 2]                 # monotonic: nothing moves
    m = phrases.alignment_matrix("the small black cat sees the red house")
    assert m.shape == (8, 8) and np.all(m.sum(1) == 1)
    assert not np.array_equal(m, np.eye(8))                      # not a diagonal


def test_bad_phrases_are_explained():
    for bad, why in [("a car", "expected 'the'"), ("the car red", "unexpected word"),
                     ("the cats sees the dog", "does not agree"), ("the red", "no noun"),
                     ("the red bike", "unknown noun")]:
        with pytest.raises(ValueError, match=why):
            translate(bad)


def test_pairs_are_seeded_and_reorder_often():
    pairs = make_pairs(500, seed=0)
    assert pairs == make_pairs(500, seed=0) and pairs != make_pairs(500, seed=1)
    assert all(translate(e) == f for e, f in pairs)
    swapped = [e for e, _ in pairs if alignment(e) != sorted(alignment(e))]
    assert 0.5 < len(swapped) / len(pairs) < 0.95                 # most, not all, reorder
    lengths = [len(e.split()) for e, _ in pairs]
    assert min(lengths) == 2 and max(lengths) <= 9


def test_vocabularies_cover_every_pair_and_round_trip():
    for e, f in make_pairs(300, seed=2):
        assert SOURCE_VOCAB.decode(SOURCE_VOCAB.encode(e, bos=True, eos=True)) == e
        assert TARGET_VOCAB.decode(TARGET_VOCAB.encode(f, eos=True)) == f
    assert SOURCE_VOCAB.tokens[:3] == TARGET_VOCAB.tokens[:3] == ["<pad>", "<s>", "</s>"]
    assert len(SOURCE_VOCAB) < 40 and len(TARGET_VOCAB) < 60     # small on purpose
