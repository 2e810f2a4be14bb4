"""Matryoshka representations (Kusupati et al. 2022): nested heads, the summed
loss, the refusals, and the protocols and export at nested sizes."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import simclr
from repr_learn import config_checks
from repr_learn import embed
from repr_learn import finished_run
from repr_learn import objectives
from repr_learn import parallel
from repr_learn import train
from repr_learn.data import catalog
from repr_learn.evaluation import fewshot
from repr_learn.evaluation import knn
from repr_learn.models import heads
from tests import config_overrides
from tests import test_objectives

SMOKE_WIDTH = 16  # the smoke ResNet's feature dims


def _init_head(head, x, nested_size):
  variables = head.init(jax.random.PRNGKey(0), x, train=False)
  # Create the nested size's own parameters too (flax builds them on first use).
  nested = head.init(jax.random.PRNGKey(0), x, train=False, nested_size=nested_size)
  return {c: {**nested.get(c, {}), **variables.get(c, {})} for c in ("params", "batch_stats")}


@pytest.mark.parametrize("nested_input", ["shared", "separate"])
def test_nested_head_is_mrls_linear_layer(nested_input):
  """RAIVNLab/MRL's MRL_Linear_Layer: efficient, x[:, :m] @ W[:, :m].T + b
  with the full layer's W and b; otherwise a layer of its own per size."""
  x = jax.random.normal(jax.random.PRNGKey(1), (5, 8))
  head = heads.MLPHead(hidden_dim=4, output_dim=6, num_layers=1, nested_input=nested_input)
  variables = _init_head(head, x, 3)
  out = head.apply(variables, x, train=False, nested_size=3)
  name = "dense_0" if nested_input == "shared" else "dense_0_nested3"
  kernel, bias = (np.asarray(variables["params"][name][k]) for k in ("kernel", "bias"))
  np.testing.assert_allclose(out, np.asarray(x)[:, :3] @ kernel[:3] + bias, rtol=1e-5, atol=1e-6)
  assert kernel.shape == ((8, 6) if nested_input == "shared" else (3, 6))
  full = head.apply(variables, x, train=False)
  np.testing.assert_allclose(full, np.asarray(x) @ np.asarray(variables["params"]["dense_0"]
                                                              ["kernel"])
                             + np.asarray(variables["params"]["dense_0"]["bias"]), rtol=1e-5)


def test_nested_sizes_keep_their_own_batchnorm_statistics():
  """The full-size head's running statistics move only with its own batches."""
  x = jax.random.normal(jax.random.PRNGKey(2), (16, 8))
  head = heads.MLPHead(hidden_dim=4, output_dim=3, num_layers=2, nested_input="shared")
  variables = _init_head(head, x, 2)
  _, updates = head.apply(variables, x, train=True, nested_size=2, mutable=["batch_stats"])
  stats, before = updates["batch_stats"], variables["batch_stats"]
  np.testing.assert_array_equal(stats["bn_0"]["mean"], before["bn_0"]["mean"])
  assert not np.allclose(stats["bn_0_nested2"]["mean"], before["bn_0_nested2"]["mean"])


def _numpy_nt_xent(z1, z2, temperature):
  z = np.concatenate([z1, z2]).astype(np.float64)
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  logits = z @ z.T / temperature
  np.fill_diagonal(logits, -np.inf)
  n = len(z1)
  positives = np.concatenate([np.arange(n, 2 * n), np.arange(n)])
  log_prob = logits - np.log(np.sum(np.exp(logits), axis=1, keepdims=True))
  return -np.mean(log_prob[np.arange(2 * n), positives])


@pytest.mark.parametrize("efficient", [True, False])
def test_simclr_loss_is_the_weighted_sum_over_prefixes(efficient):
  """sum_m c_m NT-Xent(W_m f1[:m] + b, W_m f2[:m] + b) for a linear projector,
  computed by hand from the backbone features; W_m is W's first m rows when
  the sizes share it (MRL-E)."""
  dims, weights = (2, 4, 8, SMOKE_WIDTH), (0.5, 1.0, 2.0, 1.0)
  config = simclr.get_config("smoke")
  config.model.projector.update(num_layers=1, output_dim=8)
  config.objective.update(matryoshka_dims=dims, matryoshka_weights=weights,
                          matryoshka_efficient=efficient)
  config_checks.validate(config)
  objective = train.build_objective(config)
  size = config.augment.crop_size
  v1, v2 = (jax.random.normal(k, (6, size, size, 3)) for k in jax.random.split(
      jax.random.PRNGKey(3), 2))
  variables = objective.network.init(jax.random.PRNGKey(0), v1, train=False)
  params, stats = variables["params"], variables["batch_stats"]
  loss, out = objective.loss(params, stats, {}, [v1, v2], {}, jax.random.PRNGKey(4),
                             jnp.zeros((), jnp.int32))
  # Both views share one forward pass (one BatchNorm batch), interleaved.
  both = jnp.stack([v1, v2], axis=1).reshape((12, size, size, 3))
  features, _ = objective.network.apply(variables, both, train=True,
                                        method=objective.network.embed, mutable=["batch_stats"])
  f = np.asarray(features).reshape(6, 2, -1)
  f1, f2 = f[:, 0], f[:, 1]
  projector = params["projector"]
  expected, per_size = 0.0, {}
  for m, w in zip(dims, weights):
    layer = projector["dense_0" if efficient or m == SMOKE_WIDTH else f"dense_0_nested{m}"]
    kernel, bias = np.asarray(layer["kernel"])[:m], np.asarray(layer["bias"])
    per_size[m] = _numpy_nt_xent(f1[:, :m] @ kernel + bias, f2[:, :m] @ kernel + bias,
                                 config.objective.temperature)
    expected += w * per_size[m]
  np.testing.assert_allclose(loss, expected, rtol=2e-4)
  for m in dims:
    np.testing.assert_allclose(out.metrics[f"loss_dim{m}"], per_size[m], rtol=2e-4)


@pytest.mark.parametrize("method, reason", [
    ("mae", "predicts hidden tokens"), ("ibot", "every token"),
    ("scan", "clusters a pretrained encoder")])
def test_methods_without_an_embedding_loss_refuse_nested_sizes(method, reason):
  config = test_objectives.smoke(method)
  config.objective.matryoshka_dims = (4, 8)
  with pytest.raises(ValueError, match=f"cannot nest.*{reason}.*Methods that can: .*simclr"):
    config_checks.validate(config)


@pytest.mark.parametrize("overrides, message", [
    ({"objective.matryoshka_dims": (8, 4, 16)}, "strictly ascending"),
    ({"objective.matryoshka_dims": (4, 16), "objective.matryoshka_weights": (1.0,)},
     "1 entries for 2"),
    ({"objective.matryoshka_efficient": True}, "only with objective.matryoshka_dims"),
    ({"eval.dims": (0, 4)}, "positive"),
    ({"eval.dims": (4,), "eval.linear_features": "dinov2", "model.backbone": "vit_tiny",
      "eval.protocols": "knn,linear"}, "no nested sizes"),
])
def test_bad_sizes_are_refused_in_one_line(overrides, message):
  config = config_overrides.override(simclr.get_config("smoke"), **overrides)
  with pytest.raises(ValueError, match=message):
    config_checks.validate(config)


def test_sizes_must_end_at_the_feature_width():
  config = simclr.get_config("smoke")
  config.objective.matryoshka_dims = (4, 8)
  objective = train.build_objective(config)
  with pytest.raises(ValueError, match=f"end at the feature width {SMOKE_WIDTH}"):
    objective.network.init(jax.random.PRNGKey(0), jnp.zeros((2, 16, 16, 3)), train=False)


def test_digits_variant_nests_every_evaluated_size():
  config = simclr.get_config("digits_matryoshka")
  config_checks.validate(config)
  assert config.objective.matryoshka_dims[:-1] == config.eval.dims


@pytest.fixture(scope="module")
def nested_run(tmp_path_factory, tfds_dir):
  workdir = str(tmp_path_factory.mktemp("matryoshka"))
  config = config_overrides.override(
      simclr.get_config("smoke"),
      **{"data.data_dir": tfds_dir, "eval.random_init_baseline": False,
         "eval.protocols": "knn,fewshot,rankme,plots",
         "objective.matryoshka_dims": (4, 8, SMOKE_WIDTH), "eval.dims": (2, 4, 8)})
  train.train_and_evaluate(config, workdir)
  return workdir


def test_nested_run_logs_each_size_and_draws_accuracy_by_size(nested_run):
  with open(os.path.join(nested_run, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  trained = [row for row in rows if "train/loss" in row][-1]
  for m in (4, 8, SMOKE_WIDTH):
    assert np.isfinite(trained[f"train/loss_dim{m}"])
  assert {f"knn/top1_dim{m}" for m in (2, 4, 8)} <= set(rows[-1])
  assert os.path.isfile(os.path.join(nested_run, "plots", "accuracy_by_dim.png"))


def test_protocols_at_a_size_equal_them_on_truncated_features(nested_run):
  run = finished_run.load(nested_run)
  context = run.eval_context()
  (train_x, train_y), (test_x, test_y) = (context.backbone_features(run.state, s)
                                          for s in context.splits)
  assert train_x.shape[1] == SMOKE_WIDTH
  with open(os.path.join(nested_run, "eval", "knn.json")) as f:
    knn_result = json.load(f)
  with open(os.path.join(nested_run, "eval", "fewshot.json")) as f:
    fewshot_result = json.load(f)
  config = run.config.eval
  for m in (2, 4, 8):
    expected = knn.weighted_knn(train_x[:, :m], train_y, test_x[:, :m], test_y,
                                num_classes=10, k=config.knn_k,
                                temperature=config.knn_temperature)
    assert knn_result["by_dim"][str(m)]["top1"] == pytest.approx(expected["top1"])
    assert knn_result["by_dim"][str(m)]["feature_dim"] == m
    shots = fewshot.fewshot(train_x[:, :m], train_y, test_x[:, :m], test_y, num_classes=10,
                            shots=tuple(config.fewshot_shots), num_seeds=config.fewshot_seeds,
                            l2_reg=config.fewshot_l2_reg)
    assert fewshot_result["by_dim"][str(m)]["5shot_top1"] == pytest.approx(shots["5shot_top1"])
  exported = embed.embeddings(run, dims=4)
  np.testing.assert_array_equal(exported["embeddings"], test_x[:, :4])
  with pytest.raises(ValueError, match="list sizes up to 16"):
    embed.embeddings(run, dims=32)


def _feature_width(config):
  network = train.build_objective(config).network
  size = config.augment.crop_size
  x = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)

  def embed(x):
    variables = network.init(jax.random.PRNGKey(0), x, train=False)
    return network.apply(variables, x, method=network.embed)

  return jax.eval_shape(embed, x).shape[-1]


SUPPORTED = sorted(name for name, cls in objectives.REGISTRY.items() if cls.supports_matryoshka)


@pytest.mark.parametrize("method", SUPPORTED)
def test_every_supported_method_traces_its_nested_step(method):
  """The whole train step (loss over the sizes, state updates) of each method
  that takes the option, traced at its smoke shapes; each size's loss logged."""
  config = test_objectives.smoke(method)
  width = _feature_width(config)
  config.objective.matryoshka_dims = (2, 4, width)
  config_checks.validate(config)
  spec = catalog.get_spec(config.data.name)
  setup = train.build_setup(config, spec, 64, parallel.make_mesh(jax.devices()[:1]))
  state = setup.abstract_state()
  new_state, metrics = jax.eval_shape(setup.compiled_train_step(state), state,
                                      setup.abstract_batch(spec))
  assert {f"loss_dim{m}" for m in (2, 4, width)} <= set(metrics)
  assert jax.tree.structure(new_state) == jax.tree.structure(state)
