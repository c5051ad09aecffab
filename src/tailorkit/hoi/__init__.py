"""`tailorkit.hoi`: human-object interaction detection, HODN (arXiv:2308.10158) beside QPIC- and CDN-like baselines.

Public API:
    build_model(model_config, num_obj_classes, num_verbs) -> HOIModel   variants `single`, `cascade`, `hodn`
        and the depth-matched controls `cascade_deep`, `single_deep` (METHODS)
    train(config, data, features=...) -> TrainResult; evaluate(model, data, eval_config) -> metrics
    predict(model, image, size=...) -> Detections; save_checkpoint / load_checkpoint
    make_synth(synth_config, seed, split) -> HOIDataset; read_hico_det(path), read_vcoco(path)   data
    load_qpic_split(files_config, split) -> HOIDataset (your images, resized); load_datasets(config)
    triplet_map, role_ap_vcoco, instance_aps, average_precision, postprocess                  evaluation
    HungarianMatcher, SetCriterion, box ops (generalized_box_iou, box_iou, cxcywh_to_xyxy, ...)  DETR parts
"""

from __future__ import annotations

from tailorkit.hoi.boxes import box_area, box_iou, cxcywh_to_xyxy, generalized_box_iou, xyxy_to_cxcywh
from tailorkit.hoi.config import (
    EvalConfig,
    FilesConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    SynthConfig,
    TrainConfig,
)
from tailorkit.hoi.data import (
    HOIAnnotation,
    HOIDataset,
    load_datasets,
    load_qpic_split,
    make_synth,
    read_hico_det,
    read_qpic_annotations,
    read_vcoco,
    to_targets,
)
from tailorkit.hoi.evaluation import (
    Detections,
    average_precision,
    instance_aps,
    postprocess,
    role_ap_vcoco,
    triplet_map,
)
from tailorkit.hoi.losses import SetCriterion
from tailorkit.hoi.matcher import HungarianMatcher, hungarian
from tailorkit.hoi.methods import HEADS, METHODS, MODELS, HOIModel, build_model
from tailorkit.hoi.train import TrainResult, evaluate, load_checkpoint, predict, save_checkpoint, train

__all__ = [
    "HEADS",
    "METHODS",
    "MODELS",
    "Detections",
    "EvalConfig",
    "FilesConfig",
    "HOIAnnotation",
    "HOIDataset",
    "HOIModel",
    "HungarianMatcher",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "SetCriterion",
    "SynthConfig",
    "TrainConfig",
    "TrainResult",
    "average_precision",
    "box_area",
    "box_iou",
    "build_model",
    "cxcywh_to_xyxy",
    "evaluate",
    "generalized_box_iou",
    "hungarian",
    "instance_aps",
    "load_checkpoint",
    "load_datasets",
    "load_qpic_split",
    "make_synth",
    "postprocess",
    "predict",
    "read_hico_det",
    "read_qpic_annotations",
    "read_vcoco",
    "role_ap_vcoco",
    "save_checkpoint",
    "to_targets",
    "train",
    "triplet_map",
    "xyxy_to_cxcywh",
]
