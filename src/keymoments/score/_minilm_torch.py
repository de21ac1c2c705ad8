"""The MiniLM encoder's forward pass in PyTorch: the GPU backend of :class:`~keymoments.score.embed.MiniLMEncoder`.

PyTorch is optional: only ``MiniLMEncoder(backend="torch")`` (or ``"auto"`` where ``$KM_TEXT_DEVICE`` lets it
pick a CUDA device, see :mod:`keymoments.score.embed`) imports this module. It computes what
``embed._numpy_forward`` computes (the same BERT layers, mean pooling over the real tokens, unit vectors, the
same ``n_layers`` and ``every_layer`` options) with ``torch.nn.functional``: the three attention projections
fused into one matrix product, attention by ``scaled_dot_product_attention``. On CUDA the matrix products run
in fp16 (or bf16) under autocast, while layer norms, the residual stream and the pooling stay fp32; on the CPU
everything is fp32.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["TorchForward"]

_H = 384
_HEADS = 12
_LN_EPS = 1e-12
_DTYPES = {
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


class TorchForward:
    """``(input_ids, attention_mask) -> (b, 384)`` unit vectors (``(b, n_layers, 384)`` with ``every_layer``).

    ``weights``: the safetensors arrays of all-MiniLM-L6-v2; ``device``: "cuda", "cpu" or None (CUDA when
    available); ``dtype``: the autocast precision, "float16" (default) or "bfloat16"; ``autocast``: None = on
    CUDA only (True on the CPU checks the reduced-precision path without a GPU).
    """

    def __init__(
        self,
        weights: dict[str, np.ndarray],
        n_layers: int = 6,
        every_layer: bool = False,
        device: str | None = None,
        dtype: str = "float16",
        autocast: bool | None = None,
    ) -> None:
        self.n_layers = n_layers
        self.every_layer = every_layer
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.autocast = self.device.type == "cuda" if autocast is None else autocast
        self.dtype = _DTYPES[dtype] if self.autocast else torch.float32

        def t(name: str, matmul: bool = False) -> torch.Tensor:
            return _tensor(weights[name], self.device, self.dtype if matmul else torch.float32)

        self.emb = {
            "word": t("embeddings.word_embeddings.weight"),
            "pos": t("embeddings.position_embeddings.weight"),
            "type": t("embeddings.token_type_embeddings.weight")[0],
            "ln": (t("embeddings.LayerNorm.weight"), t("embeddings.LayerNorm.bias")),
        }
        self.layers = []
        for i in range(n_layers):
            p = f"encoder.layer.{i}."
            qkv = [p + f"attention.self.{n}" for n in ("query", "key", "value")]
            w_qkv = np.concatenate([weights[n + ".weight"] for n in qkv])
            b_qkv = np.concatenate([weights[n + ".bias"] for n in qkv])
            self.layers.append(
                {
                    "qkv": (_tensor(w_qkv, self.device, self.dtype), _tensor(b_qkv, self.device, self.dtype)),
                    "out": (
                        t(p + "attention.output.dense.weight", True),
                        t(p + "attention.output.dense.bias", True),
                    ),
                    "ln1": (
                        t(p + "attention.output.LayerNorm.weight"),
                        t(p + "attention.output.LayerNorm.bias"),
                    ),
                    "mid": (t(p + "intermediate.dense.weight", True), t(p + "intermediate.dense.bias", True)),
                    "ffo": (t(p + "output.dense.weight", True), t(p + "output.dense.bias", True)),
                    "ln2": (t(p + "output.LayerNorm.weight"), t(p + "output.LayerNorm.bias")),
                }
            )

    @property
    def name(self) -> str:
        """``torch-cuda-fp16``, ``torch-cpu`` …: where and how precisely it runs."""
        if not self.autocast:
            return f"torch-{self.device.type}"
        return f"torch-{self.device.type}-{'bf16' if self.dtype == torch.bfloat16 else 'fp16'}"

    def __call__(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, dtype=self.dtype, enabled=self.autocast),
        ):
            ids = torch.from_numpy(np.ascontiguousarray(input_ids)).to(self.device, non_blocking=True)
            m = torch.from_numpy(np.ascontiguousarray(mask)).to(self.device, non_blocking=True)
            out = self._forward(ids, m)
        return out.float().cpu().numpy()

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t = ids.shape
        dh = _H // _HEADS
        e = self.emb
        x = F.embedding(ids, e["word"]) + e["pos"][:t] + e["type"]
        x = F.layer_norm(x, (_H,), *e["ln"], eps=_LN_EPS)
        m = mask.to(torch.float32)
        bias = ((1.0 - m) * -1e4)[:, None, None, :].to(self.dtype)  # (b, 1, 1, t), as the numpy reference
        weight = m[:, :, None]
        count = weight.sum(1).clamp_min(1e-9)

        def pool(z: torch.Tensor) -> torch.Tensor:
            pooled = (z.float() * weight).sum(1) / count
            return F.normalize(pooled, dim=1, eps=1e-12)

        pooled = []
        for layer in self.layers:
            qkv = F.linear(x, *layer["qkv"]).view(b, t, 3, _HEADS, dh).permute(2, 0, 3, 1, 4)
            ctx = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=bias)
            ctx = ctx.transpose(1, 2).reshape(b, t, _H)
            x = F.layer_norm(x + F.linear(ctx, *layer["out"]), (_H,), *layer["ln1"], eps=_LN_EPS)
            ff = F.linear(F.gelu(F.linear(x, *layer["mid"])), *layer["ffo"])
            x = F.layer_norm(x + ff, (_H,), *layer["ln2"], eps=_LN_EPS)
            if self.every_layer:
                pooled.append(pool(x))
        return torch.stack(pooled, dim=1) if self.every_layer else pool(x)


def _tensor(arr: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).to(device, dtype=dtype)
