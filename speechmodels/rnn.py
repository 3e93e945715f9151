"""Chapter 1's vanilla RNN run by PyTorch, in the lab's row-vector parameter names.

An independent forward pass for the instructor's side (hidden tests, tests of the
reference); it is never shipped to students, because it computes Lab 1's ``rnn_forward``.
"""
from __future__ import annotations

import numpy as np
import torch


def torch_rnn_forward(xs, h0, params):
    """(hs, ys) from torch.nn.RNN + torch.nn.Linear loaded with the lab's weights, in float64.

    xs (T, B, D), h0 (B, H), params {"Wxh" (D, H), "Whh" (H, H), "Who" (H, K), "bh" (H,),
    "by" (K,)}  ->  hs (T, B, H), ys (T, B, K) as numpy arrays.
    """
    T, B, D = xs.shape
    H, K = params["Who"].shape
    rnn = torch.nn.RNN(D, H, nonlinearity="tanh", dtype=torch.float64)
    out = torch.nn.Linear(H, K, dtype=torch.float64)
    as_tensor = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float64))  # noqa: E731
    with torch.no_grad():
        # torch keeps column-vector weights: weight_ih is (H, D) = Wxh.T; it has two biases
        rnn.weight_ih_l0.copy_(as_tensor(params["Wxh"]).T)
        rnn.weight_hh_l0.copy_(as_tensor(params["Whh"]).T)
        rnn.bias_ih_l0.copy_(as_tensor(params["bh"]))
        rnn.bias_hh_l0.zero_()
        out.weight.copy_(as_tensor(params["Who"]).T)
        out.bias.copy_(as_tensor(params["by"]))
        hs, _ = rnn(as_tensor(xs), as_tensor(h0)[None])  # (T, B, H)
        ys = out(hs)  # (T, B, K)
    return hs.numpy(), ys.numpy()
