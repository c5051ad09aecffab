"""Per-method options of SAM / SAMv2 training (issue 23): `SAMTrainConfig` holds the shared settings plus `method`
and `options` (`SAMOptions`: none; `SAMv2Options`); an option the method lacks is refused in one line.

The regression test pins a short SAMv2 training (one inter-volume prototype step, three intra-volume steps, on the
MNI152 atlas at 6 mm) against the losses and weights of the code before the split (commit 5d6ddbd, 43 flat fields),
for the same settings written in the earlier flat form: the numbers did not change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

import pytest
import torch

from tailorkit.anatomy import NetConfig, SAMTrainConfig, train_sam
from tailorkit.anatomy.config import METHOD_OPTIONS, BenchConfig, SAMOptions, SAMv2Options
from tailorkit.core.config import ConfigError, from_dict, load_config, to_dict
from tests.conftest import same_float_path_or_skip

DOCS = Path(__file__).resolve().parents[2] / "docs" / "anatomy.md"

TINY = {
    "net": {"width": 8, "emb_dim": 16, "semantic": True},
    "embed": {"spacing_mm": 6.0},
    "steps": 4,
    "warmup_steps": 1,
    "patch_size": [8, 24, 24],
    "pre_select_neg": 200,
    "after_select_neg": 50,
    "after_select_pos": 30,
    "checkpoint_every": 0,
    "seed": 3,
    # SAMv2's options, flat as before the split
    "semantic_prob": 0.6,
    "contrast_prob": 0.7,
    "inter_crop": [12, 20, 16],
    "proto_temperature": 0.2,
    "inter_max_disp_mm": 4.0,
    "inter_rotate_deg": 5.0,
}
# float.hex() of the four losses and sha256 (16 hex digits) of the weights, from the code before the split.
OLD_LOSSES = ["0x1.700e560000000p+2", "0x1.cbf6180000000p+2", "0x1.4c56420000000p+2", "0x1.40abc00000000p+2"]
OLD_STATE = "f241ce12a4e9b0fa"


def test_samv2_training_is_bit_identical_to_the_flat_config_code() -> None:
    same_float_path_or_skip()  # the digests are of one machine's float path
    config = from_dict(SAMTrainConfig, TINY)
    assert config.method == "samv2" and config.options.semantic_prob == 0.6
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = train_sam(config, progress=False)
    finally:
        torch.set_num_threads(threads)
    h = hashlib.sha256()
    for k, v in model.net.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().contiguous().numpy().tobytes())
    assert [float(x).hex() for x in model.losses] == OLD_LOSSES
    assert h.hexdigest()[:16] == OLD_STATE


def test_method_and_net_semantic() -> None:
    assert SAMTrainConfig().method == "sam" and SAMTrainConfig().options == SAMOptions()
    v2 = SAMTrainConfig(method="samv2")
    assert v2.net.semantic and v2.options == SAMv2Options()  # SAMv2 is the network with the semantic head
    legacy = SAMTrainConfig(net=NetConfig(semantic=True))  # the earlier switch still picks SAMv2
    assert legacy == v2
    with pytest.raises(ValueError, match=r"net\.semantic: true is SAMv2's semantic head; method 'sam'"):
        SAMTrainConfig(method="sam", net=NetConfig(semantic=True))
    with pytest.raises(ValueError, match="labels: only SAMv2's prototype loss"):
        SAMTrainConfig(volumes=(Path("a.nii.gz"),), labels=(Path("a_labels.nii.gz"),))
    assert SAMTrainConfig(method="samv2", volumes=(Path("a.nii.gz"),), labels=(Path("b.nii.gz"),)).labels
    with pytest.raises(TypeError, match="has SAMOptions, not SAMv2Options"):
        SAMTrainConfig().options_as(SAMv2Options)
    # what a run records reads back as the same config
    config = SAMTrainConfig(method="samv2", options={"semantic_labels": "tissue"})
    assert from_dict(SAMTrainConfig, to_dict(config)) == config


@pytest.mark.parametrize(
    "data",
    [
        {"semantic_prob": 0.3},
        {"net": {"semantic": False}, "contrast_prob": 0.1},
        {"method": "sam", "options": {"semantic_prob": 0.3}},
        {"method": "sam", "inter_crop": [8, 8, 8]},
    ],
)
def test_samv2_options_are_refused_for_sam_in_one_line(data: dict) -> None:
    with pytest.raises(ConfigError) as err:
        from_dict(SAMTrainConfig, data)
    message = str(err.value)
    assert "\n" not in message and "method 'sam'" in message and "its options: none" in message
    assert re.search(r"option '(semantic_prob|contrast_prob|inter_crop)'", message)


def test_unknown_and_bad_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="option 'sinkhorn_iters' is not an option of method 'samv2'; its options"):
        SAMTrainConfig(method="samv2", options={"sinkhorn_iters": 3})
    with pytest.raises(ConfigError, match="semantic_prob: expected a probability"):
        SAMTrainConfig(method="samv2", options={"semantic_prob": 1.5})
    with pytest.raises(ValueError, match="inter_crop: expected three integers"):
        SAMv2Options(inter_crop=(2, 8, 8))
    with pytest.raises(ConfigError, match="takes SAMv2Options"):
        SAMTrainConfig(method="samv2", options=SAMOptions())
    with pytest.raises(ConfigError, match="unknown config key 'nonsense'"):
        from_dict(SAMTrainConfig, {"nonsense": 1})
    # files and overrides: flat (earlier form) or nested, with the method from `method` or `net.semantic`
    flat = tmp_path / "flat.yaml"
    flat.write_text("net: {semantic: true}\nsemantic_prob: 0.25\n")
    nested = tmp_path / "nested.toml"
    nested.write_text('method = "samv2"\n[options]\nsemantic_prob = 0.25\n')
    a, b = load_config(SAMTrainConfig, flat), load_config(SAMTrainConfig, nested)
    c = load_config(SAMTrainConfig, None, ["method=samv2", "options.semantic_prob=0.25"])
    assert a == b == c and a.options == SAMv2Options(semantic_prob=0.25)
    with pytest.raises(ConfigError, match="option 'semantic_prob' is not an option of method 'sam'"):
        load_config(SAMTrainConfig, None, ["semantic_prob=0.25"])


def test_bench_arms_take_their_method_and_the_templates_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bench trains SAM and SAMv2 from one `train` template; SAMv2's options apply to the SAMv2 arm only."""
    from tailorkit.anatomy import bench

    seen = []
    monkeypatch.setattr(bench, "train_sam", lambda config, **_: seen.append(config))
    template = BenchConfig(train=SAMTrainConfig(method="samv2", options={"proto_temperature": 0.3}))
    for semantic in (False, True):
        bench._train(template, 5, semantic, 0, torch.device("cpu"))
    sam, samv2 = seen
    assert (sam.method, sam.net.semantic, sam.options) == ("sam", False, SAMOptions())
    assert (samv2.method, samv2.net.semantic, samv2.options) == ("samv2", True, SAMv2Options(proto_temperature=0.3))
    seen.clear()
    bench._train(BenchConfig(), 5, True, 0, torch.device("cpu"))
    assert seen[0].options == SAMv2Options()


def test_docs_list_the_options() -> None:
    """docs/anatomy.md's SAMv2 options table names each field of `SAMv2Options` (and nothing else)."""
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index("### Method options") :]
    section = section[: section.index("\n#")]
    documented = set(re.findall(r"^\| `(\w+)` \|", section, flags=re.M))
    declared = {f.name for cls in METHOD_OPTIONS.values() for f in dataclasses.fields(cls)}
    assert documented == declared
