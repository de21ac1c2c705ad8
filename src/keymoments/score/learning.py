"""A touchpoint tagger that learns from the analyst's corrections: the zero-shot tagger is the prior, every
corrected text a labelled example, and the refit is immediate.

Everything works on what tagging already computed, so a refit never runs the encoder:

- ``prior``: (n, k + 1) *prior logits* per text, the zero-shot tagger's scores over the k touchpoints and
  :data:`~keymoments.score.tagging.OTHER` (whose score is the threshold), divided by its temperature
  (:func:`prior_logits`); the softmax of a row is the zero-shot tagger's confidence;
- ``vectors``: (n, d) the texts' unit sentence vectors (the encoder's, as the tagger used them).

:class:`CorrectionLearner` (``method="offset"``, the default) fits a multinomial logistic regression on the
vectors *with the prior logits as an offset*: ``logits = a * prior + x @ W + b``, minimising the cross-entropy
of the corrected texts plus ``l2 * |W|^2 + l2 * |b|^2 + (a - 1)^2`` (L-BFGS). With no correction ``W = b = 0``
and ``a = 1``: exactly the zero-shot tagger. Each correction pulls the texts near it (in the encoder's space)
towards its touchpoint; many corrections let the head overrule a prior that is wrong for this business, and
``a`` shrink when the prior misleads. Other methods, kept for the benchmark (``bench/bench_text_learning.py``;
what each scored: ``docs/experiments.md``): ``"centroid"`` (the per-touchpoint example centroid blended in with
weight ``n / (n + 10)``, as ``journey.yaml`` examples are) and ``"logistic"`` (a logistic regression on the
vectors, with the descriptions' own vectors as labelled prior examples).

*Few corrections* (``bias_l2``, ``select``): the corrections an analyst makes first are the texts the tagger is
least sure of, so their labels are not a sample of the store, and a per-class bias fitted on them shifts every
text. ``bias_l2`` penalises the bias apart from the weights (the store uses 1, the weights 0.05), and
``select="mix"`` weighs the learnt logits against the prior, ``(1 - w) * prior + w * learnt``, with ``w`` from
(0, 0.25, 0.5, 0.75, 1) chosen by 5-fold cross-validation of the log-loss on the corrections themselves (the only
labels a store has; from 10 corrections on), so corrections that teach nothing leave the zero-shot tagger in
charge. ``select="l2"`` chooses the weights' penalty the same way instead (kept for the benchmark).

*Active learning*: :func:`margin` is the gap between the two most likely tags of each text; the texts offered
for correction first are those with the smallest gap (:func:`uncertain_first`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from keymoments.exceptions import ConfigError

__all__ = ["METHODS", "CorrectionLearner", "diverse_uncertain_first", "margin", "prior_logits", "softmax", "uncertain_first"]

METHODS = ("offset", "centroid", "logistic")
SELECTS = ("none", "l2", "mix")


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def prior_logits(scores: np.ndarray, forced_other: np.ndarray, *, threshold: float, temperature: float) -> np.ndarray:
    """(n, k + 1): the zero-shot tagger's scores and ``threshold`` (the score of "other"), over ``temperature``.

    ``forced_other``: texts the tagger calls other although a touchpoint reaches the threshold (vague or
    generic texts, see :mod:`keymoments.score.semantic_tagging`): their "other" logit is set one above the best
    touchpoint's, so the prior agrees with the tagger's answer."""
    n = len(scores)
    z = np.concatenate([scores, np.full((n, 1), threshold)], axis=1).astype(np.float64) / temperature
    if n:
        z[forced_other, -1] = z[forced_other, :-1].max(axis=1) + 1.0
    return z


def margin(probabilities: np.ndarray) -> np.ndarray:
    """(n,): the most likely tag's probability minus the second's: small is uncertain."""
    if probabilities.shape[1] < 2:
        return np.ones(len(probabilities))
    top = -np.sort(-probabilities, axis=1)
    return top[:, 0] - top[:, 1]


def uncertain_first(probabilities: np.ndarray) -> np.ndarray:
    """Row indices, the least certain text first (smallest :func:`margin`; ties in row order)."""
    return np.argsort(margin(probabilities), kind="stable")


def diverse_uncertain_first(probabilities: np.ndarray, vectors: np.ndarray, page: int = 10) -> np.ndarray:
    """Row indices: a first page of the least certain text of each of ``page`` k-means clusters of the vectors
    (least certain first), then the others least certain first: a page that does not spend its corrections on
    near-duplicates."""
    order = uncertain_first(probabilities)
    if len(vectors) <= page:
        return order
    from sklearn.cluster import KMeans  # noqa: PLC0415

    with _blas().limit(limits=1):
        cluster = KMeans(n_clusters=page, n_init=1, random_state=0).fit_predict(vectors.astype(np.float64))
    seen: set[int] = set()
    first = [i for i in order if not (cluster[i] in seen or seen.add(cluster[i]))]
    firsts = set(first)
    return np.array(first + [i for i in order if i not in firsts], dtype=int)


@dataclass(slots=True)
class _Fit:
    weights: np.ndarray  # (d, c)
    bias: np.ndarray  # (c,)
    prior_scale: float


class CorrectionLearner:
    """Refit a zero-shot prior on corrected texts (see the module).

    ``method``: ``"offset"`` (default), ``"centroid"`` or ``"logistic"``; ``l2``: the offset head's ridge
    penalty; ``bias_l2``: its bias's (default: ``l2``); ``select``: ``"none"``, ``"mix"`` (the learnt logits'
    weight against the prior by CV, in ``mix_``) or ``"l2"`` (the penalty by CV, in ``l2_``); ``folds``: the
    CV's folds (from ``2 * folds`` corrections on); ``examples_at_half``: the centroid method's weight;
    ``prototypes`` / ``prototype_owner``: the descriptions' vectors and their class, the logistic method's prior
    examples.

    >>> import numpy as np
    >>> prior = np.array([[2.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    >>> x = np.array([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0]])
    >>> learner = CorrectionLearner().fit(prior, x, np.array([1, -1, -1]))   # text 0 is class 1, not 0
    >>> learner.predict_proba(prior, x).argmax(axis=1).tolist()   # its near-duplicate follows it
    [1, 1, 2]
    """

    def __init__(
        self,
        method: str = "offset",
        *,
        l2: float = 0.05,
        examples_at_half: float = 10.0,
        prototypes: np.ndarray | None = None,
        prototype_owner: np.ndarray | None = None,
        logistic_c: float = 10.0,
        bias_l2: float | None = None,
        select: str = "none",
        folds: int = 5,
    ) -> None:
        self.method = method
        self.l2 = l2
        self.bias_l2 = bias_l2
        self.select = select
        self.folds = folds
        self.examples_at_half = examples_at_half
        self.prototypes = prototypes
        self.prototype_owner = prototype_owner
        self.logistic_c = logistic_c

    def __repr__(self) -> str:
        n = getattr(self, "n_corrections_", None)
        return f"CorrectionLearner({self.method!r}" + (f", {n} corrections)" if n is not None else ")")

    def fit(self, prior: np.ndarray, vectors: np.ndarray, labels: np.ndarray) -> CorrectionLearner:
        """Learn from the texts whose ``labels`` (class index, -1 for none) are given; returns self."""
        if self.method not in METHODS:
            from keymoments.events import did_you_mean  # noqa: PLC0415

            raise ConfigError(f"The 'method' parameter of CorrectionLearner must be one of {list(METHODS)}. "
                              f"Got {self.method!r} instead.{did_you_mean(self.method, METHODS)}")  # fmt: skip
        if self.l2 <= 0:
            raise ConfigError(f"The 'l2' parameter of CorrectionLearner must be > 0. Got {self.l2!r} instead.")
        if self.bias_l2 is not None and self.bias_l2 <= 0:
            raise ConfigError(f"The 'bias_l2' parameter of CorrectionLearner must be > 0. Got {self.bias_l2!r} instead.")
        if not (isinstance(self.folds, int) and self.folds >= 2):
            raise ConfigError(f"The 'folds' parameter of CorrectionLearner must be an integer >= 2. Got {self.folds!r} instead.")
        if self.select not in SELECTS:
            from keymoments.events import did_you_mean  # noqa: PLC0415

            raise ConfigError(f"The 'select' parameter of CorrectionLearner must be one of {list(SELECTS)}. "
                              f"Got {self.select!r} instead.{did_you_mean(self.select, SELECTS)}")  # fmt: skip
        labels = np.asarray(labels, dtype=int)
        if not (len(prior) == len(vectors) == len(labels)):
            raise ConfigError("CorrectionLearner.fit needs as many prior rows, vectors and labels.")
        mine = labels >= 0
        self.n_classes_ = prior.shape[1]
        self.n_corrections_ = int(mine.sum())
        p, x, y = prior[mine].astype(np.float64), vectors[mine].astype(np.float64), labels[mine]
        if self.method == "offset":
            self.fit_, self.mix_, self.l2_ = None, 1.0, self.l2
            if len(y):
                self._fit_offset_selected(p, x, y)
        elif self.method == "centroid":
            self._fit_centroids(x, y)
        else:
            self._fit_logistic(x, y)
        return self

    def predict_logits(self, prior: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """(n, k + 1) the refitted logits of these texts (prior logits and vectors as in :meth:`fit`)."""
        prior = prior.astype(np.float64)
        if self.method == "offset":
            if self.fit_ is None:
                return prior
            learnt = self.fit_.prior_scale * prior + vectors.astype(np.float64) @ self.fit_.weights + self.fit_.bias
            return learnt if self.mix_ == 1.0 else (1.0 - self.mix_) * prior + self.mix_ * learnt
        if self.method == "centroid":
            return self._centroid_logits(prior, vectors)
        return np.log(np.clip(self._logistic_proba(vectors), 1e-12, 1.0))

    def predict_proba(self, prior: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        return softmax(self.predict_logits(prior, vectors))

    # -- the offset head, its penalty or its weight against the prior chosen on the corrections ---------------
    def _fit_offset_selected(self, p: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        bias_l2 = self.bias_l2  # None: the bias takes the weights' penalty
        if self.select == "none" or len(y) < 2 * self.folds:
            self.fit_ = _fit_offset(p, x, y, self.l2, bias_l2)
            return
        folds = _folds(len(y), self.folds)
        if self.select == "l2":
            grid = [*L2_GRID, np.inf]
            losses = [_cv_loss(p, x, y, folds, l2, bias_l2) for l2 in grid]
            self.l2_ = float(grid[int(np.argmin(losses))])
            if np.isfinite(self.l2_):
                self.fit_ = _fit_offset(p, x, y, self.l2_, bias_l2)
            return
        # select == "mix": one fit per fold, the weight of the learnt logits against the prior's chosen by CV
        held = [_fold_logits(p, x, y, f, self.l2, bias_l2) for f in folds]
        losses = [sum(_logloss((1 - w) * p[f] + w * z, y[f]) for f, z in zip(folds, held, strict=True)) for w in MIX_GRID]
        self.mix_ = float(MIX_GRID[int(np.argmin(losses))])
        if self.mix_ > 0:
            self.fit_ = _fit_offset(p, x, y, self.l2, bias_l2)

    # -- the centroid blend (as journey.yaml examples) ------------------------------------------------------
    def _fit_centroids(self, x: np.ndarray, y: np.ndarray) -> None:
        k = self.n_classes_ - 1  # "other" examples teach no centroid
        self.counts_ = np.bincount(y[y < k], minlength=k).astype(float) if len(y) else np.zeros(k)
        self.centroids_ = np.zeros((k, x.shape[1] if len(x) else 1))
        for j in np.flatnonzero(self.counts_):
            c = x[y == j].mean(axis=0)
            self.centroids_[j] = c / max(float(np.linalg.norm(c)), 1e-9)

    def _centroid_logits(self, prior: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        if not self.counts_.any():
            return prior
        # prior logits are scores / temperature; the blend happens on the score scale, as SemanticTagger's
        temperature = 0.05
        scores = prior[:, :-1] * temperature
        w = self.counts_ / (self.counts_ + self.examples_at_half)
        blended = (1.0 - w) * scores + w * (vectors.astype(np.float64) @ self.centroids_.T)
        return np.concatenate([blended / temperature, prior[:, -1:]], axis=1)

    # -- a logistic regression with the descriptions as prior examples --------------------------------------
    def _fit_logistic(self, x: np.ndarray, y: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

        px = np.zeros((0, x.shape[1] if len(x) else 384)) if self.prototypes is None else self.prototypes
        py = np.zeros(0, dtype=int) if self.prototype_owner is None else self.prototype_owner
        xs, ys = np.concatenate([px, x]) if len(x) else px, np.concatenate([py, y]).astype(int)
        self.classes_ = np.unique(ys)
        self.model_ = LogisticRegression(C=self.logistic_c, max_iter=2000).fit(xs, ys) if len(self.classes_) > 1 else None

    def _logistic_proba(self, vectors: np.ndarray) -> np.ndarray:
        out = np.full((len(vectors), self.n_classes_), 1e-6)
        if self.model_ is None:
            out[:, self.classes_[0] if len(self.classes_) else -1] = 1.0
        else:
            out[:, self.classes_] = self.model_.predict_proba(vectors)
        return out / out.sum(axis=1, keepdims=True)


L2_GRID = (0.05, 0.5, 5.0)
MIX_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)


def _folds(m: int, k: int) -> list[np.ndarray]:
    """k folds of m corrections, a fixed shuffle (the same corrections give the same choice)."""
    order = np.random.default_rng(0).permutation(m)
    return [order[i::k] for i in range(k)]


def _logloss(z: np.ndarray, y: np.ndarray) -> float:
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -float(logp[np.arange(len(y)), y].sum())


def _fold_logits(p: np.ndarray, x: np.ndarray, y: np.ndarray, fold: np.ndarray, l2: float,
                 bias_l2: float | None) -> np.ndarray:  # fmt: skip
    train = np.setdiff1d(np.arange(len(y)), fold)
    f = _fit_offset(p[train], x[train], y[train], l2, bias_l2)
    return f.prior_scale * p[fold] + x[fold] @ f.weights + f.bias


def _cv_loss(p: np.ndarray, x: np.ndarray, y: np.ndarray, folds: list[np.ndarray], l2: float,
             bias_l2: float | None) -> float:  # fmt: skip
    if not np.isfinite(l2):
        return sum(_logloss(p[f], y[f]) for f in folds)
    return sum(_logloss(_fold_logits(p, x, y, f, l2, bias_l2), y[f]) for f in folds)


@functools.cache
def _blas() -> Any:
    """The BLAS libraries loaded, found once (threadpoolctl looks them up; every lookup costs milliseconds)."""
    from threadpoolctl import ThreadpoolController  # noqa: PLC0415

    return ThreadpoolController()


def _fit_offset(prior: np.ndarray, x: np.ndarray, y: np.ndarray, l2: float, bias_l2: float | None = None) -> _Fit:
    """Multinomial logistic regression with the prior logits as an offset (see the module), by L-BFGS.

    Solved in its dual form: with a ridge penalty the weights are a combination of the corrected texts' vectors,
    ``W = x.T @ A``, so the unknowns are (m, c) for m corrections rather than (d, c), and a refit on tens of
    corrections takes milliseconds."""
    from scipy.optimize import minimize  # noqa: PLC0415

    m = len(x)
    c = prior.shape[1]
    bl2 = l2 if bias_l2 is None else bias_l2
    gram = x @ x.T
    onehot = np.zeros((m, c))
    onehot[np.arange(m), y] = 1.0

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        a_ = theta[: m * c].reshape(m, c)
        b = theta[m * c : m * c + c]
        scale = theta[-1]
        ka = gram @ a_
        z = scale * prior + ka + b
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        g = np.exp(logp) - onehot
        value = -float((onehot * logp).sum()) + l2 * float((a_ * ka).sum()) + bl2 * float((b * b).sum()) + (scale - 1.0) ** 2
        grad = np.concatenate([(gram @ (g + 2 * l2 * a_)).ravel(), g.sum(axis=0) + 2 * bl2 * b,
                               [float((g * prior).sum()) + 2 * (scale - 1.0)]])  # fmt: skip
        return value, grad

    theta0 = np.zeros(m * c + c + 1)
    theta0[-1] = 1.0
    # one BLAS thread: the products are small, and L-BFGS-B's own BLAS calls took 10 ms each instead of
    # microseconds when the threads of a multi-threaded BLAS competed with other processes (measured: 1.7 s vs
    # 0.03 s for 100 corrections, load average 10 on 2 cores)
    with _blas().limit(limits=1):
        theta = minimize(loss, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 500}).x
    return _Fit(x.T @ theta[: m * c].reshape(m, c), theta[m * c : m * c + c], float(theta[-1]))
