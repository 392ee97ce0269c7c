"""The classification head of the OneForAll recipe's 20 classification tasks (the original's EmbeddingHead with
`cls_type='classification'`): cls token -> [optional BN neck] -> Linear(D, C) with bias; eval returns the logits."""
import paddle.nn as nn

from allinone.modeling.heads import EmbeddingHead
from allinone.registry import HEADS


@HEADS.register()
class ClassificationHead(EmbeddingHead):
    """Training: EmbeddingHead's dict with `logits` = `pred_logits` = scale x linear(neck) (no margin); eval: the
    class scores [B, C] (what ClassificationEvaluator reads). The layer is `linear` (`heads.<task>.linear.*`, the
    original's key, kept by the evaluation model and by task extraction). The recipe's lr (weight 0.1, bias 0.2) is
    a param_groups entry of the config."""

    def __init__(self, in_dim, num_classes=0, scale=1.0, with_bnneck=False, neck_feat="before", **original):
        original.pop("cls_type", None)  # the original's 'classification'; this class is that type
        super().__init__(in_dim, 0, "Linear", scale, 0.0, with_bnneck, neck_feat, **original)
        self.scale = float(scale)
        # num_classes 0: a config before training fills it in from the data (a forward is then an error)
        self.linear = nn.Linear(in_dim, int(num_classes)) if num_classes > 0 else None

    def forward(self, tokens, task_batch=None):
        if self.linear is None:
            raise ValueError("ClassificationHead has num_classes 0: training sets it from the data; an evaluation "
                             "config gives it (as the training run's config.yaml does)")
        neck = self.bottleneck(tokens[:, 0])  # B, D
        logits = self.linear(neck) * self.scale
        if not self.training:
            return logits
        return {"features": tokens[:, 0], "neck_features": neck, "logits": logits, "pred_logits": logits}
