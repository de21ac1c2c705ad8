"""Long reviews with a rating: does the text's valence rank reviews as their stars do, at every length?

Spearman's rho between the valence and the 1-5 rating, overall and per word-count quartile, with a bootstrap
95% CI, for the ``auto`` scorer (long texts scored as segments), the same scorer reading only the first 128
word pieces (``long_text=False``), and the VADER lexicon. Two rated review sets from ``../shared/data/reviews_rated``
(500 hotel reviews, 1,000 clothing reviews), each split in halves by a hash of the text: every choice of the
long-text path was made on the ``design`` half; the ``heldout`` half is read only for the figures we report
(``--split heldout``, recorded in docs/experiments.md when it was read). Writes ``bench/out/long_text_<split>.json``.

    .venv/bin/python bench/bench_long_text.py --split design
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "reviews_rated"
OUT = ROOT / "bench" / "out"


def half(text: str) -> str:
    """``design`` or ``heldout``: a fixed split by the MD5 of the text."""
    return "design" if int(hashlib.md5(text.encode("utf-8")).hexdigest(), 16) % 2 == 0 else "heldout"


def load_sets(data: Path = DATA) -> dict[str, pd.DataFrame]:
    hotel = pd.read_csv(data / "tripadvisor_hotel_reviews_500.csv").rename(columns={"Review": "text", "Rating": "rating"})
    cloth = pd.read_csv(data / "womens_clothing_reviews_1000.csv")
    cloth = cloth[cloth["Review Text"].notna()]
    title = cloth["Title"].fillna("")
    cloth = pd.DataFrame({"text": (title + ". " + cloth["Review Text"]).str.strip(". "), "rating": cloth["Rating"]})
    return {"hotel": hotel[["text", "rating"]], "clothing": cloth}


def rho_ci(v: np.ndarray, r: np.ndarray, reps: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    point = float(spearmanr(v, r).statistic)
    boots = []
    for _ in range(reps):
        idx = rng.integers(0, len(v), len(v))
        boots.append(spearmanr(v[idx], r[idx]).statistic)
    lo, hi = np.nanpercentile(boots, [2.5, 97.5])
    return point, float(lo), float(hi)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=["design", "heldout"], default="design")
    ap.add_argument("--reps", type=int, default=1000, help="bootstrap resamples per CI")
    args = ap.parse_args()
    from keymoments.score.lexicon import LexiconScorer
    from keymoments.score.registry import get_scorer
    from keymoments.score.semantic import SemanticScorer

    auto = get_scorer("auto")
    truncated = SemanticScorer("fast", head="blend", emotions=False, long_text=False)
    models = {f"{auto.name} (auto)": auto, "first 128 word pieces only": truncated, "lexicon-vader": LexiconScorer()}
    import subprocess
    from datetime import UTC, datetime

    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    result: dict = {
        "split": args.split,
        "command": f"bench/bench_long_text.py --split {args.split}",
        "commit": commit,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "figures": {},
        "sets": {},
    }
    for name, df in load_sets().items():
        df = df[df["text"].map(half) == args.split].reset_index(drop=True)
        words = df["text"].str.split().str.len()
        quart = pd.qcut(words, 4, labels=False).to_numpy()
        r = df["rating"].to_numpy(float)
        rows = {}
        for label, model in models.items():
            t0 = time.perf_counter()
            v = np.asarray(model.score(df["text"].tolist()).valence, dtype=float)
            secs = time.perf_counter() - t0
            overall = rho_ci(v, r, args.reps)
            by_q = [rho_ci(v[quart == q], r[quart == q], args.reps) for q in range(4)]
            rows[label] = {"rho": overall, "quartiles": by_q, "seconds": round(secs, 2)}
            print(f"{name:9s} {label:34s} rho {overall[0]:.3f} [{overall[1]:.3f}, {overall[2]:.3f}]  by length "
                  + " ".join(f"{q[0]:.3f}" for q in by_q) + f"  ({secs:.1f} s)")
        edges = [int(words[quart == q].max()) for q in range(4)]
        result["sets"][name] = {"n": len(df), "quartile_max_words": edges, "models": rows}
        for key, label in ((f"long_text_{name}", f"{auto.name} (auto)"), (f"long_text_{name}_lexicon", "lexicon-vader")):
            rho, lo, hi = rows[label]["rho"]
            result["figures"][key] = {
                "what": f"Spearman's rho of valence with the 1-5 rating, {label}",
                "set": f"{len(df)} {args.split} rows of the {name} reviews (../shared/data/reviews_rated)",
                "n": len(df),
                "rho": round(rho, 3),
                "rho_95ci": [round(lo, 3), round(hi, 3)],
                "rho_by_length_quartile": [round(q[0], 3) for q in rows[label]["quartiles"]],
            }
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"long_text_{args.split}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
