"""The CVPR 2023 foundation-model track 1 set-up: one ViT-B shared by Stanford Cars classification, TT100K detection
(DINO) and BDD100K segmentation (SETR-PUP). See docs/traffic.md."""
