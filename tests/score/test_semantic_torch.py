"""The encoder's PyTorch backend (the GPU path), checked on the CPU against the numpy reference forward pass.

torch is a test dependency (scripts/setup installs the CPU build): without it these tests fail, they do not
skip. No GPU is needed: the fp32 CPU path must match the reference, and the reduced-precision (autocast) path
that a GPU runs is exercised on the CPU in bfloat16.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from keymoments.exceptions import ConfigError
from keymoments.score.embed import MiniLMEncoder, _numpy_forward, _use_cuda
from keymoments.score.semantic import SemanticScorer

TEXTS = [
    "@AmazonHelp my parcel never arrived and nobody answers, this is ridiculous",
    "Thank you so much, the agent fixed everything in minutes. Brilliant service!",
    "How do I change the email address on my account?",
    "They lost my luggage and the staff were rude and useless.",
    "Loved it!",
    "I have been on hold for two hours. Two hours. Is anyone there?",
    "Best hotel stay ever, the room was spotless and the staff were lovely.",
    "",
]


def _padded(enc: MiniLMEncoder, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    ids = enc.tokenize(texts)
    input_ids = np.zeros((len(ids), max(map(len, ids))), dtype=np.int64)
    mask = np.zeros_like(input_ids)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return input_ids, mask


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


@pytest.fixture(scope="module")
def reference() -> MiniLMEncoder:
    return MiniLMEncoder(backend="numpy")


@pytest.mark.parametrize("n_layers", [1, 6])
def test_torch_forward_matches_the_numpy_reference(reference, twcs_texts, n_layers):
    from keymoments.score._minilm_torch import TorchForward

    texts = TEXTS + twcs_texts[:16]
    input_ids, mask = _padded(reference, texts)
    ref = _numpy_forward(reference._weights, input_ids, mask, n_layers)
    got = TorchForward(reference._weights, n_layers=n_layers, device="cpu")(input_ids, mask)
    assert got.shape == ref.shape and got.dtype == np.float32
    assert _cosines(got, ref).min() > 0.999
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_every_layer_gives_each_depths_vector(reference):
    from keymoments.score._minilm_torch import TorchForward

    input_ids, mask = _padded(reference, TEXTS)
    layers = TorchForward(reference._weights, n_layers=3, every_layer=True, device="cpu")(input_ids, mask)
    assert layers.shape == (len(TEXTS), 3, 384)
    for k in (1, 3):
        assert (
            _cosines(layers[:, k - 1], _numpy_forward(reference._weights, input_ids, mask, k)).min() > 0.999
        )


def test_reduced_precision_path_stays_close(reference):
    """What a GPU runs (matrix products under autocast), in bfloat16 on the CPU: the code path without a GPU."""
    from keymoments.score._minilm_torch import TorchForward

    input_ids, mask = _padded(reference, TEXTS[:4])
    half = TorchForward(reference._weights, n_layers=1, device="cpu", dtype="bfloat16", autocast=True)
    assert half.name == "torch-cpu-bf16"
    ref = _numpy_forward(reference._weights, input_ids, mask, 1)
    assert _cosines(half(input_ids, mask), ref).min() > 0.999


def test_encoder_with_the_torch_backend_matches_the_reference(reference):
    enc = MiniLMEncoder(backend="torch", n_layers=3)
    assert enc.name == "all-MiniLM-L6-v2/torch-cpu/128/L3"
    ref = MiniLMEncoder(backend="numpy", n_layers=3).encode(TEXTS)
    assert _cosines(enc.encode(TEXTS), ref).min() > 0.999


def test_sentiment_agrees_with_the_torch_backend_on_real_tweets(twcs_texts):
    """The CPU default (int8 ONNX) and the GPU path (torch, here fp32 on the CPU) compute differently, and int8
    kernels differ between CPUs: a borderline text may fall on either side. So the check is numerical agreement
    within tolerances on 1,000 real tweets, not equal labels on chosen texts. Measured on the development box:
    cosine >= 0.997, probabilities within 0.05, 97.8-98.5% equal labels (the int8 encoder quantises each batch's
    activations, so the share moves with the batch: 98% would fail by chance), every difference a near tie."""
    texts = twcs_texts[:1000]
    onnx = SemanticScorer("fast", head="blend", emotions=False)  # auto's scorer, on its CPU default (int8 ONNX)
    torch_scorer = SemanticScorer("fast", head="blend", emotions=False)
    torch_scorer.encoder_ = MiniLMEncoder(backend="torch", n_layers=1)
    assert "torch" in torch_scorer.encoder_.name and "onnx" in onnx.encoder_.name
    x_onnx, x_torch = onnx.embed(texts), torch_scorer.embed(texts)
    assert _cosines(x_onnx, x_torch).min() >= 0.99
    expected, got = onnx.head_.predict_proba(x_onnx), torch_scorer.head_.predict_proba(x_torch)  # what score() labels
    assert np.abs(got - expected).max() <= 0.1
    same = got.argmax(axis=1) == expected.argmax(axis=1)
    assert same.mean() >= 0.97, same.mean()
    # a text whose label differs is one the model hardly decides: its top two classes within 0.2 either way
    top2 = np.sort(expected, axis=1)[:, -2:]
    assert (top2[~same, 1] - top2[~same, 0] < 0.2).all()


def test_km_text_device_chooses_the_backend(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("KM_TEXT_DEVICE", "cuda")
    with pytest.raises(ConfigError, match="KM_TEXT_DEVICE=cuda, but torch sees no CUDA device"):
        MiniLMEncoder(n_layers=1)
    monkeypatch.setenv("KM_TEXT_DEVICE", "gpu")
    with pytest.raises(
        ConfigError, match=r"KM_TEXT_DEVICE must be one of \['auto', 'cpu', 'cuda'\]. Got 'gpu'"
    ):
        MiniLMEncoder(n_layers=1)
    monkeypatch.setenv("KM_TEXT_DEVICE", "auto")
    assert MiniLMEncoder(n_layers=1).backend == "onnx"  # no CUDA device: the CPU default
    monkeypatch.setattr(
        torch.cuda, "is_available", lambda: True
    )  # (building an encoder now would need a GPU)
    monkeypatch.setenv("KM_TEXT_DEVICE", "cuda")
    assert _use_cuda()
    monkeypatch.setenv("KM_TEXT_DEVICE", "cpu")
    assert not _use_cuda()
    assert MiniLMEncoder(n_layers=1, backend="torch").name == "all-MiniLM-L6-v2/torch-cpu/128/L1"


def test_the_cpu_default_never_imports_torch():
    code = (
        "import sys\n"
        "from keymoments.score.semantic import SemanticScorer\n"
        "scorer = SemanticScorer('fast', emotions=False)\n"
        "scorer.score(['fine, thanks'])\n"
        "assert 'onnx' in scorer.encoder_.name, scorer.encoder_.name\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "KM_TEXT_DEVICE"}  # the default, auto: no GPU in CI
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
