from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from tailorkit.core.registry import RegistryError
from tailorkit.hoi.config import ModelConfig
from tailorkit.hoi.data import SYNTH_OBJECTS, SYNTH_VERBS, make_synth, to_targets
from tailorkit.hoi.methods import METHODS, build_model
from tailorkit.hoi.methods.hodn import HODN
from tailorkit.hoi.train import load_checkpoint, make_criterion, save_checkpoint, train

from .conftest import tiny_config


def test_every_variant_registered() -> None:
    assert METHODS.names() == ["cascade", "cascade_deep", "hodn", "single", "single_deep"]
    with pytest.raises(RegistryError, match="expected one of: cascade, cascade_deep, hodn, single, single_deep"):
        METHODS.get("qpic")
    with pytest.raises(ValueError, match="link"):
        ModelConfig(link="both")  # type: ignore[arg-type]


@pytest.mark.parametrize("variant", ["single", "cascade", "hodn", "cascade_deep", "single_deep"])
def test_output_shapes_and_aux_layers(variant: str) -> None:
    cfg = tiny_config(variant).model
    model = build_model(cfg, 5, 4).train()
    out = model(images=torch.rand(2, 3, 48, 48))
    assert out["pred_obj_logits"].shape == (2, 4, 6)
    assert out["pred_verb_logits"].shape == (2, 4, 4)
    assert out["pred_sub_boxes"].shape == out["pred_obj_boxes"].shape == (2, 4, 4)
    # aux outputs: the cascades align their decoders' last layers (the shorter decoder's depth minus one)
    expected = {"single": cfg.dec_layers - 1, "single_deep": 5, "cascade": 1, "cascade_deep": 1, "hodn": 1}
    assert len(out["aux_outputs"]) == expected[variant]
    assert ((out["pred_sub_boxes"] > 0) & (out["pred_sub_boxes"] < 1)).all()
    with pytest.raises(ValueError, match="exactly one of"):
        model()


def _decoder_layers(model: torch.nn.Module) -> int:
    from tailorkit.hoi.transformer import DecoderLayer

    return sum(isinstance(m, DecoderLayer) for m in model.modules())


def _trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_depth_matched_controls_have_hodns_layers_and_parameters() -> None:
    """cascade_deep and single_deep: HODN's 6 decoder layers and its trainable parameters within 1 % (the default
    model sizes, frozen EfficientNet backbone as in the bench); the shallow baselines are well below (so the match is
    not trivial)."""
    cfg = ModelConfig(backbone="tiny", freeze_backbone=True)  # the bench's sizes; a frozen backbone counts nothing
    models = {v: build_model(dataclasses.replace(cfg, variant=v), 5, 4) for v in METHODS.names()}  # type: ignore[arg-type]
    counts = {v: _trainable(m) for v, m in models.items()}
    layers = {v: _decoder_layers(m) for v, m in models.items()}
    assert layers == {"hodn": 6, "cascade_deep": 6, "single_deep": 6, "cascade": 4, "single": 3}
    for v in ("cascade_deep", "single_deep"):
        assert abs(counts[v] - counts["hodn"]) / counts["hodn"] < 0.01, counts
    for v in ("cascade", "single"):
        assert counts[v] < 0.85 * counts["hodn"], counts
    deep = models["cascade_deep"]
    assert len(deep.pair_decoder.layers) == 4 and len(deep.inter_decoder.layers) == 2  # type: ignore[union-attr]


def _verb_grads(**flags: object) -> tuple[float, float]:
    """Gradient norms reaching the object decoder and the human decoder from the verb (interaction) loss alone."""
    cfg = dataclasses.replace(tiny_config("hodn").model, **flags)  # type: ignore[arg-type]
    torch.manual_seed(0)
    model = build_model(cfg, len(SYNTH_OBJECTS), len(SYNTH_VERBS)).train()
    data = make_synth(tiny_config().data, 0, "train", n=4)
    targets = [to_targets(a, len(SYNTH_VERBS)) for a in data.annotations]
    out = model(images=torch.as_tensor(data.images).permute(0, 3, 1, 2).float() / 255)
    out["aux_outputs"] = []
    make_criterion(tiny_config(), len(SYNTH_OBJECTS)).loss_terms(out, targets)["verb"].backward()

    def norm(module: torch.nn.Module) -> float:
        return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)

    assert isinstance(model, HODN)
    return norm(model.object_decoder), norm(model.human_decoder)


def test_stop_gradient_blocks_the_object_path_only() -> None:
    obj, hum = _verb_grads(sg_obj=True, sg_hum=False, link="human")
    assert obj == 0.0 and hum > 0.0
    obj, hum = _verb_grads(sg_obj=False, sg_hum=False, link="human")
    assert obj > 0.0 and hum > 0.0
    obj, hum = _verb_grads(sg_obj=True, sg_hum=True, link="human")  # the negative control
    assert obj == 0.0 and hum == 0.0
    obj, hum = _verb_grads(sg_obj=False, sg_hum=False, link="none", obj_as_tgt=False)
    assert obj == 0.0 and hum == 0.0  # unlinked: the instance decoders do not feed the interaction decoder


def test_human_guided_linking_feeds_human_features_as_query_positions() -> None:
    torch.manual_seed(0)
    seen: dict[str, object] = {}
    for link in ("human", "object", "pair", "none"):
        cfg = dataclasses.replace(tiny_config("hodn").model, link=link)
        model = build_model(cfg, 5, 4).eval()
        assert isinstance(model, HODN)
        captured: dict[str, torch.Tensor] = {}

        def hook(key: str, index: int | None, store: dict[str, torch.Tensor] = captured) -> object:
            def grab(mod: torch.nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
                store[key] = out if index is None else args[index]

            return grab

        model.human_decoder.register_forward_hook(hook("human", None))  # type: ignore[arg-type]
        model.object_decoder.register_forward_hook(hook("object", None))  # type: ignore[arg-type]
        model.inter_decoder.layers[0].register_forward_hook(hook("query_pos", 3))  # type: ignore[arg-type]
        model(images=torch.rand(1, 3, 48, 48))
        expected = {
            "human": captured["human"][-1],
            "object": captured["object"][-1],
            "pair": captured["human"][-1] + captured["object"][-1],
            "none": model.query_embed.weight[None],
        }[link]
        assert torch.allclose(captured["query_pos"], expected), link
        seen[link] = True
    assert len(seen) == 4


def test_layerwise_link_uses_each_human_layer() -> None:
    cfg = dataclasses.replace(tiny_config("hodn").model, layerwise_link=True)
    model = build_model(cfg, 5, 4).eval()
    assert isinstance(model, HODN)
    human = torch.randn(2, 1, 4, 16)
    _, qp = model.link_inputs(human, torch.randn(2, 1, 4, 16), torch.randn(1, 4, 16))
    assert isinstance(qp, list) and torch.equal(qp[0], human[0]) and torch.equal(qp[1], human[1])


@pytest.mark.parametrize(
    "variant", [pytest.param("single", marks=pytest.mark.slow), pytest.param("cascade", marks=pytest.mark.slow), "hodn"]
)
def test_tiny_end_to_end_run_lowers_the_loss(variant: str) -> None:
    cfg = tiny_config(variant, steps=25 if variant == "hodn" else 60)  # the slow variants get a longer run
    data = make_synth(cfg.data, 0, "train", n=8)
    result = train(dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, batch_size=8)), data)
    first, last = sum(result.losses[:3]) / 3, sum(result.losses[-3:]) / 3
    assert last < 0.8 * first, (first, last)


@pytest.mark.parametrize("variant", ["single", "cascade", "hodn"])
def test_training_is_deterministic_and_checkpoints_round_trip(tmp_path: Path, variant: str) -> None:
    cfg = tiny_config(variant, steps=2)
    data = make_synth(cfg.data, 0, "train", n=8)
    a, b = train(cfg, data, seed=3), train(cfg, data, seed=3)
    assert a.losses == b.losses
    x = torch.rand(1, 3, 48, 48)
    path = save_checkpoint(tmp_path / "m.pt", cfg, a.model, (SYNTH_OBJECTS, SYNTH_VERBS))
    cfg2, model2, objects, verbs = load_checkpoint(path)
    assert cfg2 == cfg and tuple(objects) == SYNTH_OBJECTS and tuple(verbs) == SYNTH_VERBS
    assert torch.equal(a.model(images=x)["pred_verb_logits"], model2(images=x)["pred_verb_logits"])
    with pytest.raises(ValueError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
