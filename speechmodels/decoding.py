"""Decoding an autoregressive decoder (chapter 5): greedy with or without a key/value cache,
beam search with length normalisation and </s> handling, and sampling with a temperature.

A decoder here is `speechmodels.recogniser.TransformerDecoder`-like:

    decoder(y_in, memory, pad, attn_mask) -> logits (U, B, V)      all steps at once
    state = decoder.start(memory, pad); logits, state = decoder.step(y_prev, state)   one step, cached

Outputs are lists of token lists with </s> left out, as everywhere in the course.
"""
from __future__ import annotations

from typing import Callable

import torch

from speechcourse.corpus import DIGIT_VOCAB
from speechmodels.transformer import causal_mask

PAD, BOS, EOS = DIGIT_VOCAB.pad, DIGIT_VOCAB.bos, DIGIT_VOCAB.eos


def _collect(outputs, done, tokens, stop_at_eos=True):
    for b, z in enumerate(tokens.tolist()):
        if done[b]:
            continue
        if z == EOS and stop_at_eos:
            done[b] = True
        else:
            outputs[b].append(z)


@torch.no_grad()
def greedy(decoder, memory, pad=None, max_len: int = 12, cache: bool = True, stop_at_eos: bool = True):
    """Greedy decoding of a batch; memory (T, B, d), pad (B, T) True on padding.

    ``cache=False`` recomputes the whole prefix at every step (for chapter 5's timing); the
    outputs are the same. ``stop_at_eos=False`` always runs max_len steps (also for timing).
    """
    B = memory.shape[1]
    y = torch.full((B,), BOS, dtype=torch.long)                         # (B,)
    done, outputs = [False] * B, [[] for _ in range(B)]
    prefix = y[None]                                                    # (u + 1, B): for cache=False
    state = decoder.start(memory, pad) if cache else None
    for _ in range(max_len):
        if cache:
            logits, state = decoder.step(y, state)                      # (B, V)
        else:
            U = prefix.shape[0]
            logits = decoder(prefix, memory, pad, causal_mask(U))[-1]   # (B, V): the last position
        y = logits.argmax(dim=-1)
        prefix = torch.cat([prefix, y[None]])
        _collect(outputs, done, y, stop_at_eos)
        if all(done):
            break
    return outputs


@torch.no_grad()
def sample(decoder, memory, pad=None, max_len: int = 12, temperature: float = 1.0,
           generator: torch.Generator | None = None):
    """Ancestral sampling: z_u ~ softmax(logits / temperature); temperature -> 0 is greedy."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    B = memory.shape[1]
    y = torch.full((B,), BOS, dtype=torch.long)
    done, outputs = [False] * B, [[] for _ in range(B)]
    state = decoder.start(memory, pad)
    for _ in range(max_len):
        logits, state = decoder.step(y, state)
        probs = torch.softmax(logits / temperature, dim=-1)             # (B, V)
        y = torch.multinomial(probs, 1, generator=generator)[:, 0]
        _collect(outputs, done, y)
        if all(done):
            break
    return outputs


def beam_search(step_fn: Callable, beam: int, max_len: int, length_penalty: float = 0.0):
    """Beam search over step_fn(prefixes) -> log-probabilities (N, V) of the next token.

    Every live hypothesis is extended by every token and the ``beam`` best extensions by total
    log-probability are kept; those ending in </s> are finished and leave the beam (so it can
    shrink). Stops when no hypothesis is live or after max_len steps. Returns [(tokens, score)]
    best first, tokens without </s>, score = total log-probability / n ** length_penalty with
    n the number of steps taken (</s> included).
    """
    if beam < 1 or max_len < 1:
        raise ValueError(f"beam and max_len must be at least 1, got beam={beam}, max_len={max_len}")
    live, finished = [([], 0.0)], []
    for _ in range(max_len):
        if not live:
            break
        log_probs = torch.as_tensor(step_fn([tokens for tokens, _ in live]), dtype=torch.float64)   # (N, V)
        scores = torch.tensor([s for _, s in live], dtype=torch.float64)[:, None] + log_probs       # (N, V)
        V = scores.shape[1]
        best = torch.topk(scores.reshape(-1), min(beam, scores.numel()))
        new = []
        for score, index in zip(best.values.tolist(), best.indices.tolist()):
            n, z = divmod(index, V)
            if z == EOS:
                finished.append((live[n][0], score, len(live[n][0]) + 1))
            else:
                new.append((live[n][0] + [z], score))
        live = new
    hypotheses = finished + [(tokens, score, len(tokens)) for tokens, score in live]
    ranked = [(tokens, score / n ** length_penalty) for tokens, score, n in hypotheses]
    return sorted(ranked, key=lambda r: r[1], reverse=True)


@torch.no_grad()
def beam_decode(decoder, memory, pad=None, beam: int = 4, max_len: int = 12, length_penalty: float = 1.0):
    """The best beam-search hypothesis of each utterance; all live hypotheses share one batch."""
    outputs = []
    for b in range(memory.shape[1]):
        memory_b = memory[:, b:b + 1]                                    # (T, 1, d)
        pad_b = None if pad is None else pad[b:b + 1]

        def step_fn(prefixes):
            y_in = torch.tensor([[BOS] + p for p in prefixes]).T         # (U, N): live prefixes share U
            U, N = y_in.shape
            logits = decoder(y_in, memory_b.expand(-1, N, -1), None if pad_b is None else pad_b.expand(N, -1),
                             causal_mask(U))[-1]                         # (N, V)
            return torch.log_softmax(logits, dim=-1)

        outputs.append(beam_search(step_fn, beam, max_len, length_penalty)[0][0])
    return outputs
