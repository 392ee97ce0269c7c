"""Evaluation metrics (face verification, ReID ranking, leave-one-out retrieval, classification top-1), their
evaluators on one protocol (evaluators.py), registered in `allinone.registry.EVALUATORS`, and the suite that runs a
config's evaluation table (suite.py)."""
from .evaluators import (ClassificationEvaluator, DatasetEvaluator, Evaluator, FaceVerificationEvaluator,
                         FeatureEvaluator, ReidEvaluator, RetrievalEvaluator)
from .face import face_verification
from .reid import reid_metrics
from .retrieval import recall_at_ks

__all__ = ["ClassificationEvaluator", "DatasetEvaluator", "Evaluator", "FaceVerificationEvaluator", "FeatureEvaluator",
           "ReidEvaluator", "RetrievalEvaluator", "face_verification", "reid_metrics", "recall_at_ks"]
