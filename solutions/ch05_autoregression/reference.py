"""Lab 5 reference: a causal self-attention decoder, decoding with a key/value cache, beam
search and the word error rate.

Time-major as everywhere in the course: a decoder input is ``(U, B, d)``, encoder states
(the *memory*) ``(T, B, d)``; inside attention the heads have their own axis,
``(B, n_h, U, d_head)``. Masks follow PyTorch: **True where looking is forbidden**.
Token ids follow ``speechcourse.corpus.DIGIT_VOCAB``: <pad> = 0, <s> = 1, </s> = 2.

The first block is the notebook's *given* code (setup and given cells); then the graded
functions, exactly as the notebook's solution cells hold them (a test checks both).
"""
import math

import numpy as np
import torch
from torch import nn

PAD, BOS, EOS = 0, 1, 2


# ----------------------------------------------------------------- given in the notebook

def sinusoidal_positions(T, d):
    """P (T, d): P[t, 2i] = sin(t / 10000^(2i/d)), P[t, 2i+1] = cos(t / 10000^(2i/d))."""
    t = torch.arange(T, dtype=torch.float32)[:, None]                  # (T, 1)
    two_i = torch.arange(0, d, 2, dtype=torch.float32)                 # (d/2,)
    angle = t / torch.pow(10000.0, two_i / d)                          # (T, d/2)
    P = torch.zeros(T, d)                                              # (T, d)
    P[:, 0::2], P[:, 1::2] = torch.sin(angle), torch.cos(angle)
    return P


class MultiHeadAttention(nn.Module):
    """Multi-head attention with its keys and values exposed, so that they can be cached.

    keys_values(x): x (T, B, d) -> k, v (B, n_h, T, d_head)
    attend(query, k, v, key_padding_mask, attn_mask): query (U, B, d) -> out (U, B, d), weights (B, n_h, U, T)
    forward(query, key, value, ...) = attend(query, *keys_values(key, value), ...)
    key_padding_mask (B, T) bool and attn_mask (U, T) bool: True where looking is forbidden.
    """

    def __init__(self, d_model, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.W_q, self.W_k = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)
        self.W_v, self.W_o = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)

    def split(self, x):                              # (T, B, d) -> (B, n_h, T, d_head)
        T, B, d = x.shape
        return x.reshape(T, B, self.n_heads, d // self.n_heads).permute(1, 2, 0, 3)

    def keys_values(self, key, value=None):
        value = key if value is None else value
        return self.split(self.W_k(key)), self.split(self.W_v(value))

    def attend(self, query, k, v, key_padding_mask=None, attn_mask=None):
        q = self.split(self.W_q(query))                                # (B, n_h, U, d_head)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])      # (B, n_h, U, T)
        if attn_mask is not None:
            scores = scores.masked_fill(attn_mask.bool()[None, None], float("-inf"))
        if key_padding_mask is not None:
            scores = scores.masked_fill(key_padding_mask.bool()[:, None, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1)                        # (B, n_h, U, T)
        heads = weights @ v                                            # (B, n_h, U, d_head)
        B, n_h, U, d_head = heads.shape
        return self.W_o(heads.permute(2, 0, 1, 3).reshape(U, B, n_h * d_head)), weights

    def forward(self, query, key, value, key_padding_mask=None, attn_mask=None):
        return self.attend(query, *self.keys_values(key, value), key_padding_mask, attn_mask)


class Decoder(nn.Module):
    """Token embeddings plus positions, n_layers of DecoderLayer, a final LayerNorm, logits."""

    def __init__(self, vocab_size, d_model, n_heads, d_ff, n_layers):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.layers = nn.ModuleList(DecoderLayer(d_model, n_heads, d_ff) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, vocab_size)

    def embed_at(self, y, start=0):
        """y (U, B) long, at positions start .. start + U - 1 -> (U, B, d)."""
        P = sinusoidal_positions(start + y.shape[0], self.embed.embedding_dim)   # (start + U, d)
        return self.embed(y) + P[start:, None, :]

    def forward(self, y_in, memory, attn_mask, memory_padding_mask=None):
        """Teacher forcing: y_in (U, B) long, memory (T, B, d) -> logits (U, B, V)."""
        y = self.embed_at(y_in)                                        # (U, B, d)
        for layer in self.layers:
            y = layer(y, memory, attn_mask, memory_padding_mask)
        return self.out(self.norm(y))


class Scorer:
    """A hand-built step_fn for beam search: log P(next token | prefix) for each prefix.

    ``table`` maps a prefix, written as its token ids separated by spaces ("" for the
    empty prefix), to V scores; any other prefix gets V pseudo-random scores drawn from
    (seed, prefix), times ``sharpness``. Scores are normalised with log-softmax.
    scorer(prefixes): a list of N token lists -> log-probabilities (N, V) float64 tensor.
    """

    def __init__(self, V, seed=0, sharpness=2.0, table=None):
        self.V, self.seed, self.sharpness = V, seed, sharpness
        self.table = dict(table or {})

    def log_probs(self, prefix):
        key = " ".join(str(int(z)) for z in prefix)
        if key in self.table:
            scores = np.asarray(self.table[key], dtype=np.float64)
        else:
            rng = np.random.default_rng([self.seed, len(prefix)] + [int(z) + 1 for z in prefix])
            scores = self.sharpness * rng.standard_normal(self.V)
        return scores - np.log(np.exp(scores - scores.max()).sum()) - scores.max()

    def __call__(self, prefixes):
        return torch.from_numpy(np.stack([self.log_probs(p) for p in prefixes]))   # (N, V)


# ----------------------------------------------------------------------- graded functions

def causal_mask(U):
    """(U, U) bool: True where step u may not look, at positions t > u (the future)."""
    return torch.ones(U, U, dtype=torch.bool).triu(diagonal=1)


class DecoderLayer(nn.Module):
    def __init__(self, d_model, n_heads, d_ff):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.self_attention = MultiHeadAttention(d_model, n_heads)
        self.norm2 = nn.LayerNorm(d_model)
        self.cross_attention = MultiHeadAttention(d_model, n_heads)
        self.norm3 = nn.LayerNorm(d_model)
        self.feed_forward = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Linear(d_ff, d_model))

    def forward(self, y, memory, attn_mask=None, memory_padding_mask=None):
        """Pre-norm decoder layer. y (U, B, d), memory (T, B, d) -> (U, B, d).

        y = y + SelfAttention(norm1(y), attn_mask)
        y = y + CrossAttention(norm2(y), memory, memory_padding_mask)
        y = y + FeedForward(norm3(y))
        """
        h = self.norm1(y)                                              # (U, B, d)
        y = y + self.self_attention(h, h, h, attn_mask=attn_mask)[0]
        h = self.norm2(y)
        y = y + self.cross_attention(h, memory, memory, key_padding_mask=memory_padding_mask)[0]
        return y + self.feed_forward(self.norm3(y))


def decoder_step(decoder, y_prev, memory, cache, memory_padding_mask=None):
    """One decoder step with a key/value cache.

    y_prev (B,) long: the token fed at this step u (<s> at u = 0); memory (T, B, d);
    cache: None at u = 0, else what the previous step returned: one (k, v) pair per
    layer, each (B, n_h, u, d_head), the self-attention keys and values of steps 0 .. u-1.
    Returns (logits (B, V), cache) with this step's keys and values appended (u + 1 steps).
    """
    u = 0 if cache is None else cache[0][0].shape[2]
    y = decoder.embed_at(y_prev[None], start=u)                        # (1, B, d)
    new_cache = []
    for i, layer in enumerate(decoder.layers):
        h = layer.norm1(y)                                             # (1, B, d)
        k, v = layer.self_attention.keys_values(h)                     # (B, n_h, 1, d_head)
        if cache is not None:
            k = torch.cat([cache[i][0], k], dim=2)                     # (B, n_h, u + 1, d_head)
            v = torch.cat([cache[i][1], v], dim=2)
        new_cache.append((k, v))
        y = y + layer.self_attention.attend(h, k, v)[0]                # the cache is the past: no mask
        h = layer.norm2(y)
        y = y + layer.cross_attention(h, memory, memory, key_padding_mask=memory_padding_mask)[0]
        y = y + layer.feed_forward(layer.norm3(y))
    return decoder.out(decoder.norm(y[0])), new_cache


def greedy_decode(decoder, memory, max_len, memory_padding_mask=None):
    """Greedy decoding with the cache: a list of B token lists, </s> left out, at most max_len."""
    B = memory.shape[1]
    y = torch.full((B,), BOS, dtype=torch.long)                        # (B,)
    cache, done = None, [False] * B
    outputs = [[] for _ in range(B)]
    with torch.no_grad():
        for _ in range(max_len):
            logits, cache = decoder_step(decoder, y, memory, cache, memory_padding_mask)
            y = logits.argmax(dim=-1)                                  # (B,): fed back next step
            for b in range(B):
                if done[b]:
                    continue
                if int(y[b]) == EOS:
                    done[b] = True
                else:
                    outputs[b].append(int(y[b]))
            if all(done):
                break
    return outputs


def beam_search(step_fn, beam, max_len, length_penalty=0.0):
    """Beam search over step_fn(prefixes) -> log-probabilities (N, V) of the next token.

    Every live hypothesis is extended by every token; the `beam` best extensions by total
    log-probability are kept; those that end in </s> are finished and leave the beam.
    Stops when the beam is empty or after max_len steps (live hypotheses are then kept as
    they are). Returns [(tokens, score), ...] sorted by score, best first: tokens without
    </s>, score = total log-probability / n ** length_penalty, n = the steps it took.
    """
    live, finished = [([], 0.0)], []
    for _ in range(max_len):
        if not live:
            break
        log_probs = torch.as_tensor(step_fn([tokens for tokens, _ in live]), dtype=torch.float64)  # (N, V)
        candidates = [(tokens + [z], score + float(row[z]))
                      for (tokens, score), row in zip(live, log_probs) for z in range(row.shape[0])]
        candidates.sort(key=lambda c: c[1], reverse=True)
        live = []
        for tokens, score in candidates[:beam]:
            if tokens[-1] == EOS:
                finished.append((tokens[:-1], score, len(tokens)))
            else:
                live.append((tokens, score))
    hypotheses = finished + [(tokens, score, len(tokens)) for tokens, score in live]
    results = [(tokens, score / n ** length_penalty) for tokens, score, n in hypotheses]
    return sorted(results, key=lambda r: r[1], reverse=True)


def word_error_rate(references, hypotheses):
    """Corpus word error rate from the Levenshtein alignment of each pair of strings.

    Returns {"wer": (S + D + I) / N, "substitutions": S, "deletions": D, "insertions": I,
    "reference_words": N}, summed over all pairs; N counts the reference words.
    """
    S = D = I = N = 0
    for reference, hypothesis in zip(references, hypotheses):
        r, h = reference.split(), hypothesis.split()
        # cost[i][j]: (errors, subs, dels, ins) aligning r[:i] with h[:j]
        cost = [[(j, 0, 0, j) for j in range(len(h) + 1)]]
        for i in range(1, len(r) + 1):
            row = [(i, 0, i, 0)]
            for j in range(1, len(h) + 1):
                e, s, d, n = cost[i - 1][j - 1]
                miss = r[i - 1] != h[j - 1]
                diagonal = (e + miss, s + miss, d, n)
                e, s, d, n = cost[i - 1][j]
                deletion = (e + 1, s, d + 1, n)
                e, s, d, n = row[j - 1]
                insertion = (e + 1, s, d, n + 1)
                row.append(min(diagonal, deletion, insertion, key=lambda c: c[0]))
            cost.append(row)
        _, s, d, n = cost[-1][-1]
        S, D, I, N = S + s, D + d, I + n, N + len(r)
    return {"wer": (S + D + I) / N, "substitutions": S, "deletions": D, "insertions": I,
            "reference_words": N}
