"""tailorkit.films: glassy polymer films in the distinguishable-particle lattice model (DPLM).

arXiv:2402.11210 ("Surface mobility gradient and emergent facilitation in glassy films"): a lattice model of film
geometry with void-mediated facilitation and no elasticity. This package simulates it with a rejection-free kinetic
Monte Carlo (binary sum tree, exact exponential waiting times, numba kernels) from exact equilibrium states, measures
layer-resolved relaxation, and turns tau(z) into film mobility and eta_eff / eta_bulk.

    from tailorkit.films import FilmConfig, LatticeConfig, ModelConfig, RunConfig, simulate
    result = simulate(FilmConfig(LatticeConfig(Lx=128, h=16), ModelConfig(T=0.22)), "run.h5")
    result.summary["tau_z"]

See docs/films.md for what is verified and what is inferred.
"""

from tailorkit.films.analysis import (
    film_mobility,
    kww_fit,
    mobile_thickness,
    mobility_weights,
    surface_fraction,
    tau_crossing,
    tau_eff,
    two_layer_mobility,
)
from tailorkit.films.config import FilmConfig, LatticeConfig, ModelConfig, RunConfig
from tailorkit.films.io import FilmIOError, load_run, restore_state
from tailorkit.films.simulate import RunResult, simulate
from tailorkit.films.state import FilmState, initial_state
from tailorkit.films.study import analyze_results, results_from_files
from tailorkit.films.sweep import SweepConfig, expand, run_sweep

__all__ = [
    "FilmConfig",
    "FilmIOError",
    "FilmState",
    "LatticeConfig",
    "ModelConfig",
    "RunConfig",
    "RunResult",
    "SweepConfig",
    "analyze_results",
    "expand",
    "film_mobility",
    "initial_state",
    "kww_fit",
    "load_run",
    "mobile_thickness",
    "mobility_weights",
    "restore_state",
    "results_from_files",
    "run_sweep",
    "simulate",
    "surface_fraction",
    "tau_crossing",
    "tau_eff",
    "two_layer_mobility",
]
