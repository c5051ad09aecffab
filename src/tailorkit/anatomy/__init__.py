"""anatomy: SAM / SAMv2 self-supervised anatomical embeddings and one-shot landmark matching.

SAM (Yan et al., IEEE TMI 2022) and SAMv2 / UAE (Liu et al., arXiv 2311.15111) learn an embedding for every voxel
of a 3D scan so that a landmark marked once on an atlas can be found in any scan. Public API:

- networks and training: `SAMNet`, `NetConfig`, `SAMTrainConfig`, `train_sam`, `save_model`, `load_model`
- inference: `embed(volume, net) -> Embedding` (maps + world affines), `EmbedConfig`
- matching: `match_nn`, `match_fixed_point`, `match_cycle`, `robust_affine`, `MATCHERS`, `MatchConfig`
- cross-modality iteration (UAE-M, reduced): `register_affine`, `train_cross_modality`
- data: `bench_atlas` (MNI152 + AAL landmarks), `random_deformation` (affine + SVF, exact inverse),
  `tissue_contrast` (T2-like and random contrasts), `resample_isotropic`
See docs/anatomy.md.
"""

from tailorkit.anatomy.config import BenchConfig, EmbedConfig, MatchConfig, NetConfig, SAMTrainConfig
from tailorkit.anatomy.crossmodal import register_affine, sample_cross_pair, train_cross_modality
from tailorkit.anatomy.data import T2_LIKE, Atlas, asset_volume, bench_atlas, resample_isotropic, tissue_contrast
from tailorkit.anatomy.deform import Deformation, exp_velocity, random_deformation
from tailorkit.anatomy.embed import Embedding, embed
from tailorkit.anatomy.losses import info_nce, prototype_loss, sam_coarse_loss, sam_fine_loss
from tailorkit.anatomy.matching import (
    MATCHERS,
    MatchResult,
    match_cycle,
    match_fixed_point,
    match_identity,
    match_nn,
    robust_affine,
)
from tailorkit.anatomy.network import SAMNet, SAMOutput
from tailorkit.anatomy.train import TrainedModel, load_model, save_model, train_sam

__all__ = [
    "MATCHERS",
    "T2_LIKE",
    "Atlas",
    "BenchConfig",
    "Deformation",
    "EmbedConfig",
    "Embedding",
    "MatchConfig",
    "MatchResult",
    "NetConfig",
    "SAMNet",
    "SAMOutput",
    "SAMTrainConfig",
    "TrainedModel",
    "asset_volume",
    "bench_atlas",
    "embed",
    "exp_velocity",
    "info_nce",
    "load_model",
    "match_cycle",
    "match_fixed_point",
    "match_identity",
    "match_nn",
    "prototype_loss",
    "random_deformation",
    "register_affine",
    "resample_isotropic",
    "robust_affine",
    "sam_coarse_loss",
    "sam_fine_loss",
    "sample_cross_pair",
    "save_model",
    "tissue_contrast",
    "train_cross_modality",
    "train_sam",
]
