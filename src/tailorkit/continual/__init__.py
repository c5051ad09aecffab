"""`tailorkit.continual`: self-supervised class-incremental learning (CPPF, arXiv:2311.08764) beside its baselines.

Public API:
    run_continual(config, out_dir=..., device=...) -> RunResult   the phase runner (train, evaluate, checkpoint)
    make_benchmark(data_config, seed, order) -> Benchmark          glyphs, Fashion-MNIST, MNIST-5k, image folders
    METHODS, SSL_LOSSES                                            registries (cppf, cassle, pfr, finetune, joint,
                                                                   random_init; simclr, byol, simsiam, barlow)
    knn_predict, linear_probe, final_accuracy, average_incremental_accuracy, forgetting   evaluation
"""

from __future__ import annotations

from tailorkit.continual.config import (
    CPPFConfig,
    DataConfig,
    EvalConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    SSLConfig,
    StrategyConfig,
)
from tailorkit.continual.data import Benchmark, ImageSet, class_order, load_image_folder, make_benchmark, phase_split
from tailorkit.continual.evaluation import (
    average_incremental_accuracy,
    extract_features,
    final_accuracy,
    forgetting,
    knn_predict,
    linear_probe,
)
from tailorkit.continual.losses import SSL_LOSSES
from tailorkit.continual.methods import METHODS, STRATEGIES, make_strategy
from tailorkit.continual.runner import RunResult, evaluate_phase, run_continual

__all__ = [
    "METHODS",
    "SSL_LOSSES",
    "STRATEGIES",
    "Benchmark",
    "CPPFConfig",
    "DataConfig",
    "EvalConfig",
    "ImageSet",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "RunResult",
    "SSLConfig",
    "StrategyConfig",
    "average_incremental_accuracy",
    "class_order",
    "evaluate_phase",
    "extract_features",
    "final_accuracy",
    "forgetting",
    "knn_predict",
    "linear_probe",
    "load_image_folder",
    "make_benchmark",
    "make_strategy",
    "phase_split",
    "run_continual",
]
