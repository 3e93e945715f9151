"""The diagrams of `speechcourse.plots` draw what they say, and chapter 5's draws the capstone as built."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from speechcourse.plots import plot_transformer  # noqa: E402
from speechmodels.recogniser import DECODER, ENCODER, Recogniser  # noqa: E402
from speechmodels.training import CONFIG  # noqa: E402

FRONT = {"n_in": 160, "convs": 2, "kernel": 5, "stride": 1}
# what each sub-layer's box says first, and the module of the capstone that computes it
PARTS = {"LayerNorm": "norm", "self-attention": "attention.W_q", "masked self-attention": "self_attention.W_q",
         "cross-attention": "cross_attention.W_q", "feed-forward": "feed_forward"}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def column(ax, x: float) -> list[str]:
    """The first line of every text drawn at ``x`` (one column of the diagram), bottom to top."""
    texts = [t for t in ax.texts if t.get_text() and abs(t.get_position()[0] - x) < 1e-6]
    return [t.get_text().split("\n")[0] for t in sorted(texts, key=lambda t: t.get_position()[1])]


def layer(texts: list[str]) -> list[str]:
    """The repeated layer of a column: from its first LayerNorm to its last residual "+"."""
    start = texts.index("LayerNorm")
    end = len(texts) - 1 - texts[::-1].index("+")
    return texts[start:end + 1]


def test_transformer_diagram_draws_pre_norm_layers_with_residuals_and_cross_attention():
    ax = plot_transformer(dict(ENCODER, n_layers=5), dict(DECODER, n_layers=7, n_heads=3), FRONT, 13)
    texts = [t.get_text() for t in ax.texts]
    assert "× 5" in texts and "× 7" in texts, "the repeat counts come from the configs"
    assert any(t.startswith("cross-attention\n3 heads") for t in texts)
    assert any("kernel 5, stride 1: 160 → 96" in t for t in texts)
    assert any(t.startswith("logits") and "13" in t for t in texts)
    encoder, decoder = column(ax, 0.0), column(ax, 6.0)
    assert layer(encoder) == ["LayerNorm", "self-attention", "+", "LayerNorm", "feed-forward", "+"]
    assert layer(decoder) == ["LayerNorm", "masked self-attention", "+", "LayerNorm", "cross-attention", "+",
                              "LayerNorm", "feed-forward", "+"]
    assert encoder[-2:] == ["LayerNorm", "memory  (T, B, 96)"], "a final LayerNorm, then the memory"
    residuals = [line for line in ax.lines if len(line.get_xdata()) == 3]        # fork, right, up to the "+"
    assert len(residuals) == 2 + 3, "one residual path round each sub-layer of the two layers"


def _call_order(module: torch.nn.Module, run) -> list[str]:
    """Names (relative to ``module``) of the diagram's parts in the order ``run()`` calls them."""
    order, hooks = [], []
    for name, sub in module.named_modules():
        if name.startswith("norm") or name in PARTS.values():
            hooks.append(sub.register_forward_hook(lambda *_, name=name: order.append(name)))
    try:
        run()
    finally:
        for hook in hooks:
            hook.remove()
    return order


def test_transformer_diagram_is_the_order_the_capstone_computes():
    """Were the capstone's layers changed (post-norm, say), the chapter's figure would no longer be it."""
    torch.manual_seed(0)
    model = Recogniser(FRONT["n_in"], CONFIG).eval()
    conv = model.encoder.front.conv1
    assert (conv.in_channels, conv.kernel_size[0], conv.stride[0]) == (FRONT["n_in"], FRONT["kernel"], FRONT["stride"])
    x, lengths, y_in = torch.randn(9, 2, FRONT["n_in"]), torch.tensor([9, 6]), torch.randint(3, 13, (4, 2))
    encoder_layer, decoder_layer = model.encoder.layers[0], model.decoder.layers[0]
    computed = {"encoder": _call_order(encoder_layer, lambda: model.encode(x, lengths)),
                "decoder": _call_order(decoder_layer, lambda: model(x, lengths, y_in))}
    ax = plot_transformer(ENCODER, DECODER, FRONT, model.decoder.out.out_features)
    for name, centre in (("encoder", 0.0), ("decoder", 6.0)):
        drawn = [PARTS[part] for part in layer(column(ax, centre)) if part != "+"]
        called = ["norm" if part.startswith("norm") else part for part in computed[name]]
        assert called == drawn, f"the {name} layer computes {called}, the diagram draws {drawn}"
