"""Readers for every data set in its published on-disk layout, registered in `allinone.registry.DATASETS`."""
from . import classification, faces, filename_rule, ms1m, msmt17, sop, vehicleid, veriwild  # noqa: F401  (registration)
from . import classification_sets, oneforall_reid  # noqa: F401  (registration: the OneForAll recipe's sets)
from .base import DatasetLayoutError, ReidDataset, dataset_root
from .classification import ImageClassification
from .faces import FaceVerificationDataset, read_verification_bin, write_verification_bin

__all__ = ["DatasetLayoutError", "FaceVerificationDataset", "ImageClassification", "ReidDataset", "dataset_root",
           "read_verification_bin", "write_verification_bin"]
