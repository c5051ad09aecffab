"""Choices made on validation scenes, never on test scenes: early stopping, the tuned single-task reference, and
the bench's method variants (docs/adapters.md#choosing-on-validation-scenes).

- :class:`EarlyStopping` keeps the checkpoint with the lowest validation loss seen so far (ties keep the earlier).
- :func:`fit_with_early_stopping` trains one model for the usual step budget (same schedule), evaluates the
  weighted validation loss (the training objective) every ``eval_every`` steps and at the end, and restores the
  best checkpoint. [inferred: the issue asks for early stopping on a validation split; the criterion is ours]
- :func:`parse_variant` reads a bench variant ``METHOD:KEY=VALUE+KEY=VALUE`` (keys: the method's options) into a
  checked method config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from tailorkit.adapters.config import MethodConfig, TrainConfig
from tailorkit.adapters.data import MultiTaskData
from tailorkit.adapters.methods import METHODS
from tailorkit.adapters.model import MultiTaskModel
from tailorkit.adapters.tasks import task_loss, task_spec
from tailorkit.core.config import from_dict, to_dict

__all__ = ["EarlyStopping", "fit_with_early_stopping", "parse_variant", "validation_loss"]


@dataclass
class EarlyStopping:
    """Tracks the best (lowest) validation loss and the state saved with it.

    Attributes:
        best_step: Steps done at the best evaluation (-1 before the first).
        best_loss: Its validation loss.
        history: (step, loss) of every evaluation, in order.
    """

    best_step: int = -1
    best_loss: float = float("inf")
    best_state: dict[str, torch.Tensor] | None = None
    history: list[tuple[int, float]] = field(default_factory=list)

    def update(self, step: int, loss: float, state: dict[str, torch.Tensor] | None = None) -> bool:
        """Record one evaluation; True (and ``state`` kept, copied) when it is a new best."""
        self.history.append((step, loss))
        if not loss < self.best_loss:  # NaN and ties never replace the earlier best
            return False
        self.best_step, self.best_loss = step, loss
        self.best_state = None if state is None else {k: v.detach().clone() for k, v in state.items()}
        return True


@torch.no_grad()
def validation_loss(model: MultiTaskModel, data: MultiTaskData, batch_size: int = 32) -> float:
    """The training objective sum_t w_t L_t, averaged over ``data`` in eval mode (the caller restores the mode)."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for start in range(0, len(data), batch_size):
        index = torch.arange(start, min(start + batch_size, len(data)))
        x, targets = data.batch(index, device)
        preds = model(x)
        loss = sum(task_spec(t).weight * float(task_loss(t, p, targets[t])) for t, p in preds.items())
        total += loss * len(index)
        count += len(index)
    return total / count


def fit_with_early_stopping(
    model: MultiTaskModel,
    train: MultiTaskData,
    val: MultiTaskData,
    config: TrainConfig,
    *,
    eval_every: int,
    device: torch.device | None = None,
    label: str = "train",
) -> EarlyStopping:
    """Train ``model`` for ``config.optim.steps`` steps, evaluating on ``val`` every ``eval_every`` steps and after
    the last; the model ends with the best checkpoint's weights. Returns the tracker (best step and loss)."""
    from tailorkit.adapters.runner import train_model

    if eval_every < 1:
        raise ValueError(f"eval_every: expected an int >= 1, got {eval_every!r}")
    stopper = EarlyStopping()
    steps = config.optim.steps

    def on_step(done: int, m: MultiTaskModel) -> None:
        if done % eval_every == 0 or done == steps:
            stopper.update(done, validation_loss(m, val), m.state_dict())
            m.train()

    train_model(model, train, config, device=device, label=label, on_step=on_step)
    if stopper.best_state is not None:
        model.load_state_dict(stopper.best_state)
    model.eval()
    return stopper


def parse_variant(spec: str, base: MethodConfig | None = None) -> tuple[str, MethodConfig]:
    """``METHOD:KEY=VALUE+KEY=VALUE`` -> (the spec as a row name, the checked method config: METHOD with the options
    it shares with ``base`` (the default method config if None; the bench's width ``r``) and the given options).

    Raises:
        ValueError: A malformed spec, an unknown method, an option the method does not have (naming the method and
            its options) or a value its options refuse (one line, naming the spec).
    """
    method, _, rest = spec.partition(":")
    method = method.strip()
    if method not in METHODS:
        raise ValueError(f"variants: {spec!r}: expected METHOD:KEY=VALUE+... with a method from {', '.join(METHODS)}")
    options: dict[str, Any] = to_dict((base or MethodConfig()).with_method(method).options)
    for item in filter(None, (part.strip() for part in rest.split("+"))):
        key, eq, value = (part.strip() for part in item.partition("="))
        if not eq or not key:
            raise ValueError(f"variants: {spec!r}: expected KEY=VALUE items with the method's options, got {item!r}")
        if key not in options:
            raise ValueError(
                f"variants: {spec!r}: option {key!r} is not an option of adapters method {method!r}; its options: "
                f"{', '.join(options) or 'none'}"
            )
        options[key] = value
    try:
        return spec, from_dict(MethodConfig, {"name": method, "options": options}, where="variants")
    except ValueError as err:
        raise ValueError(f"variants: {spec!r}: {err}") from None
