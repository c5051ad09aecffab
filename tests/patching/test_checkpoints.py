"""Checkpoint folders: `tailor_checkpoint` on HF folders (plain, sharded, LoRA), the patch files, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tailorkit.patching import PatchConfig, PatchError, apply_patch, load_patch, save_patch, tailor, tailor_checkpoint
from tailorkit.patching.checkpoints import lora_delta
from tests.patching._models import perturb, tiny_bert

TEXTS = ["the film was a delight", "a dull and tired plot", "great acting, weak script", "i would watch it again"]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny WordPiece tokenizer folder (60 tokens) so the tiny BERT can read text."""
    from transformers import BertTokenizerFast

    folder = tmp_path_factory.mktemp("tok")
    words = sorted({w for t in TEXTS for w in t.replace(",", " ,").split()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ",", *words]
    vocab += [f"x{i}" for i in range(60 - len(vocab))]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    return folder


def _save(model: torch.nn.Module, folder: Path, tok: Path, shard: str | None = None) -> Path:
    model.save_pretrained(folder, max_shard_size=shard) if shard else model.save_pretrained(folder)
    for f in tok.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    return folder


@pytest.fixture
def folders(tmp_path: Path, tokenizer_dir: Path) -> tuple[Path, Path, Path, torch.nn.Module, torch.nn.Module]:
    base = tiny_bert()
    ft = perturb(base, 1, only="layer.1")
    calib = tmp_path / "calib.jsonl"
    calib.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    return _save(base, tmp_path / "base", tokenizer_dir), _save(ft, tmp_path / "ft", tokenizer_dir), calib, base, ft


def test_folder_round_trip_matches_in_memory(folders, tmp_path: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    base_dir, ft_dir, calib, base, ft = folders
    out = tmp_path / "out"
    manifest = tailor_checkpoint(base_dir, ft_dir, calib, out, PatchConfig(density=0.1), progress=False)
    loaded = AutoModel.from_pretrained(out, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(ft_dir, local_files_only=True)
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    in_memory = tailor(base, ft, [dict(batch)], PatchConfig(density=0.1), progress=False)
    state = dict(loaded.named_parameters())
    for name in in_memory.masks:
        assert torch.allclose(state[name], in_memory.state[name], atol=1e-5), name
    assert manifest["tailored_layers"] == 6
    assert 0.099 <= manifest["patch_fraction_of_tailored_weights"] <= 0.1
    patch = load_patch(out / "patch")
    rebuilt = apply_patch(load_file(str(base_dir / "model.safetensors")), patch)
    written = load_file(str(out / "model.safetensors"))
    assert all(torch.equal(rebuilt[k], written[k]) for k in written)


def test_sharded_folders(folders, tmp_path: Path, tokenizer_dir: Path) -> None:
    _, _, calib, base, ft = folders
    base_dir = _save(base, tmp_path / "base_sh", tokenizer_dir, shard="40KB")
    ft_dir = _save(ft, tmp_path / "ft_sh", tokenizer_dir, shard="40KB")
    assert (ft_dir / "model.safetensors.index.json").is_file()
    out = tmp_path / "out_sh"
    tailor_checkpoint(base_dir, ft_dir, calib, out, PatchConfig(method="magnitude"), progress=False)
    assert (out / "model.safetensors.index.json").is_file()
    from transformers import AutoModel

    loaded = dict(AutoModel.from_pretrained(out, local_files_only=True).named_parameters())
    mem = tailor(base, ft, None, PatchConfig(method="magnitude"), progress=False)
    assert all(torch.equal(loaded[k], mem.state[k]) for k in mem.state)


def test_lora_adapter_as_finetune(folders, tmp_path: Path) -> None:
    peft = pytest.importorskip("peft")
    base_dir, _, calib, base, _ = folders
    lcfg = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value", "dense"], init_lora_weights=False)
    lmodel = peft.get_peft_model(tiny_bert(), lcfg)
    adapter = tmp_path / "adapter"
    lmodel.save_pretrained(adapter)
    merged = dict(lmodel.merge_and_unload().named_parameters())
    deltas = lora_delta(adapter)
    pre = dict(base.named_parameters())
    for name, delta in deltas.items():
        assert torch.allclose(pre[f"{name}.weight"] + delta, merged[f"{name}.weight"], atol=1e-5), name
    out = tmp_path / "out_lora"
    tailor_checkpoint(base_dir, adapter, calib, out, PatchConfig(density=1.0), progress=False)
    written = load_file(str(out / "model.safetensors"))
    for name in deltas:
        assert torch.allclose(written[f"{name}.weight"], merged[f"{name}.weight"], atol=1e-4), name


def test_patch_save_load_round_trip(bert_pair, tmp_path: Path) -> None:
    base, ft, calib = bert_pair
    result = tailor(base, ft, calib, PatchConfig(), progress=False)
    save_patch(result.patch, tmp_path / "p", {"method": "model_tailor"})
    back = load_patch(tmp_path / "p")
    assert set(back) == set(result.patch)
    for k, p in result.patch.items():
        assert torch.equal(back[k].indices, p.indices) and torch.equal(back[k].values, p.values)
        assert back[k].shape == p.shape
    assert json.loads((tmp_path / "p" / "manifest.json").read_text())["method"] == "model_tailor"


def test_bad_inputs_name_the_problem_and_write_nothing(folders, tmp_path: Path, tokenizer_dir: Path) -> None:
    base_dir, ft_dir, calib, base, _ = folders
    out = tmp_path / "never"
    # mismatched architecture: a wider fine-tune
    from transformers import BertConfig, BertModel

    wide = BertModel(
        BertConfig(
            vocab_size=60,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=96,
            max_position_embeddings=32,
        ),
        add_pooling_layer=False,
    )
    wide_dir = _save(wide, tmp_path / "wide", tokenizer_dir)
    with pytest.raises(PatchError, match=r"intermediate\.dense\.weight"):
        tailor_checkpoint(base_dir, wide_dir, calib, out, progress=False)
    # missing tensors
    fewer = tmp_path / "fewer"
    fewer.mkdir()
    tensors = load_file(str(ft_dir / "model.safetensors"))
    tensors.pop("encoder.layer.1.output.dense.bias")
    save_file(tensors, str(fewer / "model.safetensors"))
    (fewer / "config.json").write_text((ft_dir / "config.json").read_text())
    with pytest.raises(PatchError, match=r"missing in fine-tuned: encoder\.layer\.1\.output\.dense\.bias"):
        tailor_checkpoint(base_dir, fewer, calib, out, progress=False)
    # NaN weights
    nan_dir = tmp_path / "nan"
    nan_dir.mkdir()
    tensors = load_file(str(ft_dir / "model.safetensors"))
    tensors["encoder.layer.0.output.dense.weight"][0, 0] = float("inf")
    save_file(tensors, str(nan_dir / "model.safetensors"))
    for f in ft_dir.iterdir():
        if f.suffix in (".json", ".txt") and f.name != "model.safetensors":
            (nan_dir / f.name).write_text(f.read_text())
    with pytest.raises(PatchError, match="NaN or Inf"):
        tailor_checkpoint(base_dir, nan_dir, calib, out, progress=False)
    # empty calibration
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(PatchError, match="empty"):
        tailor_checkpoint(base_dir, ft_dir, empty, out, progress=False)
    # pickle checkpoint
    pkl = tmp_path / "pickle"
    pkl.mkdir()
    torch.save(dict(base.named_parameters()), pkl / "pytorch_model.bin")
    (pkl / "config.json").write_text((ft_dir / "config.json").read_text())
    with pytest.raises(PatchError, match="pickle checkpoints are refused"):
        tailor_checkpoint(base_dir, pkl, calib, out, progress=False)
    assert not out.exists()
    assert not list(tmp_path.glob(".never*"))
    # existing output folder: refused without overwrite, replaced with it
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(PatchError, match="overwrite"):
        tailor_checkpoint(base_dir, ft_dir, calib, out, progress=False)
    assert (out / "keep.txt").is_file()
    tailor_checkpoint(base_dir, ft_dir, calib, out, PatchConfig(method="magnitude"), overwrite=True, progress=False)
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()


def test_several_finetuned_folders_are_the_multitask_path(folders, tmp_path: Path, tokenizer_dir: Path) -> None:
    """Two fine-tuned folders (one of them a LoRA adapter would do too) give the in-memory multi-task result, and
    the manifest reports the whole-model patch fraction within rho under the default policy."""
    from transformers import AutoTokenizer

    base_dir, ft_dir, calib, base, ft = folders
    ft2 = perturb(base, 2, only="layer.1")
    ft2_dir = _save(ft2, tmp_path / "ft2", tokenizer_dir)
    out = tmp_path / "out_multi"
    cfg = PatchConfig(density=0.1, options={"combine": "overlap_average"})
    manifest = tailor_checkpoint(base_dir, [ft_dir, ft2_dir], [calib, calib], out, cfg, progress=False)
    tok = AutoTokenizer.from_pretrained(ft_dir, local_files_only=True)
    batch = dict(tok(TEXTS, padding=True, return_tensors="pt"))
    in_memory = tailor(base, [ft, ft2], [[batch], [batch]], cfg, progress=False)
    written = load_file(str(out / "model.safetensors"))
    for name in in_memory.state:
        assert torch.allclose(written[name], in_memory.state[name], atol=1e-5), name
    assert manifest["finetuned"] == [str(ft_dir), str(ft2_dir)]
    assert manifest["patch_fraction_model"] < manifest["patch_fraction"] <= 0.2  # two patches of rho at most
    single = tailor_checkpoint(base_dir, ft_dir, calib, tmp_path / "one", PatchConfig(), progress=False)
    assert single["patch_fraction"] <= 0.1 and single["patch_fraction_model"] <= single["patch_fraction"]
    assert 0.099 <= single["patch_fraction_tailored"] <= 0.1
    with pytest.raises(PatchError, match="one per fine-tune"):
        tailor_checkpoint(base_dir, [ft_dir, ft2_dir], [calib, calib, calib], tmp_path / "x", cfg, progress=False)
