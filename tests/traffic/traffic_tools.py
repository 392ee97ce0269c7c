"""Helpers shared by the traffic tests."""


def tiny_model_config(seg_classes=5, cls_classes=7, det_classes=4):
    """A 3-block, 64-d traffic model (patch 8, 3x3 windows) with a 2+2-layer, 20-query DINO."""
    return {
        "backbone": {"name": "WindowedViT", "img_size": 64, "patch_size": 8, "embed_dim": 64, "depth": 3,
                     "num_heads": 2, "mlp_ratio": 2.0, "window_size": 3},
        "heads": {
            "segmentation": {"name": "SegmentationHead", "patch_size": 8, "num_classes": seg_classes,
                             "embed_dim": 64, "channels": 32, "block_index": 2, "aux_indices": [0, 1, 2, 2]},
            "fgvc": {"name": "ClassificationHead", "in_dim": 64, "hidden_dim": 16, "num_classes": cls_classes},
            "trafficsign": {"name": "DetectionHead", "num_classes": det_classes, "num_top_queries": 10,
                            "hidden_dim": 32, "num_queries": 20, "in_channels": [64] * 4, "num_heads": 4,
                            "num_encoder_layers": 2, "num_decoder_layers": 2, "dim_feedforward": 64,
                            "num_denoising": 10},
        },
    }

