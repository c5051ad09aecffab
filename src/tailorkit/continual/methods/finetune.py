"""Fine-tuning (FT): the lower bound. Each phase trains the SSL loss on the new classes only, starting from the
previous phase's weights, with no term that protects the past (CaSSLe's and PFR's "fine-tuning" baseline)."""

from __future__ import annotations

from tailorkit.continual.methods.base import METHODS, Strategy

__all__ = ["FineTune"]


@METHODS.register("finetune")
class FineTune(Strategy):
    name = "finetune"
