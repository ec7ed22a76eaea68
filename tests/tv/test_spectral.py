"""Spectral TV: exact reconstruction, band filtering, the spectrum of eigenfunctions."""
import pytest
import torch

from pdeflow.datasets import builtin_image, disk
from pdeflow.tv import SpectralTV, dyadic_band_edges, spectral_tv, tv_flow


@pytest.fixture(scope="module")
def image():
    return 5 * builtin_image("skimage/camera", grey=True)[:, 120:152, 200:232].double()


def test_bands_and_residual_reconstruct_exactly(image):
    s = spectral_tv(image, dt=0.04, n_steps=20, tol=1e-5)
    assert (s.reconstruct() - image).abs().max() < 1e-12
    bands = s.filter()
    assert (bands.sum(0) + s.residual - image).abs().max() < 1e-12
    assert s.phi.shape == (20, *image.shape) and s.spectrum.shape == (20,)


def test_transform_is_t_times_second_time_difference(image):
    dt, n = 0.05, 6
    s = spectral_tv(image, dt=dt, n_steps=n, tol=1e-7)
    u = tv_flow(image, [k * dt for k in range(n + 2)], dt=dt, tol=1e-7)
    k = 3
    expected = k * dt * (u[k - 1] - 2 * u[k] + u[k + 1]) / dt**2
    assert (s.phi[k - 1] - expected).abs().max() < 1e-6
    torch.testing.assert_close(s.spectrum[k - 1], s.phi[k - 1].abs().sum())


def test_disk_spectrum_is_a_single_peak_at_its_vanishing_time():
    # A disk of height h and radius r vanishes (into its background) near t = h*r/2
    # (more precisely h * area / perimeter); its spectrum concentrates there.
    r, h = 6, 1.0
    u0 = disk(48, r, height=h).double()
    s = spectral_tv(u0, dt=0.2, n_steps=30, tol=1e-6)
    peak_t = s.times[s.spectrum.argmax()].item()
    assert abs(peak_t - h * r / 2) < 0.35 * h * r / 2
    # Mass concentrates around the peak: 80% within +-30% of it.
    near = (s.times - peak_t).abs() < 0.3 * peak_t
    assert s.spectrum[near].sum() > 0.8 * s.spectrum.sum()


def test_dyadic_edges_default_and_custom_bands(image):
    assert dyadic_band_edges(50, 1.0) == [0.5, 1.5, 3.5, 7.5, 15.5, 50.5]  # TVspecNET's five bands
    s = spectral_tv(image, dt=0.04, n_steps=10, tol=1e-5)
    two = s.filter([0.0, 0.2, 1.0])
    assert two.shape == (2, *image.shape)
    torch.testing.assert_close(two.sum(0) + s.residual, image, atol=1e-12, rtol=0)
    lowpass = s.apply(lambda t: (t >= 0.2).double(), residual=True)
    torch.testing.assert_close(lowpass, two[1] + s.residual)


def test_bands_are_the_responses_of_their_times():
    # filter sums a band's run of phi_k: apply with the band's 0/1 response to round-off (the sums' order may
    # differ), and times out of order take apply itself
    g = torch.Generator().manual_seed(0)
    phi = torch.randn(12, 2, 5, 7, generator=g, dtype=torch.float64)
    times = torch.arange(1, 13, dtype=torch.float64) * 0.1
    edges = [0.05, 0.25, 0.65, 1.25]
    for dtype in (torch.float64, torch.float32):
        s = SpectralTV(times=times, phi=phi.to(dtype), spectrum=phi.abs().sum((1, 2, 3)), residual=phi[0].to(dtype),
                       dt=0.1)
        ref = torch.stack([s.apply(((times >= a) & (times < b)).to(dtype)) for a, b in zip(edges, edges[1:])])
        torch.testing.assert_close(s.filter(edges), ref, atol=16 * torch.finfo(dtype).eps, rtol=0)
    shuffled = torch.randperm(12, generator=g)
    s = SpectralTV(times=times[shuffled], phi=phi[shuffled], spectrum=None, residual=phi[0], dt=0.1)
    ref = torch.stack([s.apply(((s.times >= a) & (s.times < b)).double()) for a, b in zip(edges, edges[1:])])
    torch.testing.assert_close(s.filter(edges), ref, atol=0, rtol=0)


def test_batched_spectrum_shape():
    x = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    s = spectral_tv(x, dt=0.05, n_steps=4, tol=1e-5)
    assert s.spectrum.shape == (4, 2)
    assert (s.reconstruct() - x).abs().max() < 1e-12


def test_bad_arguments():
    x = torch.rand(8, 8)
    with pytest.raises(ValueError, match="n_steps"):
        spectral_tv(x, n_steps=0)
    with pytest.raises(ValueError, match="dt must be"):
        spectral_tv(x, dt=-1.0, n_steps=3)
    s = spectral_tv(x, dt=0.1, n_steps=3, tol=1e-3)
    with pytest.raises(ValueError, match="bands must be"):
        s.filter([0.3, 0.1])
