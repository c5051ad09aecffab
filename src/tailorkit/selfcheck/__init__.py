"""The built-in self-check: the shared networks and assets reproduce their published sanity numbers.

It exercises the bench and report pipeline end to end (`tailorkit bench selfcheck`, `tailorkit reproduce`) and is
the first part of the demo tour: EfficientNet-Lite0 labels real photos, MiniLM compares sentences.
"""

from __future__ import annotations

from tailorkit.selfcheck.checks import (
    REFERENCE_PHOTOS,
    SelfcheckConfig,
    classify_photos,
    lee_correlation,
    sentence_similarity,
)

__all__ = ["REFERENCE_PHOTOS", "SelfcheckConfig", "classify_photos", "lee_correlation", "sentence_similarity"]
