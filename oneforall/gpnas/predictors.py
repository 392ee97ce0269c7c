"""Accuracy-rank predictors by name. Each takes all tasks at once: `fit(codes, ranks [N, T])`, then
`predict(codes) -> scores [M, T]` (a higher score = a higher rank).

* baseline-fast / baseline-slow: PaddleSlim GPNAS(2, 2) per task on the notebook's convert_x features (`baseline`).
* ridge: a fixed simple reference, ridge regression on one-hot features learning normal scores of the ranks.
* ours: per task, the model that cross-validation on the training set picks among many (`selection`), the
  baseline included.
"""
import numpy as np
from sklearn.compose import TransformedTargetRegressor
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, QuantileTransformer
from tqdm import tqdm

from .baseline import PaddleSlimGPNAS
from .encodings import check_absent_layers, encode
from .selection import CrossValidatedPredictor


def gaussianised_ridge():
    return TransformedTargetRegressor(regressor=Ridge(alpha=3.0),
                                      transformer=QuantileTransformer(n_quantiles=100, output_distribution="normal"))


class PerTask:
    """One scikit-learn pipeline (codes -> score) per task, fitted independently."""

    def __init__(self, encoding, make_regressor, progress=False, name=""):
        self.encoding, self.make_regressor, self.progress, self.name = encoding, make_regressor, progress, name

    def _pipeline(self):
        encoder = FunctionTransformer(encode, kw_args={"encoding": self.encoding})
        return Pipeline([("encode", encoder), ("regress", self.make_regressor())])

    def fit(self, codes, ranks):
        ranks = np.asarray(ranks)
        self.models_ = [self._pipeline().fit(codes, ranks[:, column])
                        for column in tqdm(range(ranks.shape[1]), desc=f"{self.name}: fitting tasks",
                                           disable=not self.progress)]
        return self

    def predict(self, codes):
        return np.column_stack([model.predict(codes) for model in self.models_])


# name -> (default encoding, regressor factory); None: the predictor chooses its own encodings
PREDICTORS = {
    "baseline-fast": ("convert_x", lambda: PaddleSlimGPNAS(mode="fast")),
    "baseline-slow": ("convert_x", lambda: PaddleSlimGPNAS(mode="slow")),
    "ridge": ("onehot", gaussianised_ridge),
    "ours": (None, None),
}


def build_predictor(name, encoding=None, seed=0, progress=False):
    """The predictor `name`; `encoding` overrides a per-task predictor's default encoding ('ours' picks its own)."""
    if name not in PREDICTORS:
        raise ValueError(f"unknown predictor {name!r}; expected one of {sorted(PREDICTORS)}")
    default_encoding, make_regressor = PREDICTORS[name]
    if default_encoding is None:
        if encoding:
            raise ValueError(f"predictor {name!r} chooses its encodings by cross-validation; --encoding applies to "
                             f"{sorted(n for n, (e, _) in PREDICTORS.items() if e)}")
        return CrossValidatedPredictor(seed=seed, progress=progress)
    encoding = encoding or default_encoding
    check_absent_layers(encoding)
    return PerTask(encoding, make_regressor, progress, name)
