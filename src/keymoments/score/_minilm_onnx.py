"""Write the all-MiniLM-L6-v2 encoder (BERT, 6 layers, mean pooling, L2 norm) as an ONNX graph from its weights.

No exporter and no PyTorch: the graph is spelled out with ``onnx.helper``, op for op the same computation as
:func:`keymoments.score.embed._numpy_forward` (which the tests compare it with), in fp32 or with its weight
products in 8-bit integers (``int8``). Inputs ``input_ids`` and
``attention_mask`` (int64, [batch, seq]); output ``embedding`` (float32, [batch, 384], unit length).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["build_onnx"]

_H = 384
_HEADS = 12
_LAYERS = 6
_OPSET = 17  # LayerNormalization


def build_onnx(w: dict[str, np.ndarray], path: Path, n_layers: int = _LAYERS, every_layer: bool = False, int8: bool = False) -> None:
    """Write the encoder graph with weights ``w`` (safetensors names) to ``path``.

    ``n_layers`` keeps only the first layers (a faster, shallower encoder); ``every_layer`` adds one output
    ``embedding_l{k}`` per layer k (pooled and normalised), for choosing the depth at training time.

    ``int8``: every product with a weight matrix runs in 8-bit integers: the weights with one scale per output
    column, the activations with one scale *per token* (its largest absolute value over 127, stored as uint8 around
    128, which is ONNX Runtime's fast u8 x s8 path), so a text's vector never depends on the other texts in its batch,
    as it does when the activations share one range per batch (``quantize_dynamic``).
    """
    import onnx  # noqa: PLC0415
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415

    nodes: list = []
    inits: list = []
    counter = [0]

    def const(arr: np.ndarray, name: str | None = None) -> str:
        counter[0] += 1
        name = name or f"c{counter[0]}"
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def op(kind: str, inputs: list[str], **attrs) -> str:
        counter[0] += 1
        out = f"{kind.lower()}{counter[0]}"
        nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    f32 = np.float32
    dh = _H // _HEADS
    # embeddings
    word = op("Gather", [const(w["embeddings.word_embeddings.weight"].astype(f32), "word_emb"), "input_ids"], axis=0)
    seq_len = op("Shape", ["input_ids"], start=1, end=2)
    pos = op("Slice", [const(w["embeddings.position_embeddings.weight"].astype(f32), "pos_emb"), const(np.array([0], np.int64)), seq_len, const(np.array([0], np.int64))])
    x = op("Add", [word, pos])
    x = op("Add", [x, const(w["embeddings.token_type_embeddings.weight"][0].astype(f32))])

    def ln(z: str, prefix: str) -> str:
        return op("LayerNormalization", [z, const(w[prefix + ".weight"].astype(f32)), const(w[prefix + ".bias"].astype(f32))], axis=-1, epsilon=1e-12)

    def lin(z: str, prefix: str) -> str:
        weight = np.ascontiguousarray(w[prefix + ".weight"].T.astype(f32))  # [in, out]
        if not int8:
            y = op("MatMul", [z, const(weight)])
        else:
            w_scale = np.maximum(np.abs(weight).max(axis=0), 1e-8) / 127.0
            w_q = np.clip(np.round(weight / w_scale), -127, 127).astype(np.int8)
            a_scale = op("Max", [op("Div", [op("ReduceMax", [op("Abs", [z])], axes=[-1], keepdims=1), c127]), tiny])
            a_q = op("Cast", [op("Add", [op("Round", [op("Div", [z, a_scale])]), c128])], to=TensorProto.UINT8)
            product = op("MatMulInteger", [a_q, const(w_q), zero_a, zero_w])
            y = op("Mul", [op("Mul", [op("Cast", [product], to=TensorProto.FLOAT), a_scale]), const(w_scale.astype(f32))])
        return op("Add", [y, const(w[prefix + ".bias"].astype(f32))])

    if int8:  # the constants of the integer products (an fp32 graph holds none of them)
        c127, c128, tiny = const(np.array(127.0, f32)), const(np.array(128.0, f32)), const(np.array(1e-8, f32))
        zero_a, zero_w = const(np.array(128, np.uint8)), const(np.array(0, np.int8))
    x = ln(x, "embeddings.LayerNorm")
    mask_f = op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    neg = op("Mul", [op("Sub", [const(np.array(1.0, f32)), mask_f]), const(np.array(-1e4, f32))])
    att_bias = op("Unsqueeze", [neg, const(np.array([1, 2], np.int64))])  # [B,1,1,T]
    split_shape = const(np.array([0, 0, _HEADS, dh], np.int64), "split_heads")
    merge_shape = const(np.array([0, 0, _H], np.int64), "merge_heads")
    scale = const(np.array(1.0 / np.sqrt(dh), f32), "att_scale")
    m3 = op("Unsqueeze", [mask_f, const(np.array([2], np.int64))])
    count = op("Max", [op("ReduceSum", [m3, const(np.array([1], np.int64))], keepdims=0), const(np.array(1e-9, f32))])

    def pool(z: str, out: str) -> None:
        summed = op("ReduceSum", [op("Mul", [z, m3]), const(np.array([1], np.int64))], keepdims=0)
        pooled = op("Div", [summed, count])
        norm = op("Max", [op("ReduceL2", [pooled], axes=[1], keepdims=1), const(np.array(1e-12, f32))])
        nodes.append(helper.make_node("Div", [pooled, norm], [out]))

    outputs = []
    for i in range(n_layers):
        p = f"encoder.layer.{i}."
        q = op("Transpose", [op("Reshape", [lin(x, p + "attention.self.query"), split_shape])], perm=[0, 2, 1, 3])
        k = op("Transpose", [op("Reshape", [lin(x, p + "attention.self.key"), split_shape])], perm=[0, 2, 3, 1])
        v = op("Transpose", [op("Reshape", [lin(x, p + "attention.self.value"), split_shape])], perm=[0, 2, 1, 3])
        s = op("Add", [op("Mul", [op("MatMul", [q, k]), scale]), att_bias])
        prob = op("Softmax", [s], axis=-1)
        ctx = op("Reshape", [op("Transpose", [op("MatMul", [prob, v])], perm=[0, 2, 1, 3]), merge_shape])
        x = ln(op("Add", [x, lin(ctx, p + "attention.output.dense")]), p + "attention.output.LayerNorm")
        hmid = lin(x, p + "intermediate.dense")
        erf = op("Erf", [op("Div", [hmid, const(np.array(np.sqrt(2.0), f32))])])
        gelu = op("Mul", [op("Mul", [hmid, const(np.array(0.5, f32))]), op("Add", [erf, const(np.array(1.0, f32))])])
        x = ln(op("Add", [x, lin(gelu, p + "output.dense")]), p + "output.LayerNorm")
        if every_layer:
            pool(x, f"embedding_l{i + 1}")
            outputs.append(f"embedding_l{i + 1}")
    if not every_layer:
        pool(x, "embedding")  # mean pooling over real tokens, then L2 normalisation
        outputs.append("embedding")

    graph = helper.make_graph(
        nodes,
        "minilm_l6_mean_norm",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["batch", _H]) for o in outputs],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)], producer_name="keymoments")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
