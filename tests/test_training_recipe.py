"""The one training recipe's front end (speechmodels.training.FrontEnd): what it does to frames."""
import torch

from speechmodels.training import CONFIG, FrontEnd


def _frames(T=12, B=3, stack=4, peak=20):
    x = torch.full((T, B, stack * 40), -5.0)
    x.view(T, B, stack, 40)[..., peak] = 5.0                          # one formant-like peak per frame
    x += 0.1 * torch.randn_like(x)
    return x, torch.tensor([T, 7, 3])


def test_normalises_each_utterance_over_its_real_frames_only():
    x, lengths = _frames()
    y = FrontEnd().eval()(x, lengths)
    for b, n in enumerate(lengths.tolist()):
        real = y[:n, b]
        assert torch.allclose(real.mean(0), torch.zeros(real.shape[1]), atol=1e-4)
        assert (y[n:, b] == 0).all()


def test_eval_mode_never_augments():
    x, lengths = _frames()
    front = FrontEnd.from_config(CONFIG).eval()
    assert torch.equal(front(x, lengths), FrontEnd().eval()(x, lengths))


def test_warp_moves_a_peak_by_at_most_the_warp_and_keeps_padding_zero():
    torch.manual_seed(0)
    x = torch.zeros(5, 64, 4, 40)                                      # (T, B, stack, bands)
    x[:, :, :, 20] = 1.0                                               # one formant-like peak
    x[3:, 0] = 0.0                                                     # utterance 0: two padded frames
    y = FrontEnd(warp=0.1)._warp(x)
    assert y.shape == x.shape and (y[3:, 0] == 0).all()
    peaks = y[:3].argmax(-1).float()                                   # (3, B, stack): real frames
    assert ((peaks >= 20 / 1.1 - 1) & (peaks <= 20 / 0.9 + 1)).all()
    assert len(set(peaks[0, :, 0].tolist())) > 1, "each utterance gets its own factor"
    assert (peaks == peaks[:1, :, :1]).all(), "every frame of one utterance shares it"
    assert torch.allclose(FrontEnd(warp=1e-7)._warp(x), x, atol=1e-5), "no warp, no change"
