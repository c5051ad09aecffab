"""`tailorkit.active`: SLPT (arXiv:2308.04911): prompt tuning of a frozen segmentation network with TESLA selection.

Public API:
    ActiveLearner(pool, backbone, select, tune, seed, state)   propose(budget) -> ids, update(labels), fit(), resume()
    load_split(DataConfig) / synthliver / load_folder          LiTS slab split, SynthLiver, users' NIfTI folders
    pretrained_backbone(upstream, BackboneConfig)              the frozen upstream U-Net (cached on disk)
    make_tuner / TUNERS                                        slpt, prompt, full_ft, decoder_ft, head_only, scratch
    make_strategy / STRATEGIES                                 tesla, random, entropy, bald, coreset, usl
    tune, predict, dice_global, dice_per_case                  training, inference, metrics
    prompt_uncertainty, bald_score, k_center_greedy, kmeans_representatives
"""

from __future__ import annotations

from tailorkit.active.backbone import encoder_features, pretrained_backbone
from tailorkit.active.config import ActiveConfig, BackboneConfig, DataConfig, SelectConfig, TuneConfig, budget_count
from tailorkit.active.data import SegSet, Split, load_folder, load_split, synthliver
from tailorkit.active.loop import ActiveLearner, LoopStateError
from tailorkit.active.methods import STRATEGIES, TUNERS, SegModel, make_strategy, make_tuner
from tailorkit.active.selection import k_center_greedy, kmeans_representatives
from tailorkit.active.tuning import dice_global, dice_per_case, predict, tune
from tailorkit.active.uncertainty import bald_score, prompt_uncertainty

__all__ = [
    "STRATEGIES",
    "TUNERS",
    "ActiveConfig",
    "ActiveLearner",
    "BackboneConfig",
    "DataConfig",
    "LoopStateError",
    "SegModel",
    "SegSet",
    "SelectConfig",
    "Split",
    "TuneConfig",
    "bald_score",
    "budget_count",
    "dice_global",
    "dice_per_case",
    "encoder_features",
    "k_center_greedy",
    "kmeans_representatives",
    "load_folder",
    "load_split",
    "make_strategy",
    "make_tuner",
    "predict",
    "pretrained_backbone",
    "prompt_uncertainty",
    "synthliver",
    "tune",
]
