"""Candidate regressors of the cross-validated predictor, each a *family* with a small grid of settings.

A family fits once for every task and every setting of its grid: ridge and kernel ridge are linear smoothers, so
one SVD or eigendecomposition of the fitting rows serves all regularisation strengths and all target columns;
the PaddleSlim GP-NAS maths is solved for all columns at once. `fit(X, Y)` takes features [n, D] and targets
[n, T] and returns a fitted object whose `predict(X, settings)` gives [len(settings), m, T].

Targets: 'gaussian' families learn normal scores of the ranks (the erfinv transform that helped the 2022
competition's 3rd place), 'rank' families the raw ranks, as the baseline does. Every prediction is returned on
the normal-score scale so that predictions of different families can be averaged.
"""
from dataclasses import dataclass
from typing import Tuple

import numpy as np
from scipy.optimize import minimize
from scipy.spatial.distance import cdist
from scipy.special import expit
from scipy.stats import norm

from .baseline import laplacian_gp_kernel

PREDICT_CHUNK_ROWS = 8192
GPNAS_JITTER, GPNAS_PRIOR_VARIANCE = 1e-7, 0.01


def normal_scores(ranks):
    """Ranks [n, T] (any order-preserving values) -> normal quantiles of (rank + 0.5) / n per column."""
    ranks = np.asarray(ranks, dtype=np.float64)
    order = np.argsort(np.argsort(ranks, axis=0, kind="stable"), axis=0)
    return norm.ppf((order + 0.5) / len(ranks))


def chunked(predict_rows, X):
    """Apply `predict_rows` (rows -> [S, rows, T]) to X in chunks of rows, so that kernels stay small."""
    return np.concatenate([predict_rows(X[start:start + PREDICT_CHUNK_ROWS])
                           for start in range(0, max(len(X), 1), PREDICT_CHUNK_ROWS)], axis=1)


@dataclass(frozen=True)
class Family:
    """A model family: `name` for the report, the `encoding` of its features, the `target` it learns and the
    grid of `settings` (tuples of hyper-parameters) that one fit covers."""

    name: str
    encoding: str
    target: str = "gaussian"
    settings: Tuple = ((),)

    def setting_names(self):
        return [self.name + "".join(f" {key}={value:g}" for key, value in setting) for setting in self.settings]

    def fit(self, X, Y):
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ridge(Family):
    """Ridge regression with an intercept, one SVD for all strengths `alpha`."""

    settings: Tuple = tuple((("alpha", a),) for a in (1.0, 3.0, 10.0, 30.0))

    def fit(self, X, Y):
        x_mean, y_mean = X.mean(0), Y.mean(0)
        u, s, vt = np.linalg.svd(X - x_mean, full_matrices=False)
        projected = u.T @ (Y - y_mean)  # [r, T]
        coefficients = np.stack([vt.T @ ((s / (s * s + dict(setting)["alpha"]))[:, None] * projected)
                                 for setting in self.settings])  # [S, D, T]
        return _LinearFit(x_mean, y_mean, coefficients)


@dataclass
class _LinearFit:
    x_mean: np.ndarray
    y_mean: np.ndarray
    coefficients: np.ndarray  # [S, D, T]

    def predict(self, X, settings=None):
        chosen = self.coefficients if settings is None else self.coefficients[list(settings)]
        return np.einsum("md,sdt->smt", X - self.x_mean, chosen) + self.y_mean


# ---------------------------------------------------------------------------------------------------------------
def _median_squared_distance(X):
    d2 = cdist(X, X, "sqeuclidean")
    return float(np.median(d2[np.triu_indices(len(X), 1)])) or 1.0


@dataclass(frozen=True)
class KernelRidge(Family):
    """The posterior mean of a Gaussian process (kernel ridge) whose kernel and noise are picked from a grid by
    cross-validation instead of a fixed `exp(-d/12)`. `kernel`: 'rbf' exp(-d^2 / (2 l^2)), 'laplacian'
    exp(-d / l), 'linear+rbf' (a linear trend plus local RBF corrections) or 'poly2' (1 + x.y / (l^2 c))^2,
    all main effects and pairwise interactions). The length scale l is `scale` times the median distance between
    fitting rows (c: the mean squared norm, for 'poly2'); `noise` is the noise variance relative to the kernel's
    mean diagonal."""

    kernel: str = "rbf"
    settings: Tuple = tuple((("scale", s), ("noise", a)) for s in (0.5, 0.7, 1.0, 1.4, 2.0)
                            for a in (0.01, 0.03, 0.1, 0.3, 1.0))

    def _gram(self, A, B, scale, median_d2, linear_norm):
        if self.kernel == "poly2":
            return (1.0 + (A @ B.T) / (scale * scale * linear_norm)) ** 2
        if self.kernel == "laplacian":
            return np.exp(-np.sqrt(cdist(A, B, "sqeuclidean")) / (scale * np.sqrt(median_d2)))
        rbf = np.exp(-cdist(A, B, "sqeuclidean") / (2 * scale * scale * median_d2))
        if self.kernel == "rbf":
            return rbf
        return (A @ B.T) / linear_norm + rbf

    def fit(self, X, Y):
        median_d2 = _median_squared_distance(X)
        x_mean, y_mean = X.mean(0), Y.mean(0)
        Xc = X - x_mean
        linear_norm = float(np.mean(np.sum(Xc * Xc, axis=1))) or 1.0
        duals = {}
        for scale in sorted({dict(setting)["scale"] for setting in self.settings}):
            gram = self._gram(Xc, Xc, scale, median_d2, linear_norm)
            eigenvalues, eigenvectors = np.linalg.eigh(gram)
            projected = eigenvectors.T @ (Y - y_mean)
            for index, setting in enumerate(self.settings):
                values = dict(setting)
                if values["scale"] == scale:
                    level = values["noise"] * float(np.mean(np.diag(gram)))
                    duals[index] = eigenvectors @ (projected / (np.maximum(eigenvalues, 0) + level)[:, None])
        return _KernelFit(self, Xc, x_mean, y_mean, median_d2, linear_norm, duals)


@dataclass
class _KernelFit:
    family: KernelRidge
    X_train: np.ndarray
    x_mean: np.ndarray
    y_mean: np.ndarray
    median_d2: float
    linear_norm: float
    duals: dict  # setting index -> [n, T]

    def predict(self, X, settings=None):
        settings = range(len(self.family.settings)) if settings is None else settings

        def rows(block):
            block, out, grams = block - self.x_mean, [], {}
            for index in settings:
                scale = dict(self.family.settings[index])["scale"]
                if scale not in grams:
                    grams[scale] = self.family._gram(block, self.X_train, scale, self.median_d2, self.linear_norm)
                out.append(grams[scale] @ self.duals[index] + self.y_mean)
            return np.stack(out)
        return chunked(rows, X)


# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ARDKernelRidge(Family):
    """A Gaussian process with one length scale per feature (automatic relevance determination), learned by
    maximising the marginal likelihood of the fitting rows, summed over all tasks: the tasks share the kernel
    (which layers and choices matter, a multi-task prior), each task keeps its own posterior mean. A large length
    scale switches a feature off. The learned noise is shared too, so each task's noise level is then picked by
    cross-validation from `settings` (relative to the learned signal variance, as in `KernelRidge`).
    Kernel: signal * exp(-sum_d (x_d - y_d)^2 / (2 l_d^2)); one eigendecomposition serves every noise level."""

    settings: Tuple = tuple((("noise", a),) for a in (0.03, 0.1, 0.3, 1.0))
    max_iterations: int = 60

    @staticmethod
    def _gram(A, B, length_scales):
        return np.exp(-0.5 * cdist(A / length_scales, B / length_scales, "sqeuclidean"))

    @staticmethod
    def negative_log_likelihood(theta, squared_gaps, Y):
        """Minus the log marginal likelihood (without the constant) summed over the columns of Y [n, T], and its
        gradient; theta = log length scales [D], log signal variance, log noise variance; squared_gaps [n, n, D]."""
        n, num_tasks = Y.shape
        length_scales, signal, noise = np.exp(theta[:-2]), np.exp(theta[-2]), np.exp(theta[-1])
        shape = np.exp(-0.5 * squared_gaps @ (1 / length_scales ** 2))  # [n, n]
        K = signal * shape + (noise + 1e-8) * np.eye(n)
        cholesky = np.linalg.cholesky(K)
        inverse = np.linalg.inv(cholesky)
        inverse = inverse.T @ inverse
        alpha = inverse @ Y  # [n, T]
        value = 0.5 * np.sum(Y * alpha) + num_tasks * np.sum(np.log(np.diag(cholesky)))
        outer = 0.5 * (alpha @ alpha.T - num_tasks * inverse)  # d value / dK = -outer
        weighted = outer * signal * shape
        gradient = np.concatenate([-(weighted.reshape(-1) @ squared_gaps.reshape(n * n, -1)) / length_scales ** 2,
                                   [-np.sum(weighted), -noise * np.trace(outer)]])
        return value, gradient

    def learn_kernel(self, X, Y):
        """(length scales [D], signal variance, noise variance) maximising the summed marginal likelihood of the
        columns of Y [n, T] (centred) under a zero-mean GP."""
        squared_gaps = (X[:, None, :] - X[None, :, :]) ** 2  # [n, n, D]
        spread = np.sqrt(max(float(np.median(squared_gaps.sum(-1))), 1e-12))
        start = np.concatenate([np.full(X.shape[1], np.log(spread)), [np.log(Y.var()), np.log(0.3 * Y.var())]])
        bounds = [(np.log(0.1 * spread / np.sqrt(X.shape[1])), np.log(100 * spread))] * X.shape[1] + [
            (np.log(1e-3), np.log(1e2)), (np.log(1e-4), np.log(1e2))]
        theta = minimize(self.negative_log_likelihood, start, args=(squared_gaps, Y), jac=True, method="L-BFGS-B",
                         bounds=bounds, options={"maxiter": self.max_iterations}).x
        return np.exp(theta[:-2]), float(np.exp(theta[-2])), float(np.exp(theta[-1]))

    def fit(self, X, Y):
        x_mean, y_mean = X.mean(0), Y.mean(0)
        Xc = X - x_mean
        length_scales, signal, _ = self.learn_kernel(Xc, Y - y_mean)
        gram = signal * self._gram(Xc, Xc, length_scales)
        eigenvalues, eigenvectors = np.linalg.eigh(gram)
        projected = eigenvectors.T @ (Y - y_mean)
        duals = {index: eigenvectors @ (projected / (np.maximum(eigenvalues, 0) + dict(setting)["noise"] * signal)
                                        [:, None]) for index, setting in enumerate(self.settings)}
        return _ARDFit(Xc, x_mean, y_mean, length_scales, signal, duals)


@dataclass
class _ARDFit:
    X_train: np.ndarray
    x_mean: np.ndarray
    y_mean: np.ndarray
    length_scales: np.ndarray
    signal: float
    duals: dict  # setting index -> [n, T]

    def predict(self, X, settings=None):
        settings = sorted(self.duals) if settings is None else settings

        def rows(block):
            gram = self.signal * ARDKernelRidge._gram(block - self.x_mean, self.X_train, self.length_scales)
            return np.stack([gram @ self.duals[index] + self.y_mean for index in settings])
        return chunked(rows, X)


# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PaddleSlimGPNASFamily(Family):
    """The competition baseline, GPNAS(c_flag=2, m_flag=2) fitted the notebook's way (initial mean from the even
    rows, posterior mean from the odd rows), solved with the library's formulas for all target columns at once.
    'fast' predicts the linear mean; 'slow' adds the GP correction conditioned on all fitting rows. Equal to
    `PaddleSlimGPNAS` (which runs PaddleSlim's own code) up to float rounding; tested."""

    target: str = "rank"
    mode: str = "fast"

    def fit(self, X, Y):
        with_bias = np.hstack([X, np.ones((len(X), 1))])
        even, odd = with_bias[0::2], with_bias[1::2]
        eye_d = np.eye(with_bias.shape[1])
        w0 = np.linalg.inv(even.T @ even + GPNAS_JITTER * eye_d) @ even.T @ Y[0::2]
        kernel_inverse = np.linalg.inv(laplacian_gp_kernel(X[1::2], X[1::2]) + GPNAS_JITTER * np.eye(len(odd)))
        prior_precision = np.linalg.inv(GPNAS_PRIOR_VARIANCE * eye_d + GPNAS_JITTER * eye_d)
        w = np.linalg.inv(odd.T @ kernel_inverse @ odd + prior_precision + GPNAS_JITTER * eye_d) @ (
            odd.T @ kernel_inverse @ Y[1::2] + prior_precision @ w0)  # [D + 1, T]
        joint = None
        if self.mode == "slow":
            gram = laplacian_gp_kernel(X, X) + GPNAS_JITTER * np.eye(len(X))
            joint = np.linalg.inv(gram) @ (Y - with_bias @ w)
        return _GPNASFit(X, w, joint)


@dataclass
class _GPNASFit:
    X_train: np.ndarray
    w: np.ndarray
    joint: np.ndarray = None

    def predict(self, X, settings=None):
        def rows(block):
            mean = block @ self.w[:-1] + self.w[-1]
            if self.joint is not None:
                mean = mean + laplacian_gp_kernel(block, self.X_train) @ self.joint
            return mean[None]
        return chunked(rows, X)


# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PairwiseLogistic(Family):
    """A pairwise ranking learner: a linear score w.x trained so that sigmoid(w.(x_i - x_j)) predicts which of two
    architectures ranks higher (logistic loss over `pairs_per_row` random partners of each row, L2 strength
    `l2`), then mapped onto the target scale by a least-squares fit on the fitting rows."""

    settings: Tuple = ((("l2", 1e-3),),)
    pairs_per_row: int = 12
    seed: int = 0

    def fit(self, X, Y):
        rng = np.random.default_rng(self.seed)
        n = len(X)
        first = np.repeat(np.arange(n), self.pairs_per_row)
        second = rng.integers(0, n, size=len(first))
        x_mean = X.mean(0)
        diff = X[first] - X[second]  # [P, D]
        weights = np.zeros((len(self.settings), X.shape[1], Y.shape[1]))
        calibration = np.zeros((len(self.settings), 2, Y.shape[1]))
        for column in range(Y.shape[1]):
            sign = np.sign(Y[first, column] - Y[second, column])
            keep = sign != 0
            pair_x, pair_sign = diff[keep], sign[keep]
            for index, setting in enumerate(self.settings):
                l2 = dict(setting)["l2"]

                def loss(w):
                    margin = pair_sign * (pair_x @ w)
                    grad = -(pair_x.T @ (pair_sign * expit(-margin))) / len(margin) + 2 * l2 * w
                    return np.mean(np.logaddexp(0.0, -margin)) + l2 * w @ w, grad
                w = minimize(loss, np.zeros(X.shape[1]), jac=True, method="L-BFGS-B",
                             options={"maxiter": 200}).x
                score = (X - x_mean) @ w
                slope = (score @ (Y[:, column] - Y[:, column].mean())) / max(score @ score, 1e-12)
                weights[index, :, column] = w * slope
                calibration[index, :, column] = (Y[:, column].mean(), slope)
        return _PairwiseFit(x_mean, weights, calibration)


@dataclass
class _PairwiseFit:
    x_mean: np.ndarray
    weights: np.ndarray  # [S, D, T], already scaled to the target
    calibration: np.ndarray  # [S, 2, T]: target mean, slope

    def predict(self, X, settings=None):
        chosen = list(range(len(self.weights))) if settings is None else list(settings)
        return (np.einsum("md,sdt->smt", X - self.x_mean, self.weights[chosen])
                + self.calibration[chosen, 0][:, None, :])


def to_normal_scale(family, predictions, fit_targets):
    """Put a family's predictions on the normal-score scale (rank targets: standardised with the mean and spread
    of the fitting rows' ranks)."""
    if family.target == "rank":
        return (predictions - fit_targets.mean(0)) / fit_targets.std(0)
    return predictions


def targets_for(family, ranks):
    """The training targets a family learns from integer ranks [n, T]."""
    return ranks.astype(np.float64) if family.target == "rank" else normal_scores(ranks)
