"""``lasso_huber``: the Lasso, with its L1 penalty relaxed by a Huber function and/or Gaussian
smoothing, against scikit-learn's exact solution.

The objective is scikit-learn's ``Lasso(alpha, fit_intercept=False)`` [1]:

    F(w) = (1/2n) ‖y − Xw‖² + alpha ‖w‖₁,        θ = w [d]

|·| is not differentiable at 0, so the task minimizes the relaxed loss

    L(w) = E_{z ~ N(w, σ² I)} [ alpha Σ_i h(z_i) ] + (1/2n) ‖y − Xw‖²

with h = huber_δ (`gradest.relaxations.huber`: z²/2δ inside |z| <= δ, |z| − δ/2
outside) when δ > 0 and h = |·| when δ = 0 (allowed only with σ > 0: then the Gaussian
smoothing [2] makes L differentiable). Since |z| − δ/2 <= huber_δ(z) <= |z|, the minimizer of
the δ-relaxed loss (σ = 0) is within alpha·d·δ/2 of F's optimum in objective value, so the gap
to scikit-learn's solution shrinks as δ -> 0 (the δ sweep).

The distribution is ``Normal(mean=w, log_std=log σ)`` with event axis d; log σ is a constant
built with the backend (no gradient flows to it). σ = 0 is represented by σ = 1e-30
(`SIGMA_ZERO`): z equals w to floating precision and every quantity (samples, log densities,
gradients) stays finite. The data-fit term is deterministic (``Problem.extra``).

Closed form of E[h(X)], X ~ N(m, s²) per coordinate (``Objective.expectation``; so
``exact`` and `gradest.exact_gradient` are true ground truth), with φ, Φ the standard normal
pdf and cdf, a = (−δ − m)/s, b = (δ − m)/s, P = Φ(b) − Φ(a):

* s = 0:         h(m);
* δ = 0:         E|X| = s √(2/π) exp(−m²/2s²) + m erf(m / (s√2));
* s > 0, δ > 0:  E[X²; |X| <= δ] / 2δ + E[X; X > δ] − E[X; X < −δ] − (δ/2)(1 − P) with
  E[X²; |X| <= δ] = (m² + s²) P + s ((m − δ) φ(a) − (m + δ) φ(b)),
  E[X; X > δ] = m (1 − Φ(b)) + s φ(b),  E[X; X < −δ] = m Φ(a) − s φ(a)
  (truncated normal moments [3]).

With σ = 0 the loss is deterministic: only estimators that declare they handle a point mass
(``GradientEstimator.handles_point_mass``: they differentiate through the sample, as
`pathwise`, or use the closed form, as `exact`) apply. Score-function and other sampling
estimators are refused by `Task.incompatibility` (checked by
`gradest.measure.check_compatible`) with a message to set sigma > 0.

Data (options): ``X`` [n, d] and ``y`` [n] arrays, or ``dataset``: ``"synthetic"`` (default;
seeded sparse regression: standardized Gaussian design, ``n_informative`` nonzero true
coefficients of magnitude 1..3 with random signs, Gaussian noise ``noise``; the true support
is known) or ``"diabetes"`` (scikit-learn's ``load_diabetes``, columns standardized). y is
centred (the model has no intercept). Reference: ``Lasso(alpha, fit_intercept=False)`` with a
tight tolerance, cached per data and alpha. Metrics: ``objective`` F(w), ``objective_gap``
(F(w) − F(w*)) / F(w*), ``distance_to_reference`` ‖w − w*‖, ``support_precision`` /
``support_recall`` of {i : |w_i| > support_threshold} against the reference's support, and for
synthetic data also against the true support (``true_support_precision`` / ``_recall``).

[1] Tibshirani, Regression Shrinkage and Selection via the Lasso, JRSS B 1996; Friedman,
    Hastie & Tibshirani, Regularization Paths for Generalized Linear Models via Coordinate
    Descent, J. Stat. Softw. 2010 (scikit-learn's solver).
[2] Nesterov & Spokoiny, Random Gradient-Free Minimization of Convex Functions, Found.
    Comput. Math. 2017 (Gaussian smoothing).
[3] Johnson, Kotz & Balakrishnan, Continuous Univariate Distributions, vol. 1, 1994
    (moments of the truncated normal).
"""
from __future__ import annotations

import hashlib
import math

import numpy as np

from gradest.distributions import Normal
from gradest import relaxations as R
from gradest.registry import register_task
from gradest.task import FULL_SIZES, QUICK_SIZES, BenchmarkSizes, Objective, Problem, Task
from gradest.validation import choice, finite

DATASETS = ("synthetic", "diabetes")
#: the σ used for σ = 0: z = w + 1e-30 ε equals w to floating precision, and 1/σ is finite in float32
SIGMA_ZERO = 1e-30

_REFERENCE_CACHE: dict = {}
_SQRT2 = math.sqrt(2.0)
_SQRT2PI = math.sqrt(2.0 * math.pi)


def _nonnegative(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"option {name!r} of lasso_huber must be a non-negative number, got {value!r}") from err
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"option {name!r} of lasso_huber must be a non-negative number, got {value!r}")
    return v


def _count(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"option {name!r} of lasso_huber must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _standardize(X: np.ndarray) -> np.ndarray:
    std = X.std(axis=0)
    std[std == 0] = 1.0
    return (X - X.mean(axis=0)) / std


def synthetic_data(n_samples: int = 200, n_features: int = 20, n_informative: int = 5,
                   noise: float = 1.0, seed: int = 0):
    """(X [n, d] standardized, y [n] centred, w_true [d]): a seeded sparse linear regression."""
    rng = np.random.default_rng(seed)
    X = _standardize(rng.standard_normal((n_samples, n_features)))
    w_true = np.zeros(n_features)
    support = rng.choice(n_features, size=n_informative, replace=False)
    w_true[support] = rng.choice([-1.0, 1.0], size=n_informative) * rng.uniform(1.0, 3.0, size=n_informative)
    y = X @ w_true + noise * rng.standard_normal(n_samples)
    return X, y - y.mean(), w_true


def diabetes_data():
    """(X [442, 10] standardized, y [442] centred and scaled to unit variance)."""
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    y = y - y.mean()
    return _standardize(X), y / y.std()


def lasso_objective(X: np.ndarray, y: np.ndarray, alpha: float, w: np.ndarray) -> float:
    """scikit-learn's Lasso objective (1/2n)‖y − Xw‖² + alpha‖w‖₁ (NumPy, float64)."""
    r = y - X @ w
    return float(r @ r / (2 * X.shape[0]) + alpha * np.abs(w).sum())


def reference_solution(X: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """w* = scikit-learn's ``Lasso(alpha, fit_intercept=False)`` solution (cached)."""
    key = (hashlib.sha1(np.ascontiguousarray(X).tobytes()).hexdigest(),
           hashlib.sha1(np.ascontiguousarray(y).tobytes()).hexdigest(), X.shape, float(alpha))
    if key not in _REFERENCE_CACHE:
        if alpha == 0:
            w = np.linalg.lstsq(X, y, rcond=None)[0]
        else:
            from sklearn.linear_model import Lasso

            model = Lasso(alpha=alpha, fit_intercept=False, tol=1e-12, max_iter=1_000_000)
            w = model.fit(X, y).coef_.astype(np.float64)
        _REFERENCE_CACHE[key] = w
    return _REFERENCE_CACHE[key].copy()


def expected_penalty(B, m, sigma: float, delta: float):
    """E[h(X)] elementwise for X ~ N(m, σ²), h = huber_δ (δ > 0) or |·| (δ = 0); closed form."""
    if sigma == 0:
        return R.huber(B, m, delta) if delta > 0 else B.abs(m)
    s = float(sigma)

    def pdf(x):
        return B.exp(-0.5 * x * x) / _SQRT2PI

    def cdf(x):
        return 0.5 * (1.0 + B.erf(x / _SQRT2))

    if delta == 0:
        return s * math.sqrt(2.0 / math.pi) * B.exp(-m * m / (2.0 * s * s)) + m * B.erf(m / (s * _SQRT2))
    d = float(delta)
    a = (-d - m) / s
    b = (d - m) / s
    pa, pb = pdf(a), pdf(b)
    ca, cb = cdf(a), cdf(b)
    inside = cb - ca  # P(|X| <= δ)
    second_inside = (m * m + s * s) * inside + s * ((m - d) * pa - (m + d) * pb)  # E[X²; |X| <= δ]
    upper = m * cdf(-b) + s * pb  # E[X; X > δ]
    lower = m * ca - s * pa  # E[X; X < -δ]
    return second_inside / (2.0 * d) + upper - lower - 0.5 * d * (1.0 - inside)


@register_task("lasso_huber")
class LassoHuber(Task):
    """The Lasso with a Huber (width delta) and/or Gaussian (sigma) relaxation of the L1 penalty."""

    distribution_kind = "normal"
    benchmark_sizes = BenchmarkSizes(num_replicates=10_000, train_steps=200)
    sweep_sizes = {"quick": QUICK_SIZES._replace(learning_rate=0.05), "full": FULL_SIZES._replace(learning_rate=0.05)}
    default_learning_rate = 1e-2

    def __init__(self, X=None, y=None, dataset: str = "synthetic", alpha: float = 0.1, delta: float = 0.01,
                 sigma: float = 0.0, n_samples: int = 200, n_features: int = 20, n_informative: int = 5,
                 noise: float = 1.0, seed: int = 0, support_threshold: float = 1e-2):
        self.alpha = _nonnegative("alpha", alpha)
        self.delta = _nonnegative("delta", delta)
        self.sigma = _nonnegative("sigma", sigma)
        if self.delta == 0 and self.sigma == 0:
            raise ValueError("lasso_huber needs delta > 0 (a Huber relaxation) or sigma > 0 (Gaussian smoothing): "
                             "with delta=0 and sigma=0 the L1 penalty is not differentiable; e.g. delta=0.01")
        self.support_threshold = _nonnegative("support_threshold", support_threshold)
        self.w_true = None
        self._reference = None
        if X is None and y is None:
            choice("dataset", dataset, DATASETS, owner="lasso_huber")
            if dataset == "synthetic":
                n_features = _count("n_features", n_features)
                n_informative = _count("n_informative", n_informative, minimum=0)
                if n_informative > n_features:
                    raise ValueError(f"option 'n_informative' of lasso_huber ({n_informative}) must not exceed "
                                     f"'n_features' ({n_features})")
                X, y, self.w_true = synthetic_data(_count("n_samples", n_samples, minimum=2), n_features,
                                                   n_informative, _nonnegative("noise", noise),
                                                   _count("seed", seed, minimum=0))
            else:
                X, y = diabetes_data()
            options = {"dataset": dataset}
            if dataset == "synthetic":
                options.update(n_samples=int(n_samples), n_features=int(n_features),
                               n_informative=int(n_informative), noise=float(noise), seed=int(seed))
        elif X is None or y is None:
            raise ValueError("lasso_huber needs both X and y (or neither, to use 'dataset'); got only "
                             f"{'X' if y is None else 'y'}")
        else:
            X = finite("X", np.asarray(X, dtype=np.float64), owner="lasso_huber")
            y = finite("y", np.asarray(y, dtype=np.float64), owner="lasso_huber")
            if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
                raise ValueError(f"option 'X' of lasso_huber must be a 2-D array [n, d], got shape {X.shape}")
            if y.ndim != 1 or y.shape[0] != X.shape[0]:
                raise ValueError(f"options 'X' {X.shape} and 'y' {y.shape} of lasso_huber disagree: y must be a "
                                 f"1-D array with one entry per row of X ({X.shape[0]})")
            options = {"dataset": "custom"}
        self.X, self.y = X, y
        self.name = "lasso_huber"
        self.param_layout = [("w", (X.shape[1],))]
        self.options = {**options, "alpha": self.alpha, "delta": self.delta, "sigma": self.sigma}

    # ---- data and reference ----------------------------------------------------------
    @property
    def num_samples_data(self) -> int:
        return self.X.shape[0]

    @property
    def num_features(self) -> int:
        return self.X.shape[1]

    def reference(self) -> np.ndarray:
        """scikit-learn's solution w* of the unrelaxed Lasso (cached)."""
        if getattr(self, "_reference", None) is None:
            self._reference = reference_solution(self.X, self.y, self.alpha)
            self._reference_objective = self.objective(self._reference)
        return self._reference.copy()

    def objective(self, w) -> float:
        """The unrelaxed Lasso objective F(w) (NumPy)."""
        return lasso_objective(self.X, self.y, self.alpha, np.asarray(w, dtype=np.float64))

    def reference_objective(self) -> float:
        """F(w*)."""
        self.reference()
        return self._reference_objective

    # ---- the task contract -------------------------------------------------------------
    def init_params(self):
        return np.zeros(self.num_features)

    def incompatibility(self, estimator):
        if self.sigma > 0 or estimator.requires_exact or estimator.handles_point_mass:
            return None
        return (f"task 'lasso_huber' with sigma=0 is deterministic (z = w exactly), so estimator "
                f"{estimator.label!r}, which needs a random sample, does not apply; set sigma > 0 "
                f"(e.g. get_task('lasso_huber', sigma=0.1)) to smooth the penalty with Gaussian noise, "
                f"or use an estimator that differentiates through the sample or uses the closed form "
                f"(one that declares handles_point_mass, e.g. pathwise or exact)")

    def zero_variance_note(self, estimator_name, options):
        if self.sigma > 0:
            return None
        return ("at sigma = 0 nothing is random (z = w exactly): every estimate is the same number, the "
                "gradient of the Huber-relaxed Lasso loss, so its variance is zero by construction and says "
                "nothing about how the estimator handles noise; set sigma > 0 to compare estimators here.")

    def problem(self, backend, params, noise=None, batch=None):
        B = backend
        d = self.num_features
        alpha, delta, sigma = self.alpha, self.delta, self.sigma
        log_std = B.asarray(np.full(d, math.log(sigma if sigma > 0 else SIGMA_ZERO)))  # [d], constant
        dist = Normal(B, params, log_std, event_ndims=1)

        def f(z):  # [S, d] -> [S]
            h = R.huber(B, z, delta) if delta > 0 else B.abs(z)
            return alpha * B.sum(h, axis=-1)

        def expectation(q):  # [] : alpha Σ_i E[h(z_i)]
            return alpha * B.sum(expected_penalty(B, q.mean, sigma, delta), axis=-1)

        X, y = B.asarray(self.X), B.asarray(self.y)  # [n, d], [n]
        residual = y - B.matmul(X, params)  # [n]
        extra = B.sum(residual * residual) / (2.0 * self.num_samples_data)
        return Problem(dist, Objective(f, expectation), extra)

    def metrics(self, backend, params):
        w = np.asarray(backend.to_numpy(params), dtype=np.float64)
        ref = self.reference()
        obj, obj_ref = self.objective(w), self.reference_objective()
        selected = np.abs(w) > self.support_threshold
        out = {
            "objective": obj,
            "objective_gap": (obj - obj_ref) / obj_ref if obj_ref > 0 else obj - obj_ref,
            "distance_to_reference": float(np.linalg.norm(w - ref)),
        }
        out.update(_support_scores(selected, np.abs(ref) > self.support_threshold, "support"))
        if self.w_true is not None:
            out.update(_support_scores(selected, self.w_true != 0, "true_support"))
        return out


def _support_scores(selected: np.ndarray, target: np.ndarray, prefix: str) -> dict:
    hits = float(np.sum(selected & target))
    precision = hits / selected.sum() if selected.any() else 1.0  # nothing selected: no false positive
    recall = hits / target.sum() if target.any() else 1.0
    return {f"{prefix}_precision": float(precision), f"{prefix}_recall": float(recall)}
