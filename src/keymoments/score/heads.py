"""Small sentiment heads on top of sentence embeddings: numpy at run time, weights in a ``.npz`` file.

:class:`OrdinalHead` is the general head shipped with the package. It is trained on binary review corpora
(SST-2, UCI sentences: positive or negative, no neutral class), so it learns one score ``s = (w·x + b) / T``,
the calibrated log-odds that a text is positive (``T`` is fitted on SST-2 dev by temperature scaling). Three
classes come from an ordinal-logit band of half-width ``theta`` around 0::

    P(negative) = σ(-theta - s)      P(positive) = σ(s - theta)      P(neutral) = 1 - P(negative) - P(positive)

With ``theta = 1`` a text is called positive or negative only when the model finds that polarity clearly (about
e ≈ 2.7 times) more likely than the other; the band is a stated decision rule, not learnt from neutral data,
because the training corpora have none. Valence is ``P(positive) - P(negative)`` in [-1, 1].

:class:`SoftmaxHead` is a three-class multinomial head (what a domain model fits, see ``domain.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keymoments.exceptions import ConfigError

__all__ = ["OrdinalHead", "SoftmaxHead", "load_heads", "save_heads"]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@dataclass
class OrdinalHead:
    """Binary logistic score + temperature + neutral band → (n, 3) probabilities (negative, neutral, positive)."""

    coef: np.ndarray  # (d,)
    intercept: float
    temperature: float = 1.0
    theta: float = 1.0
    meta: dict = field(default_factory=dict)

    def score(self, x: np.ndarray) -> np.ndarray:
        """Calibrated log-odds of positive, (n,)."""
        return (np.asarray(x, dtype=np.float32) @ self.coef.astype(np.float32) + self.intercept) / self.temperature

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        s = self.score(x).astype(np.float64)
        neg = _sigmoid(-self.theta - s)
        pos = _sigmoid(s - self.theta)
        return np.clip(np.stack([neg, 1.0 - neg - pos, pos], axis=1), 0.0, 1.0)

    @classmethod
    def fit(
        cls, x: np.ndarray, positive: np.ndarray, x_dev: np.ndarray, positive_dev: np.ndarray, *, c: float = 1.0, theta: float = 1.0, seed: int = 0
    ) -> OrdinalHead:
        """Fit the logistic score on (x, positive) and its temperature on the dev set."""
        from scipy.optimize import minimize_scalar  # noqa: PLC0415
        from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

        clf = LogisticRegression(C=c, max_iter=5000, random_state=seed).fit(x, np.asarray(positive, dtype=bool))
        z = x_dev @ clf.coef_[0] + clf.intercept_[0]
        y = np.asarray(positive_dev, dtype=float)

        def nll(log_t: float) -> float:
            s = z / np.exp(log_t)
            return float(np.mean(np.logaddexp(0.0, s) - y * s))

        temperature = float(np.exp(minimize_scalar(nll, bounds=(-3, 3), method="bounded").x))
        dev_acc = float(np.mean((z > 0) == (y > 0.5)))
        meta = {"c": c, "n_train": int(len(x)), "dev_accuracy": round(dev_acc, 4), "temperature": round(temperature, 4)}
        return cls(clf.coef_[0].astype(np.float32), float(clf.intercept_[0]), temperature, theta, meta)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {
            f"{prefix}.kind": np.array("ordinal"),
            f"{prefix}.coef": self.coef.astype(np.float32),
            f"{prefix}.params": np.array([self.intercept, self.temperature, self.theta], dtype=np.float64),
        }


@dataclass
class SoftmaxHead:
    """Multinomial logistic head: (n, d) → (n, 3) probabilities in (negative, neutral, positive) order."""

    coef: np.ndarray  # (3, d)
    intercept: np.ndarray  # (3,)
    meta: dict = field(default_factory=dict)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = np.asarray(x, dtype=np.float32) @ self.coef.T.astype(np.float32) + self.intercept.astype(np.float32)
        z = z.astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {
            f"{prefix}.kind": np.array("softmax"),
            f"{prefix}.coef": self.coef.astype(np.float32),
            f"{prefix}.intercept": self.intercept.astype(np.float64),
        }


def save_heads(path: str | Path, heads: dict[str, OrdinalHead | SoftmaxHead], meta: dict | None = None) -> None:
    """Write named heads (and JSON-able metadata) to one compressed ``.npz``."""
    import json  # noqa: PLC0415

    arrays: dict[str, np.ndarray] = {"__meta__": np.array(json.dumps({**(meta or {}), "heads": {k: h.meta for k, h in heads.items()}}))}
    for name, head in heads.items():
        arrays.update(head.arrays(name))
    np.savez_compressed(path, **arrays)


def load_heads(path: str | Path) -> tuple[dict[str, OrdinalHead | SoftmaxHead], dict]:
    """Read what :func:`save_heads` wrote: ({name: head}, metadata)."""
    import json  # noqa: PLC0415

    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Cannot read sentiment head weights {str(path)!r}: {exc}") from None
    meta = json.loads(str(data["__meta__"])) if "__meta__" in data else {}
    heads: dict[str, OrdinalHead | SoftmaxHead] = {}
    for key in data.files:
        if not key.endswith(".kind"):
            continue
        name = key[: -len(".kind")]
        hmeta = meta.get("heads", {}).get(name, {})
        if str(data[key]) == "ordinal":
            intercept, temperature, theta = data[f"{name}.params"].tolist()
            heads[name] = OrdinalHead(data[f"{name}.coef"], intercept, temperature, theta, hmeta)
        else:
            heads[name] = SoftmaxHead(data[f"{name}.coef"], data[f"{name}.intercept"], hmeta)
    return heads, meta
