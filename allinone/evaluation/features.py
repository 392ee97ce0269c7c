"""Feature normalisation shared by the evaluators (the model hands over post-BN, unnormalised features)."""
import numpy as np

NORM_EPS = 1e-12


def l2_normalize(features):
    """Row-wise x / max(||x||, 1e-12) in float32, as `paddle.nn.functional.normalize(x, p=2, axis=1)`."""
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2:
        raise ValueError(f"features must be a 2-D array [N, D], got shape {features.shape}")
    norms = np.sqrt(np.einsum("ij,ij->i", features, features, dtype=np.float32))
    return features / np.maximum(norms, NORM_EPS)[:, None]
