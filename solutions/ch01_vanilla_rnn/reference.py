"""Lab 1 reference: a vanilla RNN in numpy, forward, backward through time, clipping.

Row vectors, time-major. ``xs`` is ``(T, B, D)``, a hidden state is ``(B, H)``.

    h_t = tanh(x_t @ Wxh + h_{t-1} @ Whh + bh)        y_t = h_t @ Who + by

The notebook's solution cells hold exactly these functions (a test checks they agree).
"""
import numpy as np


def rnn_step(x_t, h_prev, Wxh, Whh, bh):
    """One step: x_t (B, D), h_prev (B, H) -> h_t (B, H)."""
    return np.tanh(x_t @ Wxh + h_prev @ Whh + bh)  # (B, H)


def rnn_forward(xs, h0, params):
    """Run the RNN over xs (T, B, D) from h0 (B, H).

    Returns hs (T, B, H) = h_1..h_T and ys (T, B, K) = y_1..y_T.
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
    """Backpropagation through time.

    dys (T, B, K) is dL/dys. Returns a dict with dL/dWxh, dL/dWhh, dL/dWho, dL/dbh,
    dL/dby and dL/dh0, each with the shape of what it is the gradient of.
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
    """Norm of dL/dh_t when only h_T receives gradient, dh_last (B, H).

    Back-propagates dh_{t-1} = (dh_t * (1 - h_t^2)) @ Whh.T and returns norms (T,)
    with norms[t] = ||dL/dh_{t+1}|| (Frobenius), so norms[-1] = ||dh_last||.
    """
    T = hs.shape[0]
    norms = np.zeros(T)  # (T,)
    dh = dh_last  # (B, H)
    for t in reversed(range(T)):
        norms[t] = np.linalg.norm(dh)
        dh = (dh * (1 - hs[t] ** 2)) @ Whh.T
    return norms


def clip_gradients(grads, max_norm):
    """Scale all gradients by one factor so that their global norm is at most max_norm.

    The global norm is sqrt of the sum of squares of every entry of every gradient.
    Returns a new dict; ``grads`` is left unchanged.
    """
    total = np.sqrt(sum(np.sum(g ** 2) for g in grads.values()))
    scale = min(1.0, max_norm / total) if total > 0 else 1.0
    return {name: g * scale for name, g in grads.items()}
