"""Small plotting helpers shared by the book and the labs.

Each helper draws on an existing ``matplotlib`` axis when one is given (so a page can
lay out several panels) and otherwise makes its own figure. Each returns the axis, so
the caller can add a title or a reference line. Only numpy and matplotlib are used.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np


def _axis(ax, figsize=(6.0, 3.5)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def plot_gradient_norms(norms_by_label: Mapping[str, Sequence[float]], ax=None,
                        xlabel: str = r"distance in time $T-t$ (frames)",
                        ylabel: str = r"$\|\partial L / \partial h_t\|$"):
    """Plot gradient norms against distance in time, one line per label, log y-axis.

    ``norms_by_label`` maps a legend label (e.g. ``"rho = 0.9"``) to a sequence of
    norms whose entry ``k`` belongs to the hidden state ``k`` frames before the loss.
    Non-positive or non-finite values are left out of a line rather than breaking the
    log scale.
    """
    ax = _axis(ax)
    for label, norms in norms_by_label.items():
        norms = np.asarray(norms, dtype=float)
        k = np.arange(len(norms))
        ok = np.isfinite(norms) & (norms > 0)
        ax.plot(k[ok], norms[ok], marker=".", markersize=3, label=label)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    if norms_by_label:
        ax.legend(frameon=False)
    return ax


def heatmap(matrix, xlabel: str, ylabel: str, ax=None, xticklabels=None,
            yticklabels=None, cmap: str = "viridis", colorbar: bool = True):
    """Draw a 2-D array as an image with row 0 at the top, e.g. an attention map.

    For attention weights pass ``matrix`` of shape ``(U, T)`` (one row per output
    symbol, one column per input frame), ``xlabel="encoder frame t"`` and
    ``ylabel="decoder step u"``. Tick labels are optional (tokens, say).
    """
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim != 2:
        raise ValueError(f"heatmap expects a 2-D array, got shape {matrix.shape}")
    ax = _axis(ax, figsize=(6.0, 4.0))
    im = ax.imshow(matrix, aspect="auto", origin="upper", cmap=cmap,
                   interpolation="nearest")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if xticklabels is not None:
        ax.set_xticks(np.arange(len(xticklabels)), labels=list(xticklabels))
    if yticklabels is not None:
        ax.set_yticks(np.arange(len(yticklabels)), labels=list(yticklabels))
    if colorbar:
        ax.figure.colorbar(im, ax=ax)
    return ax


def plot_loss(losses, ax=None, label: str | None = None, logy: bool = False,
              xlabel: str = "step", ylabel: str = "loss"):
    """Plot a training curve: ``losses[i]`` is the loss after step ``i``."""
    ax = _axis(ax)
    losses = np.asarray(losses, dtype=float)
    ax.plot(np.arange(len(losses)), losses, label=label)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if label is not None:
        ax.legend(frameon=False)
    return ax


def plot_unrolled_rnn(T: int = 4, ax=None, input_label: str = "x", state_label: str = "h",
                      output_label: str = "y"):
    """Draw a vanilla RNN unrolled over ``T`` time steps (a diagram, no data).

    Inputs ``x_1..x_T`` at the bottom, hidden states in the middle joined left to
    right by ``Whh``, outputs at the top; the edges are labelled with the weight
    each one carries (``Wxh``, ``Whh``, ``Who``), the same matrix at every step.
    """
    ax = _axis(ax, figsize=(1.9 * T + 1.4, 3.2))
    box = dict(boxstyle="round,pad=0.35", linewidth=1.2)
    rows = {"x": (0.0, "#dbe9f6"), "h": (1.0, "#fde2c4"), "y": (2.0, "#d8f0d2")}
    names = {"x": input_label, "h": state_label, "y": output_label}
    arrow = dict(arrowstyle="-|>", color="0.25", lw=1.1, shrinkA=14, shrinkB=14)

    def node(xpos, row, text):
        ypos, color = rows[row]
        ax.text(xpos, ypos, text, ha="center", va="center", fontsize=12,
                bbox={**box, "facecolor": color})

    node(0.0, "h", f"${state_label}_0$")
    for t in range(1, T + 1):
        for row in "xhy":
            node(float(t), row, f"${names[row]}_{{{t}}}$")
        ax.annotate("", xy=(t, 1.0), xytext=(t, 0.0), arrowprops=arrow)
        ax.annotate("", xy=(t, 2.0), xytext=(t, 1.0), arrowprops=arrow)
        ax.annotate("", xy=(t, 1.0), xytext=(t - 1, 1.0), arrowprops=arrow)
        ax.text(t + 0.06, 0.5, "Wxh", fontsize=9, color="0.3", va="center")
        ax.text(t + 0.06, 1.5, "Who", fontsize=9, color="0.3", va="center")
        ax.text(t - 0.5, 1.1, "Whh", fontsize=9, color="0.3", ha="center")
    ax.set_xlim(-0.6, T + 0.6)
    ax.set_ylim(-0.5, 2.5)
    ax.axis("off")
    return ax


def plot_self_attention(T: int = 6, query: int = 3, weights=None, ax=None):
    """Draw self-attention over one sequence (a diagram): every frame is query, key and value.

    Frames ``x_1..x_T`` sit on the bottom row and outputs ``y_1..y_T`` on the top row. The
    output of frame ``query`` (1-based) is joined to every frame, with a line whose width
    shows its weight (``weights``: T numbers, default a bump around ``query``); the other
    outputs are drawn too, to say that each is computed the same way, all at once.
    """
    if weights is None:
        weights = np.exp(-0.5 * (np.arange(1, T + 1) - query) ** 2)
    weights = np.asarray(weights, dtype=float) / np.sum(weights)
    ax = _axis(ax, figsize=(7.0, 2.8))
    box = dict(boxstyle="round,pad=0.3", linewidth=1.1)
    for t in range(1, T + 1):
        ax.text(t, 0, f"$x_{{{t}}}$", ha="center", va="center", bbox={**box, "fc": "#dbe9f6"})
        ax.text(t, 2, f"$y_{{{t}}}$", ha="center", va="center",
                bbox={**box, "fc": "#fde2c4" if t == query else "#f3f3f3"})
        ax.annotate("", (query, 2), (t, 0), arrowprops=dict(arrowstyle="-|>", color="tab:red",
                                                             lw=0.5 + 6 * weights[t - 1], shrinkA=10, shrinkB=11))
        ax.text(t, 0.55 if t != query else 0.45, f"{weights[t - 1]:.2f}", ha="center", fontsize=8,
                color="tab:red")
    ax.text(T + 0.6, 0, "keys, values\n(and queries)", va="center", fontsize=9)
    ax.text(T + 0.6, 2, f"$y_{{{query}}} = \\sum_t \\alpha_{{{query},t}}\\, v_t$", va="center", fontsize=10)
    ax.set_xlim(0.4, T + 2.6)
    ax.set_ylim(-0.5, 2.5)
    ax.axis("off")
    return ax
