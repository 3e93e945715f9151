"""The numpy front end: shapes, frame counts, where a tone's energy lands, and agreement
with independent computations (a direct DFT and torch.stft)."""
import numpy as np
import pytest
import torch

from speechcourse import frontend as fe

SR = fe.SAMPLE_RATE


def tone(freq, seconds=1.0, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return np.sin(2 * np.pi * freq * t)


def test_frame_count_for_one_second():
    # 1 + (8000 - 200) // 80 = 98 frames at a 10 ms hop (8 kHz); 49 at the corpus's 20 ms hop
    assert fe.num_frames(8000, 200, 80) == 98
    assert fe.num_frames(16000, 400, 160) == 98
    assert fe.log_mel(tone(440)).shape == (98, 40)
    assert fe.log_mel(tone(440), hop_ms=20).shape == (49, 40)


def test_frame_signal_contents_and_shape():
    x = np.arange(1000.0)
    frames = fe.frame_signal(x, 400, 160)
    assert frames.shape == (1 + (1000 - 400) // 160, 400)
    np.testing.assert_array_equal(frames[2], x[320:720])      # frame t starts at t * hop


def test_bad_inputs_say_what_is_wrong():
    with pytest.raises(ValueError, match="shorter than one frame"):
        fe.frame_signal(np.zeros(100), 400, 160)
    with pytest.raises(ValueError, match="1-D"):
        fe.frame_signal(np.zeros((2, 1000)), 400, 160)
    with pytest.raises(ValueError, match="unknown window"):
        fe.window("triangle", 10)
    with pytest.raises(ValueError, match="n_fft"):
        fe.power_spectrum(np.zeros((3, 600)), 512)


def test_power_spectrum_matches_direct_dft():
    rng = np.random.default_rng(0)
    frames = rng.standard_normal((5, 400))
    n_fft, K = 512, 257
    k, n = np.arange(K)[:, None], np.arange(400)[None, :]
    dft = np.exp(-2j * np.pi * k * n / n_fft)                 # (K, L): zero padding to n_fft is implicit
    expected = np.abs(frames @ dft.T) ** 2                    # (T, K)
    np.testing.assert_allclose(fe.power_spectrum(frames, n_fft), expected, rtol=1e-9, atol=1e-9)


def test_power_spectrum_matches_torch_stft():
    x = np.random.default_rng(1).standard_normal(4000)
    spec = torch.stft(torch.from_numpy(x), n_fft=512, hop_length=160, win_length=400,
                      window=torch.hann_window(400, periodic=False, dtype=torch.float64),
                      center=False, return_complex=True)      # (K, T)
    theirs = spec.abs().numpy().T ** 2                          # (T, K)
    # torch puts the 400-sample window in the middle of each 512-sample frame, so its
    # frame t covers x[t*160 + 56 : t*160 + 456]; frames of x[56:] see the same samples.
    ours = fe.power_spectrum(fe.apply_window(fe.frame_signal(x[56:], 400, 160), "hann"), 512)
    T = min(len(theirs), len(ours))
    assert T >= 20 and ours.shape[1] == theirs.shape[1] == 257
    np.testing.assert_allclose(ours[:T], theirs[:T], rtol=1e-7, atol=1e-7)


def test_every_mel_filter_of_the_8khz_front_end_spans_several_fft_bins():
    """Why N_FFT is 512 at 8 kHz: 200 samples zero-padded give a 15.6 Hz grid, and the
    narrowest filter (20 Hz .. 3.8 kHz, 40 bands) still covers 4 bins; at 256 points only 2."""
    fb = fe.mel_filterbank(fe.N_MELS, fe.N_FFT, SR, fe.F_MIN, fe.F_MAX)
    assert (fb > 0).sum(0).min() >= 4 and fb.max(0).min() > 0.8
    assert (fe.mel_filterbank(fe.N_MELS, 256, SR, fe.F_MIN, fe.F_MAX) > 0).sum(0).min() == 2
    assert SR / 2 == 4000 and fe.F_MAX < SR / 2


def test_mel_filterbank_shape_and_triangles():
    fb = fe.mel_filterbank(40, 512, SR)
    assert fb.shape == (257, 40)
    assert fb.min() >= 0 and fb.max() <= 1
    assert np.all(fb.max(axis=0) > 0.5)                        # no empty band at this resolution
    peaks = fb.argmax(axis=0)
    assert np.all(np.diff(peaks) >= 0)                         # centres rise with band index
    assert np.all(np.diff(peaks[20:]) > np.diff(peaks[:20]).mean())   # high bands are wider apart


@pytest.mark.parametrize("freq", [300.0, 1000.0, 2000.0, 3500.0])
def test_pure_tone_lands_in_the_right_mel_band(freq):
    feats = fe.log_mel(tone(freq))                             # (T, 40), filters F_MIN .. F_MAX
    edges = fe.mel_to_hz(np.linspace(fe.hz_to_mel(fe.F_MIN), fe.hz_to_mel(fe.F_MAX), 42))
    expected_band = np.argmin(np.abs(edges[1:-1] - freq))      # band whose centre is nearest
    loudest = np.bincount(feats.argmax(axis=1), minlength=40).argmax()
    assert abs(loudest - expected_band) <= 1, (loudest, expected_band)


def test_log_mel_is_deterministic_and_float32():
    x = np.random.default_rng(2).standard_normal(8000)
    a, b = fe.log_mel(x), fe.log_mel(x.copy())
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b)


def test_silence_is_floored_not_minus_infinity():
    feats = fe.log_mel(np.zeros(4000))
    assert np.all(np.isfinite(feats)) and np.allclose(feats, np.log(1e-10))


def test_stack_frames_single_and_batched():
    x = np.arange(7 * 3, dtype=float).reshape(7, 3)            # (T=7, F=3)
    s = fe.stack_frames(x, 2)
    assert s.shape == (3, 6)
    np.testing.assert_array_equal(s[1], np.concatenate([x[2], x[3]]))   # frames 2 and 3, joined
    batch = np.stack([x, x + 100], axis=1)                     # (T=7, B=2, F=3)
    sb = fe.stack_frames(batch, 3)
    assert sb.shape == (2, 2, 9)
    np.testing.assert_array_equal(sb[:, 1], fe.stack_frames(x + 100, 3))
    assert fe.stack_frames(x, 1) is x
    with pytest.raises(ValueError):
        fe.stack_frames(x, 8)
