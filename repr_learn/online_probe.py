"""The online linear probe: a classifier on frozen features, trained beside
pretraining (solo-learn's online evaluation).

It reads the backbone's eval-mode features of the first view through
`stop_gradient`, keeps its own parameters and SGD state in
`TrainState.probe`, and never feeds anything back: the encoder's training is
the same with and without it (tested). Unlabeled examples (label -1) are
ignored; `online_labeled` counts the labeled ones so the trainer can drop the
figure for unlabeled data.
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax

PyTree = Any


@dataclasses.dataclass(frozen=True)
class OnlineProbe:
  """Linear softmax classifier on `feature_dim` features, SGD with momentum."""
  num_classes: int
  feature_dim: int
  learning_rate: float = 0.1
  momentum: float = 0.9

  @property
  def tx(self) -> optax.GradientTransformation:
    return optax.sgd(self.learning_rate, momentum=self.momentum)

  def init(self) -> PyTree:
    params = {"kernel": jnp.zeros((self.feature_dim, self.num_classes), jnp.float32),
              "bias": jnp.zeros((self.num_classes,), jnp.float32)}
    return {"params": params, "opt_state": self.tx.init(params)}

  def update(self, probe: PyTree, features: jax.Array, labels: jax.Array
             ) -> tuple[PyTree, dict[str, jax.Array]]:
    """One SGD step on the batch's labeled examples; metrics before the step."""
    features = jax.lax.stop_gradient(features.astype(jnp.float32))
    valid = labels >= 0
    count = jnp.sum(valid)
    safe_labels = jnp.where(valid, labels, 0)

    def loss_fn(params):
      logits = features @ params["kernel"] + params["bias"]
      losses = optax.softmax_cross_entropy_with_integer_labels(logits, safe_labels)
      return jnp.sum(jnp.where(valid, losses, 0.0)) / jnp.maximum(count, 1), logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(probe["params"])
    updates, opt_state = self.tx.update(grads, probe["opt_state"], probe["params"])
    correct = jnp.sum(jnp.where(valid, jnp.argmax(logits, -1) == labels, False))
    metrics = {"online_loss": loss,
               "online_top1": 100.0 * correct / jnp.maximum(count, 1),
               "online_labeled": count.astype(jnp.float32)}
    return {"params": optax.apply_updates(probe["params"], updates),
            "opt_state": opt_state}, metrics
