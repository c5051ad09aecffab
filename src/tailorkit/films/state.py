"""The complete dynamical state of one run (numpy arrays, numba-friendly) and its construction.

Everything the trajectory depends on is in `FilmState.arrays()`: occupancy, void list, displacements, overrides, the
sum tree, the xoshiro state, the clock [t, t_next] and the event counters. Saving and restoring those arrays
resumes a run bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tailorkit.films import kmc
from tailorkit.films.config import FilmConfig
from tailorkit.films.equilibrate import boltzmann_bonds, equilibrium_occupancy
from tailorkit.films.interactions import I_QUANT, pack_params, vseed_of, z1
from tailorkit.films.lattice import Lattice, build_lattice
from tailorkit.films.rng import rng_state

# Arrays that change during the run (checkpointed); the rest follow from the config.
DYNAMIC = (
    "occ",
    "pos",
    "vsite",
    "void_at",
    "disp",
    "hops",
    "t_relax",
    "ovr_id",
    "ovr_v",
    "tree",
    "stamp",
    "rng",
    "clock",
    "counters",
)


@dataclass
class FilmState:
    """Shapes: occ int32[S] (particle id or -1), pos int32[N], vsite int32[Nv], void_at int32[S] (void index or -1),
    disp int32[N, dim] (unwrapped displacement since t = 0), hops int64[N], t_relax float64[N] (-1 until the first
    |dr|^2 >= relax_r2), ovr_id int32[N, nd], ovr_v float64[N, nd], tree float64[2P], stamp int64[Nv], rng uint64[4],
    clock float64[2] = [t, t_next], counters int64[2] = [events, events since rebuild]."""

    config: FilmConfig
    lattice: Lattice
    fpar: np.ndarray
    ipar: np.ndarray
    vseed: np.uint64
    occ: np.ndarray
    pos: np.ndarray
    vsite: np.ndarray
    void_at: np.ndarray
    disp: np.ndarray
    hops: np.ndarray
    t_relax: np.ndarray
    ovr_id: np.ndarray
    ovr_v: np.ndarray
    tree: np.ndarray
    stamp: np.ndarray
    rng: np.ndarray
    clock: np.ndarray
    counters: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def t(self) -> float:
        return float(self.clock[0])

    @property
    def events(self) -> int:
        return int(self.counters[0])

    @property
    def n_particles(self) -> int:
        return int(self.pos.shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in DYNAMIC}

    def run_until(self, t_stop: float, max_events: int = 2**62) -> int:
        """Advance to t_stop (or max_events events); returns the number of events done."""
        return kmc.run_until(self, t_stop, max_events)

    @property
    def dense(self) -> bool:
        """Whether the kernel reads bond energies from a dense pair table (small systems) or site records."""
        forced = self.extra.get("table")  # "dense" / "records": measurements and tests pick one explicitly
        if forced is not None:
            return forced == "dense"
        return kmc.choose_table(int(self.ipar[1] + self.ipar[2]), bool(self.ipar[5]))

    @property
    def kparams(self) -> kmc.KParams:
        if "kparams" not in self.extra:
            self.extra["kparams"] = kmc.kernel_params(self.fpar, self.ipar, self.vseed)
        return self.extra["kparams"]

    @property
    def spec(self) -> tuple:
        return kmc.kernel_spec(self.ipar, self.dense)

    def kernel_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vals) for the kernel: the dense pair table, or per-site override records filled from `occ`.

        Both are derived from the checkpointed arrays (the overrides never change during a run), so they are not
        part of the state: the records are refilled on every call, the table whenever the overrides changed. With
        `run.kernel = "running"` their energies are on the 2**-36 grid.
        """
        if self.dense:
            key = hash((self.ovr_id.tobytes(), self.ovr_v.tobytes()))
            if self.extra.get("dense_key") != key:
                table = np.empty((self.n_particles, int(self.kparams.n_ids)))
                kmc.fill_dense_table(table, self.ovr_id, self.ovr_v, self.fpar, self.ipar, self.vseed)
                self.extra["dense_table"] = table
                self.extra["dense_key"] = key
            return np.zeros((1, 1), np.int32), self.extra["dense_table"]
        if "rec_id" not in self.extra:
            self.extra["rec_id"] = np.full((self.occ.shape[0], self.ovr_id.shape[1]), -1, np.int32)
            self.extra["rec_v"] = np.zeros((self.occ.shape[0], self.ovr_v.shape[1]))
        quant = bool(self.ipar[I_QUANT])
        kmc.fill_site_records(self.occ, self.ovr_id, self.ovr_v, self.extra["rec_id"], self.extra["rec_v"], quant)
        return self.extra["rec_id"], self.extra["rec_v"]

    def energy_sums(self, ids: np.ndarray, vals: np.ndarray) -> np.ndarray:
        """The running kernel's per-particle bond-energy sums, from scratch (`ids, vals` from kernel_tables). Derived
        state like the tables: refilled on every `run_until` call, so checkpoints do not carry it."""
        if "esum" not in self.extra:
            self.extra["esum"] = np.zeros(self.n_particles)
        kmc.fill_energy_sums(
            self.extra["esum"], self.pos, self.lattice.nbr, self.occ, ids, vals, self.kparams, self.spec
        )
        return self.extra["esum"]

    def fresh_rates(self) -> np.ndarray:
        """All leaves recomputed from scratch (tests compare them with the incrementally kept tree)."""
        tree = np.zeros_like(self.tree)
        kmc.build_tree(
            self.vsite, self.lattice.nbr, self.occ, self.ovr_id, self.ovr_v, tree, self.fpar, self.ipar, self.vseed
        )
        return tree

    def bond_energy(self, k: int, j: int) -> float:
        from tailorkit.films.interactions import bond_v

        return float(bond_v(k, j, self.ovr_id, self.ovr_v, self.fpar, self.ipar, self.vseed))


def empty_state(config: FilmConfig, lattice: Lattice | None = None) -> FilmState:
    """Arrays of the right shapes (filled by `initial_state` or a checkpoint)."""
    lat = lattice or build_lattice(config.lattice)
    n_sites, nd, n_voids = lat.n_sites, lat.nd, config.n_voids
    n_particles = n_sites - n_voids
    fpar, ipar = pack_params(config, nd, lat.area, n_particles)
    return FilmState(
        config=config,
        lattice=lat,
        fpar=fpar,
        ipar=ipar,
        vseed=vseed_of(config.run.seed),
        occ=np.full(n_sites, -1, np.int32),
        pos=np.zeros(n_particles, np.int32),
        vsite=np.zeros(n_voids, np.int32),
        void_at=np.full(n_sites, -1, np.int32),
        disp=np.zeros((n_particles, lat.dim), np.int32),
        hops=np.zeros(n_particles, np.int64),
        t_relax=np.full(n_particles, -1.0),
        ovr_id=np.full((n_particles, nd), -1, np.int32),
        ovr_v=np.zeros((n_particles, nd)),
        tree=np.zeros(2 * int(ipar[7])),
        stamp=np.zeros(n_voids, np.int64),
        rng=rng_state(config.run.seed, "dynamics"),
        clock=np.zeros(2),
        counters=np.zeros(2, np.int64),
    )


def place(state: FilmState, occ: np.ndarray) -> None:
    """Set the occupancy and everything derived from it (positions, void list, rates, first waiting time)."""
    state.occ[:] = occ
    particles = np.flatnonzero(occ >= 0)
    state.pos[occ[particles]] = particles
    state.vsite[:] = np.flatnonzero(occ < 0)
    state.void_at[:] = -1
    state.void_at[state.vsite] = np.arange(state.vsite.shape[0], dtype=np.int32)
    lat = state.lattice
    kmc.build_tree(
        state.vsite, lat.nbr, state.occ, state.ovr_id, state.ovr_v, state.tree, state.fpar, state.ipar, state.vseed
    )
    kmc.draw_next(state.clock, state.tree, state.rng)


def initial_state(config: FilmConfig, lattice: Lattice | None = None) -> FilmState:
    """The exact equilibrium start: lattice-gas preheat, random labels, Boltzmann bonds (see equilibrate.py)."""
    state = empty_state(config, lattice)
    lat = state.lattice
    init_rng = rng_state(config.run.seed, "init")
    attempts = config.run.preheat_sweeps * lat.n_sites
    occ, _ = equilibrium_occupancy(lat.nbr, config.n_voids, math.log(z1(config)), attempts, init_rng)
    m = config.model
    boltzmann_bonds(
        occ,
        lat.nbr,
        lat.area,
        state.n_particles,
        config.lattice.substrate == "pinned",
        state.ovr_id,
        state.ovr_v,
        m.V0,
        m.V1,
        m.T,
        1 if m.g == "delta" else 0,
        init_rng,
    )
    place(state, occ)
    return state
