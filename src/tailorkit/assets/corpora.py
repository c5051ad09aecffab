"""Locators for text data: gensim's similarity corpora, WordNet 3.0 and fortune cookies.

WordNet is read straight from its data files (no NLTK): a synset line holds the lexicographer file number, the
lemmas, pointers, and after ` | ` the gloss, whose quoted parts are example sentences. The 45 lexicographer file
names ("supersenses": noun.animal, verb.motion, ...) come from the lexnames(5WN) man page that the same Debian
package ships, since Debian omits the `lexnames` file itself.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tailorkit.assets.base import AssetCorrupt, get_asset


def lee_corpus() -> tuple[list[str], np.ndarray]:
    """Lee et al. (2005): 50 news documents and their 50x50 human similarity matrix (symmetrised, in [0, 1])."""
    asset = get_asset("gensim-corpora")
    docs = [
        line.strip()
        for line in asset.path("lee.cor").read_text(encoding="cp1252", errors="replace").splitlines()
        if line.strip()
    ]
    rows = [line.split() for line in asset.path("similarities0-1.txt").read_text().splitlines() if line.strip()]
    sims = np.array(rows, dtype=np.float64)
    if len(docs) != 50 or sims.shape != (50, 50):
        raise AssetCorrupt(f"asset 'gensim-corpora': Lee corpus has {len(docs)} docs and a {sims.shape} matrix")
    # The file fills the upper triangle (the lower holds zeros); mirror it.
    return docs, np.triu(sims) + np.triu(sims, 1).T


def lee_background() -> list[str]:
    """The 300 unlabelled news documents that accompany the Lee corpus (for fitting vocabularies and IDF)."""
    text = get_asset("gensim-corpora").path("lee_background.cor").read_text(encoding="cp1252", errors="replace")
    return [line.strip() for line in text.splitlines() if line.strip()]


def word_similarity(name: str = "wordsim353") -> list[tuple[str, str, float]]:
    """Human-rated word pairs: 'wordsim353' (353 pairs, 0-10) or 'simlex999' (999 pairs, 0-10)."""
    files = {"wordsim353": ("wordsim353.tsv", 353), "simlex999": ("simlex999.txt", 999)}
    if name not in files:
        raise ValueError(f"word_similarity: expected one of {', '.join(files)}, got {name!r}")
    filename, count = files[name]
    pairs = []
    for line in get_asset("gensim-corpora").path(filename).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        first, second, score = line.split("\t")[:3]
        pairs.append((first, second, float(score)))
    if len(pairs) != count:
        raise AssetCorrupt(f"asset 'gensim-corpora': {filename} has {len(pairs)} pairs, expected {count}")
    return pairs


def polarity() -> tuple[list[str], np.ndarray]:
    """Pang & Lee movie-review sentences (gensim's 200-line sample): texts and labels (1 positive, 0 negative)."""
    texts, labels = [], []
    for line in (
        get_asset("gensim-corpora")
        .path("pang_lee_polarity.cor")
        .read_text(encoding="cp1252", errors="replace")
        .splitlines()
    ):
        label, _, text = line.strip().partition(" ")
        if label not in ("__label__pos", "__label__neg"):
            continue
        texts.append(text.strip())
        labels.append(1 if label == "__label__pos" else 0)
    return texts, np.array(labels, dtype=np.int64)


@dataclass(frozen=True)
class Synset:
    """One WordNet synset."""

    offset: int
    pos: str  # n, v, a, s (adjective satellite), r
    lexname: str  # supersense, e.g. "noun.animal"
    lemmas: tuple[str, ...]
    definition: str
    examples: tuple[str, ...]


def wordnet_lexnames() -> dict[int, str]:
    """Lexicographer file number -> name (45 entries), read from the lexnames(5WN) man page table."""
    path = get_asset("wordnet").path("lexnames.5WN.gz")
    table = {}
    for line in gzip.decompress(path.read_bytes()).decode().splitlines():
        match = re.match(r"^(\d\d)\t(\S+)\s*\t", line)
        if match:
            table[int(match.group(1))] = match.group(2)
    if len(table) != 45:
        raise AssetCorrupt(f"{path}: found {len(table)} lexicographer names, expected 45")
    return table


_POS_FILES = {"noun": "data.noun", "verb": "data.verb", "adj": "data.adj", "adv": "data.adv"}


def wordnet_synsets(pos: str | None = None) -> list[Synset]:
    """All synsets (117,659) or those of one part of speech ('noun', 'verb', 'adj', 'adv')."""
    if pos is not None and pos not in _POS_FILES:
        raise ValueError(f"wordnet_synsets pos: expected one of {', '.join(_POS_FILES)} or None, got {pos!r}")
    lexnames = wordnet_lexnames()
    asset = get_asset("wordnet")
    out: list[Synset] = []
    for key in [pos] if pos else list(_POS_FILES):
        out.extend(_parse_wordnet_data(asset.path(_POS_FILES[key]), lexnames))
    return out


def _parse_wordnet_data(path: Path, lexnames: dict[int, str]) -> list[Synset]:
    synsets = []
    for line in path.read_text(errors="replace").splitlines():
        if not line or line.startswith("  "):  # the license header lines start with two spaces
            continue
        head, _, gloss = line.partition(" | ")
        fields = head.split()
        try:
            count = int(fields[3], 16)
            lemmas = tuple(fields[4 + 2 * i].replace("_", " ") for i in range(count))
            lexname = lexnames[int(fields[1])]
        except (IndexError, ValueError, KeyError) as err:
            raise AssetCorrupt(f"{path}: malformed synset line {line[:60]!r}") from err
        examples = tuple(e.strip() for e in re.findall(r'"([^"]*)"', gloss))
        definition = re.sub(r'"[^"]*"', "", gloss).strip().strip(";").strip()
        synsets.append(Synset(int(fields[0]), fields[2], lexname, lemmas, definition, examples))
    return synsets


def fortunes(min_entries: int = 20) -> dict[str, list[str]]:
    """Fortune cookies by category (categories with fewer than `min_entries` entries are dropped)."""
    asset = get_asset("fortunes")
    out = {}
    for spec in asset.files:
        path = asset.path(spec.path)
        entries = [e.strip() for e in path.read_text(errors="replace").split("\n%\n") if e.strip().strip("%")]
        if len(entries) >= min_entries:
            out[path.name] = entries
    return out
