"""Weights brought in from elsewhere (`python -m repr_learn.import_weights`).

An imported workdir holds a backbone whose training happened outside this
codebase (torchvision, timm, DINO, MAE, MoCo v3, I-JEPA, iBOT, DINOv2). It is
a run like any other for the tools (`evaluate`, `embed`, `export`) and for
`model.init_from` (fine-tuning, SCAN, DEC), but it has no loss: training it is
refused at config validation with a line saying what to do instead.
"""

from repr_learn.objectives import base


class Imported(base.Objective):
  """No loss: the encoder was trained elsewhere."""

  name = "imported"
  defaults = {"format": "", "checkpoint": ""}  # where the weights came from
  trainable = False

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    raise ValueError("An imported workdir has no loss; start a run from it with "
                     "--config.model.init_from=DIR instead.")
