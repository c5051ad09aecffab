"""The analysis formulas on synthetic inputs with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tailorkit.films import analysis as A


def test_tau_and_kww_from_synthetic_curve() -> None:
    t = np.logspace(-2, 3, 60)
    f = np.exp(-((t / 7.0) ** 0.6))
    tau_kww, beta = A.kww_fit(t, f)
    assert tau_kww == pytest.approx(7.0, rel=0.01) and beta == pytest.approx(0.6, rel=0.01)
    assert A.tau_crossing(t, f) == pytest.approx(7.0, rel=0.01)  # f(tau) = 1/e exactly for KWW
    assert math.isnan(A.tau_crossing(t, np.ones_like(t)))


def test_mobility_weights_and_uniform_tau() -> None:
    for h in (1, 6, 16):
        assert A.mobility_weights(h).sum() == pytest.approx(h**3)
        assert A.tau_eff(np.full(h, 3.5)) == pytest.approx(3.5)
        assert A.film_mobility(np.full(h, 2.0), G=1.5) == pytest.approx(h**3 / (3 * 1.5 * 2.0))
    w = A.mobility_weights(10)
    assert w[0] == 271 and w[-1] == 1  # substrate layer ~3h^2, top layer 1


def test_two_layer_model_reproduced_by_layer_sum() -> None:
    h, hm, tau_b, tau_m = 20, 3, 100.0, 0.5
    tau = np.full(h, tau_b)
    tau[h - hm :] = tau_m
    assert A.film_mobility(tau) == pytest.approx(A.two_layer_mobility(h, hm, tau_m, tau_b))
    ratio = A.tau_eff(tau) / tau_b
    assert 0 < ratio < 1
    n = A.mobile_thickness(tau, tau_b)
    assert n == hm
    s = A.surface_fraction(tau, n)
    assert 0 <= s <= 1
    assert s == pytest.approx((hm**3 / tau_m) / ((h**3 - hm**3) / tau_b + hm**3 / tau_m))


def test_fits_nu_and_crossing() -> None:
    T = np.array([0.3, 0.25, 0.22, 0.2, 0.18, 0.16])
    tau_arr = np.exp(1.0 + 0.5 / (T - 0.1))
    vft = A.fit_vft(T, tau_arr)
    arr = A.fit_arrhenius(T, tau_arr)
    assert vft["T0"] == pytest.approx(0.1, abs=0.005) and vft["aic"] < arr["aic"]
    assert A.facilitation_exponent([0.01, 0.02, 0.04], [100.0, 100 / 2**1.5, 100 / 4**1.5]) == pytest.approx(1.5)
    assert A.crossing_temperature([0.2, 0.18, 0.16], [0.2, 0.4, 0.8]) == pytest.approx(0.175)
    assert math.isnan(A.crossing_temperature([0.2, 0.18], [0.1, 0.2]))


def test_front_depth_and_half_relaxation() -> None:
    layer0 = np.repeat(np.arange(4), 10)
    t_relax = np.where(layer0 == 3, 1.0, np.where(layer0 == 2, 5.0, -1.0))
    frac = A.relaxed_fraction([0.5, 2.0, 10.0], t_relax, layer0, 4)
    np.testing.assert_array_equal(A.front_depth(frac), [0, 1, 2])
    half = A.half_relaxation_times(t_relax, layer0, 4)
    assert half[3] == 1.0 and half[2] == 5.0 and math.isnan(half[0])


def test_kww_fit_of_a_rising_curve_is_nan_not_an_overflow() -> None:
    t = np.array([1.0, 2.0, 4.0, 8.0])
    f = np.array([0.3, 0.35, 0.5, 0.8])  # noise at early times can look like this: beta < 0
    tau, beta = A.kww_fit(t, f)
    assert math.isnan(tau) and beta < 0
