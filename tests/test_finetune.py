"""Fine-tuning: label smoothing, mixup and CutMix against their definitions
(timm's `Mixup`, batch mode), the objective's loss, the protocol's checks, and
one end-to-end run from a SimCLR smoke run's workdir."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import finetune as finetune_config
from configs import simclr as simclr_config
from repr_learn import train
from repr_learn.data import mixing
from repr_learn.evaluation import finetune_protocol
from tests import config_overrides
from tests import test_train_step as step_helpers

N, H, W, C, K = 6, 8, 10, 3, 7


def _images(seed=0):
  # Continuous values: every example differs from its mirror at every pixel.
  return jax.random.normal(jax.random.PRNGKey(seed), (N, H, W, C))


def _targets(smoothing=0.1):
  return mixing.one_hot_smoothed(jnp.arange(N) % K, K, smoothing)


def test_one_hot_smoothed_is_timms_mixup_target():
  y = np.asarray(mixing.one_hot_smoothed(jnp.array([0, 3, 6]), K, 0.1))
  off = 0.1 / K
  expected = np.full((3, K), off, np.float32)
  expected[[0, 1, 2], [0, 3, 6]] = 1.0 - 0.1 + off
  np.testing.assert_allclose(y, expected, rtol=1e-6)
  np.testing.assert_allclose(y.sum(1), 1.0, rtol=1e-6)
  np.testing.assert_array_equal(mixing.one_hot_smoothed(jnp.array([2]), K, 0.0),
                                np.eye(K, dtype=np.float32)[[2]])


def test_mixup_blends_each_example_with_its_mirror():
  x, y = _images(), _targets()
  out = mixing.mixup(jax.random.PRNGKey(1), x, y, alpha=0.8)
  lam = float(out.lam)
  assert 0.0 < lam < 1.0 and not bool(out.used_cutmix)
  np.testing.assert_allclose(out.images, lam * x + (1 - lam) * x[::-1], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out.targets, lam * y + (1 - lam) * y[::-1], rtol=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_cutmix_copies_the_mirror_exactly_in_a_box_whose_area_sets_lambda(seed):
  x, y = _images(seed), _targets()
  out = mixing.cutmix(jax.random.PRNGKey(seed), x, y, alpha=1.0)
  x, mixed = np.asarray(x), np.asarray(out.images)
  inside = np.all(mixed == x[::-1], axis=(0, 3))
  outside = np.all(mixed == x, axis=(0, 3))
  assert np.all(inside ^ outside)  # every pixel is exactly one or the other
  rows, cols = np.nonzero(inside)
  if rows.size:  # the copied pixels form one rectangle
    box = np.zeros_like(inside)
    box[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = True
    np.testing.assert_array_equal(inside, box)
  lam = float(out.lam)
  assert lam == pytest.approx(1.0 - inside.sum() / (H * W), abs=1e-6)
  np.testing.assert_allclose(out.targets, lam * y + (1 - lam) * y[::-1], rtol=1e-6)


def test_cutmix_box_follows_timms_rand_bbox():
  # lam 0.75: cut sides int(8 * 0.5) = 4 and int(10 * 0.5) = 5, halves 2 and 2
  # around the centre, clipped; lam is then corrected to the clipped area.
  for seed in range(20):
    box, lam = mixing.cutmix_box(jax.random.PRNGKey(seed), H, W, jnp.float32(0.75))
    y0, y1, x0, x1 = (int(v) for v in box)
    cy, cx = y0 + 2 if y0 > 0 else y1 - 2, x0 + 2 if x0 > 0 else x1 - 2
    assert (y0, y1) == (max(cy - 2, 0), min(cy + 2, H))
    assert (x0, x1) == (max(cx - 2, 0), min(cx + 2, W))
    assert float(lam) == pytest.approx(1 - (y1 - y0) * (x1 - x0) / (H * W))


def test_mix_switches_between_mixup_and_cutmix_with_static_shapes():
  x, y = _images(), _targets()
  mix = jax.jit(lambda r: mixing.mix(r, x, y, mixup_alpha=0.8, cutmix_alpha=1.0,
                                     mix_prob=1.0, switch_prob=0.5))
  kinds = []
  for seed in range(16):
    out = mix(jax.random.PRNGKey(seed))
    lam, mixed = float(out.lam), np.asarray(out.images)
    np.testing.assert_allclose(out.targets, lam * y + (1 - lam) * y[::-1], rtol=1e-5)
    if bool(out.used_cutmix):
      inside = np.all(mixed == np.asarray(x)[::-1], axis=(0, 3))
      assert lam == pytest.approx(1.0 - inside.sum() / (H * W), abs=1e-6)
    else:
      np.testing.assert_allclose(mixed, lam * x + (1 - lam) * x[::-1], rtol=1e-5, atol=1e-6)
    kinds.append(bool(out.used_cutmix))
  assert any(kinds) and not all(kinds)
  assert mix._cache_size() == 1
  # mix_prob 0, or both alphas 0: the batch and its targets pass unchanged.
  for kw in (dict(mixup_alpha=0.8, cutmix_alpha=1.0, mix_prob=0.0),
             dict(mixup_alpha=0.0, cutmix_alpha=0.0)):
    out = mixing.mix(jax.random.PRNGKey(0), x, y, **kw)
    np.testing.assert_array_equal(out.images, x)
    np.testing.assert_array_equal(out.targets, y)
    assert float(out.lam) == 1.0


def test_loss_is_soft_target_cross_entropy_and_rejects_unlabeled_batches():
  config = finetune_config.get_config("smoke")
  config.objective.update(mixup_alpha=0.0, cutmix_alpha=0.0)  # label smoothing only
  mesh, objective, state, step_fn = step_helpers._setup(config, jax.devices()[:1])
  batch = step_helpers._batch(config, mesh)
  views = step_helpers.draw_views(jax.random.PRNGKey(5), batch["image"], objective.views)
  loss_on = jax.jit(lambda b: objective.loss(state.params, state.batch_stats, state.extra,
                                             views, b, jax.random.PRNGKey(0), state.step))
  loss, out = loss_on(batch)
  logits, _ = jax.jit(lambda x: objective.apply(state.params, state.batch_stats, x,
                                                method=objective.network.project))(views[0])
  logp = jax.nn.log_softmax(logits["projection"])
  # timm's LabelSmoothingCrossEntropy: (1 - s) NLL + s * mean over classes of -log p.
  s, labels = 0.1, np.asarray(batch["label"])
  nll = -np.asarray(logp)[np.arange(len(labels)), labels]
  expected = np.mean((1 - s) * nll + s * -np.asarray(logp).mean(1))
  assert float(loss) == pytest.approx(expected, rel=1e-5)
  assert 0.0 <= float(out.metrics["top1"]) <= 100.0
  unlabeled = {**batch, "label": jnp.full_like(batch["label"], -1)}
  loss, _ = loss_on(unlabeled)
  assert np.isnan(float(loss))
  state, metrics = step_fn(state, batch)  # the default recipe mixes and steps
  assert np.isfinite(metrics["loss"]) and "mix_lambda" in metrics


def test_drop_path_draws_from_the_step_rng():
  config = config_overrides.override(finetune_config.get_config("smoke"), **{
      "model.backbone": "vit_test", "model.patch_size": 4, "model.drop_path": 0.5,
      "objective.mixup_alpha": 0.0, "objective.cutmix_alpha": 0.0})
  mesh, objective, state, _ = step_helpers._setup(config, jax.devices()[:1])
  batch = step_helpers._batch(config, mesh)
  views = step_helpers.draw_views(jax.random.PRNGKey(5), batch["image"], objective.views)
  loss = jax.jit(lambda rng: objective.loss(state.params, state.batch_stats, state.extra,
                                            views, batch, rng, state.step)[0])
  a, b = float(loss(jax.random.PRNGKey(0))), float(loss(jax.random.PRNGKey(1)))
  assert a == float(loss(jax.random.PRNGKey(0))) and a != b


def test_classifier_must_be_one_linear_layer():
  config = finetune_config.get_config("smoke")
  config.model.projector.num_layers = 2
  objective = train.build_objective(config)
  with pytest.raises(ValueError, match="num_layers=1"):
    objective.init_extra(jax.random.PRNGKey(0), {})


def test_top_k_accuracy():
  logits = np.array([[0.1, 0.9, 0.0], [0.8, 0.15, 0.05], [0.2, 0.3, 0.5]])
  labels = np.array([1, 1, 0])
  assert finetune_protocol.top_k_accuracy(logits, labels, 1) == pytest.approx(100 / 3)
  assert finetune_protocol.top_k_accuracy(logits, labels, 2) == pytest.approx(200 / 3)
  assert finetune_protocol.top_k_accuracy(logits, labels, 5) == 100.0


@pytest.fixture(scope="module")
def simclr_smoke_dir(tmp_path_factory, tfds_dir):
  workdir = str(tmp_path_factory.mktemp("simclr_smoke"))
  config = config_overrides.override(simclr_config.get_config("smoke"), **{
      "data.data_dir": tfds_dir, "eval.random_init_baseline": False,
      "eval.protocols": "knn", "eval.periodic_protocols": "knn"})
  train.train_and_evaluate(config, workdir)
  return workdir


@pytest.mark.slow
def test_finetunes_from_a_simclr_run_and_writes_finetune_json(tmp_path, tfds_dir,
                                                               simclr_smoke_dir):
  config = config_overrides.override(finetune_config.get_config("smoke"), **{
      "data.data_dir": tfds_dir, "model.init_from": simclr_smoke_dir,
      "eval.protocols": "finetune"})
  result = train.train_and_evaluate(config, str(tmp_path))
  assert int(result.state.step) == config.num_steps
  written = json.loads((tmp_path / "eval" / "finetune.json").read_text())
  assert written["init_from"] == simclr_smoke_dir
  assert written["init_from_objective"] == "simclr"
  assert written["step"] == config.num_steps and written["num_classes"] == 10
  assert 0.0 <= written["top1"] <= written["top5"] <= 100.0
  metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert any("train/top1" in m for m in metrics)


def test_finetune_protocol_refuses_a_run_without_a_classifier(tmp_path, tfds_dir):
  config = config_overrides.override(simclr_config.get_config("smoke"), **{
      "data.data_dir": tfds_dir, "eval.protocols": "finetune",
      "eval.periodic_protocols": "knn"})
  with pytest.raises(ValueError, match="remove 'finetune' from config.eval.protocols"):
    train.train_and_evaluate(config, str(tmp_path))


def _unlabeled_folder(root, count=40):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  root.mkdir()
  rng = np.random.default_rng(0)
  for i in range(count):
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / f"{i}.png")
  return str(root)


@pytest.mark.parametrize("case", ["unlabeled", "head_size"])
def test_finetune_refuses_unlabeled_data_and_a_wrong_head_before_training(
    case, tmp_path, tfds_dir):
  config = config_overrides.override(finetune_config.get_config("smoke"), **{
      "data.data_dir": tfds_dir, "eval.protocols": "finetune"})
  if case == "unlabeled":
    config.data.update(name="image_folder", data_dir=_unlabeled_folder(tmp_path / "photos"))
    match = "Fine-tuning needs labels"
  else:
    config.model.projector.output_dim = 5
    match = "output_dim=10"
  with pytest.raises(ValueError, match=match):
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert not list((tmp_path / "run").glob("checkpoints/[0-9]*"))  # failed before step 0
