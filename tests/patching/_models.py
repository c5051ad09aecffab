"""Tiny models for the patching tests: a BERT, a GPT-2 (HF Conv1D) and a conv net, each with a fine-tuned copy."""

from __future__ import annotations

import copy

import torch
from torch import nn


def perturb(model: nn.Module, seed: int, scale: float = 0.05, only: str = "") -> nn.Module:
    """A copy of `model` with Gaussian noise added to every parameter whose name contains `only`."""
    ft = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in ft.named_parameters():
            if only in name:
                p.add_(scale * torch.randn(p.shape, generator=gen))
    return ft


def tiny_bert(seed: int = 0) -> nn.Module:
    from transformers import BertConfig, BertModel

    cfg = BertConfig(
        vocab_size=60,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return BertModel(cfg, add_pooling_layer=False).eval()


def tiny_gpt2(seed: int = 0) -> nn.Module:
    from transformers import GPT2Config, GPT2Model

    cfg = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=60, n_positions=32, bos_token_id=0, eos_token_id=0)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return GPT2Model(cfg).eval()


class TinyConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.head = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        return self.head(x.flatten(1))


def token_batches(
    n: int, seed: int = 0, vocab: int = 60, length: int = 10, pad_last: int = 3
) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        ids = torch.randint(1, vocab, (4, length), generator=gen)
        mask = torch.ones(4, length, dtype=torch.long)
        mask[0, length - pad_last :] = 0
        ids[0, length - pad_last :] = 0
        batches.append({"input_ids": ids, "attention_mask": mask})
    return batches
