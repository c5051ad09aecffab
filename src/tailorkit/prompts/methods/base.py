"""The method contract: the `PromptLearner` every method implements, the registry `METHODS`, the parameter banks.

A learner adapts the frozen dual encoder (tailorkit.nets.dual_encoder) for T tasks at once. Its parameters live in
*banks*; ``assignment[t]`` lists the banks task t uses, and their contributions are summed. That one mechanism gives
every method its single-task form (bank t for task t), its multi-task form (one bank for all tasks) and MmAP's
group-shared + task-specific form (bank g(t) and bank G + t). [Inferred: MmAP concatenates group and task prompts
along the token axis; with additive prompt slots (nets/dual_encoder.py) the sum is the natural counterpart, and
splitting the 4 fixed context slots between two banks would leave each with 2 tokens.]

What a learner returns for task t:

- ``text_deltas(t)``: per text layer (0 = input embeddings) None or (n_ctx, 384) added at the context slots;
- ``image_tokens(t)``: {stage: (n_img, C_stage)} prompt tokens, turned into what acts on the stage's input by the
  learner's ``image_slot`` (:meth:`PromptLearner.image_prompt`): ``additive`` (default) adds the tokens times fixed
  spatial bases (:func:`spatial_bases`, the CNN generalisation of VPT's tokens); ``film`` uses token 0 as a
  per-channel scale and the rest as that additive map, ``h * (1 + scale) + shift`` (:func:`tokens_to_film`);
- ``overrides(t)``: {parameter name: new value} of tower/projection parameters (BitFit, full fine-tuning);
- ``adapt_image(z, t)`` / ``adapt_text(z, t)``: maps on the shared-space embeddings (CLIP-Adapter).

The training engine (tailorkit.prompts.engine) caches whatever the learner declares frozen: image prefixes before
``image_start`` and, when ``uses_text`` is False, the text embeddings of the fixed prompts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from tailorkit.core.registry import Registry
from tailorkit.nets.dual_encoder import N_IMAGE_STAGES, N_TEMPLATE_CTX, STAGE_IN_CHANNELS, DualEncoder

__all__ = [
    "IMAGE_SLOTS",
    "METHODS",
    "GeneratedPrompts",
    "PromptLearner",
    "make_learner",
    "register_method",
    "spatial_bases",
    "tokens_to_film",
    "tokens_to_map",
]

LearnerFactory = Callable[..., "PromptLearner"]
IMAGE_SLOTS = ("additive", "film")
METHODS: Registry[LearnerFactory] = Registry("prompt method")


def register_method(name: str) -> Callable[[LearnerFactory], LearnerFactory]:
    return METHODS.register(name)


def make_learner(name: str, encoder: DualEncoder, assignment: Sequence[Sequence[int]], **options: Any) -> PromptLearner:
    """Build the registered method ``name`` for tasks whose banks are ``assignment`` (see module docstring)."""
    return METHODS.get(name)(encoder, assignment, **options)


def spatial_bases(n: int, height: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """Fixed spatial patterns that turn n prompt tokens into a map: 1, x, y, xy, x^2 - 1/3, y^2 - 1/3 (x, y in
    [-1, 1]); token k multiplies pattern k. One token = a per-channel shift, the simplest additive prompt.

    Shapes:
        returns (n, height, width)
    """
    if not 1 <= n <= 6:
        raise ValueError(f"image prompt tokens: expected 1..6, got {n}")
    y = torch.linspace(-1, 1, height, device=device)[:, None].expand(height, width)
    x = torch.linspace(-1, 1, width, device=device)[None, :].expand(height, width)
    pats = [torch.ones_like(x), x, y, x * y, x * x - 1 / 3, y * y - 1 / 3]
    return torch.stack(pats[:n])


def tokens_to_map(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Prompt tokens -> additive prompt map over a stage's input.

    Shapes:
        tokens: (n, C) -> (1, C, height, width)
    """
    bases = spatial_bases(tokens.shape[0], height, width, tokens.device).to(tokens.dtype)
    return torch.einsum("nc,nhw->chw", tokens, bases).unsqueeze(0)


def tokens_to_film(tokens: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt tokens -> a FiLM pair for a stage's input: token 0 is a per-channel scale (applied as 1 + scale),
    tokens 1.. the additive map of :func:`tokens_to_map` (zero when there is only one token).

    Zero tokens are the identity, and the gradient reaches both parts from the first step (d/d scale = h * dL/dh,
    d/d shift = dL/dh), so a zero start does not block learning.

    Shapes:
        tokens: (n, C) -> ((1, C, 1, 1), (1, C, height, width) or (1, C, 1, 1))
    """
    scale = tokens[0].view(1, -1, 1, 1)
    shift = tokens_to_map(tokens[1:], height, width) if tokens.shape[0] > 1 else torch.zeros_like(scale)
    return scale, shift


class PromptLearner(nn.Module):
    """Base class: banks, assignment and the neutral (no-op) answers; subclasses override what they adapt.

    Args:
        encoder: The frozen dual encoder (only read for sizes; not registered as a submodule).
        assignment: Per task, the bank indices it uses (at least one task; banks numbered 0..n_banks-1).
        text_layers: Text layers that receive deltas (0 = none, 1 = input only as CoOp, up to 6).
        n_ctx: Text context slots used (1..4, the template's "a photo of a").
        image_stages: How many of EfficientNet's 7 stages (the last ones) receive prompt maps (0 = none).
        n_img: Image prompt tokens per stage (spatial bases, 1..6; 1..7 with the film slot).
        image_slot: How image tokens act on a stage's input: "additive" (maps from spatial bases) or "film"
            (token 0 a per-channel scale, the rest the additive map); see :meth:`image_prompt`.
    """

    uses_text: bool = False
    uses_image: bool = False

    def __init__(
        self,
        encoder: DualEncoder,
        assignment: Sequence[Sequence[int]],
        *,
        text_layers: int = 0,
        n_ctx: int = 4,
        image_stages: int = 0,
        n_img: int = 2,
        image_slot: str = "additive",
    ) -> None:
        super().__init__()
        if image_slot not in IMAGE_SLOTS:
            raise ValueError(f"image_slot: expected one of {', '.join(IMAGE_SLOTS)}; got {image_slot!r}")
        if not assignment or any(not a for a in assignment):
            raise ValueError(f"assignment: expected a non-empty bank list per task; got {assignment!r}")
        self.assignment = [tuple(int(b) for b in a) for a in assignment]
        self.n_banks = max(max(a) for a in self.assignment) + 1
        if sorted({b for a in self.assignment for b in a}) != list(range(self.n_banks)):
            raise ValueError(f"assignment: banks must be numbered 0..n-1 without gaps; got {assignment!r}")
        n_layers = len(encoder.text_tower.encoder.layer)
        if not 0 <= text_layers <= n_layers:
            raise ValueError(f"text_layers: expected 0..{n_layers}, got {text_layers}")
        if not 1 <= n_ctx <= N_TEMPLATE_CTX:
            raise ValueError(f"n_ctx: expected 1..{N_TEMPLATE_CTX}, got {n_ctx}")
        if not 0 <= image_stages <= N_IMAGE_STAGES:
            raise ValueError(f"image_stages: expected 0..{N_IMAGE_STAGES}, got {image_stages}")
        self.text_layers = text_layers
        self.n_ctx = n_ctx
        self.text_width = encoder.text_width
        self.stages = tuple(range(N_IMAGE_STAGES - image_stages, N_IMAGE_STAGES))
        self.stage_channels = {s: STAGE_IN_CHANNELS[s] for s in self.stages}
        self.n_img = n_img
        self.image_slot = image_slot
        if image_stages and not 1 <= n_img <= (7 if image_slot == "film" else 6):
            raise ValueError(f"n_img: expected 1..6 (1..7 with the film slot), got {n_img} with {image_slot!r}")
        self.dim = encoder.dim

    @property
    def n_tasks(self) -> int:
        return len(self.assignment)

    @property
    def image_start(self) -> int:
        """First image stage this learner touches (N_IMAGE_STAGES when none): everything before is cacheable."""
        return min(self.stages) if self.uses_image and self.stages else N_IMAGE_STAGES

    def text_key(self, task: int) -> tuple[int, ...]:
        """Tasks with equal keys (and label sets) get identical text embeddings, computed once per step."""
        return self.assignment[task] if self.uses_text else ()

    def text_deltas(self, task: int) -> list[torch.Tensor | None]:
        return []

    def image_tokens(self, task: int) -> dict[int, torch.Tensor]:
        return {}

    def image_prompt(
        self, tokens: torch.Tensor, height: int, width: int
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """One stage's prompt tokens (n, C) -> what the encoder applies to the stage's input (its image_deltas)."""
        if self.image_slot == "film":
            return tokens_to_film(tokens, height, width)
        return tokens_to_map(tokens, height, width)

    def overrides(self, task: int, which: str) -> dict[str, torch.Tensor]:
        """Replacement values for encoder parameters; ``which`` is "text" or "image"."""
        return {}

    def adapt_image(self, z: torch.Tensor, task: int) -> torch.Tensor:
        return z

    def adapt_text(self, z: torch.Tensor, task: int) -> torch.Tensor:
        return z

    def trainable_count(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


class GeneratedPrompts:
    """Record the prompts a learner generates in one forward: within ``with GeneratedPrompts(learner) as rec:`` its
    ``text_deltas`` and ``image_tokens`` are computed once per bank combination and reused, so every task that uses
    the same banks sees the same tensors; ``rec.tensors()`` lists them (for gradients with respect to the generated
    prompts rather than the parameters that generate them, tailorkit.prompts.grouping)."""

    def __init__(self, learner: PromptLearner) -> None:
        self.learner = learner
        self.text: dict[tuple[int, ...], list[torch.Tensor | None]] = {}
        self.image: dict[tuple[int, ...], dict[int, torch.Tensor]] = {}

    def __enter__(self) -> GeneratedPrompts:
        learner = self.learner
        text, image = learner.text_deltas, learner.image_tokens

        def text_deltas(task: int) -> list[torch.Tensor | None]:
            key = learner.assignment[task]
            if key not in self.text:
                self.text[key] = text(task)
            return self.text[key]

        def image_tokens(task: int) -> dict[int, torch.Tensor]:
            key = learner.assignment[task]
            if key not in self.image:
                self.image[key] = image(task)
            return self.image[key]

        setattr(learner, "text_deltas", text_deltas)  # noqa: B010  (instance attributes shadow the methods)
        setattr(learner, "image_tokens", image_tokens)  # noqa: B010
        return self

    def __exit__(self, *exc: object) -> None:
        del self.learner.__dict__["text_deltas"], self.learner.__dict__["image_tokens"]

    def tensors(self) -> list[torch.Tensor]:
        """The recorded prompts that carry gradients: text deltas per layer, then image tokens per stage."""
        out = [d for key in sorted(self.text) for d in self.text[key] if d is not None and d.requires_grad]
        out += [self.image[key][s] for key in sorted(self.image) for s in sorted(self.image[key])]
        return [t for t in out if t.requires_grad]


def normal_(t: torch.Tensor, std: float, gen: torch.Generator | None) -> torch.Tensor:
    with torch.no_grad():
        return t.copy_(torch.randn(t.shape, generator=gen) * std)


def bank_params(n_banks: int, shape: tuple[int, ...], init: str = "zeros", std: float = 0.02) -> nn.ParameterList:
    """n_banks parameters of one shape: zeros (neutral start) or N(0, std)."""
    out = nn.ParameterList()
    for _ in range(n_banks):
        p = torch.zeros(shape) if init == "zeros" else torch.randn(shape) * std
        out.append(nn.Parameter(p))
    return out


def sum_terms(terms: Iterable[torch.Tensor]) -> torch.Tensor:
    """The terms added up in order (a task's group and task prompts add up bank by bank)."""
    it = iter(terms)
    total = next(it)
    for term in it:
        total = total + term
    return total


def sum_banks(params: nn.ParameterList, banks: Sequence[int]) -> torch.Tensor:
    return sum_terms(params[b] for b in banks)
