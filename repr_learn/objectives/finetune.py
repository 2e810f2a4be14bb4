"""Supervised end-to-end fine-tuning, the protocol of MAE (He et al. 2022,
FINETUNE.md and main_finetune.py), BEiT, SimMIM and solo-learn's `finetune`,
on an encoder pretrained by any method here (`model.init_from`) or, with the
same recipe and no `init_from`, from random initialisation (the baseline)."""

import functools

import jax
import jax.numpy as jnp
import optax

from repr_learn import parallel
from repr_learn.data import mixing
from repr_learn.objectives import base


class Finetune(base.Objective):
  """The projector is the classifier: one linear layer (`model.projector`
  num_layers=1, output_dim = number of classes) on the pooled backbone
  features. Each step mixes the global batch on device as timm's `Mixup` in
  its default batch mode (mixup with lam ~ Beta(mixup_alpha, mixup_alpha) or,
  with probability `switch_prob`, CutMix with lam ~ Beta(cutmix_alpha,
  cutmix_alpha) corrected to the box's area; applied with probability
  `mix_prob`; example i paired with example N-1-i) and minimises the softmax
  cross-entropy against the mixed, label-smoothed targets (timm's
  `SoftTargetCrossEntropy` on `mixup_target`). Drop path takes its key from the
  step's rng. The defaults are MAE's ViT-B recipe (FINETUNE.md; timm's
  defaults for the probabilities). `mixup_alpha` = `cutmix_alpha` = 0 gives
  plain cross-entropy with label smoothing.

  Logged: `top1`, the training batch's accuracy against its original (unmixed)
  labels on the mixed images (a monitor, below test accuracy while mixing),
  `mix_lambda` and `cutmix` (1 when the batch was CutMix'ed).
  """

  name = "finetune"
  pretrained_parts = ("backbone",)
  trains_on_labels = True
  supports_matryoshka = True  # nested classifiers: MRL's own setting
  defaults = {"mixup_alpha": 0.8, "cutmix_alpha": 1.0, "mix_prob": 1.0,
              "switch_prob": 0.5, "label_smoothing": 0.1}
  # Without `model.init_from` the run is the random-init baseline.
  needs_pretrained_encoder = False

  @property
  def num_classes(self) -> int:
    return classifier_size(self.network)

  def init_extra(self, rng, variables):
    del rng, variables
    classifier_size(self.network)  # Fails here, before step 0, on a wrong head.
    for key in ("mixup_alpha", "cutmix_alpha"):
      if self.config[key] < 0:
        raise ValueError(f"objective.{key}={self.config[key]} must be >= 0 (0 disables it).")
    for key in ("mix_prob", "switch_prob", "label_smoothing"):
      if not 0.0 <= self.config[key] <= 1.0:
        raise ValueError(f"objective.{key}={self.config[key]} must lie in [0, 1].")
    return {}

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del extra, step
    labels = batch["label"]
    num_classes = self.num_classes
    mix_rng, drop_rng = jax.random.split(rng)
    targets = mixing.one_hot_smoothed(labels, num_classes, self.config.label_smoothing)
    mixed = mixing.mix(mix_rng, views[0], targets,
                       mixup_alpha=self.config.mixup_alpha,
                       cutmix_alpha=self.config.cutmix_alpha,
                       mix_prob=self.config.mix_prob, switch_prob=self.config.switch_prob,
                       **self._mirror())
    out, new_stats = self.apply(params, batch_stats, mixed.images,
                                method=self.network.project, rng=drop_rng)
    logits = out["projection"].astype(jnp.float32)
    # With matryoshka_dims: RAIVNLab/MRL's nested classifiers and Matryoshka_CE_Loss.
    loss, nested = self.nested_loss(
        lambda o: jnp.mean(optax.softmax_cross_entropy(o["projection"].astype(jnp.float32),
                                                       mixed.targets)), out)
    # Unlabeled examples (label -1) or labels beyond the head would train on
    # meaningless targets: the loss becomes NaN, the step is skipped and the
    # trainer stops (the finetune protocol checks the data before step 0).
    valid = jnp.all((labels >= 0) & (labels < num_classes))
    loss = jnp.where(valid, loss, jnp.nan)
    top1 = jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)) * 100.0
    metrics = {"top1": jax.lax.stop_gradient(top1), "mix_lambda": mixed.lam,
               "cutmix": mixed.used_cutmix.astype(jnp.float32), **nested}
    return loss, base.LossOutput(batch_stats=new_stats, metrics=metrics)


  def _mirror(self):
    """Example i's partner N-1-i lives on the mirror device in the per-device
    mode (the labels are already global there)."""
    if self.device_axis is None:
      return {}
    return {"mirror": functools.partial(parallel.mirrored_rows, axis_name=self.device_axis)}


def classifier_size(network) -> int:
  """The number of classes of the network's linear classification head;
  raises a one-line error when the projector is not one."""
  projector = getattr(network, "projector", None)
  if projector is None:
    raise ValueError("The finetune objective needs a classification head; use "
                     "model.decoder.kind='none' (a backbone + projector network).")
  if projector.num_layers != 1 or projector.last_bn:
    raise ValueError(
        "The finetune objective's classifier is the projector as one linear layer: set "
        "model.projector.num_layers=1, last_bn=False and output_dim to the number of "
        f"classes (got num_layers={projector.num_layers}, last_bn={projector.last_bn}).")
  return projector.output_dim
