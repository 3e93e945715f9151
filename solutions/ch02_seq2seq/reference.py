"""Lab 2 reference: an encoder-decoder (seq2seq) recogniser in PyTorch, without attention.

Time-major everywhere: frames ``x`` are ``(T, B, F)``, a hidden state is ``(B, H)``, token
sequences are ``(U, B)`` (U: the decoder's own time axis). Token ids follow
``speechcourse.corpus.DIGIT_VOCAB``: <pad> = 0, <s> = 1, </s> = 2, then zero .. nine.

    encoder:  h_t = GRU(x_t, h_{t-1}),                 context c = h_{T_b} (last *real* frame)
    decoder:  s_0 = c,   s_u = GRUCell([E y_{u-1}; c], s_{u-1}),   logits_u = s_u W + b

The notebook's solution cells hold exactly these functions and classes (a test checks they agree).
"""
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

PAD, BOS, EOS = 0, 1, 2


def masked_cross_entropy(logits, targets):
    """Mean cross-entropy over the real (non-<pad>) target positions.

    logits (U, B, V) float, targets (U, B) long with PAD where there is no target.
    Returns a scalar tensor: sum of -log softmax(logits)[target] over positions with
    targets != PAD, divided by the number of such positions.
    """
    log_probs = torch.log_softmax(logits, dim=-1)  # (U, B, V)
    nll = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (U, B)
    mask = (targets != PAD).to(nll.dtype)  # (U, B): 1 on real tokens
    return (nll * mask).sum() / mask.sum()


def shift_targets(labels, lengths):
    """Decoder inputs and outputs for teacher forcing.

    labels (N, B) long: the digit tokens of each utterance, time-major, padded with PAD;
    lengths (B,) long: how many digits each utterance has (n_b <= N).
    Returns (y_in, y_out), both (N + 1, B) long:
    y_in[:, b]  = <s> y_1 .. y_n  PAD ..    (what the decoder is fed)
    y_out[:, b] = y_1 .. y_n </s> PAD ..    (what it must predict: y_in shifted left by one)
    """
    N, B = labels.shape
    y_in = torch.full((N + 1, B), PAD, dtype=torch.long)  # (N + 1, B)
    y_out = torch.full((N + 1, B), PAD, dtype=torch.long)  # (N + 1, B)
    for b in range(B):
        n = int(lengths[b])
        y_in[0, b] = BOS
        y_in[1:n + 1, b] = labels[:n, b]
        y_out[:n, b] = labels[:n, b]
        y_out[n, b] = EOS
    return y_in, y_out


class Encoder(nn.Module):
    def __init__(self, n_in, hidden):
        super().__init__()
        self.rnn = nn.GRU(n_in, hidden)  # time-major: (T, B, n_in) -> (T, B, hidden)

    def forward(self, x, lengths):
        """x (T, B, F) float, zero-padded; lengths (B,) long, frames per utterance.

        Returns (states, context): states (T, B, H), the GRU's state after each frame,
        zero at padded positions t >= lengths[b]; context (B, H), the state after the
        last real frame of each utterance, states[lengths[b] - 1, b].
        """
        packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
        packed_states, h_last = self.rnn(packed)  # h_last (1, B, H): at each lengths[b] - 1
        states, _ = pad_packed_sequence(packed_states, total_length=x.shape[0])  # (T, B, H)
        return states, h_last[0]


class Decoder(nn.Module):
    def __init__(self, vocab_size, emb, hidden):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, emb)  # token id -> (emb,)
        self.cell = nn.GRUCell(emb + hidden, hidden)  # input: [embedding; context]
        self.out = nn.Linear(hidden, vocab_size)  # state -> logits over the vocabulary

    def step(self, y_prev, s_prev, context):
        """One decoder step. y_prev (B,) long, s_prev (B, H), context (B, H).

        Returns (logits (B, V), s (B, H)) with s = cell([embed(y_prev); context], s_prev)
        and logits = out(s).
        """
        inputs = torch.cat([self.embed(y_prev), context], dim=-1)  # (B, emb + H)
        s = self.cell(inputs, s_prev)  # (B, H)
        return self.out(s), s

    def forward(self, context, y_in):
        """Teacher forcing: context (B, H), y_in (U, B) long -> logits (U, B, V).

        Starts from s_0 = context and feeds y_in[u] at step u (the true previous token).
        """
        s = context  # (B, H)
        logits = []
        for u in range(y_in.shape[0]):
            step_logits, s = self.step(y_in[u], s, context)  # (B, V), (B, H)
            logits.append(step_logits)
        return torch.stack(logits)  # (U, B, V)


def greedy_decode(decoder, context, max_len):
    """Greedy decoding from the context, without teacher forcing.

    decoder: a Decoder, context (B, H), max_len: the most steps to take.
    Starts from s_0 = context and y_0 = <s>; at each step feeds back its own most likely
    token. Returns a list of B lists of ints: for each utterance the tokens predicted
    before its first </s> (</s> itself left out), or all max_len if it never predicts </s>.
    """
    B = context.shape[0]
    y = torch.full((B,), BOS, dtype=torch.long)  # (B,)
    s = context  # (B, H)
    done = [False] * B
    outputs = [[] for _ in range(B)]
    with torch.no_grad():
        for _ in range(max_len):
            logits, s = decoder.step(y, s, context)  # (B, V), (B, H)
            y = logits.argmax(dim=-1)  # (B,): fed back at the next step
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
