"""The online linear probe: it learns from labels and never changes training."""

import jax
import jax.numpy as jnp
import numpy as np

from configs import simclr as simclr_config
from repr_learn import online_probe
from repr_learn import optim
from repr_learn import parallel
from repr_learn import steps
from repr_learn import train
from repr_learn import train_state as train_state_lib
from repr_learn.data import augment
from tests import test_train_step as step_helpers


def _run(config, probe, num_steps=3):
  mesh = parallel.make_mesh(jax.devices())
  objective = train.build_objective(config, total_steps=100, num_examples=config.batch_size,
                                    mesh=mesh)
  schedule = optim.warmup_cosine(1.0, 0, 100)
  tx = optim.make_optimizer(config.optimizer, schedule, 100)
  init_fn = train._init_fn(objective, config, config.augment.crop_size)
  state = train_state_lib.create(init_fn, tx, jax.random.PRNGKey(0), mesh,
                                 probe.init if probe else None)
  step_fn = jax.jit(steps.make_train_step(objective, tx, schedule, augment.IMAGENET_MEAN,
                                          augment.IMAGENET_STD, probe=probe))
  history = []
  for _ in range(num_steps):
    state, metrics = step_fn(state, step_helpers._batch(config, mesh))
    history.append(jax.device_get(metrics))
  return jax.device_get(state), history


def test_encoder_is_identical_with_and_without_the_probe():
  config = simclr_config.get_config("smoke")
  probe = online_probe.OnlineProbe(num_classes=10, feature_dim=16, learning_rate=0.5)
  with_probe, history = _run(config, probe)
  without, plain_history = _run(config, None)
  jax.tree.map(np.testing.assert_array_equal, with_probe.params, without.params)
  jax.tree.map(np.testing.assert_array_equal, with_probe.batch_stats, without.batch_stats)
  jax.tree.map(np.testing.assert_array_equal, with_probe.opt_state, without.opt_state)
  assert [h["loss"] for h in history] == [h["loss"] for h in plain_history]
  assert "online_top1" in history[0] and "online_top1" not in plain_history[0]
  # The probe itself trained: its loss on the fixed batch went down.
  assert history[-1]["online_loss"] < history[0]["online_loss"]
  assert history[0]["online_labeled"] == config.batch_size


def test_probe_ignores_unlabeled_examples():
  probe = online_probe.OnlineProbe(num_classes=3, feature_dim=4)
  state = probe.init()
  features = jnp.ones((6, 4))
  unlabeled = jnp.full((6,), -1)
  new_state, metrics = probe.update(state, features, unlabeled)
  jax.tree.map(np.testing.assert_array_equal, state["params"], new_state["params"])
  assert metrics["online_labeled"] == 0 and metrics["online_loss"] == 0
  # Half labeled: the loss is the mean cross-entropy over the labeled half (ln 3 at init).
  labels = jnp.array([0, 1, 2, -1, -1, -1])
  _, metrics = probe.update(state, features, labels)
  np.testing.assert_allclose(metrics["online_loss"], np.log(3.0), rtol=1e-6)
  assert metrics["online_labeled"] == 3
