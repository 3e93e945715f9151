"""A tiny English -> French phrase task whose word order changes: the contrast to speech.

In speech recognition the output follows the input in time, so attention moves along
a diagonal. Translation reorders: French puts most adjectives after the noun,

    the red car            -> la voiture rouge          (red moves after car)
    the big red cars       -> les grandes voitures rouges
    the black dog sees the small house -> le chien noir voit la petite maison

and makes articles and adjectives agree with the noun's gender and number (le/la/les,
noir/noire/noirs/noires). Size adjectives (grand, petit) stay before the noun, as in
real French, so one phrase can mix kept and swapped order.

    pairs = make_pairs(1000, seed=0)        # [('the red car', 'la voiture rouge'), ...]
    SOURCE_VOCAB.encode(pairs[0][0])        # indices, with <pad>=0, <s>=1, </s>=2
    alignment('the red car')                # [0, 2, 1]: French word j translates English word a[j]

`alignment` gives, for each French word, the English word it comes from: the ideal
(non-diagonal) attention map that Chapter 3 draws next to a speech attention map.
"""
from __future__ import annotations

import numpy as np

from speechcourse.corpus import Vocab

# English noun -> (French noun, gender). No vowel-initial nouns, so no l' elision;
# every plural is the noun + s in both languages.
NOUNS = {
    "car": ("voiture", "f"), "house": ("maison", "f"), "flower": ("fleur", "f"),
    "table": ("table", "f"), "cat": ("chat", "m"), "dog": ("chien", "m"),
    "book": ("livre", "m"), "boat": ("bateau", "m"),
}
# Colour adjectives follow the noun in French: English -> (masc. singular, fem. singular).
COLOURS = {
    "red": ("rouge", "rouge"), "black": ("noir", "noire"), "green": ("vert", "verte"),
    "blue": ("bleu", "bleue"), "white": ("blanc", "blanche"), "grey": ("gris", "grise"),
}
# Size adjectives precede the noun in French too.
SIZES = {"big": ("grand", "grande"), "small": ("petit", "petite")}
# Verbs (English singular, English plural) -> (French singular, French plural).
VERBS = {("sees", "see"): ("voit", "voient"), ("likes", "like"): ("aime", "aiment")}
ARTICLES = {("m", False): "le", ("f", False): "la", ("m", True): "les", ("f", True): "les"}

_PLURAL_NOUN = {"bateau": "bateaux"}   # the one irregular plural: bateau -> bateaux
_EN_PLURAL = {noun: noun + "s" for noun in NOUNS}


def _plural_fr(word: str) -> str:
    if word in _PLURAL_NOUN:
        return _PLURAL_NOUN[word]
    return word if word.endswith(("s", "x")) else word + "s"   # gris stays gris


def _noun_phrase(words: list[str], start: int) -> tuple[list[str], list[int], int]:
    """Translate one English noun phrase 'the [size] [colour] noun[s]' starting at words[start].

    Returns the French words, for each the index of its English source word, and the
    index just after the phrase.
    """
    if start >= len(words) or words[start] != "the":
        raise ValueError(f"expected 'the' at word {start} of {' '.join(words)!r}")
    i = start + 1
    size = colour = None
    if i < len(words) and words[i] in SIZES:
        size, i = i, i + 1
    if i < len(words) and words[i] in COLOURS:
        colour, i = i, i + 1
    if i >= len(words):
        raise ValueError(f"noun phrase in {' '.join(words)!r} has no noun")
    english_noun = words[i]
    plural = english_noun in _EN_PLURAL.values()
    singular = english_noun[:-1] if plural else english_noun
    if singular not in NOUNS:
        raise ValueError(f"unknown noun {english_noun!r}; nouns are {sorted(NOUNS)} (and plurals)")
    noun_fr, gender = NOUNS[singular]
    g = 1 if gender == "f" else 0

    def agree(forms):
        return _plural_fr(forms[g]) if plural else forms[g]

    french = [ARTICLES[gender, plural]]
    source = [start]
    if size is not None:                       # size adjective: before the noun, as in English
        french.append(agree(SIZES[words[size]]))
        source.append(size)
    french.append(_plural_fr(noun_fr) if plural else noun_fr)
    source.append(i)
    if colour is not None:                     # colour adjective: after the noun (the reordering)
        french.append(agree(COLOURS[words[colour]]))
        source.append(colour)
    return french, source, i + 1


def translate_with_alignment(english: str) -> tuple[str, list[int]]:
    """Rule-based translation of a phrase of this grammar, and its word alignment.

    Grammar: NP | NP VERB NP, with NP = 'the [big|small] [colour] noun[s]'.
    """
    words = english.split()
    subject_end = next((k for k, w in enumerate(words) if any(w in pair for pair in VERBS)), len(words))
    french, source, end = _noun_phrase(words[:subject_end], 0)
    if end != subject_end:
        raise ValueError(f"unexpected word {words[end]!r} after the noun in {english!r}")
    if subject_end < len(words):
        verb = words[subject_end]
        (en_sg, en_pl), (fr_sg, fr_pl) = next((k, v) for k, v in VERBS.items() if verb in k)
        subject_plural = words[subject_end - 1] in _EN_PLURAL.values()
        if verb != (en_pl if subject_plural else en_sg):
            raise ValueError(f"verb {verb!r} does not agree with its subject in {english!r}")
        french.append(fr_pl if subject_plural else fr_sg)
        source.append(subject_end)
        obj, obj_source, end = _noun_phrase(words, subject_end + 1)
        french += obj
        source += obj_source
        if end != len(words):
            raise ValueError(f"unexpected word {words[end]!r} after the object in {english!r}")
    return " ".join(french), source


def translate(english: str) -> str:
    """'the red car' -> 'la voiture rouge'."""
    return translate_with_alignment(english)[0]


def alignment(english: str) -> list[int]:
    """For each French word of translate(english), the index of the English word it translates."""
    return translate_with_alignment(english)[1]


def alignment_matrix(english: str) -> np.ndarray:
    """(U, S) 0/1 matrix, U French words x S English words: the ideal attention map."""
    source = alignment(english)
    matrix = np.zeros((len(source), len(english.split())))            # (U, S)
    matrix[np.arange(len(source)), source] = 1.0
    return matrix


def _random_noun_phrase(rng: np.random.Generator) -> tuple[str, bool]:
    words = ["the"]
    if rng.random() < 0.4:
        words.append(list(SIZES)[rng.integers(len(SIZES))])
    if rng.random() < 0.7:                     # most phrases have a colour, so most reorder
        words.append(list(COLOURS)[rng.integers(len(COLOURS))])
    noun = list(NOUNS)[rng.integers(len(NOUNS))]
    plural = bool(rng.random() < 0.3)
    words.append(_EN_PLURAL[noun] if plural else noun)
    return " ".join(words), plural


def make_pairs(n: int, seed: int = 0, p_sentence: float = 0.5) -> list[tuple[str, str]]:
    """n (English, French) pairs drawn from the grammar with `seed` (duplicates possible).

    With probability p_sentence a pair is a sentence 'NP verb NP', otherwise one NP.
    English phrases have 2 to 9 words.
    """
    if n < 0 or not 0 <= p_sentence <= 1:
        raise ValueError(f"need n >= 0 and 0 <= p_sentence <= 1, got n={n}, p_sentence={p_sentence}")
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        subject, plural = _random_noun_phrase(rng)
        english = subject
        if rng.random() < p_sentence:
            (sg, pl) = list(VERBS)[rng.integers(len(VERBS))]
            english = f"{subject} {pl if plural else sg} {_random_noun_phrase(rng)[0]}"
        pairs.append((english, translate(english)))
    return pairs


def _source_words() -> list[str]:
    verbs = [w for pair in VERBS for w in pair]
    return ["the", *SIZES, *COLOURS, *NOUNS, *_EN_PLURAL.values(), *verbs]


def _target_words() -> list[str]:
    words = ["le", "la", "les"]
    for forms in [*SIZES.values(), *COLOURS.values()]:
        for w in forms:
            words += [w, _plural_fr(w)]
    for noun, _ in NOUNS.values():
        words += [noun, _plural_fr(noun)]
    words += [w for pair in VERBS.values() for w in pair]
    return list(dict.fromkeys(words))          # drop repeats (rouge, gris), keep order


SOURCE_VOCAB = Vocab(_source_words())   # English: <pad> <s> </s> the big small red ...
TARGET_VOCAB = Vocab(_target_words())   # French:  <pad> <s> </s> le la les grand grands ...
