from __future__ import annotations

import numpy as np
import pytest
import torch

from tailorkit.core.device import resolve_device
from tailorkit.core.registry import Registry, RegistryError
from tailorkit.core.seeding import derive_seed, numpy_generator, torch_generator


def test_registry_register_get_and_errors() -> None:
    reg: Registry[object] = Registry("method")

    @reg.register("ties")
    def ties() -> str:
        return "ties"

    assert reg.get("ties") is ties and "ties" in reg and reg.names() == ["ties"]
    with pytest.raises(RegistryError, match="duplicate method name 'ties'"):
        reg.add("ties", object())
    with pytest.raises(RegistryError, match="unknown method 'tie'; expected one of: ties"):
        reg.get("tie")
    with pytest.raises(RegistryError, match="non-empty"):
        reg.add(" x", object())


def test_derive_seed_is_stable_and_separates_streams() -> None:
    # A fixed reference value: the derivation must not change between versions, or saved runs stop reproducing.
    assert derive_seed(0, "data") == 2822939810359331194
    assert derive_seed(0, "data") != derive_seed(0, "init") != derive_seed(1, "data")
    assert 0 <= derive_seed(123, "x", 4) < 2**63
    with pytest.raises(TypeError):
        derive_seed("0")  # type: ignore[arg-type]


def test_generators_reproduce_without_global_state() -> None:
    torch.manual_seed(999)
    state = torch.random.get_rng_state()
    a = torch.randn(5, generator=torch_generator(3, "x"))
    b = torch.randn(5, generator=torch_generator(3, "x"))
    assert torch.equal(a, b) and not torch.equal(a, torch.randn(5, generator=torch_generator(3, "y")))
    assert torch.equal(state, torch.random.get_rng_state()), "library generators must not touch the global RNG"
    assert np.array_equal(numpy_generator(3, "x").random(4), numpy_generator(3, "x").random(4))


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="expected auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
