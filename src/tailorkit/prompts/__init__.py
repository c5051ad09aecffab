"""`tailorkit.prompts`: MmAP multi-task prompt learning (arXiv:2312.08636) beside its baselines, on a CLIP-like
dual encoder built from real pretrained towers (tailorkit.nets.dual_encoder).

Public API:
    make_tasks(tasks, shots=..., ...) -> list[TaskData]      the cross-domain multi-task benchmark (planted pairs)
    Engine(encoder, tasks, image_size)                      training / evaluation with exact frozen-feature caches
    METHODS, make_learner(name, encoder, assignment)        mmap, coop, vpt, ivlp, maple, clip_adapter, bitfit,
                                                            full_ft, linear_probe, zero_shot
    fit_method(engine, method, form, train)                 one method in st / mt / group / group+task form
    discover_groups(engine, ...)                            MmAP warm-up, gradient affinity, task partition
    gradient_affinity, best_partition, random_partition     the grouping pieces
    save_learner / load_learner                             prompt parameters with a manifest naming the towers
"""

from __future__ import annotations

from tailorkit.prompts.api import FitResult, GroupingResult, assignment_for, discover_groups, fit_method
from tailorkit.prompts.data import DEFAULT_TASKS, DOMAINS, PLANTED_PAIRS, TaskData, make_tasks
from tailorkit.prompts.engine import Engine, TrainConfig
from tailorkit.prompts.grouping import (
    best_partition,
    gradient_affinity,
    partition_exhaustive,
    partition_greedy,
    partition_score,
    random_partition,
)
from tailorkit.prompts.io import load_learner, save_learner
from tailorkit.prompts.methods import METHODS, PromptLearner, make_learner

__all__ = [
    "DEFAULT_TASKS",
    "DOMAINS",
    "METHODS",
    "PLANTED_PAIRS",
    "Engine",
    "FitResult",
    "GroupingResult",
    "PromptLearner",
    "TaskData",
    "TrainConfig",
    "assignment_for",
    "best_partition",
    "discover_groups",
    "fit_method",
    "gradient_affinity",
    "load_learner",
    "make_learner",
    "make_tasks",
    "partition_exhaustive",
    "partition_greedy",
    "partition_score",
    "random_partition",
    "save_learner",
]
