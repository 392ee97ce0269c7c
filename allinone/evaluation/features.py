"""Feature normalisation shared by the evaluators (the model hands over post-BN, unnormalised features)."""
import numpy as np

NORM_EPS = 1e-12


def row_norms(features):
    """max(||x||, 1e-12) per row, float32: the divisor of `l2_normalize`."""
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2:
        raise ValueError(f"features must be a 2-D array [N, D], got shape {features.shape}")
    return np.maximum(np.sqrt(np.einsum("ij,ij->i", features, features, dtype=np.float32)), np.float32(NORM_EPS))


def l2_normalize(features):
    """Row-wise x / max(||x||, 1e-12) in float32, as `paddle.nn.functional.normalize(x, p=2, axis=1)`."""
    features = np.asarray(features, dtype=np.float32)
    return features / row_norms(features)[:, None]
