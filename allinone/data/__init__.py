"""Data layer: readers for every data set layout, transforms, samplers and loaders (see docs/data.md)."""
from . import datasets  # noqa: F401  (registers the data sets)
from .build import MultiTaskTrainLoader, build_test_loader, build_train_loader, gather_in_order
from .common import TestImageDataset, TrainImageDataset, collate
from .datasets import DatasetLayoutError, FaceVerificationDataset, ReidDataset, dataset_root
from .io import ImageReadError, read_image
from .samplers import IdentitySampler, InferenceSampler, TrainingSampler, restore_order
from .transforms import build_test_transform, build_train_transform

__all__ = ["DatasetLayoutError", "FaceVerificationDataset", "IdentitySampler", "ImageReadError", "InferenceSampler",
           "MultiTaskTrainLoader", "ReidDataset", "TestImageDataset", "TrainImageDataset", "TrainingSampler",
           "build_test_loader", "build_test_transform", "build_train_loader", "build_train_transform", "collate",
           "dataset_root", "gather_in_order", "read_image", "restore_order"]
