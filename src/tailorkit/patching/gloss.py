"""A second original-ability suite for the patching bench: WordNet gloss -> lemma retrieval (zero-shot).

The similarity sets of the bench (Lee, WordSim-353, SimLex-999) are all similarity judgements; this suite asks
another question of the same sentence embedding: which word does this dictionary definition define? Nothing is
trained on it, and it comes from the offline WordNet 3.0 asset (`tailorkit assets install wordnet`).

Items (fixed once; the same for every bench seed and split, since original abilities do not depend on the split):

- candidates: every (lemma, part of speech) in WordNet's index.noun/verb/adj/adv whose lemma is one alphabetic
  word of >= 3 letters and has at least one sense tagged in SemCor (`tagsense_cnt` >= 1, a frequency filter that
  keeps common words and drops most taxonomic names). The item's gloss is the definition of the lemma's first
  (most frequent) sense, read from data.<pos> at the byte offset the index gives; example sentences are dropped;
- the candidates are shuffled with a constant seed (`GLOSS_SEED`, independent of the bench seed) and taken in that
  order while: the lemma is not taken yet (one item per word, whatever its part of speech); no lemma of the sense's
  synset is a lemma of an already chosen synset (so no other item's target is a synonym of this gloss); the gloss
  has >= 3 words and no word of >= 3 letters of it shares a prefix of min(5, both lengths) letters with the lemma
  (no string-match shortcut: "running" for "run", "private" for "privately", "harm" for "harmless").

Metric: each gloss is a query, the `n` lemmas of the set are the candidates (each lemma embedded alone, as the word
similarity sets embed their words); cosine similarity of unit-norm mean-pooled embeddings. R@1 (top-1 accuracy)
and MRR, both as expectations under uniformly random tie-breaking, so a constant embedder scores exactly chance:
R@1 = 1/n, MRR = H_n/n. The selection rule and the item count are choices of this project (inferred, not from the
paper; the paper's original abilities are MLLM benchmarks) and are settings of the bench (`gloss_retrieval`,
`gloss_items`).
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import torch

from tailorkit.core.seeding import numpy_generator

__all__ = ["GLOSS_SEED", "gloss_items", "retrieval_scores"]

GLOSS_SEED = 20240527  # constant: the item list must not vary with the bench seed
_POS = ("noun", "verb", "adj", "adv")


def retrieval_scores(queries: torch.Tensor, keys: torch.Tensor) -> dict[str, float]:
    """R@1 and MRR of retrieving key i for query i among all keys (cosine on unit-norm rows; ties broken at random
    in expectation).

    Shapes: queries (n, D), keys (n, D), rows unit norm (dot product = cosine).
    """
    if queries.ndim != 2 or queries.shape != keys.shape or queries.shape[0] == 0:
        raise ValueError(
            f"expected queries and keys of the same shape (n, D), got {tuple(queries.shape)} and {tuple(keys.shape)}"
        )
    sims = (queries.double() @ keys.double().t()).numpy()
    right = np.diag(sims)[:, None]
    # Scores within 1e-9 of the right key's count as ties (float noise of identical embeddings).
    greater = (sims > right + 1e-9).sum(1)
    ties = (np.abs(sims - right) <= 1e-9).sum(1) - 1  # other keys tied with the right one
    r1 = np.where(greater == 0, 1.0 / (1 + ties), 0.0)
    # Under random tie-breaking the rank is uniform on greater+1 .. greater+ties+1.
    mrr = np.array([np.mean(1.0 / np.arange(g + 1, g + t + 2)) for g, t in zip(greater, ties, strict=True)])
    return {"r1": float(r1.mean()), "mrr": float(mrr.mean())}


@lru_cache(maxsize=4)
def gloss_items(n: int = 300) -> tuple[tuple[str, str], ...]:
    """`n` (lemma, gloss) pairs chosen by the fixed rule of the module docstring (cached per process)."""
    if n < 2:
        raise ValueError(f"gloss_items: expected n >= 2, got {n}")
    from tailorkit.assets.base import get_asset

    asset = get_asset("wordnet")
    candidates: list[tuple[str, str, int]] = []
    for pos in _POS:
        for line in asset.path(f"index.{pos}").read_text(errors="replace").splitlines():
            if not line or line.startswith("  "):  # license header
                continue
            lemma = line[: line.find(" ")]
            if len(lemma) < 3 or not (lemma.isascii() and lemma.isalpha()):
                continue
            fields = line.split()
            n_synsets = int(fields[2])
            if int(fields[-n_synsets - 1]) < 1:  # tagsense_cnt: no sense seen in SemCor
                continue
            candidates.append((lemma.lower(), pos, int(fields[-n_synsets])))
    order = numpy_generator(GLOSS_SEED, "patching", "gloss").permutation(len(candidates))
    data = {pos: asset.path(f"data.{pos}").read_bytes() for pos in _POS}
    taken: set[str] = set()
    synonyms: set[str] = set()
    items: list[tuple[str, str]] = []
    for i in order:
        lemma, pos, offset = candidates[i]
        if lemma in taken or lemma in synonyms:
            continue
        names, gloss = _synset_at(data[pos], offset)
        if names & synonyms or len(gloss.split()) < 3 or _shares_stem(lemma, gloss):
            continue
        items.append((lemma, gloss))
        taken.add(lemma)
        synonyms |= names | {lemma}
        if len(items) == n:
            return tuple(items)
    raise ValueError(f"gloss_items: only {len(items)} WordNet items pass the selection rule, asked for {n}")


def _synset_at(data: bytes, offset: int) -> tuple[set[str], str]:
    """(lower-cased lemma names, definition without examples) of the synset line at byte `offset` of data.<pos>."""
    end = data.index(b"\n", offset)
    line = data[offset:end].decode("utf-8", errors="replace")
    head, _, gloss = line.partition(" | ")
    fields = head.split()
    if not fields or int(fields[0]) != offset:
        from tailorkit.assets.base import AssetCorrupt

        raise AssetCorrupt(f"asset 'wordnet' data file: no synset at byte offset {offset} (corrupt asset?)")
    count = int(fields[3], 16)
    names = {re.sub(r"\(.*\)$", "", fields[4 + 2 * k]).replace("_", " ").lower() for k in range(count)}
    # Drop the quoted examples and what is left of them (empty parts, "- Author" attributions).
    parts = [p.strip() for p in re.sub(r'"[^"]*"', "", gloss).split(";")]
    return names, "; ".join(p for p in parts if p and not p.startswith("-"))


def _shares_stem(lemma: str, gloss: str) -> bool:
    """True if a gloss word of >= 3 letters starts like the lemma: a common prefix of at least
    min(5, len(lemma), len(word)) letters ("private" for "privately", "harm" for "harmless", "running" for "run")."""
    for word in re.findall(r"[a-z]{3,}", gloss.lower()):
        need = min(5, len(lemma), len(word))
        if word[:need] == lemma[:need]:
            return True
    return False
