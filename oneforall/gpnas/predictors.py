"""Accuracy-rank predictors by name. Each is a scikit-learn pipeline from architecture codes to a score per code:
an encoding step (see `encodings`) followed by a regressor.

* baseline-fast / baseline-slow: PaddleSlim GPNAS(2, 2) on the notebook's convert_x features (`baseline`).
* ours: ranks Gaussianised (rank -> normal quantile, the erfinv transform that helped the 3rd place), then a
  Gaussian process with learned RBF length scale and learned noise on the ordinal encoding. Its noise term keeps
  the kernel matrix well conditioned, unlike GPNAS's fixed kernel with 1e-7 jitter.
"""
from sklearn.compose import TransformedTargetRegressor
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, QuantileTransformer

from .baseline import PaddleSlimGPNAS
from .encodings import encode, encoding_names


def gaussianised_gp():
    kernel = (ConstantKernel(1.0, (1e-2, 1e2)) * RBF(length_scale=3.0, length_scale_bounds=(0.3, 300.0))
              + WhiteKernel(noise_level=0.1, noise_level_bounds=(1e-3, 10.0)))
    return TransformedTargetRegressor(
        regressor=GaussianProcessRegressor(kernel, normalize_y=True, random_state=0),
        transformer=QuantileTransformer(n_quantiles=100, output_distribution="normal"))


# name -> (default encoding, regressor factory)
PREDICTORS = {
    "baseline-fast": ("convert_x", lambda: PaddleSlimGPNAS(mode="fast")),
    "baseline-slow": ("convert_x", lambda: PaddleSlimGPNAS(mode="slow")),
    "ours": ("ordinal", gaussianised_gp),
}


def build_predictor(name, encoding=None):
    """Pipeline codes -> score for predictor `name`; `encoding` overrides the predictor's default encoding."""
    if name not in PREDICTORS:
        raise ValueError(f"unknown predictor {name!r}; expected one of {sorted(PREDICTORS)}")
    default_encoding, make_regressor = PREDICTORS[name]
    encoding = encoding or default_encoding
    encoding_names(encoding)
    encoder = FunctionTransformer(encode, kw_args={"encoding": encoding})
    return Pipeline([("encode", encoder), ("regress", make_regressor())])
