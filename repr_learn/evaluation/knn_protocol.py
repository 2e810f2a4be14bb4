"""The kNN protocol on frozen backbone features, written to DIR/eval/knn.json.

Features of the labeled train and test splits come from the backbone in eval
mode (BatchNorm running statistics) on centre views; `knn.weighted_knn` then
classifies the test split (NPID's and DINO's weighted vote).
"""

from typing import Any

from repr_learn.evaluation import knn
from repr_learn.evaluation import protocol_base


@protocol_base.register
class KnnProtocol(protocol_base.Protocol):
  name = "knn"
  needs_labels = True
  reads_features = True
  headline = ("top1", "top5")

  def evaluate(self, state, step: int) -> dict[str, Any]:
    train_split, test_split = self.context.splits
    train_x, train_y = self.context.labeled_features(state, train_split, self.name)
    test_x, test_y = self.context.labeled_features(state, test_split, self.name)
    k = min(self.config.eval.knn_k, len(train_x))
    result = knn.weighted_knn(train_x, train_y, test_x, test_y,
                              num_classes=self.context.num_classes(train_y, test_y),
                              k=k, temperature=self.config.eval.knn_temperature)
    result.update(step=int(step), feature_dim=int(train_x.shape[1]), **self.context.describe())
    return result
