"""Small plotting helpers shared by the book and the labs.

Each helper draws on an existing ``matplotlib`` axis when one is given (so a page can
lay out several panels) and otherwise makes its own figure. Each returns the axis, so
the caller can add a title or a reference line. Only numpy and matplotlib are used.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.patches as mpatches
import matplotlib.pyplot as plt
import numpy as np


def _axis(ax, figsize=(6.0, 3.5)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def plot_gradient_norms(norms_by_label: Mapping[str, Sequence[float]], ax=None,
                        xlabel: str = r"distance in time $T-t$ (frames)",
                        ylabel: str = r"$\|\partial L / \partial h_t\|$",
                        predictions: Mapping[str, Sequence[float]] | None = None):
    """Plot gradient norms against distance in time, one line per label, log y-axis.

    ``norms_by_label`` maps a legend label (e.g. ``"rho = 0.9"``) to a sequence of
    norms whose entry ``k`` belongs to the hidden state ``k`` frames before the loss.
    ``predictions`` optionally maps a label to a predicted curve of the same kind, drawn
    dashed in black *on top of* the measurements (so it stays visible where they agree)
    and listed in the legend. Non-positive or non-finite values are left out of a line
    rather than breaking the log scale.
    """
    ax = _axis(ax)
    for label, norms in norms_by_label.items():
        norms = np.asarray(norms, dtype=float)
        k = np.arange(len(norms))
        ok = np.isfinite(norms) & (norms > 0)
        ax.plot(k[ok], norms[ok], marker=".", markersize=3, lw=2.5, alpha=0.8, label=label)
    for i, (label, values) in enumerate((predictions or {}).items()):
        values = np.asarray(values, dtype=float)
        k = np.arange(len(values))
        ok = np.isfinite(values) & (values > 0)
        ax.plot(k[ok], values[ok], color="black", lw=1.1, ls=(0, (4, 2 + i)), zorder=5, label=label)
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


def plot_spectrogram(image, ax=None, extent=None, xlabel: str = "time (s)",
                     ylabel: str = "frequency (kHz)", colorbar_label: str = "log power",
                     cmap: str = "magma"):
    """Draw a (frequency, time) array, low frequencies at the bottom, with a labelled colorbar.

    ``image`` is ``(bins, T)``: a spectrogram transposed so that time runs left to right.
    ``extent`` is ``(t0, t1, f0, f1)`` in the axis units; without it, the axes count
    frames and bins.
    """
    ax = _axis(ax, figsize=(9.0, 2.8))
    im = ax.imshow(np.asarray(image, dtype=float), origin="lower", aspect="auto", cmap=cmap,
                   extent=extent, interpolation="nearest")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.figure.colorbar(im, ax=ax, label=colorbar_label, pad=0.01)
    return ax


def plot_seq2seq(T: int = 6, words: Sequence[str] = ("three", "one", "four"), ax=None):
    """Draw an encoder-decoder without attention over its two time axes (a diagram, no data).

    Encoder: inputs ``x_1..x_T`` and states ``h_1..h_T``. The context ``c = h_T`` is drawn
    as a node joined to ``h_T``, and one red arrow from it reaches every decoder state
    ``s_1..s_{U+1}``, whose inputs are ``<s>`` and the words and whose outputs are the
    words and ``</s>``.
    """
    n_out = len(words) + 1
    ax = _axis(ax, figsize=(10.0, 3.4))
    box = dict(boxstyle="round,pad=0.3", linewidth=1.1)
    arrow = dict(arrowstyle="-|>", color="0.3", lw=1.0, shrinkA=11, shrinkB=11)
    red = dict(arrowstyle="-|>", color="tab:red", lw=0.9, shrinkA=9, shrinkB=11)

    def node(x, y, text, color):
        ax.text(x, y, text, ha="center", va="center", bbox={**box, "fc": color})

    for t in range(1, T + 1):                                          # encoder, time axis t
        node(t, 0, f"$x_{{{t}}}$", "#dbe9f6")
        node(t, 1, f"$h_{{{t}}}$", "#fde2c4")
        ax.annotate("", (t, 1), (t, 0), arrowprops=arrow)
        if t > 1:
            ax.annotate("", (t, 1), (t - 1, 1), arrowprops=arrow)
    cx, cy = T + 0.9, 2.1                                              # the context node
    node(cx, cy, "$c = h_T$", "#f8d0d0")
    ax.annotate("", (cx, cy), (T, 1), arrowprops=dict(arrow, color="tab:red"))
    inputs, outputs = ["<s>", *words], [*words, "</s>"]
    for u in range(n_out):                                             # decoder, time axis u
        xpos = T + 2 + 1.3 * u
        node(xpos, 0, inputs[u], "#eeeeee")
        node(xpos, 1, f"$s_{{{u + 1}}}$", "#fde2c4")
        node(xpos, 2, outputs[u], "#d8f0d2")
        ax.annotate("", (xpos, 1), (xpos, 0), arrowprops=arrow)
        ax.annotate("", (xpos, 2), (xpos, 1), arrowprops=arrow)
        if u:
            ax.annotate("", (xpos, 1), (xpos - 1.3, 1), arrowprops=arrow)
        ax.annotate("", (xpos - 0.2, 1.15), (cx, cy), arrowprops=red)
    ax.text((T + 1) / 2, -0.8, "encoder: frames $t = 1, \\dots, T$", ha="center")
    ax.text(T + 2 + 1.3 * (n_out - 1) / 2, -0.8, "decoder: symbols $u = 1, \\dots, U+1$", ha="center")
    ax.set_xlim(0.3, T + 2.6 + 1.3 * (n_out - 1))
    ax.set_ylim(-1.1, 2.6)
    ax.axis("off")
    return ax


def plot_token_grid(grid, tokens: Sequence[str], pad: int, ax=None, title: str = "",
                    xlabel: str = "decoder step u"):
    """Draw a (U, B) array of token ids as a table, one row per utterance, padding greyed."""
    grid = np.asarray(grid)
    U, B = grid.shape
    ax = _axis(ax, figsize=(5.0, 2.6))
    ax.imshow(grid.T == pad, cmap="Greys", vmin=0, vmax=3, aspect="auto")
    for u in range(U):
        for b in range(B):
            token = tokens[grid[u, b]]
            ax.text(u, b, "pad" if grid[u, b] == pad else token, ha="center", va="center",
                    fontsize=9, color="0.45" if grid[u, b] == pad else "black")
    ax.set(title=title, xlabel=xlabel, xticks=range(U), yticks=range(B),
           yticklabels=[f"utt. {b}" for b in range(B)])
    return ax


def plot_by_length(curves: Mapping[str, Mapping[int, float]], ax=None,
                   ylabel: str = "sequence accuracy", styles: Mapping[str, dict] | None = None,
                   xlabel: str = "digits in the utterance", ylim=(0, 1.02)):
    """Plot one line per label against the number of digits, e.g. accuracy by length.

    ``curves`` maps a legend label to ``{n_digits: value}``; ``styles`` optionally maps a
    label to extra ``ax.plot`` keywords (a dashed prediction, say).
    """
    ax = _axis(ax)
    for label, values in curves.items():
        lengths = sorted(values)
        style = {"marker": "o", **(styles or {}).get(label, {})}
        ax.plot(lengths, [values[n] for n in lengths], label=label, **style)
    ax.set(xlabel=xlabel, ylabel=ylabel, ylim=ylim)
    ax.set_xticks(sorted({n for values in curves.values() for n in values}))
    ax.grid(True, alpha=0.3)
    ax.legend(frameon=False)
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


def plot_region_attention(regions: Sequence[Sequence[str]], path: Sequence[tuple[int, int]],
                          words: Sequence[str], ax=None, title: str = ""):
    """Draw an image as a grid of named regions and the order in which caption words attend to them.

    ``regions`` is a grid (rows of region names); ``path[i] = (row, col)`` is the region the
    ``i``-th caption word ``words[i]`` attends to most. Consecutive words are joined by
    numbered arrows, so a caption whose words jump around the image (no single scan order,
    unlike speech, whose words follow the frames) shows as a tangled path.
    """
    ax = _axis(ax, figsize=(4.5, 3.5))
    n_rows, n_cols = len(regions), len(regions[0])
    for r in range(n_rows):
        for c in range(n_cols):
            ax.add_patch(plt.Rectangle((c, n_rows - 1 - r), 1, 1, fill=False, lw=0.8, color="0.6"))
            ax.text(c + 0.5, n_rows - 0.12 - r, regions[r][c], ha="center", va="top", fontsize=8, color="0.4")
    centres = [(c + 0.5, n_rows - 1 - r + 0.45) for r, c in path]
    for i, ((x0, y0), (x1, y1)) in enumerate(zip(centres[:-1], centres[1:])):
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops=dict(arrowstyle="->", color="tab:red", lw=1.4, shrinkA=8, shrinkB=8))
    for i, ((x, y), word) in enumerate(zip(centres, words)):
        ax.text(x, y - 0.12 * (i % 2), f"{i + 1}. {word}", ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="tab:red", lw=0.8))
    ax.set_xlim(0, n_cols)
    ax.set_ylim(0, n_rows)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title)
    return ax


def plot_transformer(encoder: Mapping[str, int], decoder: Mapping[str, int], front: Mapping[str, int],
                     vocab_size: int, ax=None):
    """Draw a pre-norm Transformer encoder and decoder, one layer of each (a diagram, no data).

    ``encoder`` and ``decoder`` give ``d_model``, ``n_heads``, ``n_layers`` and ``d_ff``;
    ``front`` the convolutions before the encoder's self-attention: ``n_in`` (features per
    input step), ``convs``, ``kernel`` and ``stride``; ``vocab_size`` the decoder's outputs.
    Data flows upwards. Every sub-layer is a LayerNorm, then attention or the feed-forward
    network, then a residual "+" that adds back the sub-layer's input, carried round it on
    the right (pre-norm: the normalisation sits inside the branch, the sum outside). The
    decoder's cross-attention takes its queries from the decoder and its keys and values
    from the encoder's output, the memory.
    """
    ax = _axis(ax, figsize=(8.4, 8.6))
    width, height, step = 4.0, 0.64, 0.86
    colours = {"norm": "#fff3b0", "attention": "#fde2c4", "ff": "#dbe9f6", "front": "#d8f0d2",
               "io": "white"}
    arrow = dict(arrowstyle="-|>", color="0.25", lw=1.0, shrinkA=0, shrinkB=0)

    enc_d, dec_d = encoder["d_model"], decoder["d_model"]
    conv = (f"{front['convs']} × (Conv1d over time, ReLU)\n"
            f"kernel {front['kernel']}, stride {front['stride']}: {front['n_in']} → {enc_d}")
    # (kind, text), from the bottom up: "io" a tensor, "add" a "+" node, any other kind a box of its colour
    columns = {
        "encoder": [("io", f"stacked log-mel frames  (T, B, {front['n_in']})"),
                    ("front", "normalisation per utterance\nSpecAugment masks (training)"),
                    ("front", conv),
                    ("add", "+"),
                    ("norm", "LayerNorm"),
                    ("attention", f"self-attention\n{encoder['n_heads']} heads, d = {enc_d}"),
                    ("add", "+"),
                    ("norm", "LayerNorm"),
                    ("ff", f"feed-forward\n{enc_d} → {encoder['d_ff']} → {enc_d}, ReLU"),
                    ("add", "+"),
                    ("norm", "LayerNorm"),
                    ("io", f"memory  (T, B, {enc_d})")],
        "decoder": [("io", "symbols so far: <s> $z_1 \\dots z_{U-1}$  (U, B)"),
                    ("front", f"embedding  {vocab_size} → {dec_d}"),
                    ("add", "+"),
                    ("norm", "LayerNorm"),
                    ("attention", f"masked self-attention\n{decoder['n_heads']} heads, causal mask"),
                    ("add", "+"),
                    ("norm", "LayerNorm"),
                    ("attention", f"cross-attention\n{decoder['n_heads']} heads, d = {dec_d}"),
                    ("add", "+"),
                    ("norm", "LayerNorm"),
                    ("ff", f"feed-forward\n{dec_d} → {decoder['d_ff']} → {dec_d}, ReLU"),
                    ("add", "+"),
                    ("norm", "LayerNorm"),
                    ("front", f"linear  {dec_d} → {vocab_size}"),
                    ("io", f"logits  (U, B, {vocab_size})")],
    }
    cross = next(i for i, (_, text) in enumerate(columns["decoder"]) if text.startswith("cross-attention"))
    # the encoder's memory (its last row) sits level with the cross-attention that reads it
    first_row = {"decoder": 0, "encoder": cross - (len(columns["encoder"]) - 1)}
    centre = {"encoder": 0.0, "decoder": 6.0}
    repeats = {"encoder": encoder["n_layers"], "decoder": decoder["n_layers"]}
    places = {}
    for name, items in columns.items():
        x, n = centre[name], repeats[name]
        ys = [(first_row[name] + i) * step for i in range(len(items))]
        places[name] = ys
        kinds = [kind for kind, _ in items]
        start, end = kinds.index("norm"), len(kinds) - 1 - kinds[::-1].index("add")    # one layer
        bottom, top = ys[start] - 0.55 * step, ys[end] + 0.5 * step
        ax.add_patch(mpatches.FancyBboxPatch((x - width / 2 - 0.25, bottom), width + 1.0, top - bottom,
                                             boxstyle="round,pad=0,rounding_size=0.2", fc="0.96", ec="0.55",
                                             lw=1.0, zorder=0))
        side = -1 if name == "encoder" else 1
        label_x = x - width / 2 - 0.85 if side < 0 else x + width / 2 + 1.35
        ax.text(label_x, (bottom + top) / 2, f"× {n}", ha="center", va="bottom", fontsize=13)
        ax.text(label_x, (bottom + top) / 2 - 0.05, f"{name}\nlayers\n(pre-norm)", ha="center", va="top",
                fontsize=8, color="0.35", style="italic")
        for i, ((kind, text), y) in enumerate(zip(items, ys)):
            if kind == "add":
                ax.add_patch(mpatches.Circle((x, y), 0.19, fc="white", ec="0.25", lw=1.1, zorder=3))
                ax.text(x, y, text, ha="center", va="center", fontsize=12, zorder=4)
            elif kind == "io":
                ax.text(x, y, text, ha="center", va="center", fontsize=9, zorder=4)
            else:
                ax.add_patch(mpatches.FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                                                     boxstyle="round,pad=0,rounding_size=0.1",
                                                     fc=colours[kind], ec="0.35", lw=1.0, zorder=2))
                ax.text(x, y, text, ha="center", va="center", fontsize=8.5, zorder=4, linespacing=1.15)
            if i:                                               # the stream, from the item below
                below_kind = items[i - 1][0]
                low = ys[i - 1] + (0.19 if below_kind == "add" else 0.17 if below_kind == "io" else height / 2)
                high = y - (0.19 if kind == "add" else 0.17 if kind == "io" else height / 2)
                ax.annotate("", (x, high), (x, low), arrowprops=arrow, zorder=1)
        for i, (kind, text) in enumerate(items):
            if kind == "add" and items[i - 1][0] in ("attention", "ff"):
                # the residual: branch off below the sub-layer's LayerNorm, rejoin at its "+"
                fork, join, right = ys[i - 2] - 0.45 * step, ys[i], x + width / 2 + 0.45
                ax.plot([x, right, right], [fork, fork, join], color="0.25", lw=1.0, zorder=1)
                ax.plot([x], [fork], marker="o", ms=3, color="0.25", zorder=3)
                ax.annotate("", (x + 0.19, join), (right, join), arrowprops=arrow, zorder=1)
            elif kind == "add":                                 # the positions, added once
                ax.annotate("", (x - 0.19, ys[i]), (x - width / 2 - 0.1, ys[i]), arrowprops=arrow)
                ax.text(x - width / 2 - 0.15, ys[i], "sinusoidal\npositions", ha="right", va="center",
                        fontsize=8)
        ax.text(x, ys[0] - 0.75 * step, name, ha="center", va="top", fontsize=12, weight="bold")
    # the memory feeds every decoder layer's cross-attention: keys and values
    memory_y, cross_y = places["encoder"][-1], places["decoder"][cross]
    ax.annotate("", (centre["decoder"] - width / 2, cross_y), (centre["encoder"] + 1.3, memory_y),
                arrowprops=dict(arrow, color="tab:red", lw=1.4))
    ax.text((centre["encoder"] + centre["decoder"] - width / 2 + 1.3) / 2, memory_y + 0.12, "keys, values",
            ha="center", va="bottom", fontsize=8, color="tab:red")
    ys = [y for column in places.values() for y in column]
    ax.set_xlim(centre["encoder"] - width / 2 - 1.45, centre["decoder"] + width / 2 + 1.9)
    ax.set_ylim(min(ys) - 1.5 * step, max(ys) + 0.6 * step)
    ax.set_aspect("equal")
    ax.axis("off")
    return ax
