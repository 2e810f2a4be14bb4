"""Every objective: trains from its smoke config, same loss on 8 devices as on
1, and stop -> restart restores its extra state (queues, targets, banks,
prototypes, centre, pseudo-labels, mined neighbours)."""

import dataclasses
import importlib
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import common
from repr_learn import config_checks
from repr_learn import objectives
from repr_learn import parallel
from repr_learn import pretrained
from repr_learn import train
from repr_learn.data import augment
from repr_learn.data import catalog
from repr_learn.losses import clustering as clustering_losses
from repr_learn.losses import instance
from tests import config_overrides
from tests import test_train_step as step_helpers

# Every method that trains (the `imported` objective only holds outside weights).
METHODS = sorted(name for name, cls in objectives.REGISTRY.items() if cls.trainable)
# One per kind of state: queue + shuffle-BN, queue + prototypes, EMA teacher +
# centre, bank + centroids + pseudo-labels, mined neighbours + paired batches,
# an EMA teacher with class and patch centres (DINOv2; iBOT shares its code),
# a masked-modeling teacher of the encoder only, linear momentum (I-JEPA; data2vec
# 2.0 shares that code path and trains once below).
# (BYOL/MoCo v3's EMA target, NNCLR's support set and NPID's bank use the same
# code paths and train once each below.)
WITH_EXTRA_STATE = ("moco_v2", "swav", "dino", "deepcluster_v2", "scan", "ijepa", "dinov2")
# Two-view methods whose trainer path is SimCLR's (tests/test_training_runs.py
# runs it end to end): their losses run in test_eight_devices_match_one_device,
# their EMA targets resume in the WITH_EXTRA_STATE tests, and their full steps
# trace at the recipes' shapes in tests/test_recipes.py.
SIMCLR_PATH = ("simclr", "byol", "simsiam", "barlow_twins", "vicreg", "nnclr", "moco_v3",
               "align_uniform")
# Masked modeling runs end to end through MAE here (reconstructions included);
# these train six steps, compiling once, in tests/test_masked_modeling.py.
MIM_STEP_TESTED = ("simmim", "maskfeat", "data2vec2")
# SeLa's relabelling steps run on 1 and 8 devices in the dataset-sized state
# test, its bank and labels resume as DeepCluster-v2's (one base class), and
# DEC runs the clustering-head evaluation end to end.
DATASET_LABELS_TESTED = ("sela",)
# CLIP trains end to end, resumes exactly and evaluates in tests/test_image_text.py
# (SigLIP, the same objective class with another loss, trains below).
END_TO_END_ELSEWHERE = ("clip",)
ON_PRETRAINED = tuple(m for m in METHODS
                      if objectives.REGISTRY[m].needs_pretrained_encoder)


def smoke(method, **overrides):
  config = importlib.import_module(f"configs.{method}").get_config("smoke")
  if "shuffle_bn" in config.objective:
    config.objective.shuffle_bn = overrides.pop("shuffle_bn", True)
  if method == "swav":  # Exercise the queue: full after 2 steps, used from then on.
    config.objective.update(queue_size=64, queue_start_epochs=0.0)
  return config_overrides.override(config, **overrides)


@pytest.fixture(scope="module")
def pretrained_dir(tmp_path_factory, tfds_dir):
  """A finished SimCLR smoke run for the methods that start from one."""
  workdir = str(tmp_path_factory.mktemp("pretrained"))
  config = smoke("simclr", **{"data.data_dir": tfds_dir, "eval.random_init_baseline": False,
                              "eval.protocols": "knn"})
  train.train_and_evaluate(config, workdir)
  return workdir


def _run_config(method, tfds_dir, request):
  overrides = {"data.data_dir": tfds_dir, "eval.random_init_baseline": False}
  if method in ON_PRETRAINED:
    overrides["model.init_from"] = request.getfixturevalue("pretrained_dir")
  return smoke(method, **overrides)


def _with_labels_active(state):
  """Pseudo-label methods switch their loss on after the first relabelling."""
  if "relabelled" in state.extra:
    return state.replace(extra={**state.extra, "relabelled": jnp.ones((), bool)})
  return state


@pytest.mark.parametrize("method", METHODS)
def test_eight_devices_match_one_device(method):
  """The loss on the same global batch, views and parameters, on 1 and 8 devices."""
  config = smoke(method, shuffle_bn=False)
  _, _, one_device_state, _ = step_helpers._setup(config, jax.devices()[:1])
  losses = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = parallel.make_mesh(devices)
    objective = train.build_objective(config, total_steps=100,
                                      num_examples=config.batch_size, mesh=mesh)
    # The same initial state, replicated over this mesh (one initialisation).
    state = _with_labels_active(jax.device_put(one_device_state, parallel.replicated(mesh)))
    batch = step_helpers._batch(config, mesh)
    if objective.pairs_with_neighbours:
      batch["neighbour_image"] = batch["image"][::-1]
    views = step_helpers.draw_views(jax.random.PRNGKey(5), batch["image"], objective.views)
    loss, _ = jax.jit(objective.loss)(state.params, state.batch_stats, state.extra, views,
                                      batch, jax.random.PRNGKey(0), state.step)
    losses.append(float(loss))
    assert np.isfinite(losses[-1])
  np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5, atol=1e-6)


def test_moco_v2_shuffle_bn_encodes_keys_per_device():
  config = smoke("moco_v2")
  mesh, objective, state, _ = step_helpers._setup(config, jax.devices())
  images = step_helpers._batch(config, mesh)["image"]
  x = augment.center_view(images, 16, augment.IMAGENET_MEAN, augment.IMAGENET_STD)
  rng = jax.random.PRNGKey(3)
  keys = jax.jit(objective._keys)(state.extra["target_params"], state.batch_stats, x, rng)
  # By hand: permute, encode each device's 4 examples with their own BatchNorm
  # statistics, undo the permutation.
  perm = np.asarray(jax.random.permutation(rng, x.shape[0]))
  shuffled = np.asarray(x)[perm]
  project = jax.jit(lambda images: objective.apply(
      state.extra["target_params"], state.batch_stats, images,
      method=objective.network.project)[0]["projection"])
  chunks = [np.asarray(project(chunk)) for chunk in np.split(shuffled, 8)]
  expected = np.concatenate(chunks)[np.argsort(perm)]
  np.testing.assert_allclose(keys, expected, rtol=1e-4, atol=1e-5)
  # ...which differs from global (SyncBN) statistics.
  assert not np.allclose(keys, project(x), atol=1e-3)


def test_per_view_batchnorm_normalises_each_view_over_its_own_batch():
  """model.per_view_batchnorm: one pass per view (BYOL's, SimSiam's, solo-learn's
  forward), so view 2's outputs equal a pass over view 2 alone, which differs
  from the shared pass over both views' batch."""
  config = smoke("byol")
  config.model.per_view_batchnorm = True
  mesh, objective, state, _ = step_helpers._setup(config, jax.devices()[:1])
  assert objective.per_view_batchnorm
  images = step_helpers._batch(config, mesh)["image"]
  views = step_helpers.draw_views(jax.random.PRNGKey(5), images, objective.views)
  def forward(o, v):
    return jax.jit(lambda v: o.forward_views(state.params, state.batch_stats, v)[0])(v)

  separate = forward(objective, views)
  alone = forward(objective, views[1:])[0]
  shared = forward(dataclasses.replace(objective, per_view_batchnorm=False), views)
  np.testing.assert_allclose(separate[1]["projection"], alone["projection"], rtol=1e-5,
                             atol=1e-6)
  assert not np.allclose(separate[1]["projection"], shared[1]["projection"], atol=1e-3)


def test_moco_v2_symmetric_form_uses_two_queues_and_a_cosine_momentum():
  """solo-learn's MoCo v2+: (nce(q1, k2, queue_2) + nce(q2, k1, queue_1)) / 2,
  each view's keys enqueued in its own queue; momentum 0.99 -> 0.999 (cosine)."""
  config = smoke("moco_v2", shuffle_bn=False, **{
      "objective.symmetric": True, "objective.momentum": 0.99,
      "objective.momentum_schedule": "cosine", "objective.final_momentum": 0.999})
  mesh, objective, state, _ = step_helpers._setup(config, jax.devices()[:1])
  images = step_helpers._batch(config, mesh)["image"]
  views = step_helpers.draw_views(jax.random.PRNGKey(5), images, objective.views)

  @jax.jit
  def run(views):
    loss, out = objective.loss(state.params, state.batch_stats, state.extra, views, {},
                               jax.random.PRNGKey(0), state.step)
    keys = [objective._keys(state.extra["target_params"], state.batch_stats, v, None)
            for v in views]
    return loss, out.aux, keys, objective.forward_views(state.params, state.batch_stats, views)[0]

  loss, aux, keys, (o1, o2) = run(views)
  queue = state.extra["queue"]
  assert queue.shape[0] == 2
  k1, k2 = aux["keys"]
  np.testing.assert_allclose(k1, keys[0], rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(k2, keys[1], rtol=1e-4, atol=1e-5)
  expected = 0.5 * (instance.info_nce_with_queue(o1["projection"], k2, queue[1], 0.2)
                    + instance.info_nce_with_queue(o2["projection"], k1, queue[0], 0.2))
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  extra = objective.update_extra(state.extra, state.params, aux, jnp.int32(0))
  n = images.shape[0]
  np.testing.assert_allclose(extra["queue"][0][:n], instance.l2_normalize(k1), rtol=1e-5)
  np.testing.assert_allclose(extra["queue"][1][:n], instance.l2_normalize(k2), rtol=1e-5)
  assert int(extra["queue_ptr"]) == n
  half = objective.total_steps // 2
  np.testing.assert_allclose(objective.momentum(0), 0.99, rtol=1e-7)
  np.testing.assert_allclose(objective.momentum(half), 0.9945, rtol=1e-6)
  np.testing.assert_allclose(objective.momentum(objective.total_steps), 0.999, rtol=1e-7)




@pytest.mark.slow
@pytest.mark.parametrize("method", [m for m in METHODS if m not in WITH_EXTRA_STATE
                                    and m not in SIMCLR_PATH + MIM_STEP_TESTED
                                    + DATASET_LABELS_TESTED + END_TO_END_ELSEWHERE])
def test_trains_from_smoke_config(method, tmp_path, tfds_dir, request):
  config = _run_config(method, tfds_dir, request)
  has_head = config.model.prototypes.num_prototypes > 0 or method == "deepcluster_v2"
  if not has_head and method != "mae":
    # k-means on the features is the same code for every method (checked here
    # for the head methods and for MAE); skipping it saves a compile per method.
    config.eval.protocols = ",".join(
        p for p in config.eval.protocols.split(",") if p != "clustering")
  result = train.train_and_evaluate(config, str(tmp_path))
  assert int(result.state.step) == config.num_steps and 0 <= result.eval["knn"]["top1"] <= 100
  assert (tmp_path / "eval" / "knn.json").exists()
  if "clustering" in config.eval.protocols:
    clustering = json.loads((tmp_path / "eval" / "clustering.json").read_text())
    assert set(clustering["kmeans"]) == {"acc", "nmi", "ari", "num_clusters"}
    assert ("head" in clustering) == has_head


@pytest.mark.slow
@pytest.mark.parametrize("method", WITH_EXTRA_STATE)
def test_resume_restores_extra_state_exactly(method, tmp_path, tfds_dir, request):
  config = _run_config(method, tfds_dir, request)
  config.eval.protocols = ""  # the states are compared; evaluation is tested elsewhere
  straight = train.train_and_evaluate(config, str(tmp_path / "straight"))
  train.train_and_evaluate(config, str(tmp_path / "resumed"), interrupt_after_steps=2)
  resumed = train.train_and_evaluate(config, str(tmp_path / "resumed"))
  a, b = jax.device_get((straight.state.extra, straight.state.params)), jax.device_get(
      (resumed.state.extra, resumed.state.params))
  if method == "scan":  # Mined once from the pretrained encoder, then checkpointed.
    neighbours = a[0]["neighbours"]
    assert neighbours.min() >= 0 and neighbours.max() < len(neighbours)
    assert not np.any(neighbours == np.arange(len(neighbours))[:, None])
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(np.testing.assert_array_equal, a, b)


def test_vit_backbone_trains_with_a_siamese_objective():
  config = smoke("moco_v3", **{"model.backbone": "vit_test", "model.patch_size": 4,
                               "optimizer.name": "adamw", "optimizer.base_lr": 1e-3})
  mesh, objective, state, step_fn = step_helpers._setup(config, jax.devices())
  batch = step_helpers._batch(config, mesh)
  before = jax.device_get(state.params["backbone"]["block_0"]["attention"]["qkv"]["kernel"])
  for _ in range(2):
    state, metrics = step_fn(state, batch)
  assert np.isfinite(metrics["loss"])
  after = jax.device_get(state.params["backbone"]["block_0"]["attention"]["qkv"]["kernel"])
  assert not np.allclose(before, after)


@pytest.mark.parametrize("method,frozen", [("dino", "prototypes"), ("scan", "backbone")])
def test_frozen_parameters_do_not_move_under_weight_decay(method, frozen):
  """DINO's last layer in epoch 1 (one step here), SCAN's head-only backbone:
  no gradient, no decay, no momentum step, and SCAN keeps the BN statistics."""
  config = smoke(method, **{"optimizer.name": "adamw", "optimizer.weight_decay": 0.5})
  if method == "scan":
    config.objective.update_head_only = True
  mesh, _, state, step_fn = step_helpers._setup(config, jax.devices())
  batch = step_helpers._batch(config, mesh)
  if method == "scan":
    batch["neighbour_image"] = batch["image"][::-1]
  before = jax.device_get(state)
  state, metrics = step_fn(state, batch)
  assert np.isfinite(metrics["loss"])
  after = jax.device_get(state)
  jax.tree.map(np.testing.assert_array_equal, before.params[frozen], after.params[frozen])
  assert not np.allclose(before.params["projector"]["dense_0"]["kernel"],
                         after.params["projector"]["dense_0"]["kernel"])
  if method == "scan":
    jax.tree.map(np.testing.assert_array_equal, before.batch_stats, after.batch_stats)
  else:  # Epoch 2 (steps_per_epoch is 1 here): the last layer trains.
    state, _ = step_fn(state, batch)
    assert not np.allclose(after.params[frozen]["kernel"],
                           jax.device_get(state.params[frozen]["kernel"]))


def test_multicrop_step_compiles_once():
  config = smoke("swav")
  mesh, objective, state, step_fn = step_helpers._setup(config, jax.devices())
  sizes = [v.size for v in objective.views]
  assert sizes == [16, 16, 8]
  for seed in range(3):
    state, metrics = step_fn(state, step_helpers._batch(config, mesh, seed))
    assert np.isfinite(metrics["loss"])
  assert step_fn._cache_size() == 1


def test_init_from_copies_matching_parts_only(pretrained_dir):
  source = pretrained.load(pretrained_dir)
  config = smoke("scan")
  objective = train.build_objective(config, num_examples=64)
  params = jax.eval_shape(train._init_fn(objective, config, 16), jax.random.PRNGKey(0))[0]
  params = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), params)
  merged, _ = pretrained.merge(params, {}, source)
  jax.tree.map(np.testing.assert_array_equal, merged["backbone"], source.params["backbone"])
  # The clustering head (10 outputs) differs from SimCLR's projector: kept fresh.
  jax.tree.map(lambda x: np.testing.assert_array_equal(x, 0.0), merged["projector"])
  config.model.width = 16
  wider = train.build_objective(config, num_examples=64)
  params = jax.eval_shape(train._init_fn(wider, config, 16), jax.random.PRNGKey(0))[0]
  with pytest.raises(ValueError, match="different backbone"):
    pretrained.merge(params, {}, source)


@pytest.mark.parametrize("method", METHODS)
def test_every_variant_of_every_config_is_valid(method):
  module = importlib.import_module(f"configs.{method}")
  for variant in common.variants(module):
    config = module.get_config(variant)
    config_checks.validate(config)
    assert config.objective.name == method
    objective = train.build_objective(config, num_examples=1000)
    assert len(objective.views) >= 1
    if config.augment.num_local_crops:
      assert objective.views[-1].size == config.augment.local_crop_size


def test_deepcluster_v2_heads_average_their_cross_entropies_over_both_views_banks():
  """main_deepclusterv2.py: loss = mean over heads (and views) of CE(scores_h / T,
  labels_h); head h's k-means runs on the bank of view h mod 2."""
  config = smoke("deepcluster_v2", **{"objective.num_heads": 3})
  mesh, objective, state, _ = step_helpers._setup(config, jax.devices()[:1])
  n, dim = objective.num_examples, config.model.projector.output_dim
  extra = dict(state.extra, relabelled=jnp.ones((), bool))
  assert extra["bank"].shape[1:] == (2, dim) and extra["labels"].shape[1:] == (3,)
  assert extra["centroids"].shape == (3, config.objective.num_clusters, dim)
  images = step_helpers._batch(config, mesh)["image"]
  batch = {"index": jnp.arange(images.shape[0]) % n}
  views = step_helpers.draw_views(jax.random.PRNGKey(5), images, objective.views)
  loss, out, outs = jax.jit(lambda extra: (
      *objective.loss(state.params, state.batch_stats, extra, views, batch,
                      jax.random.PRNGKey(0), state.step),
      objective.forward_views(state.params, state.batch_stats, views)[0]))(extra)
  labels = np.asarray(extra["labels"])[np.asarray(batch["index"])]
  expected = []
  for o in outs:
    z = np.asarray(instance.l2_normalize(o["projection"]))
    for h in range(3):
      logits = z @ np.asarray(extra["centroids"][h]).T / config.objective.temperature
      logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
      expected.append(-logp[np.arange(len(z)), labels[:, h]].mean())
  np.testing.assert_allclose(loss, np.mean(expected), rtol=1e-5)
  np.testing.assert_allclose(out.aux["embeddings"][:, 1], outs[1]["projection"], rtol=1e-6)
  relabelled = jax.jit(lambda e: objective.relabel(e, state.params, jnp.int32(0)))(extra)
  rng = jax.random.fold_in(extra["rng"], 0)
  kmeans = jax.jit(lambda bank, key: clustering_losses.spherical_kmeans(
      bank, key, config.objective.num_clusters, config.objective.kmeans_iters, num_valid=n)[1])
  for h in range(3):
    want = kmeans(extra["bank"][:, h % 2], jax.random.fold_in(rng, h))
    np.testing.assert_array_equal(relabelled["labels"][:, h], want)
  assert not np.array_equal(relabelled["labels"][:, 0], relabelled["labels"][:, 1])


# DeepCluster-v2 keeps its bank and labels as SeLa does (one base class); its
# masked k-means is checked in test_clustering_losses.py.
@pytest.mark.parametrize("method", ["npid", "sela"])
def test_dataset_sized_state_is_split_over_the_devices_and_changes_nothing(method):
  """Banks and per-example labels hold `dataset_rows()` rows (1437 digits ->
  1536), split 8 ways in the jit mode; two steps (each relabels the whole
  bank: Sinkhorn over the split rows) give the 1-device losses and state."""
  config = smoke(method)
  if "relabel_epochs" in config.objective:
    config.objective.relabel_epochs = 0.0  # relabel after every step
  spec = catalog.get_spec(config.data.name)
  results = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = parallel.make_mesh(devices)
    setup = train.build_setup(config, spec, 1437, mesh)
    state = setup.initial_state()
    for name in setup.objective.dataset_sized_extra:
      leaf = state.extra[name]
      assert leaf.shape[0] == setup.objective.dataset_rows() == 1536
      assert leaf.sharding.shard_shape(leaf.shape)[0] == 1536 // len(devices)
    step_fn = setup.compiled_train_step(state)
    losses = []
    for seed in (0, 1):
      batch = step_helpers._batch(config, mesh, seed)
      state, metrics = step_fn(state, batch)
      losses.append(float(metrics["loss"]))
    assert state.extra["bank"].sharding == parallel.batch_sharded(mesh) or len(devices) == 1
    results.append((losses, jax.device_get(state.extra)))
  (losses_1, extra_1), (losses_8, extra_8) = results
  np.testing.assert_allclose(losses_1, losses_8, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(extra_1["bank"], extra_8["bank"], rtol=1e-4, atol=1e-5)
  assert not np.any(extra_8["bank"][1437:])  # the padding stays empty
  if "labels" in extra_1:
    np.testing.assert_array_equal(extra_1["labels"][:1437], extra_8["labels"][:1437])
