"""Pictures of a run at the end of training: DIR/plots/curves.png (training
curves from metrics.jsonl), DIR/plots/embedding.png (t-SNE of the test
embeddings, coloured by class) and, with `eval.dims`, accuracy_by_dim.png (the
protocols listed before this one, at each size). The same as
`python -m repr_learn.plot DIR`.
"""

from typing import Any

import jax

from repr_learn.evaluation import protocols


@protocols.register
class PlotsProtocol(protocols.Protocol):
  name = "plots"
  headline = ()

  def evaluate(self, state, step: int) -> dict[str, Any]:
    workdir = self.context.workdir
    if workdir is None:
      raise ValueError("The plots protocol writes into a run directory; it has none here.")
    features, labels = self.context.backbone_features(state, self.context.splits[1])
    result = {"step": int(step), **self.context.describe()}
    if jax.process_index() == 0:
      from repr_learn import plot  # pylint: disable=g-import-not-at-top (matplotlib is heavy)
      if plot.has_metrics(workdir):
        result["curves"] = plot.plot_curves(workdir)
      result["embedding"] = plot.plot_embedding(workdir, features, labels)
      if plot.accuracy_by_dim(workdir):  # eval.dims: the protocols before this one
        result["accuracy_by_dim"] = plot.plot_accuracy_by_dim(
            plot.by_dim_path(workdir), {plot.run_label(workdir): workdir})
    return result
