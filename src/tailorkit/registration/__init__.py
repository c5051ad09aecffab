"""registration: SAME++ (Tian et al., arXiv 2311.14986) for 2D/3D scans, beside ANTs, elastix, SimpleITK, convexAdam.

Public API:
- `register(fixed, moving, config, model=..., net=...) -> RegistrationResult` (Volumes) and `register_arrays`
  (2D/3D tensors with affines): SAM-Affine -> SAM-Coarse -> SAM-Deform -> SAM-IO, each step optional and reported;
  MIND-like intensity features when no trained SAM embedding is given.
- steps: `sam_affine`, `sam_coarse`, `sam_io` (same.py), `DeformNet`, `deform_step`, `train_deform` (deform_net.py),
  `train_deform_network` (train.py); features: `mind_features`, `sam_features`, `FeatureMap`.
- transforms (world mm, 2D/3D): `transforms.warp_image`, `warp_labels`, `compose`, `exp_svf`, `invert_svf`,
  `jacobian_determinant`, `folding_percent`, `sdlogj`, `dice`, `tre`; `save_displacement` / `load_displacement`
  (ITK-compatible NIfTI).
- peers: `PEERS`, `run_peer` (ANTs affine / SyN, SimpleITK demons, elastix, convexAdam; `init=` starts them from
  the same initial transform), `peer_missing`.
- initialisation and checks: `initialise` (moments / centre of mass / identity, by similarity), `assess_result`
  (the verdict on any method's map), `Similarity`, `check_affine`, `assess`.
See docs/registration.md.
"""

from tailorkit.registration import transforms
from tailorkit.registration.config import (
    AffineConfig,
    BenchConfig,
    CoarseConfig,
    DeformNetConfig,
    DeformTrainConfig,
    FeatureConfig,
    InitConfig,
    IOConfig,
    QualityConfig,
    RegistrationConfig,
)
from tailorkit.registration.deform_net import DeformNet, DeformPair, deform_step, train_deform
from tailorkit.registration.features import FeatureMap, mind_features, sam_features
from tailorkit.registration.io import load_displacement, save_displacement
from tailorkit.registration.peers import PEERS, peer_missing, run_peer
from tailorkit.registration.pipeline import (
    RegistrationResult,
    assess_result,
    initialise,
    register,
    register_arrays,
)
from tailorkit.registration.quality import Similarity, assess, check_affine
from tailorkit.registration.same import AffineResult, sam_affine, sam_coarse, sam_io
from tailorkit.registration.train import train_deform_network

__all__ = [
    "PEERS",
    "AffineConfig",
    "AffineResult",
    "BenchConfig",
    "CoarseConfig",
    "DeformNet",
    "DeformNetConfig",
    "DeformPair",
    "DeformTrainConfig",
    "FeatureConfig",
    "FeatureMap",
    "IOConfig",
    "InitConfig",
    "QualityConfig",
    "RegistrationConfig",
    "RegistrationResult",
    "Similarity",
    "assess",
    "assess_result",
    "check_affine",
    "deform_step",
    "initialise",
    "load_displacement",
    "mind_features",
    "peer_missing",
    "register",
    "register_arrays",
    "run_peer",
    "sam_affine",
    "sam_coarse",
    "sam_features",
    "sam_io",
    "save_displacement",
    "train_deform",
    "train_deform_network",
    "transforms",
]
