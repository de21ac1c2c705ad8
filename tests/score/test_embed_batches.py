"""The int8 encoder quantises each token on its own: a text's vector does not depend on its batch-mates."""

from __future__ import annotations

import numpy as np
import pytest

from keymoments.score.embed import MiniLMEncoder

TEXTS = [
    "My flight was cancelled and nobody told me",
    "Thanks so much, the refund came through!",
    "how do I reset my password",
    "The app crashes every time I open the boarding pass " * 4,  # a long one widens its batch
    "ok",
    "Lost my bag again, great job",
]


@pytest.fixture(scope="module")
def encoder() -> MiniLMEncoder:
    return MiniLMEncoder(quantize=True, every_layer=True, batch_size=4)


def test_a_vector_is_the_same_alone_and_among_others(encoder):
    together = encoder.encode(TEXTS)
    for i, text in enumerate(TEXTS):
        alone = encoder.encode([text])[0]
        np.testing.assert_allclose(alone, together[i], atol=2e-6)
    shuffled = encoder.encode(TEXTS[::-1] + ["an unrelated filler text about delivery"] * 5)
    np.testing.assert_allclose(shuffled[: len(TEXTS)][::-1], together, atol=2e-6)


def test_int8_stays_close_to_fp32(encoder):
    fp32 = MiniLMEncoder(quantize=False, every_layer=True).encode(TEXTS)
    cos = (encoder.encode(TEXTS) * fp32).sum(axis=-1)  # (texts, layers)
    assert cos.min() > 0.98 and cos.mean() > 0.99
