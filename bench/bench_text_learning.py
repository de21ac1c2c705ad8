"""Tagging that learns from corrections: the zero-shot tagger, the plain cosine, the refitted tagger after 100 and
500 corrections drawn in the active-learning order, and a logistic regression on as many random labels.

Run ``.venv/bin/python bench/bench_text_learning.py`` with:

- ``--design`` (trying methods; design rows only): each set's design rows are cut in two halves (by the parity of
  their position), the corrections come from one half in each method's active-learning order and the other half
  is tagged, then the halves swap; mean accuracy per method and number of corrections. Writes
  ``bench/out/text_learning_design_round1.json`` (or ``--out``).
- ``--heldout`` (the report run; log it in ``bench/data/README.md``): the corrections come from the design rows
  only, accuracy is measured on the held-out rows. Writes ``bench/out/text_learning.json``.

The simulated analyst: the tagger offers the uncorrected texts of the correction pool least certain first
(smallest gap between the two most likely tags); the analyst gives each its true label (a confirmation counts as
a correction), ten texts a page; after each page the tagger refits and the order is recomputed. The zero-shot
tagger is calibrated, without labels, on all the texts of the set (design and held-out, as a store holds them).
"500" is capped at what a set's correction pool holds, and the results say so; only ``support_1117`` (1,117
inbound tweets of every kind) has more than 500 design rows. ``--sets KEYS`` runs some sets only (with ``--out``,
into a file of their own).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "training"))
os.environ.setdefault("KM_CACHE_DIR", str(ROOT / ".cache" / "models"))

import splits  # noqa: E402
from bench_text_eval import bootstrap_ci, provenance, tagging_sets, write_out  # noqa: E402

from keymoments.score.embed import _GRAPH_VERSION, MiniLMEncoder  # noqa: E402  (a new graph: new vectors)
from keymoments.score.learning import (  # noqa: E402
    CorrectionLearner,
    diverse_uncertain_first,
    prior_logits,
    uncertain_first,
)
from keymoments.score.semantic_tagging import SemanticTagger, prototypes  # noqa: E402
from keymoments.score.tagging import OTHER  # noqa: E402

CACHE = ROOT / ".cache" / "text_learning"
BUDGETS = (100, 500)
PAGE = 10
RANDOM_DRAWS = 5


def prepared_sets(layers: int = 6, only: list[str] | None = None) -> list[dict]:
    """Per labelled set: texts, labels (class index), split, prior logits, vectors, description vectors.

    ``layers``: the depth of the tagger's encoder (6, the default tagger's; fewer for trying faster taggers);
    ``only``: these sets' keys (default: every set)."""
    design = {k: (name, rows, journey) for k, name, rows, journey, _ in tagging_sets(splits.DESIGN)}
    held = {k: rows for k, _, rows, _, _ in tagging_sets(splits.HELDOUT)}
    out = []
    for key, (name, d_rows, journey) in design.items():
        if only is not None and key not in only:
            continue
        rows = pd.concat([d_rows.assign(split=splits.DESIGN), held[key].assign(split=splits.HELDOUT)], ignore_index=True)
        texts = rows["text"].astype(str).tolist()
        classes = [tp.name for tp in journey.touchpoints] + [OTHER]
        y = np.array([classes.index(t) for t in rows["topic"]])
        digest = hashlib.sha256(json.dumps([texts, journey.model_dump(mode="json"), layers, _GRAPH_VERSION]).encode()).hexdigest()[:16]
        path = CACHE / f"{key}-{digest}.npz"
        if path.is_file():
            z = np.load(path)
            prior, vectors, descriptions = z["prior"], z["vectors"], z["descriptions"]
        else:
            encoder = None if layers == 6 else MiniLMEncoder(n_layers=layers, quantize=True)
            tagger = SemanticTagger(journey, reference=texts, encoder=encoder)
            vectors = tagger.encode(texts)
            tags = tagger.tag_encoded(texts, vectors)
            forced = (tags.touchpoint == OTHER) & (tags.scores.max(axis=1) >= tagger.threshold)
            prior = prior_logits(tags.scores, forced, threshold=tagger.threshold, temperature=tagger.temperature)
            descriptions = tagger.encode([prototypes(tp.name, tp.description)[0] for tp in journey.touchpoints])
            CACHE.mkdir(parents=True, exist_ok=True)
            np.savez(path, prior=prior, vectors=vectors, descriptions=descriptions)
        out.append({"key": key, "name": name, "texts": texts, "y": y, "split": rows["split"].to_numpy(),
                    "prior": prior, "vectors": vectors, "descriptions": descriptions, "classes": classes})  # fmt: skip
    return out


def learner_for(method: str, s: dict, **kw) -> CorrectionLearner:
    if method == "logistic":
        k = len(s["classes"]) - 1
        return CorrectionLearner("logistic", prototypes=s["descriptions"], prototype_owner=np.arange(k), **kw)
    return CorrectionLearner(method, **kw)


def active_learning(s: dict, pool: np.ndarray, test: np.ndarray, budgets: list[int], method: str,
                    order: str = "uncertain", seed: int = 0, hits: dict | None = None, **kw) -> dict[int, float]:  # fmt: skip
    """Accuracy on ``test`` after each budget of corrections from ``pool`` (a page of 10 at a time); ``hits``, when
    given, receives each budget's per-row correctness on ``test``."""
    prior, x, y = s["prior"], s["vectors"], s["y"]
    labels = np.full(len(y), -1)
    rng = np.random.default_rng(seed)
    out: dict[int, float] = {}
    learner = learner_for(method, s, **kw).fit(prior, x, labels)
    done = 0
    for budget in sorted(budgets):
        while done < min(budget, len(pool)):
            left = pool[labels[pool] < 0]
            if order == "uncertain":
                pick = left[uncertain_first(learner.predict_proba(prior[left], x[left]))]
            elif order == "diverse":
                pick = left[diverse_uncertain_first(learner.predict_proba(prior[left], x[left]), x[left], PAGE)]
            else:
                pick = rng.permutation(left)
            take = pick[: min(PAGE, budget - done)]
            labels[take] = y[take]
            done += len(take)
            learner = learner_for(method, s, **kw).fit(prior, x, labels)
        right = learner.predict_proba(prior[test], x[test]).argmax(axis=1) == y[test]
        out[budget] = float(np.mean(right))
        if hits is not None:
            hits[budget] = right.astype(float)
    return out


def random_logistic(s: dict, pool: np.ndarray, test: np.ndarray, n: int, hits: list | None = None) -> float:
    """Mean accuracy over draws of a logistic regression (C=10, as the supervised ceiling) on ``n`` random labels;
    ``hits``, when given, receives each test row's share of draws that got it right."""
    from sklearn.linear_model import LogisticRegression

    x, y = s["vectors"], s["y"]
    accs = []
    for seed in range(RANDOM_DRAWS):
        pick = np.random.default_rng(seed).permutation(pool)[: min(n, len(pool))]
        if len(np.unique(y[pick])) < 2:
            pred = np.full(len(test), y[pick][0])
        else:
            pred = LogisticRegression(C=10.0, max_iter=2000).fit(x[pick], y[pick]).predict(x[test])
        accs.append(float(np.mean(pred == y[test])))
        if hits is not None:
            hits.append((pred == y[test]).astype(float))
    if hits is not None:
        hits[:] = [np.mean(hits, axis=0)]
    return float(np.mean(accs))


def zero_shot(s: dict, test: np.ndarray) -> tuple[float, float]:
    """(accuracy of the zero-shot tagger, of the plain cosine with the descriptions) on ``test``."""
    y = s["y"][test]
    tagger = float(np.mean(s["prior"][test].argmax(axis=1) == y))
    cosine = float(np.mean((s["vectors"][test] @ s["descriptions"].T).argmax(axis=1) == y))
    return tagger, cosine


#: The few-corrections study (docs/experiments.md): round 1 by default (→ text_learning_design_round1.json), round
#: 2 with KM_BENCH_VARIANTS="round 2". The first study's variants (centroid blend, logistic with the descriptions,
#: the l2 grid) and its results: commit ac50bb404ffe, bench/out/text_learning_design.json.
VARIANTS: dict[str, tuple[str, dict]] = {
    "offset, l2=0.05": ("offset", {"l2": 0.05}),
    "offset, l2=0.05, bias l2=1": ("offset", {"l2": 0.05, "bias_l2": 1.0}),
    "offset, l2 by CV, bias l2=1": ("offset", {"select": "l2", "bias_l2": 1.0}),
    "offset, l2=0.05, bias l2=1, prior mix by CV": ("offset", {"l2": 0.05, "bias_l2": 1.0, "select": "mix"}),
    "offset, l2=0.05, bias l2=1, diverse order": ("offset", {"l2": 0.05, "bias_l2": 1.0, "order": "diverse"}),
    "offset, l2=0.05, bias l2=1, mix by CV, diverse order": ("offset", {"l2": 0.05, "bias_l2": 1.0, "select": "mix",
                                                                       "order": "diverse"}),
    # round 2 (KM_BENCH_VARIANTS="round 2", --out text_learning_design_round2.json): the bias penalty's size
    "offset, l2=0.05, bias l2=0.3 (round 2)": ("offset", {"l2": 0.05, "bias_l2": 0.3}),
    "offset, l2=0.05, bias l2=3 (round 2)": ("offset", {"l2": 0.05, "bias_l2": 3.0}),
    "offset, l2=0.05, bias l2=20 (round 2)": ("offset", {"l2": 0.05, "bias_l2": 20.0}),
    "offset, l2=0.05, bias l2=3, prior mix by CV (round 2)": ("offset", {"l2": 0.05, "bias_l2": 3.0, "select": "mix"}),
    "offset, l2=0.1, bias l2=3, prior mix by CV (round 2)": ("offset", {"l2": 0.1, "bias_l2": 3.0, "select": "mix"}),
}
ONLY = os.environ.get("KM_BENCH_VARIANTS")  # a comma-separated subset of VARIANTS' labels (by substring)


def design_run(sets: list[dict]) -> list[dict]:
    rows = []
    for s in sets:
        d = np.flatnonzero(s["split"] == splits.DESIGN)
        halves = [(d[0::2], d[1::2]), (d[1::2], d[0::2])]
        budgets = [25, 50, 100, 500]
        zs = np.mean([zero_shot(s, b) for _, b in halves], axis=0)
        base = {"set": s["key"], "design_rows": len(d), "pool": len(halves[0][0])}
        rows.append({**base, "method": "zero-shot tagger", **{str(b): round(zs[0], 3) for b in budgets}})
        rows.append({**base, "method": "plain cosine", **{str(b): round(zs[1], 3) for b in budgets}})
        rows.append({**base, "method": "logistic, random labels",
                     **{str(b): round(np.mean([random_logistic(s, a, t, b) for a, t in halves]), 3) for b in budgets}})
        for label, (method, kw) in VARIANTS.items():
            if (ONLY and not any(o in label for o in ONLY.split(","))) or (not ONLY and "round 2" in label):
                continue
            kw = dict(kw)
            order = kw.pop("order", "uncertain")
            accs = [active_learning(s, a, t, budgets, method, order=order, **kw) for a, t in halves]
            rows.append({**base, "method": label, **{str(b): round(np.mean([a[b] for a in accs]), 3) for b in budgets}})
        print(pd.DataFrame([r for r in rows if r["set"] == s["key"]]).to_string(index=False), flush=True)
    return rows


CHOSEN = ("offset", {"l2": 0.05, "bias_l2": 1.0, "select": "mix"})  # design runs of 2026-12-06 23:3x (docs/experiments.md)


def heldout_run(sets: list[dict]) -> dict:
    method, kw = CHOSEN
    figures = {}
    for s in sets:
        pool = np.flatnonzero(s["split"] == splits.DESIGN)
        test = np.flatnonzero(s["split"] == splits.HELDOUT)
        y = s["y"][test]
        budgets = [min(b, len(pool)) for b in BUDGETS]
        al_hits: dict[int, np.ndarray] = {}
        al = active_learning(s, pool, test, budgets, method, hits=al_hits, **kw)
        rand_order = active_learning(s, pool, test, budgets, method, order="random", **kw)
        tagger, cosine = zero_shot(s, test)
        tag_pred = s["prior"][test].argmax(axis=1)
        cos_pred = (s["vectors"][test] @ s["descriptions"].T).argmax(axis=1)

        def acc(t, p):
            return float(np.mean(t == p))

        fig = {
            "set": f"{len(test)} held-out rows of {s['name']}; corrections from its {len(pool)} design rows",
            "design_rows": len(pool), "heldout_rows": len(test),
            "zero_shot": round(tagger, 3), "zero_shot_95ci": bootstrap_ci(y, tag_pred, acc),
            "plain_cosine": round(cosine, 3), "plain_cosine_95ci": bootstrap_ci(y, cos_pred, acc),
            "zero_shot_minus_cosine": round(tagger - cosine, 3),
        }  # fmt: skip
        for want, b in zip(BUDGETS, budgets, strict=True):
            rnd_hits: list = []
            rnd = random_logistic(s, pool, test, b, hits=rnd_hits)
            # flat copies with row-bootstrap intervals, for the README's table (mean correctness per row)
            for name, row_hits, value in ((f"refit_{want}", al_hits[b], al[b]), (f"logistic_random_{want}", rnd_hits[0], rnd)):
                fig[name] = round(value, 3)
                fig[f"{name}_95ci"] = bootstrap_ci(row_hits, np.zeros(len(row_hits)), lambda h, _: float(np.mean(h)))
            fig[f"corrections_{want}"] = {
                "corrections": b, "capped": b < want,
                "refit_active_learning": round(al[b], 3), "refit_random_order": round(rand_order[b], 3),
                "logistic_random_labels": round(rnd, 3), "gain_over_random_logistic": round(al[b] - rnd, 3),
                "goal_met": bool(al[b] - rnd >= 0.05),
            }  # fmt: skip
        figures[s["key"]] = fig
        print(s["key"], json.dumps(fig), flush=True)
    return figures


def refit_speed(n: int = 5000, corrections: int = 100) -> dict:
    """Seconds for one refit plus re-tag of ``n`` texts from cached vectors (synthetic vectors, 10 touchpoints)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 384)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    prior = rng.normal(size=(n, 11)) * 3
    labels = np.full(n, -1)
    labels[:corrections] = rng.integers(0, 11, corrections)
    best = 1e9
    for _ in range(3):
        t0 = time.perf_counter()
        learner = CorrectionLearner(CHOSEN[0], **CHOSEN[1]).fit(prior, x, labels)
        learner.predict_proba(prior, x)
        best = min(best, time.perf_counter() - t0)
    return {"texts": n, "corrections": corrections, "seconds": round(best, 3)}


def store_refit_speed(n: int = 5000, corrections: int = 100) -> dict:
    """Seconds of one correction through the store (stored, refitted, every text re-tagged, events moved, journeys
    re-derived), on ``n`` texts with synthetic cached vectors and priors (the encoder is not what is timed)."""
    from keymoments.score import corrections as fix
    from keymoments.store import texts as sql
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_events_frame

    rng = np.random.default_rng(0)
    classes = [f"tp{j}" for j in range(10)] + [OTHER]
    store = Store(":memory:")
    ingest_events_frame(store, pd.DataFrame({"customer_id": [f"c{i % 1000}" for i in range(n)],
                                             "ts": pd.date_range("2025-01-01", periods=n, freq="min", tz="UTC"),
                                             "text": [f"text number {i}" for i in range(n)]}))  # fmt: skip
    events = store.query("SELECT event_id, text FROM events ORDER BY seq")
    x = rng.normal(size=(n, 384)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    prior = (rng.normal(size=(n, len(classes))) * 3).astype(np.float32)
    hashes = [fix.text_hash(t) for t in events["text"]]
    best = prior.argmax(axis=1)
    frame = pd.DataFrame({"text_hash": hashes, "text": events["text"], "vector": [v.tobytes() for v in x],
                          "prior": [p.tobytes() for p in prior], "touchpoint": [classes[j] for j in best],
                          "confidence": 0.5, "margin": 0.1})  # fmt: skip
    with store.write() as con:
        sql.write_cache(con, classes, frame, pd.DataFrame({"event_id": events["event_id"], "text_hash": hashes}))
        con.execute("UPDATE events SET touchpoint = t.touchpoint FROM text_tag_events x JOIN text_tags t USING (text_hash) "
                    "WHERE events.event_id = x.event_id")  # fmt: skip
    with store.write() as con:  # scored text, as a store's texts are: their tags sit beside the emotions
        con.execute("INSERT INTO text_scores SELECT event_id, 'bench', 0.0, 0.5, 'neutral', "
                    "json_object('emotion', 'none', 'touchpoint', 'x', 'touchpoint_inferred', true), now() FROM events")  # fmt: skip
    ids = events["event_id"].tolist()
    times = []
    for i in range(corrections):
        t0 = time.perf_counter()
        fix.correct(store, ids[i], classes[int(rng.integers(0, len(classes)))], actor="bench")
        times.append(time.perf_counter() - t0)
    store.close()
    return {"texts": n, "corrections": corrections, "median_seconds_per_correction": round(float(np.median(times)), 3),
            "last_seconds": round(times[-1], 3), "max_seconds": round(max(times), 3)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--design", action="store_true", help="compare methods on design rows only")
    group.add_argument("--heldout", action="store_true", help="the report run (log it in bench/data/README.md)")
    group.add_argument("--speed", action="store_true", help="seconds per correction through a store of 5,000 texts")
    ap.add_argument("--out", default=None, help="the results file's name under bench/out (default per mode)")
    ap.add_argument("--layers", type=int, default=6, help="the tagger encoder's depth (design runs; default 6)")
    ap.add_argument("--sets", default=None, help="only these sets (comma-separated keys, e.g. support_1117)")
    args = ap.parse_args(argv)
    if args.speed:
        speed = store_refit_speed()
        path = write_out("text_learning_speed.json", {**provenance("bench/bench_text_learning.py --speed"),
                                                       "load_average": round(os.getloadavg()[0], 1), **speed})  # fmt: skip
        print(json.dumps(speed), f"\nwrote {path.relative_to(ROOT)}")
        return 0
    pd.set_option("display.width", 200)
    t0 = time.perf_counter()
    if args.heldout and args.layers != 6:
        ap.error("--heldout reports the shipped tagger: leave --layers at 6")
    sets = prepared_sets(args.layers, only=args.sets.split(",") if args.sets else None)
    load = os.getloadavg()[0]
    if args.design:
        rows = design_run(sets)
        path = write_out(args.out or "text_learning_design_round1.json", {"split": splits.DESIGN, **provenance("bench/bench_text_learning.py --design"),
                                                        "load_average": round(load, 1), "rows": rows})  # fmt: skip
    else:
        figures = heldout_run(sets)
        method, kw = CHOSEN
        command = "bench/bench_text_learning.py --heldout" + (f" --sets {args.sets}" if args.sets else "") + (f" --out {args.out}" if args.out else "")
        path = write_out(args.out or "text_learning.json", {
            "split": splits.HELDOUT, **provenance(command),
            "load_average": round(load, 1), "method": f"CorrectionLearner({method!r}, {kw})",
            "simulation": f"active-learning order, pages of {PAGE}, refit after each page; random labels: mean of "
                          f"{RANDOM_DRAWS} draws, LogisticRegression(C=10)",
            "figures": figures, "refit_speed": refit_speed(),
        })  # fmt: skip
    print(f"wrote {path.relative_to(ROOT)} in {time.perf_counter() - t0:.0f} s (load average {load:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
