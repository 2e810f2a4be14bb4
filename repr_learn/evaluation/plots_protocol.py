"""Pictures of a run at the end of training: DIR/plots/curves.png (training
curves from metrics.jsonl), DIR/plots/embedding.png (t-SNE of the test
embeddings, coloured by class) and, with `eval.dims`, accuracy_by_dim.png (the
protocols listed before this one, at each size). The same as
`python -m repr_learn.plot DIR`.
"""

from typing import Any

import jax

from repr_learn.evaluation import protocol_base


@protocol_base.register
class PlotsProtocol(protocol_base.Protocol):
  name = "plots"
  headline = ()

  def evaluate(self, state, step: int) -> dict[str, Any]:
    workdir = self.context.workdir
    if workdir is None:
      raise ValueError("The plots protocol writes into a run directory; it has none here.")
    features, labels = self.context.backbone_features(state, self.context.splits[1])
    result = {"step": int(step), **self.context.describe()}
    if jax.process_index() == 0:
      # pylint: disable-next=g-import-not-at-top (matplotlib is heavy)
      from repr_learn.evaluation import drawing
      title = drawing.run_title(workdir, self.config)
      if drawing.has_metrics(workdir):
        result["curves"] = drawing.plot_curves(workdir, title)
      result["embedding"] = drawing.plot_embedding(workdir, title, features, labels)
      if drawing.accuracy_by_dim(workdir):  # eval.dims: the protocols before this one
        result["accuracy_by_dim"] = drawing.plot_accuracy_by_dim(
            drawing.by_dim_path(workdir), {drawing.run_label(workdir): workdir})
    return result
