"""Linear probe, few-shot and RankMe against scikit-learn, numpy and their
formulas; 8 devices against 1; the three protocols through a fake context."""

import json
import os

import jax
import ml_collections
import numpy as np
import pytest
from scipy import special
from sklearn import datasets
from sklearn import linear_model
from sklearn import model_selection
from sklearn import preprocessing

from repr_learn import parallel
from repr_learn.evaluation import fewshot
from repr_learn.evaluation import linear_probe
from repr_learn.evaluation import probe_protocols
from repr_learn.evaluation import protocols
from repr_learn.evaluation import rankme

PROBE_KEYS = {"top1", "top5", "lr", "weight_decay", "learning_rate", "val_top1", "grid",
              "variant", "epochs", "batch_size", "standardized", "num_train", "num_val",
              "num_test", "feature_dim"}


@pytest.fixture(scope="module")
def pixels():
  """scikit-learn's digits as 64 raw pixels: 1437 train, 360 test examples."""
  x, y = datasets.load_digits(return_X_y=True)
  return model_selection.train_test_split(x.astype(np.float32), y, test_size=360,
                                          random_state=0, stratify=y)


@pytest.fixture(scope="module")
def digits(pixels):
  """Digits-sized features: the pixels through a fixed random ReLU projection to 512-d."""
  proj = np.random.default_rng(0).standard_normal((64, 512)) / 8
  train_x, test_x, train_y, test_y = pixels
  return (np.maximum(train_x @ proj, 0).astype(np.float32),
          np.maximum(test_x @ proj, 0).astype(np.float32), train_y, test_y)


@pytest.fixture(scope="module")
def sklearn_top1(pixels):
  """LogisticRegression(C=1) on z-scored pixels: (test top-1, the classifier)."""
  train_x, test_x, train_y, test_y = pixels
  scaler = preprocessing.StandardScaler().fit(train_x)
  clf = linear_model.LogisticRegression(C=1.0, max_iter=10000, tol=1e-6)
  clf.fit(scaler.transform(train_x), train_y)
  return 100 * clf.score(scaler.transform(test_x), test_y), clf


def _one_device_mesh():
  return parallel.make_mesh(jax.devices()[:1])


def _objective(w, b, x, y, wd):
  log_p = special.log_softmax(x @ w + b, axis=1)
  return -log_p[np.arange(len(y)), y].mean() + 0.5 * wd * np.sum(w ** 2)


def test_standardize_matches_standard_scaler(digits):
  train_x, test_x, _, _ = digits
  train_x = train_x.copy()
  train_x[:, 3] = 2.0  # A constant feature keeps scale 1, as in scikit-learn.
  scaler = preprocessing.StandardScaler().fit(train_x)
  ours = linear_probe.standardize(train_x, test_x)
  np.testing.assert_allclose(ours[0], scaler.transform(train_x), atol=1e-5)
  np.testing.assert_allclose(ours[1], scaler.transform(test_x), atol=1e-5)


def test_same_objective_as_logistic_regression(pixels, sklearn_top1):
  """With wd = 1/(N C) the probe minimises LogisticRegression(C)'s objective:
  it gets there (to within 2% of the optimum) and to its top-1 within a point."""
  train_x, test_x, train_y, test_y = pixels
  expected_top1, clf = sklearn_top1
  xs, xt = linear_probe.standardize(train_x, test_x)
  wd = 1.0 / len(xs)
  mesh = parallel.make_mesh()
  params, norm = linear_probe.fit(xs, train_y, num_classes=10, mesh=mesh, variant="standard",
                                lrs=[1.0], weight_decays=[wd], epochs=90, batch_size=256)
  top1, top5 = linear_probe.accuracy(params, norm, xt, test_y, mesh=mesh, variant="standard",
                                     batch_size=256)
  assert abs(top1[0] - expected_top1) <= 1.0, (top1, expected_top1)
  assert top5[0] >= top1[0]
  optimum = _objective(clf.coef_.T, clf.intercept_, xs, train_y, wd)
  ours = _objective(np.asarray(params["w"][0]), np.asarray(params["b"][0]), xs, train_y, wd)
  assert ours == pytest.approx(optimum, rel=0.02)
  # Standardising on device (the probe's way) trains the same classifier.
  on_device = linear_probe.fit(train_x, train_y, num_classes=10, mesh=mesh, variant="standard",
                               lrs=[1.0], weight_decays=[wd], epochs=90, batch_size=256,
                               stats=linear_probe.feature_stats(train_x))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4),
               jax.device_get(on_device[0]), jax.device_get(params))


def test_grid_search_probe(pixels, sklearn_top1):
  train_x, test_x, train_y, test_y = pixels
  result = linear_probe.linear_probe(train_x, train_y, test_x, test_y, num_classes=10,
                                     mesh=parallel.make_mesh())
  assert PROBE_KEYS <= set(result)
  json.dumps(result)
  grid = result["grid"]
  assert len(grid) == len(linear_probe.DEFAULT_LRS["standard"]) * len(
      linear_probe.DEFAULT_WEIGHT_DECAYS["standard"])
  best = max(grid, key=lambda g: g["val_top1"])  # max keeps the first of ties.
  assert (result["lr"], result["weight_decay"]) == (best["lr"], best["weight_decay"])
  assert result["val_top1"] == best["val_top1"]
  assert result["num_val"] == round(0.2 * len(train_x))
  assert result["num_train"] == len(train_x) and result["num_test"] == len(test_x)
  assert result["standardized"] and result["variant"] == "standard"
  assert abs(result["top1"] - sklearn_top1[0]) <= 1.0, (result["top1"], sklearn_top1[0])


def test_mae_variant(digits):
  """BatchNorm + LARS trains; test-time BatchNorm uses running statistics, so
  a prediction does not depend on the rest of its batch."""
  train_x, test_x, train_y, test_y = digits
  mesh = parallel.make_mesh()
  result = linear_probe.linear_probe(train_x, train_y, test_x, test_y, num_classes=10,
                                     mesh=mesh, variant="mae", epochs=30)
  assert result["variant"] == "mae" and not result["standardized"]
  assert {g["weight_decay"] for g in result["grid"]} == {0.0}
  assert result["top1"] > 93, result
  params, norm = linear_probe.fit(train_x, train_y, num_classes=10, mesh=mesh, variant="mae",
                                lrs=[result["lr"]], weight_decays=[0.0], epochs=30,
                                batch_size=256)
  # Running averages of the batch statistics approach the data's.
  np.testing.assert_allclose(norm["mean"], train_x.mean(0), rtol=0.1, atol=0.05)
  np.testing.assert_allclose(norm["var"], train_x.var(0), rtol=0.25, atol=0.05)
  full = linear_probe.accuracy(params, norm, test_x, test_y, mesh=mesh, variant="mae",
                               batch_size=256)
  small = linear_probe.accuracy(params, norm, test_x, test_y, mesh=mesh, variant="mae",
                                batch_size=64)
  np.testing.assert_allclose(full, small)
  assert full[0][0] == result["top1"]  # The probe's refit, step for step.


@pytest.mark.parametrize("variant", linear_probe.VARIANTS)
def test_eight_devices_match_one_device(digits, variant):
  """Two grid points trained on 1 and on 8 devices: the same parameters, BatchNorm
  statistics and accuracies, up to summation order."""
  train_x, test_x, train_y, test_y = digits
  assert len(jax.devices()) == 8
  if variant == "standard":  # Standardised as the probe trains on them.
    train_x, test_x = linear_probe.standardize(train_x, test_x)
  # Rates that train in 10 steps, so the comparison is not between two inits.
  lrs, wds = ([0.3, 3.0], [0.0, 1e-3]) if variant == "standard" else ([10.0, 30.0], [0.0, 0.0])
  runs = []
  for mesh in (_one_device_mesh(), parallel.make_mesh()):
    params, norm = linear_probe.fit(train_x[:500], train_y[:500], num_classes=10, mesh=mesh,
                                  variant=variant, lrs=lrs, weight_decays=wds,
                                  epochs=5, batch_size=256, seed=3)
    top1, top5 = linear_probe.accuracy(params, norm, test_x, test_y, mesh=mesh,
                                       variant=variant, batch_size=256)
    runs.append(jax.device_get((params, norm, top1, top5)))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), *runs)
  assert runs[1][2].max() > 70, runs[1][2]


def test_probe_rejects_bad_inputs(digits):
  train_x, test_x, train_y, test_y = digits
  mesh = parallel.make_mesh()
  with pytest.raises(ValueError, match="variant"):
    linear_probe.linear_probe(train_x, train_y, test_x, test_y, num_classes=10, mesh=mesh,
                              variant="nope")
  with pytest.raises(ValueError, match="divisible"):
    linear_probe.linear_probe(train_x, train_y, test_x, test_y, num_classes=10, mesh=mesh,
                              batch_size=100)
  with pytest.raises(ValueError, match="labels"):
    linear_probe.linear_probe(train_x, train_y, test_x, test_y, num_classes=5, mesh=mesh)


# Few-shot.


def _numpy_ridge(x, y, num_classes, l2):
  """big_vision's recipe as plain least squares: [X; sqrt(l2) I] W ~ [Y; 0]."""
  mean, std = x.mean(0), x.std(0) + 1e-5
  xb = np.concatenate([(x - mean) / std, np.full((len(x), 1), 100.0)], 1)
  targets = 2.0 * np.eye(num_classes)[y] - 1.0
  dim = xb.shape[1]
  a = np.concatenate([xb, np.sqrt(l2) * np.eye(dim)])
  b = np.concatenate([targets, np.zeros((dim, num_classes))])
  w = np.linalg.lstsq(a, b, rcond=None)[0]
  return lambda t: np.argmax(np.concatenate([(t - mean) / std, np.full((len(t), 1), 100.0)],
                                            1) @ w, 1), w


@pytest.mark.parametrize("dim", [6, 40])  # More rows than columns, and fewer.
def test_fewshot_solution_is_numpy_least_squares(dim):
  rng = np.random.default_rng(dim)
  centres = rng.normal(size=(4, dim))
  y = np.repeat(np.arange(4), 5)
  x = (centres[y] + rng.normal(size=(20, dim))).astype(np.float64)
  test_y = np.repeat(np.arange(4), 30)
  test_x = centres[test_y] + 1.5 * rng.normal(size=(120, dim))
  for l2 in (1.0, 1024.0):
    predict, w = _numpy_ridge(x, y, 4, l2)
    model = fewshot.fit_least_squares(x, y, num_classes=4, l2_reg=l2)
    np.testing.assert_allclose(model["w"], w, rtol=2e-3, atol=2e-4 * np.abs(w).max())
    expected = 100 * np.mean(predict(test_x) == test_y)
    assert fewshot.accuracy(model, test_x, test_y) == pytest.approx(expected)


def test_fewshot_protocol_numbers_and_skipping():
  rng = np.random.default_rng(0)
  centres = 3 * rng.normal(size=(5, 16))
  train_y = np.concatenate([np.repeat(np.arange(5), 12), [0, 1]])  # Smallest class: 12.
  train_x = centres[train_y] + rng.normal(size=(len(train_y), 16))
  test_y = np.repeat(np.arange(5), 20)
  test_x = centres[test_y] + rng.normal(size=(100, 16))
  result = fewshot.fewshot(train_x, train_y, test_x, test_y, num_classes=5,
                           shots=(1, 5, 10, 25), num_seeds=3, l2_reg=4.0)
  json.dumps(result)
  assert result["shots"] == [1, 5, 10, 25] and result["min_examples_per_class"] == 12
  assert set(result["skipped"]) == {"25"} and "25shot_top1" not in result
  for shots in (1, 5, 10):
    per_seed = []
    for seed in range(3):
      rows = fewshot.sample_shots(train_y, 5, shots, seed)
      assert np.array_equal(np.bincount(train_y[rows], minlength=5), np.full(5, shots))
      predict, _ = _numpy_ridge(train_x[rows], train_y[rows], 5, 4.0)
      per_seed.append(100 * np.mean(predict(test_x) == test_y))
    np.testing.assert_allclose(result["per_seed"][str(shots)], per_seed)
    assert result[f"{shots}shot_top1"] == pytest.approx(np.mean(per_seed))
    assert result[f"{shots}shot_top1_std"] == pytest.approx(np.std(per_seed))
  # As in big_vision, a seed's larger shot sets contain its smaller ones.
  assert set(fewshot.sample_shots(train_y, 5, 1, 7)) <= set(fewshot.sample_shots(train_y, 5, 5, 7))


# RankMe and uniformity.


def test_rankme_formula():
  z = np.random.default_rng(0).normal(size=(50, 20)) @ np.diag(np.linspace(0.1, 3, 20))
  s = np.linalg.svd(z, compute_uv=False)
  p = s / s.sum() + 1e-7
  assert rankme.rankme(z) == pytest.approx(np.exp(-np.sum(p * np.log(p))), rel=1e-10)
  assert rankme.rankme(7.5 * z) == pytest.approx(rankme.rankme(z), rel=1e-9)  # Scale-free.
  assert rankme.rankme(np.zeros((4, 3))) == 0.0


@pytest.mark.parametrize("rank", [1, 3, 16])
def test_rankme_of_known_rank(rank):
  rng = np.random.default_rng(rank)
  u = np.linalg.qr(rng.normal(size=(200, rank)))[0]
  v = np.linalg.qr(rng.normal(size=(32, rank)))[0]
  z = 4.0 * u @ v.T  # `rank` equal singular values, the other 32 - rank zero.
  assert rankme.rankme(z) == pytest.approx(rank, rel=1e-4)


def test_uniformity_matches_pairwise_formula():
  z = np.random.default_rng(1).normal(size=(70, 5))
  x = z / np.linalg.norm(z, axis=1, keepdims=True)
  i, j = np.triu_indices(70, k=1)  # Wang & Isola: torch.pdist's pairs.
  expected = np.log(np.mean(np.exp(-2 * np.sum((x[i] - x[j]) ** 2, 1))))
  assert rankme.uniformity(z, chunk_size=16) == pytest.approx(expected, rel=1e-5)
  assert rankme.uniformity(z, chunk_size=128) == pytest.approx(expected, rel=1e-5)
  assert rankme.uniformity(np.ones((10, 3))) == pytest.approx(0.0, abs=1e-6)  # Collapse.


def test_subsample():
  z = np.arange(20).reshape(10, 2)
  assert rankme.subsample(z, 0) is z and rankme.subsample(z, 10) is z
  rows = rankme.subsample(z, 4, seed=1)
  assert rows.shape == (4, 2) and np.array_equal(rows, rankme.subsample(z, 4, seed=1))


# The protocols.


def probe_config(**eval_overrides) -> ml_collections.ConfigDict:
  """The fields the three protocols read (config_schema's c.eval additions)."""
  config = ml_collections.ConfigDict({"seed": 0, "eval": {
      "linear_variant": "standard", "linear_epochs": 90, "linear_batch_size": 256,
      "linear_lrs": (), "linear_weight_decays": (), "linear_val_fraction": 0.2,
      "linear_standardize": True, "linear_features": "pooled",
      "fewshot_shots": (1, 5, 10, 25), "fewshot_seeds": 5,
      "fewshot_l2_reg": 1024.0, "rankme_max_examples": 25600, "dims": ()}})
  config.eval.update(eval_overrides)
  return config


class FakeContext:
  """EvalContext's interface over fixed features."""

  def __init__(self, config, splits_data, mesh):
    self.config, self.mesh, self._data = config, mesh, splits_data
    self.splits = ("train", "test")

  def backbone_features(self, state, split):
    del state
    return self._data[split]

  def labeled_features(self, state, split, protocol):
    x, y = self.backbone_features(state, split)
    if np.any(y < 0):
      raise protocols.LabelsRequiredError(f"{protocol} needs labels")
    return x, y

  def num_classes(self, *labels):
    return int(max(y.max() for y in labels)) + 1

  def describe(self):
    return {"dataset": "digits", "train_split": "train", "test_split": "test"}


def test_protocols_write_their_documented_keys(digits, tmp_path):
  train_x, test_x, train_y, test_y = digits
  config = probe_config(linear_epochs=30, linear_lrs=(0.1, 1.0), linear_weight_decays=(0.0, 1e-3),
                        fewshot_shots=(1, 10), fewshot_seeds=2, rankme_max_examples=300)
  context = FakeContext(config,
                        {"train": (train_x, train_y), "test": (test_x, test_y)},
                        parallel.make_mesh())
  objects = [probe_protocols.LinearProtocol(context), probe_protocols.FewshotProtocol(context),
             probe_protocols.RankMeProtocol(context)]
  results = protocols.run(objects, state=None, step=7, workdir=str(tmp_path))
  for name in ("linear", "fewshot", "rankme"):
    with open(os.path.join(tmp_path, protocols.EVAL_DIR, f"{name}.json")) as f:
      assert json.load(f) == json.loads(json.dumps(results[name]))
  linear = results["linear"]
  assert PROBE_KEYS | {"step", "seconds", "dataset"} <= set(linear) and linear["step"] == 7
  assert linear["top1"] > 90 and len(linear["grid"]) == 4
  few = results["fewshot"]
  assert {"1shot_top1", "1shot_top1_std", "10shot_top1", "per_seed"} <= set(few)
  assert few["num_seeds"] == 2 and len(few["per_seed"]["10"]) == 2
  assert few["1shot_top1"] < few["10shot_top1"] and few["skipped"] == {}
  rank = results["rankme"]
  assert {"rankme", "uniformity", "feature_dim", "num_examples", "num_available"} <= set(rank)
  assert (rank["feature_dim"], rank["num_examples"], rank["num_available"]) == (512, 300, 360)
  assert 1 < rank["rankme"] <= 300 and -4.5 < rank["uniformity"] < 0
  scalars = protocols.scalars(results)
  assert {"linear/top1", "linear/top5", "fewshot/10shot_top1", "rankme/rankme"} <= set(scalars)


def test_rankme_needs_no_labels_and_the_probes_do(digits):
  train_x, test_x, _, _ = digits
  unlabeled = np.full(len(test_x), -1)
  context = FakeContext(probe_config(rankme_max_examples=300),
                        {"train": (train_x, np.full(len(train_x), -1)),
                         "test": (test_x, unlabeled)}, parallel.make_mesh())
  assert probe_protocols.RankMeProtocol(context).evaluate(None, 0)["num_examples"] == 300
  for cls in (probe_protocols.LinearProtocol, probe_protocols.FewshotProtocol):
    with pytest.raises(protocols.LabelsRequiredError):
      cls(context).evaluate(None, 0)
