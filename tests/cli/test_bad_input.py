"""The bad-input matrix: every subsystem command x a catalogue of bad inputs.

Each case runs the CLI in-process and must end the way docs/architecture.md ("Errors") promises: exit status 2, one
line on stderr naming the file or value, nothing on stdout, and no file or folder created anywhere under the test's
folder (which is also the working directory and TAILORKIT_HOME, so default outputs and caches are watched too).
Every case fails at validation, before any loading, training or pretraining: the whole matrix runs in seconds.

The catalogue: missing, empty, truncated or wrong-format files; NaN data; the wrong dimensionality; unknown names
and keys; negative or zero values; an existing file or folder as `--out`; an unwritable `--out`; every fixture sits
in a folder whose name has a space and a non-ASCII letter.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tailorkit.cli.main import main

DATA = "my data ü"  # every fixture lives under a folder with a space and a non-ASCII letter


def _nifti_bytes(array: np.ndarray) -> bytes:
    import nibabel as nib

    image = nib.Nifti1Image(array, np.eye(4))
    return gzip.compress(image.to_bytes())


def _safetensors_bytes() -> bytes:
    import torch
    from safetensors.torch import save

    return save({"w": torch.zeros(64, 64)})


def _png_bytes() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _unwritable(root: Path) -> Path:
    """A folder that cannot be written (chmod for a user; root writes anywhere, but not into /proc)."""
    if os.geteuid() != 0:
        folder = root / "read only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    if Path("/proc/self").is_dir():
        return Path("/proc/tailorkit-no-such-folder")
    pytest.skip("no unwritable folder available (root without /proc)")


def make_fixtures(root: Path) -> dict[str, str]:
    """The catalogue's files; returns {name: path} for the argv templates."""
    d = root / DATA
    d.mkdir()
    rng = np.random.default_rng(0)
    good = rng.random((12, 12, 12)).astype(np.float32)
    nan = good.copy()
    nan[3, 3, 3] = np.nan
    files: dict[str, bytes | str] = {
        "empty.nii.gz": b"",
        "text.nii.gz": "this is not a scan\n",
        "good scan ü.nii.gz": _nifti_bytes(good),
        "nan.nii.gz": _nifti_bytes(nan),
        "flat.nii.gz": _nifti_bytes(good[:, :, 0]),
        "series.nii.gz": _nifti_bytes(np.stack([good, good], axis=-1)),
        "zeros.nii.gz": _nifti_bytes(np.zeros_like(good)),
        "unknown key.yaml": "no_such_key_anywhere: 1\n",
        "broken.yaml": "a: [1, 2\n",
        "config.txt": "steps: 3\n",
        "list.yaml": "- 1\n- 2\n",
        "empty.yaml": "",
        "existing.txt": "a file where a folder or a new file is expected\n",
        "model.pt": "not a torch checkpoint\n",
        "weights.safetensors": _safetensors_bytes()[:40],
        "empty.safetensors": b"",
        "image.png": "not an image\n",
        "good image.png": _png_bytes(),
        "clip ü.mp4": "not a video\n",
        "empty.mp4": b"",
        "points bad header.csv": "label,a,b,c\np,1,2,3\n",
        "points nan.csv": "name,x,y,z\np,1,nan,3\n",
        "points.csv": "name,x,y,z\np,1,2,3\n",
        "points text.csv": "name,x,y,z\np,one,2,3\n",
        "broken.json": "{",
        "calibration.jsonl": '{"text": "hello"}\n',
    }
    for name, content in files.items():
        path = d / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    good_bytes = (d / "good scan ü.nii.gz").read_bytes()
    (d / "truncated.nii.gz").write_bytes(good_bytes[: len(good_bytes) // 2])
    for folder in ("existing dir", "empty dir", "pool nan", "pool ok", "run no manifest"):
        (d / folder).mkdir()
    (d / "pool nan" / "a.nii.gz").write_bytes(_nifti_bytes(nan))
    (d / "pool ok" / "a.nii.gz").write_bytes(good_bytes)
    # a PASCAL-style / HF-style model folder whose only tensor file is truncated
    for name, config in (
        ("trunc model", {"architectures": ["BertModel"]}),
        ("pipeline model", {"architectures": ["pipeline"]}),
    ):
        (d / name).mkdir()
        (d / name / "config.json").write_text(json.dumps(config))
        (d / name / "model.safetensors").write_bytes(_safetensors_bytes()[: 40 if name == "trunc model" else None])
    # continual: a train/test tree whose only "image" is text; video: a class folder without videos
    (d / "images" / "train" / "cat").mkdir(parents=True)
    (d / "images" / "test" / "cat").mkdir(parents=True)
    (d / "images" / "train" / "cat" / "a.png").write_text("not an image")
    (d / "images" / "test" / "cat" / "a.png").write_text("not an image")
    (d / "novideos" / "walking").mkdir(parents=True)
    (d / "novideos" / "walking" / "notes.txt").write_text("no clip here")
    # prompts task folders (task/<class>/<image>): one class only; a class without images; an undecodable image
    png = _png_bytes()
    for task, classes in (
        ("one class", {"cat": 3}),
        ("no images", {"cat": 3, "dog": 0}),
        ("bad png", {"a": 3, "b": 3}),
    ):
        for name, count in classes.items():
            (d / "tasks" / task / name).mkdir(parents=True)
            for i in range(count):
                (d / "tasks" / task / name / f"{i}.png").write_bytes(png)
    (d / "tasks" / "bad png" / "b" / "1.png").write_text("not an image")
    # an active-learning state created with strategy tesla, seed 0 (only its settings are read)
    from dataclasses import asdict

    from tailorkit.active.config import SelectConfig, TuneConfig

    state = {"version": 1, "seed": 0, "select": asdict(SelectConfig()), "tune": asdict(TuneConfig())}
    (d / "state.json").write_text(json.dumps(state))
    (d / "run bad model").mkdir()
    (d / "run bad model" / "config.yaml").write_text("")
    (d / "run bad model" / "model.safetensors").write_bytes(_safetensors_bytes()[:40])
    paths = {
        name.split(".")[0].replace(" ", "_").replace("ü", "u") + "_" + name.rsplit(".", 1)[-1]: str(d / name)
        for name in files
    }
    paths.update(
        {
            "d": str(d),
            "missing": str(d / "no such file ü.nii.gz"),
            "missing_yaml": str(d / "no such config ü.yaml"),
            "missing_dir": str(d / "no such folder ü"),
            "truncated_nii": str(d / "truncated.nii.gz"),
            "existing_dir": str(d / "existing dir"),
            "empty_dir": str(d / "empty dir"),
            "pool_nan": str(d / "pool nan"),
            "pool_ok": str(d / "pool ok"),
            "run_no_manifest": str(d / "run no manifest"),
            "run_bad_model": str(d / "run bad model"),
            "trunc_model": str(d / "trunc model"),
            "pipeline_model": str(d / "pipeline model"),
            "images": str(d / "images"),
            "novideos": str(d / "novideos"),
            "task_one_class": str(d / "tasks" / "one class"),
            "task_no_images": str(d / "tasks" / "no images"),
            "task_bad_png": str(d / "tasks" / "bad png"),
            "state": str(d / "state.json"),
            "under_file": str(d / "existing.txt" / "out"),
            "unwritable": str(_unwritable(root) / "out"),
            "new_out": str(d / "new out ü"),
        }
    )
    return paths


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    says: str = ""  # a substring the one-line message must contain ("" = just the form)
    xfail: str = ""  # reason, for a fix that lives on another helper's branch


def C(id: str, argv: str, says: str = "", xfail: str = "") -> Case:
    return Case(id, tuple(argv.split("|")), says, xfail)


PATCHING = "fixed on the patching branch"
FILMS = "fixed on the films branch"
REGISTRATION = "fixed on the registration branch"

CASES: list[Case] = [
    # bench / reproduce
    C("bench-out-is-folder", "bench|selfcheck|--out|{existing_dir}", "is a folder"),
    C("bench-out-under-file", "bench|selfcheck|--out|{under_file}", "is a file, not a folder"),
    C("bench-out-unwritable", "bench|selfcheck|--out|{unwritable}", "cannot write"),
    C("bench-config-missing", "bench|selfcheck|--config|{missing_yaml}", "not found"),
    C("bench-config-broken", "bench|selfcheck|--config|{broken_yaml}", "could not be parsed"),
    C("bench-config-wrong-format", "bench|selfcheck|--config|{config_txt}", "expected a .yaml"),
    C("bench-config-not-mapping", "bench|selfcheck|--config|{list_yaml}", "expected a mapping"),
    C("bench-config-unknown-key", "bench|selfcheck|--config|{unknown_key_yaml}", "unknown config key"),
    C("bench-unknown-name", "bench|nope", "unknown bench 'nope'"),
    C("reproduce-out-is-file", "reproduce|--only|selfcheck|--out|{existing_txt}", "is an existing file"),
    # patching (package name and old alias)
    C(
        "patching-base-missing",
        "patching|--base|{missing_dir}|--finetuned|{missing_dir}|--out|{new_out}",
        "no such folder",
    ),
    C(
        "patch-truncated-safetensors",
        "patch|--base|{trunc_model}|--finetuned|{trunc_model}|--out|{new_out}|--method|wise_ft",
        "trunc model",
    ),
    C(
        "patching-pipeline-architecture",
        "patching|--base|{pipeline_model}|--finetuned|{pipeline_model}|--out|{new_out}|--method|wise_ft",
        "pipeline",
    ),
    C("patching-out-exists", "patching|--base|{trunc_model}|--finetuned|{trunc_model}|--out|{existing_dir}", "exists"),
    C(
        "patching-out-under-file",
        "patching|--base|{trunc_model}|--finetuned|{trunc_model}|--out|{under_file}|--method|wise_ft",
        "existing.txt",
    ),
    C(
        "patching-density-negative",
        "patching|--base|{trunc_model}|--finetuned|{trunc_model}|--out|{new_out}|--density|-0.5",
        "density",
    ),
    C(
        "patching-method-unknown",
        "patching|--base|{trunc_model}|--finetuned|{trunc_model}|--out|{new_out}|--method|nope",
        "nope",
    ),
    C(
        "patching-calibration-missing",
        "patching|--base|{trunc_model}|--finetuned|{trunc_model}|--out|{new_out}|--calibration|{missing}",
        "no such file",
    ),
    C(
        "patching-config-unknown-key",
        "patching|--base|{trunc_model}|--finetuned|{trunc_model}|--out|{new_out}|--config|{unknown_key_yaml}",
        "unknown config key",
    ),
    # films (package name and old alias)
    C("films-run-config-missing", "films|run|{missing_yaml}", "not found"),
    C("film-run-config-unknown-key", "film|run|{unknown_key_yaml}", "unknown config key"),
    C("films-run-negative-temperature", "films|run|{empty_yaml}|model.T=-1", "T"),
    C("films-run-config-wrong-format", "films|run|{config_txt}", "expected a .yaml"),
    C("films-run-out-exists", "films|run|{empty_yaml}|--out|{existing_txt}", "existing.txt"),
    C("films-run-out-under-file", "films|run|{empty_yaml}|--out|{under_file}", "existing.txt"),
    C("films-resume-missing", "films|resume|{missing}", "no such file"),
    C("films-resume-text", "films|resume|{text_gz}", "text.nii.gz"),
    C("films-plot-missing", "films|plot|{missing}", "not found"),
    C("films-plot-broken-json", "films|plot|{broken_json}", "broken.json"),
    C("films-analyze-missing", "films|analyze|{missing_dir}", "no such folder"),
    # registration (package name and old alias)
    C("registration-fixed-missing", "registration|{missing}|{good_scan_u_gz}|--out|{new_out}", "no such file"),
    C("register-moving-nan", "register|{good_scan_u_gz}|{nan_gz}|--out|{new_out}", "NaN"),
    C("registration-fixed-2d", "registration|{flat_gz}|{good_scan_u_gz}|--out|{new_out}", "3D"),
    C("registration-text-scan", "registration|{text_gz}|{good_scan_u_gz}|--out|{new_out}", "text.nii.gz"),
    C(
        "registration-zero-image",
        "registration|{zeros_gz}|{good_scan_u_gz}|--out|{new_out}",
        "zeros.nii.gz",
    ),
    C(
        "registration-out-under-file",
        "registration|{good_scan_u_gz}|{good_scan_u_gz}|--out|{under_file}",
        "existing.txt",
    ),
    C(
        "registration-labels-4d",
        "registration|{good_scan_u_gz}|{good_scan_u_gz}|--labels|{series_gz}|--out|{new_out}",
        "series.nii.gz",
    ),
    C(
        "registration-unknown-key",
        "registration|{good_scan_u_gz}|{good_scan_u_gz}|no_such_key=1|--out|{new_out}",
        "unknown config key",
    ),
    C(
        "registration-model-text",
        "registration|{good_scan_u_gz}|{good_scan_u_gz}|--out|{new_out}|--model|{model_pt}",
        "model.pt",
    ),
    C("registration-train-config-missing", "registration|train|{missing_yaml}|--out|{new_out}", "not found"),
    # anatomy
    C("anatomy-train-config-missing", "anatomy|train|{missing_yaml}", "not found"),
    C("anatomy-train-unknown-key", "anatomy|train|{unknown_key_yaml}", "unknown config key"),
    C("anatomy-train-negative-steps", "anatomy|train|{empty_yaml}|steps=-3", "steps"),
    C("anatomy-train-no-progress-negative-steps", "anatomy|train|{empty_yaml}|--no-progress|steps=-3", "steps"),
    C("anatomy-train-out-is-file", "anatomy|train|{empty_yaml}|--out|{existing_txt}", "is an existing file"),
    C("anatomy-train-out-unwritable", "anatomy|train|{empty_yaml}|--out|{unwritable}", "cannot write"),
    C("anatomy-train-volume-missing", "anatomy|train|{empty_yaml}|--out|{new_out}|volumes={missing}", "no such file"),
    C("anatomy-train-volume-nan", "anatomy|train|{empty_yaml}|--out|{new_out}|volumes={nan_gz}", "NaN"),
    C("anatomy-embed-missing", "anatomy|embed|{missing}|--model|{model_pt}", "no such file"),
    C("anatomy-embed-empty", "anatomy|embed|{empty_gz}|--model|{model_pt}", "empty.nii.gz"),
    C("anatomy-embed-text", "anatomy|embed|{text_gz}|--model|{model_pt}", "text.nii.gz"),
    C("anatomy-embed-truncated", "anatomy|embed|{truncated_nii}|--model|{model_pt}", "truncated.nii.gz"),
    C("anatomy-embed-nan", "anatomy|embed|{nan_gz}|--model|{model_pt}", "NaN"),
    C("anatomy-embed-2d", "anatomy|embed|{flat_gz}|--model|{model_pt}", "3D"),
    C("anatomy-embed-4d", "anatomy|embed|{series_gz}|--model|{model_pt}", "3D"),
    C("anatomy-embed-model-missing", "anatomy|embed|{good_scan_u_gz}|--model|{missing}", "not found"),
    C("anatomy-embed-model-text", "anatomy|embed|{good_scan_u_gz}|--model|{model_pt}", "model.pt"),
    C(
        "anatomy-embed-out-is-folder",
        "anatomy|embed|{good_scan_u_gz}|--model|{model_pt}|--out|{existing_dir}",
        "is a folder",
    ),
    C(
        "anatomy-embed-out-under-file",
        "anatomy|embed|{good_scan_u_gz}|--model|{model_pt}|--out|{under_file}",
        "is a file",
    ),
    C(
        "anatomy-cross-zero-steps",
        "anatomy|cross|--model|{model_pt}|--fixed|{good_scan_u_gz}|--moving|{good_scan_u_gz}|--steps|0|--out|{new_out}",
        "--steps",
    ),
    C(
        "anatomy-cross-moving-nan",
        "anatomy|cross|--model|{model_pt}|--fixed|{good_scan_u_gz}|--moving|{nan_gz}|--out|{new_out}",
        "NaN",
    ),
    C(
        "anatomy-cross-out-is-file",
        "anatomy|cross|--model|{model_pt}|--fixed|{good_scan_u_gz}|--moving|{good_scan_u_gz}|--out|{existing_txt}",
        "is an existing file",
    ),
    C(
        "anatomy-locate-points-missing",
        "anatomy|locate|--model|{model_pt}|--atlas|{good_scan_u_gz}|--points|{missing}|--target|{good_scan_u_gz}|--out|{new_out}",
        "not found",
    ),
    C(
        "anatomy-locate-points-header",
        "anatomy|locate|--model|{model_pt}|--atlas|{good_scan_u_gz}|--points|{points_bad_header_csv}|--target|{good_scan_u_gz}|--out|{new_out}",
        "name,x,y,z",
    ),
    C(
        "anatomy-locate-points-nan",
        "anatomy|locate|--model|{model_pt}|--atlas|{good_scan_u_gz}|--points|{points_nan_csv}|--target|{good_scan_u_gz}|--out|{new_out}",
        "finite",
    ),
    C(
        "anatomy-locate-points-text",
        "anatomy|locate|--model|{model_pt}|--atlas|{good_scan_u_gz}|--points|{points_text_csv}|--target|{good_scan_u_gz}|--out|{new_out}",
        "numbers",
    ),
    C(
        "anatomy-locate-target-4d",
        "anatomy|locate|--model|{model_pt}|--atlas|{good_scan_u_gz}|--points|{points_csv}|--target|{series_gz}|--out|{new_out}",
        "3D",
    ),
    C(
        "anatomy-locate-atlas-missing",
        "anatomy|locate|--model|{model_pt}|--atlas|{missing}|--points|{points_csv}|--target|{good_scan_u_gz}|--out|{new_out}",
        "no such file",
    ),
    # adapters
    C("adapters-train-config-missing", "adapters|train|{missing_yaml}", "not found"),
    C("adapters-train-unknown-key", "adapters|train|{unknown_key_yaml}", "unknown config key"),
    C("adapters-train-negative-steps", "adapters|train|{empty_yaml}|optim.steps=-1", "steps"),
    C("adapters-train-unknown-method", "adapters|train|{empty_yaml}|method.name=nope", "nope"),
    C("adapters-train-out-is-file", "adapters|train|{empty_yaml}|--out|{existing_txt}", "is an existing file"),
    C("adapters-train-out-unwritable", "adapters|train|{empty_yaml}|--out|{unwritable}", "cannot write"),
    C(
        "adapters-train-pascal-root-missing",
        "adapters|train|{empty_yaml}|--out|{new_out}|data.source=pascal_context|data.root={missing_dir}",
        "not found",
    ),
    C(
        "adapters-train-pascal-root-empty",
        "adapters|train|{empty_yaml}|--out|{new_out}|data.source=pascal_context|data.root={empty_dir}",
        "ImageSets",
    ),
    C("adapters-eval-missing", "adapters|eval|{missing_dir}", "not found"),
    C("adapters-eval-no-manifest", "adapters|eval|{run_no_manifest}", "manifest.json"),
    # prompts
    C("prompts-run-unknown-method", "prompts|run|nope", "nope"),
    C("prompts-run-unknown-task", "prompts|run|coop|--tasks|nope", "nope"),
    C("prompts-run-zero-shots", "prompts|run|coop|--shots|0", "--shots"),
    C("prompts-run-negative-steps", "prompts|run|coop|--steps|-1", "--steps"),
    C("prompts-run-zero-lr", "prompts|run|coop|--lr|0", "--lr"),
    C("prompts-run-save-is-folder", "prompts|run|coop|--save|{existing_dir}", "is a folder"),
    C("prompts-run-save-under-file", "prompts|run|coop|--save|{under_file}", "is a file"),
    C("prompts-group-zero-steps", "prompts|group|--steps|0", "--steps"),
    C("prompts-group-unknown-task", "prompts|group|--tasks|nope", "nope"),
    C("prompts-train-folder-missing", "prompts|train|coop|--task-folder|{missing_dir}", "no such folder ü: not found"),
    C("prompts-train-folder-is-file", "prompts|train|coop|--task-folder|{existing_txt}", "is a file"),
    C("prompts-train-folder-one-class", "prompts|train|coop|--task-folder|{task_one_class}", "found only 'cat'"),
    C(
        "prompts-train-folder-no-images",
        "prompts|train|coop|--task-folder|{task_no_images}|--shots|2",
        "dog: no images",
    ),
    C("prompts-train-folder-bad-image", "prompts|train|coop|--task-folder|{task_bad_png}|--shots|1", "1.png"),
    C("prompts-train-folder-too-few", "prompts|train|coop|--task-folder|{task_bad_png}", "expected at least 9"),
    C(
        "prompts-train-folder-twice",
        "prompts|train|coop|--task-folder|{task_bad_png}|--task-folder|{task_bad_png}|--shots|2",
        "a second task named 'bad png'",
    ),
    C("prompts-group-folder-one-class", "prompts|group|--task-folder|{task_one_class}", "found only 'cat'"),
    # video
    C("video-train-config-missing", "video|train|{missing_yaml}", "not found"),
    C("video-train-unknown-key", "video|train|{unknown_key_yaml}", "unknown config key"),
    C("video-train-unknown-method", "video|train|{empty_yaml}|method=nope", "nope"),
    C("video-train-negative-shots", "video|train|{empty_yaml}|shots=-1", "shots"),
    C("video-train-out-is-file", "video|train|{empty_yaml}|--out|{existing_txt}", "is an existing file"),
    C(
        "video-train-folder-missing",
        "video|train|{empty_yaml}|--out|{new_out}|data.kind=folder|data.root={missing_dir}",
        "not found",
    ),
    C(
        "video-train-folder-no-videos",
        "video|train|{empty_yaml}|--out|{new_out}|data.kind=folder|data.root={novideos}",
        "no class folders",
    ),
    C(
        "video-train-csv-missing",
        "video|train|{empty_yaml}|--out|{new_out}|data.kind=folder|data.root={novideos}|data.splits_csv={missing}",
        "not found",
    ),
    C("video-eval-missing", "video|eval|{missing_dir}", "run folder"),
    C("video-predict-missing", "video|predict|{missing}|--classes|a,b", "no such video"),
    C("video-predict-empty", "video|predict|{empty_mp4}|--classes|a,b", "empty.mp4"),
    C("video-predict-text", "video|predict|{clip_u_mp4}|--classes|a,b", "clip ü.mp4"),
    C("video-predict-zero-top-k", "video|predict|{clip_u_mp4}|--classes|a,b|--top-k|0", "--top-k"),
    C("video-predict-no-classes", "video|predict|{clip_u_mp4}|--classes|,", "classes"),
    C("video-bench-out-is-folder", "video|bench|--quick|--out|{existing_dir}", "is a folder"),
    # active
    C(
        "active-propose-unknown-strategy",
        "active|propose|--pool|{pool_ok}|--budget|2|--state|{new_out}.json|--strategy|nope",
        "nope",
    ),
    C(
        "active-propose-pool-missing",
        "active|propose|--pool|{missing_dir}|--budget|2|--state|{new_out}.json",
        "not found",
    ),
    C("active-propose-pool-empty", "active|propose|--pool|{empty_dir}|--budget|2|--state|{new_out}.json", "no *.nii"),
    C("active-propose-pool-nan", "active|propose|--pool|{pool_nan}|--budget|2|--state|{new_out}.json", "NaN"),
    C(
        "active-propose-negative-budget",
        "active|propose|--pool|{pool_ok}|--budget|-1|--state|{new_out}.json",
        "--budget",
    ),
    C("active-propose-zero-budget", "active|propose|--pool|{pool_ok}|--budget|0|--state|{new_out}.json", "--budget"),
    C(
        "active-propose-unknown-key",
        "active|propose|--pool|{pool_ok}|--budget|2|--state|{new_out}.json|select.nope=1",
        "unknown config key",
    ),
    C(
        "active-propose-state-under-file",
        "active|propose|--pool|{pool_ok}|--budget|2|--state|{under_file}",
        "is a file",
    ),
    C("active-propose-state-broken", "active|propose|--pool|{pool_ok}|--budget|2|--state|{broken_json}", "broken.json"),
    C(
        "active-propose-state-other-strategy",
        "active|propose|--pool|{pool_ok}|--budget|2|--state|{state}|--strategy|random",
        "stored 'tesla'",
    ),
    C(
        "active-propose-state-other-seed",
        "active|propose|--pool|{pool_ok}|--budget|2|--state|{state}|--seed|3",
        "seed=3",
    ),
    C("active-tune-config-missing", "active|tune|{missing_yaml}", "not found"),
    C("active-tune-folder-dataset", "active|tune|{empty_yaml}|data.dataset=folder|data.root={pool_ok}", "data.dataset"),
    C("active-tune-unknown-tuner", "active|tune|{empty_yaml}|tune.method=nope", "nope"),
    C("active-tune-out-is-file", "active|tune|{empty_yaml}|--out|{existing_txt}", "is an existing file"),
    C("active-eval-missing", "active|eval|{missing_dir}", "expected config.yaml"),
    C("active-eval-truncated-model", "active|eval|{run_bad_model}", "model.safetensors"),
    # continual
    C("continual-run-config-missing", "continual|run|{missing_yaml}", "not found"),
    C("continual-run-unknown-key", "continual|run|{unknown_key_yaml}", "unknown config key"),
    C("continual-run-negative-steps", "continual|run|{empty_yaml}|optim.steps_per_phase=-1", "steps_per_phase"),
    C("continual-run-stop-after-zero", "continual|run|{empty_yaml}|--stop-after-phase|0", "--stop-after-phase"),
    C("continual-run-out-is-file", "continual|run|{empty_yaml}|--out|{existing_txt}", "is an existing file"),
    C("continual-run-out-unwritable", "continual|run|{empty_yaml}|--out|{unwritable}", "cannot write"),
    C(
        "continual-run-root-missing",
        "continual|run|{empty_yaml}|--out|{new_out}|data.dataset=folder|data.root={missing_dir}",
        "not found",
    ),
    C(
        "continual-run-root-empty",
        "continual|run|{empty_yaml}|--out|{new_out}|data.dataset=folder|data.root={empty_dir}",
        "train",
    ),
    C(
        "continual-run-root-bad-images",
        "continual|run|{empty_yaml}|--out|{new_out}|data.dataset=folder|data.root={images}",
        "a.png",
    ),
    C("continual-eval-missing", "continual|eval|{missing_dir}", "no phase"),
    # hoi
    C("hoi-train-config-missing", "hoi|train|{missing_yaml}", "not found"),
    C("hoi-train-unknown-key", "hoi|train|{unknown_key_yaml}", "unknown config key"),
    C("hoi-train-negative-steps", "hoi|train|{empty_yaml}|optim.steps=-1", "steps"),
    C("hoi-train-out-is-file", "hoi|train|{empty_yaml}|--out|{existing_txt}", "is an existing file"),
    C("hoi-train-out-under-file", "hoi|train|{empty_yaml}|--out|{under_file}", "is a file"),
    C(
        "hoi-train-annotations-missing",
        "hoi|train|{empty_yaml}|--out|{new_out}|files.format=hico|files.train_annotations={missing}|files.train_images={d}|files.test_annotations={missing}|files.test_images={d}",
        "no such file ü",
    ),
    C("hoi-eval-model-missing", "hoi|eval|{missing}", "not found"),
    C("hoi-eval-model-text", "hoi|eval|{model_pt}", "model.pt"),
    C("hoi-eval-annotations-missing", "hoi|eval|{model_pt}|--annotations|{missing}|--images|{d}", "not found"),
    C("hoi-predict-image-missing", "hoi|predict|{missing}|--model|{model_pt}", "no such file"),
    C("hoi-predict-image-text", "hoi|predict|{image_png}|--model|{model_pt}", "image.png"),
    C("hoi-predict-model-text", "hoi|predict|{good_image_png}|--model|{model_pt}", "model.pt"),
    C(
        "hoi-predict-out-is-folder",
        "hoi|predict|{good_image_png}|--model|{model_pt}|--out|{existing_dir}",
        "is a folder",
    ),
    C("hoi-predict-zero-top", "hoi|predict|{good_image_png}|--model|{model_pt}|--top|0", "--top"),
    C("hoi-bench-out-is-folder", "hoi|bench|--quick|--out|{existing_dir}", "is a folder"),
]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, id=c.id, marks=[pytest.mark.xfail(reason=c.xfail, strict=False)] if c.xfail else [])
        for c in CASES
    ],
)
def test_bad_input(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = make_fixtures(tmp_path)
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("TAILORKIT_HOME", str(home))
    monkeypatch.chdir(cwd)
    argv = [a.format(**paths) for a in case.argv]
    before = _tree(tmp_path)
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, f"exit {code}; stderr: {err[-2000:]}"
    assert err.endswith("\n") and err.count("\n") == 1, f"expected one line on stderr, got {err!r}"
    assert err.startswith("tailorkit"), err
    assert case.says in err, f"expected {case.says!r} in {err!r}"
    assert out == "", f"nothing on stdout expected, got {out!r}"
    assert _tree(tmp_path) == before, f"files created: {sorted(_tree(tmp_path) - before)}"


def test_matrix_size() -> None:
    assert len(CASES) >= 80
    assert len({c.id for c in CASES}) == len(CASES)


def _fail_with(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    import tailorkit.cli.demo as demo

    def boom(args: Any) -> int:
        raise error

    monkeypatch.setattr(demo, "run", boom)


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (FileNotFoundError(2, "No such file or directory", "/x/scan ü.nii"), "/x/scan ü.nii: not found"),
        (PermissionError(13, "Permission denied", "/root/out.json"), "/root/out.json: permission denied"),
        (OSError(28, "No space left on device", "/data/run"), "no space left"),
        (IsADirectoryError(21, "Is a directory", "/data"), "is a folder"),
    ],
)
def test_os_errors_on_paths_are_input_errors(
    error: OSError, says: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fail_with(monkeypatch, error)
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err and "Traceback" not in err


def test_input_error_subclasses_and_legacy_classes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tailorkit.core.errors import InputError
    from tailorkit.data.volumes import VolumeError
    from tailorkit.video.io import VideoError

    assert issubclass(VideoError, InputError) and issubclass(InputError, ValueError)
    _fail_with(monkeypatch, VolumeError("scan.nii: expected a 3D volume,\n got (2, 2)"))
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert err == "tailorkit demo: error: scan.nii: expected a 3D volume, got (2, 2)\n"


@pytest.mark.parametrize("error", [RuntimeError("boom"), ValueError("an internal value"), KeyError("k"), OSError("x")])
def test_a_bug_prints_a_traceback_and_asks_for_a_report(
    error: Exception, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fail_with(monkeypatch, error)
    assert main(["demo"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "internal error" in err and "report" in err


def test_output_checks_create_nothing(tmp_path: Path) -> None:
    from tailorkit.core.errors import InputError, check_output_dir, check_output_file

    assert check_output_file(tmp_path / "a" / "b" / "x.json") == tmp_path / "a" / "b" / "x.json"
    assert check_output_dir(tmp_path / "new run") == tmp_path / "new run"
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "f").write_text("")
    with pytest.raises(InputError, match="already exists"):
        check_output_file(tmp_path / "f", overwrite=False)
    with pytest.raises(InputError, match="already exists"):
        check_output_dir(tmp_path, must_be_new=True)
    assert [p.name for p in tmp_path.iterdir()] == ["f"]
