"""Lab 1 reference: a vanilla RNN in numpy, forward, backward through time, clipping.

Row vectors, time-major. ``xs`` is ``(T, B, D)``, a hidden state is ``(B, H)``.

    h_t = tanh(x_t @ Wxh + h_{t-1} @ Whh + bh)        y_t = h_t @ Who + by

The notebook's solution cells hold exactly these functions (a test checks they agree).
"""
import numpy as np


def rnn_step(x_t, h_prev, Wxh, Whh, bh):
    """One step of the recurrence: h_t = tanh(x_t @ Wxh + h_prev @ Whh + bh).

    x_t (B, D), h_prev (B, H), Wxh (D, H), Whh (H, H), bh (H,)  ->  h_t (B, H)
    """
    return np.tanh(x_t @ Wxh + h_prev @ Whh + bh)  # (B, H)


def rnn_forward(xs, h0, params):
    """Run the RNN over a batch of sequences.

    xs (T, B, D), h0 (B, H), params: dict with "Wxh" (D, H), "Whh" (H, H), "Who" (H, K),
    "bh" (H,), "by" (K,). Returns the tuple (hs, ys):
    hs (T, B, H) with hs[t] = h_{t+1} (h0 is not included), ys (T, B, K) = hs @ Who + by.
    """
    T = xs.shape[0]
    B, H = h0.shape
    hs = np.zeros((T, B, H))  # (T, B, H)
    h = h0
    for t in range(T):
        h = rnn_step(xs[t], h, params["Wxh"], params["Whh"], params["bh"])
        hs[t] = h
    ys = hs @ params["Who"] + params["by"]  # (T, B, K)
    return hs, ys


def rnn_backward(xs, h0, params, hs, dys):
    """Backpropagation through time, given dys = dL/dys.

    xs (T, B, D), h0 (B, H), params as in rnn_forward, hs (T, B, H) from rnn_forward,
    dys (T, B, K). Returns a dict with keys "Wxh", "Whh", "Who", "bh", "by", "h0": the
    gradient of L with respect to each, with its shape (e.g. "h0": (B, H)).
    """
    Wxh, Whh, Who = params["Wxh"], params["Whh"], params["Who"]
    T = xs.shape[0]
    dWxh, dWhh, dWho = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Who)
    dbh, dby = np.zeros_like(params["bh"]), np.zeros_like(params["by"])
    dh_next = np.zeros_like(h0)  # (B, H): gradient reaching h_t from step t+1
    for t in reversed(range(T)):
        h_prev = hs[t - 1] if t > 0 else h0  # (B, H)
        dWho += hs[t].T @ dys[t]
        dby += dys[t].sum(axis=0)
        dh = dys[t] @ Who.T + dh_next  # (B, H): from the output and from the future
        da = dh * (1 - hs[t] ** 2)  # (B, H): through tanh, tanh' = 1 - h_t^2
        dWxh += xs[t].T @ da
        dWhh += h_prev.T @ da
        dbh += da.sum(axis=0)
        dh_next = da @ Whh.T  # (B, H): what flows on to h_{t-1}
    return {"Wxh": dWxh, "Whh": dWhh, "Who": dWho, "bh": dbh, "by": dby, "h0": dh_next}


def gradient_norms(hs, Whh, dh_last):
    """How the gradient norm changes going back in time from h_T.

    hs (T, B, H) from rnn_forward, Whh (H, H), dh_last (B, H) = dL/dh_T.
    One step back: dL/dh_{t-1} = (dL/dh_t * (1 - h_t**2)) @ Whh.T.
    Returns norms (T,): norms[t] = Frobenius norm of dL/dh_{t+1}, so norms[-1] = ||dh_last||.
    """
    T = hs.shape[0]
    norms = np.zeros(T)  # (T,)
    dh = dh_last  # (B, H)
    for t in reversed(range(T)):
        norms[t] = np.linalg.norm(dh)
        dh = (dh * (1 - hs[t] ** 2)) @ Whh.T
    return norms


def clip_gradients(grads, max_norm):
    """Global-norm clipping. grads: dict name -> array, max_norm: a positive float.

    Returns a NEW dict with the same keys, every array multiplied by min(1, max_norm / n)
    where n = sqrt(sum of the squares of every entry of every array). grads is not modified.
    """
    total = np.sqrt(sum(np.sum(g ** 2) for g in grads.values()))
    scale = min(1.0, max_norm / total) if total > 0 else 1.0
    return {name: g * scale for name, g in grads.items()}
