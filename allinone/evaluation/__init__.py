"""Evaluation metrics of the original (face verification, ReID ranking, leave-one-out retrieval) and their
evaluators, registered in `allinone.registry.EVALUATORS`."""
from .evaluators import Evaluator, FaceVerificationEvaluator, ReidEvaluator, RetrievalEvaluator
from .face import face_verification
from .reid import reid_metrics
from .retrieval import recall_at_ks

__all__ = ["Evaluator", "FaceVerificationEvaluator", "ReidEvaluator", "RetrievalEvaluator", "face_verification",
           "reid_metrics", "recall_at_ks"]
