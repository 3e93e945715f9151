"""Chapter 3's attention decoder, and the encoder-decoder models built on it.

The decoder only sees encoder states and their lengths, so any encoder can feed it
(chapter 3: a bidirectional GRU over speech frames or over English words; chapter 4: a
self-attention encoder). The interface:

    decoder = AttentionDecoder(enc_size=E, hidden=H, vocab_size=V, score="location")
    logits, weights = decoder(states, lengths, y_in)
        states  (T, B, E) encoder states, any values on padded frames (they get weight 0)
        lengths (B,) int64 real frames per utterance
        y_in    (U, B) int64 decoder inputs <s> y1 .. yn (teacher forcing)
        logits  (U, B, V); weights (U, T, B), weights[u, :, b] sums to 1 over real frames
    tokens, weights = decoder.greedy(states, lengths, max_len)   # B token lists, (U, T, B)

At step u, with previous state s_{u-1} (B, H) as the query:

    e_u[t]  = score(s_{u-1}, h_t)                      (T, B) one number per frame
    a_u     = softmax over real frames t of e_u        (T, B) padded frames get exactly 0
    c_u     = sum_t a_u[t] h_t                         (B, E) a new context at every step
    s_u     = GRUCell([E y_{u-1}; c_u], s_{u-1})
    logits  = [s_u; c_u] W_out + b

Scores (keys k_t = h_t W_k, query q = s W_q, A = attention size):
    "dot"       (q . k_t) / sqrt(A)                    content only, scaled dot product
    "additive"  v . tanh(q + k_t)                      Bahdanau et al. 2015
    "location"  v . tanh(q + k_t + f_t U)              Chorowski et al. 2015: f = conv(a_{u-1}),
                                                       where it looked at the previous step
The values summed into c_u are the encoder states h_t themselves.

`AttentionSeq2Seq` = optional `FrontEnd` + encoder + `AttentionDecoder`, with the model
interface of `speechmodels.training` (`model(x, x_lengths, y_in)`, `model.greedy`), plus
`model.attend(x, x_lengths, y_in)` and `model.align(x, x_lengths, max_len)`, which
return the attention weights (U, T, B) for the book's maps.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from speechcourse.corpus import DIGIT_VOCAB
from speechmodels.seq2seq import BiGRUEncoder
from speechmodels.training import FrontEnd, length_mask

BOS, EOS = DIGIT_VOCAB.bos, DIGIT_VOCAB.eos
SCORES = ("dot", "additive", "location")


class AttentionDecoder(nn.Module):
    """A GRU decoder that attends over encoder states (T, B, E) at every step."""

    def __init__(self, enc_size: int, hidden: int, vocab_size: int, emb: int = 32, score: str = "location",
                 attention_size: int | None = None, dropout: float = 0.0, conv_channels: int = 8,
                 conv_width: int = 9):
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        A = attention_size or hidden
        self.score, self.hidden = score, hidden
        self.key = nn.Linear(enc_size, A, bias=False)            # W_k
        self.query = nn.Linear(hidden, A, bias=score != "dot")   # W_q
        if score != "dot":
            self.v = nn.Linear(A, 1, bias=False)
        if score == "location":
            self.conv = nn.Conv1d(1, conv_channels, conv_width, padding=conv_width // 2, bias=False)
            self.location = nn.Linear(conv_channels, A, bias=False)   # U
        self.init = nn.Linear(enc_size, hidden)
        self.embed = nn.Embedding(vocab_size, emb)
        self.cell = nn.GRUCell(emb + enc_size, hidden)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden + enc_size, vocab_size)

    def start(self, states, lengths):
        """Precompute what every step needs: memory = (states, keys, mask); s_0; a_0 uniform."""
        mask = length_mask(lengths, states.shape[0])                   # (T, B)
        m = mask[..., None].to(states.dtype)
        mean = (states * m).sum(0) / m.sum(0).clamp(min=1)             # (B, E) mean of real frames
        s0 = torch.tanh(self.init(mean))                               # (B, H)
        a0 = m[..., 0] / m[..., 0].sum(0, keepdim=True).clamp(min=1)   # (T, B)
        return (states, self.key(states), mask), s0, a0

    def scores(self, s_prev, a_prev, memory):
        """Query s_prev (B, H) against the keys -> e (T, B)."""
        _, keys, _ = memory                                             # keys (T, B, A)
        q = self.query(s_prev)                                          # (B, A)
        if self.score == "dot":
            return (keys * q[None]).sum(-1) / math.sqrt(keys.shape[-1])
        energy = keys + q[None]                                         # (T, B, A)
        if self.score == "location":
            f = self.conv(a_prev.T[:, None, :])                         # (B, C, T)
            energy = energy + self.location(f.permute(2, 0, 1))         # (T, B, A)
        return self.v(torch.tanh(energy)).squeeze(-1)                   # (T, B)

    def step(self, y_prev, s_prev, a_prev, memory):
        """One step: y_prev (B,), s_prev (B, H), a_prev (T, B) -> logits (B, V), s (B, H), a (T, B)."""
        states, _, mask = memory
        e = self.scores(s_prev, a_prev, memory).masked_fill(~mask, float("-inf"))   # (T, B)
        a = torch.softmax(e, dim=0)                                     # (T, B)
        c = (a[..., None] * states).sum(0)                              # (B, E)
        s = self.cell(torch.cat([self.drop(self.embed(y_prev)), c], dim=-1), s_prev)   # (B, H)
        return self.out(self.drop(torch.cat([s, c], dim=-1))), s, a

    def forward(self, states, lengths, y_in):
        memory, s, a = self.start(states, lengths)
        logits, weights = [], []
        for u in range(y_in.shape[0]):
            step_logits, s, a = self.step(y_in[u], s, a, memory)
            logits.append(step_logits)
            weights.append(a)
        return torch.stack(logits), torch.stack(weights)                # (U, B, V), (U, T, B)

    @torch.no_grad()
    def greedy(self, states, lengths, max_len: int, bos: int = BOS, eos: int = EOS):
        """Greedy decoding: B token lists (</s> left out) and the weights (U, T, B) of every step run."""
        memory, s, a = self.start(states, lengths)
        y = torch.full((states.shape[1],), bos, dtype=torch.long)
        outputs, done, weights = [[] for _ in range(len(y))], np.zeros(len(y), dtype=bool), []
        for _ in range(max_len):
            logits, s, a = self.step(y, s, a, memory)
            weights.append(a)
            y = logits.argmax(dim=-1)                                   # (B,)
            for b, token in enumerate(y.tolist()):
                if not done[b]:
                    done[b] = token == eos
                    if not done[b]:
                        outputs[b].append(token)
            if done.all():
                break
        return outputs, torch.stack(weights)


class TextEncoder(nn.Module):
    """Word embeddings, then a bidirectional GRU: the encoder of the English -> French task."""

    def __init__(self, vocab_size: int, emb: int, hidden: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, emb, padding_idx=0)
        self.rnn = BiGRUEncoder(emb, hidden)
        self.size = self.rnn.size

    def forward(self, words, lengths):
        """words (S, B) int64 -> states (S, B, 2H), final states (B, 2H)."""
        return self.rnn(self.embed(words), lengths)


class AttentionSeq2Seq(nn.Module):
    """front (optional) -> encoder (states (T, B, E)) -> AttentionDecoder."""

    def __init__(self, encoder: nn.Module, decoder: AttentionDecoder, front: nn.Module | None = None):
        super().__init__()
        self.front, self.encoder, self.decoder = front, encoder, decoder

    def encode(self, x, x_lengths):
        if self.front is not None:
            x = self.front(x, x_lengths)
        states = self.encoder(x, x_lengths)
        return states[0] if isinstance(states, tuple) else states      # (T, B, E)

    def forward(self, x, x_lengths, y_in):
        return self.decoder(self.encode(x, x_lengths), x_lengths, y_in)[0]   # (U, B, V)

    def attend(self, x, x_lengths, y_in):
        """Teacher-forced attention weights (U, T, B)."""
        return self.decoder(self.encode(x, x_lengths), x_lengths, y_in)[1]

    @torch.no_grad()
    def greedy(self, x, x_lengths, max_len: int):
        return self.decoder.greedy(self.encode(x, x_lengths), x_lengths, max_len)[0]

    @torch.no_grad()
    def align(self, x, x_lengths, max_len: int):
        """Greedy tokens and the weights (U, T, B) the decoder used for them."""
        return self.decoder.greedy(self.encode(x, x_lengths), x_lengths, max_len)


def speech_model(n_in: int, score: str, config: dict, vocab_size: int = len(DIGIT_VOCAB)) -> AttentionSeq2Seq:
    """Chapter 3's speech recogniser: FrontEnd, bi-GRU encoder and attention decoder sized by config."""
    front = FrontEnd.from_config(config)
    encoder = BiGRUEncoder(n_in, config["hidden"], config["layers"], config["dropout"])
    decoder = AttentionDecoder(encoder.size, config["hidden"], vocab_size, emb=config["emb"], score=score,
                               dropout=config["dropout"])
    return AttentionSeq2Seq(encoder, decoder, front)


def text_model(source_vocab: int, target_vocab: int, score: str = "additive", hidden: int = 32,
               emb: int = 16) -> AttentionSeq2Seq:
    """A small attention model for the English -> French phrases (speechcourse.phrases)."""
    encoder = TextEncoder(source_vocab, emb, hidden)
    return AttentionSeq2Seq(encoder, AttentionDecoder(encoder.size, hidden, target_vocab, emb=emb, score=score))
