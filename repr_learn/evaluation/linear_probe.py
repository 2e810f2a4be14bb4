"""Linear probe on frozen features, trained like the encoder: over the mesh.

A softmax classifier is trained on host-resident features streamed in
mini-batches (batch-sharded over the mesh's data axis, parameters replicated,
the loss a mean over the global batch), so ImageNet-sized feature sets never
have to fit on one device, and are never copied on the host either: subsets
are row indices, and standardisation happens on device. The whole
learning-rate x weight-decay grid trains at once as a leading axis of the
parameters: one pass over the data, one compiled program, the same mini-batches
for every grid point. The grid is scored on a held-out part of the train
split; the chosen point is then refit on the whole train split and scored on
the test split.

Two variants:
  standard  features z-scored with train-split statistics, SGD with momentum
            0.9, coupled (L2) weight decay on the weights, cosine schedule,
            zero init: the objective of scikit-learn's LogisticRegression with
            C = 1 / (N wd).
  mae       MAE's `main_linprobe.py`: BatchNorm without affine (eps 1e-6,
            running averages with momentum 0.9 for test time) before the linear
            layer, weights initialised N(0, 0.01), LARS (momentum 0.9, trust
            0.001, weight decay 0), 10 of 90 epochs of warm-up then cosine.
Learning rates are base rates, scaled by batch / 256 as MAE, MoCo and DINO do.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from repr_learn import parallel

VARIANTS = ("standard", "mae")
# The variants' grids when none is given. Standard: a decade either side of
# the usual base rate for z-scored features. MAE: its blr 0.1 and wd 0, plus
# larger rates, since LARS with trust 0.001 moves the N(0, 0.01) weights by
# about lr x 1% a step and MAE's 0.1 relies on ImageNet's ~7k steps.
DEFAULT_LRS = {"standard": (0.01, 0.1, 1.0), "mae": (0.1, 1.0, 10.0)}
DEFAULT_WEIGHT_DECAYS = {"standard": (0.0, 1e-4, 1e-3, 1e-2), "mae": (0.0,)}
WARMUP_FRACTION = {"standard": 0.0, "mae": 10 / 90}  # MAE: 10 of 90 epochs
MOMENTUM = 0.9
TRUST_COEFFICIENT = 0.001   # MAE's LARS
BN_EPSILON = 1e-6           # MAE: BatchNorm1d(affine=False, eps=1e-6)
BN_MOMENTUM = 0.9           # running = 0.9 running + 0.1 batch (PyTorch's 0.1)
MAE_INIT_STD = 0.01         # MAE: trunc_normal_(head.weight, std=0.01)
# Host -> device traffic comes in chunks of up to this many steps' batches
# (bounded in bytes), trained by one compiled scan: per-step dispatch and
# transfer costs would otherwise dominate on small feature sets.
MAX_CHUNK_STEPS = 32
MAX_CHUNK_BYTES = 64 << 20
_STATS_ROWS = 1 << 16  # rows per float64 pass when computing feature statistics


def feature_stats(x: np.ndarray, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
  """{'mean', 'std'} [D] of x (or of its `rows`), accumulated in float64 over
  row blocks; features constant there get std 1 (scikit-learn's StandardScaler)."""
  rows = np.arange(len(x)) if rows is None else np.asarray(rows)
  if not len(rows):
    raise ValueError("Feature statistics need at least one row.")
  blocks = [rows[i:i + _STATS_ROWS] for i in range(0, len(rows), _STATS_ROWS)]
  mean = sum(np.asarray(x[b], np.float64).sum(0) for b in blocks) / len(rows)
  var = sum(np.square(np.asarray(x[b], np.float64) - mean).sum(0) for b in blocks) / len(rows)
  std = np.sqrt(var)
  std = np.where(std > 1e-8 * max(float(std.max(initial=0.0)), 1.0), std, 1.0)
  return {"mean": mean.astype(np.float32), "std": std.astype(np.float32)}


def standardize(train_x: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
  """Every array z-scored with the statistics of `train_x` (copies; the probe
  itself standardises on device)."""
  stats = feature_stats(train_x)
  return [((np.asarray(x, np.float64) - stats["mean"]) / stats["std"]).astype(np.float32)
          for x in (train_x, *others)]


def schedule_factor(step: int, total_steps: int, warmup_steps: int) -> float:
  """Linear warm-up to 1, then cosine to 0 at `total_steps` (MAE, DINO)."""
  if step < warmup_steps:
    return (step + 1) / warmup_steps
  progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
  return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def _weights_only(params):
  # Weight decay and LARS adaptation for the matrix, not the bias (MAE's LARS:
  # p.ndim > 1).
  return {"w": True, "b": False}


def _optimizer(variant: str) -> optax.GradientTransformation:
  """The variant's optimizer with learning rate and weight decay as state, so
  one compiled step serves every grid point and every schedule value."""

  def make(learning_rate, weight_decay):
    if variant == "mae":
      # MAE's util/lars.py: decay and trust ratio on matrices, then momentum,
      # then the learning rate (optax.lars applies the rate before momentum).
      return optax.chain(
          optax.add_decayed_weights(weight_decay, mask=_weights_only),
          optax.masked(optax.scale_by_trust_ratio(trust_coefficient=TRUST_COEFFICIENT,
                                                  eps=0.0), _weights_only),
          optax.trace(decay=MOMENTUM),
          optax.scale_by_learning_rate(learning_rate))
    return optax.chain(optax.add_decayed_weights(weight_decay, mask=_weights_only),
                       optax.sgd(learning_rate, momentum=MOMENTUM))

  return optax.inject_hyperparams(make)(learning_rate=0.0, weight_decay=0.0)


class _Programs:
  """The compiled init, train chunk and eval chunk of one (mesh, variant).

  Parameters are [G, ...] for G grid points and batches [B, K, ...] (K steps,
  the batch axis sharded); jax.jit keeps one executable per shape, so a probe
  compiles each function once for the grid and once for the refit, and later
  probes (the random-init baseline) reuse them.

  `norm` is the feature normalisation: fixed {'mean', 'std'} (standard) or
  BatchNorm's running {'mean', 'var'} (mae), updated by training steps only.
  """

  def __init__(self, mesh, variant: str):
    tx = _optimizer(variant)
    rep, data = parallel.replicated(mesh), parallel.batch_sharded(mesh)

    def normalize(x, mask, norm, train):
      if variant != "mae":
        return (x - norm["mean"]) / norm["std"], norm
      if train:
        # Batch statistics over the real rows of the global batch.
        count = jnp.maximum(jnp.sum(mask), 1.0)
        mean = jnp.sum(x * mask[:, None], 0) / count
        var = jnp.sum(jnp.square(x - mean) * mask[:, None], 0) / count
        norm = {"mean": BN_MOMENTUM * norm["mean"] + (1 - BN_MOMENTUM) * mean,
                "var": BN_MOMENTUM * norm["var"] + (1 - BN_MOMENTUM) * var}
      else:
        mean, var = norm["mean"], norm["var"]
      return (x - mean) * jax.lax.rsqrt(var + BN_EPSILON), norm

    def init(params):
      return jax.vmap(tx.init)(params)

    def train_step(state, x, y, mask, lrs, wds, factor):
      params, opt_state, norm = state
      x, norm = normalize(x, mask, norm, train=True)

      def loss_fn(params):
        logits = jnp.einsum("bd,gdc->gbc", x, params["w"]) + params["b"][:, None, :]
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, y[None])
        # Grid points are independent: the sum of their means has each one's
        # gradient in its own slice.
        return jnp.sum(ce * mask) / jnp.maximum(jnp.sum(mask), 1.0)

      loss, grads = jax.value_and_grad(loss_fn)(params)

      def update(p, s, g, lr, wd):
        s = s._replace(hyperparams={**s.hyperparams, "learning_rate": lr * factor,
                                    "weight_decay": wd})
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

      params, opt_state = jax.vmap(update)(params, opt_state, grads, lrs, wds)
      return (params, opt_state, norm), loss / lrs.shape[0]

    def train_chunk(state, x, y, mask, lrs, wds, factors):
      def body(state, step):
        x, y, mask, factor = step
        return train_step(state, x, y, mask, lrs, wds, factor)

      return jax.lax.scan(body, state, (jnp.swapaxes(x, 0, 1), y.T, mask.T, factors))

    def eval_chunk(params, norm, x, y, mask):
      # Steps are independent at test time: all of them at once, summed.
      x, _ = normalize(x, mask, norm, train=False)
      out = jnp.einsum("bkd,gdc->gbkc", x, params["w"]) + params["b"][:, None, None, :]
      _, top = jax.lax.top_k(out, min(5, out.shape[-1]))
      hit = top == y[None, :, :, None]
      return (jnp.sum(hit[..., 0] * mask, (1, 2)),
              jnp.sum(jnp.any(hit, -1) * mask, (1, 2)))

    self.init = jax.jit(init, in_shardings=(rep,), out_shardings=rep)
    self.train_chunk = jax.jit(
        train_chunk, in_shardings=(rep, data, data, data, rep, rep, rep),
        out_shardings=(rep, rep), donate_argnums=0)
    self.eval_chunk = jax.jit(eval_chunk, in_shardings=(rep, rep, data, data, data),
                              out_shardings=(rep, rep))


@functools.lru_cache(maxsize=None)
def _programs(mesh, variant: str) -> _Programs:
  return _Programs(mesh, variant)


def _chunk_steps(batch_size: int, width: int, total: int | None = None) -> int:
  """Steps per chunk within the byte budget; for training, a divisor of the
  `total` steps, so no chunk needs padding steps (which would have to be
  masked out of the optimizer and BatchNorm state, at a price in compile time)."""
  cap = int(max(1, min(MAX_CHUNK_STEPS, MAX_CHUNK_BYTES // (4 * batch_size * width))))
  if total is None:
    return cap
  return max(k for k in range(1, min(cap, total) + 1) if total % k == 0)


def _device_chunk(x, y, steps: list[np.ndarray], batch_size: int, chunk: int, mesh):
  """The rows of each of `steps` (padded with empty steps to `chunk`), each
  padded to the global batch with mask 0, as [B, K, ...] arrays sharded over
  B; each process contributes its slice of the same host batches."""
  idx = np.zeros((batch_size, chunk), np.int64)
  mask = np.zeros((batch_size, chunk), np.float32)
  for k, rows in enumerate(steps):
    idx[:len(rows), k] = rows
    mask[:len(rows), k] = 1.0
  per = batch_size // jax.process_count()
  local = slice(jax.process_index() * per, (jax.process_index() + 1) * per)
  idx, mask = idx[local], mask[local]
  return parallel.global_batch(
      {"x": np.asarray(x[idx], np.float32), "y": np.asarray(y[idx], np.int32), "mask": mask},
      mesh)


def fit(x: np.ndarray, y: np.ndarray, *, num_classes: int, mesh, variant: str,
        lrs, weight_decays, epochs: int, batch_size: int, rows: np.ndarray | None = None,
        stats: dict[str, np.ndarray] | None = None, seed: int = 0):
  """Trains one classifier per (lr, wd) pair (`lrs[i]`, `weight_decays[i]`, base
  rates) in a single pass over `rows` of (x, y) (default: all).

  `stats` ({'mean', 'std'}, standard variant only) z-scores the features on
  device; without it they are used as given. Returns (params {w: [G, D, C],
  b: [G, C]}, norm) for `accuracy`.
  """
  if variant not in VARIANTS:
    raise ValueError(f"Unknown linear probe variant {variant!r}; choose one of {VARIANTS}.")
  parallel.check_batch_size(batch_size, mesh, "config.eval.linear_batch_size")
  rows = np.arange(len(x)) if rows is None else np.asarray(rows)
  if not len(rows):
    raise ValueError("The linear probe needs at least one training example.")
  if epochs < 1:
    raise ValueError(f"config.eval.linear_epochs={epochs} must be at least 1.")
  if stats is not None and variant == "mae":
    raise ValueError("The mae variant standardises with BatchNorm; pass no stats.")
  programs = _programs(mesh, variant)
  rng = np.random.default_rng(seed)
  dim, g = x.shape[1], len(lrs)
  w = np.zeros((dim, num_classes), np.float32)
  if variant == "mae":
    w = (MAE_INIT_STD * rng.standard_normal((dim, num_classes))).astype(np.float32)
    norm = {"mean": np.zeros(dim, np.float32), "var": np.ones(dim, np.float32)}
  else:
    norm = stats or {"mean": np.zeros(dim, np.float32), "std": np.ones(dim, np.float32)}
  rep = parallel.replicated(mesh)
  params = jax.device_put({"w": np.broadcast_to(w, (g, dim, num_classes)),
                           "b": np.zeros((g, num_classes), np.float32)}, rep)
  state = (params, programs.init(params), jax.device_put(norm, rep))
  lrs = jax.device_put(np.asarray(lrs, np.float32) * (batch_size / 256), rep)
  wds = jax.device_put(np.asarray(weight_decays, np.float32), rep)
  # Near-equal batches: no straggler step on a handful of examples.
  steps_per_epoch = -(-len(rows) // batch_size)
  total = epochs * steps_per_epoch
  warmup = int(round(WARMUP_FRACTION[variant] * total))
  factors = np.array([schedule_factor(t, total, warmup) for t in range(total)], np.float32)
  chunk = _chunk_steps(batch_size, dim, total)
  steps = (batch for _ in range(epochs)
           for batch in np.array_split(rows[rng.permutation(len(rows))], steps_per_epoch))
  for start in range(0, total, chunk):
    batch = _device_chunk(x, y, [next(steps) for _ in range(chunk)], batch_size, chunk, mesh)
    state, _ = programs.train_chunk(state, batch["x"], batch["y"], batch["mask"], lrs, wds,
                                    factors[start:start + chunk])
  return state[0], state[2]


def accuracy(params, norm, x: np.ndarray, y: np.ndarray, *, mesh, variant: str,
             batch_size: int, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Top-1 and top-5 accuracy in percent on `rows` of (x, y) (default: all),
  [G] each (top-5 is top-C below 5 classes)."""
  programs = _programs(mesh, variant)
  rows = np.arange(len(x)) if rows is None else np.asarray(rows)
  batches = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
  # The chunk's logits [G, B, K, C] stay within the byte budget too; a small
  # eval set gets a short chunk rather than padding.
  num_grid, num_classes = params["b"].shape
  chunk = min(_chunk_steps(batch_size, max(x.shape[1], num_grid * num_classes)),
              len(batches))
  top1, top5 = 0.0, 0.0
  for start in range(0, len(batches), chunk):
    batch = _device_chunk(x, y, batches[start:start + chunk], batch_size, chunk, mesh)
    c1, c5 = parallel.local_copy(programs.eval_chunk(params, norm, batch["x"], batch["y"],
                                                     batch["mask"]))
    top1, top5 = top1 + c1.astype(np.float64), top5 + c5.astype(np.float64)
  return 100.0 * top1 / len(rows), 100.0 * top5 / len(rows)


def split_train_val(num: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Random (train rows, held-out rows) of the train split, each non-empty."""
  if not 0 < val_fraction < 1:
    raise ValueError(f"val_fraction={val_fraction} must lie in (0, 1).")
  if num < 2:
    raise ValueError(f"Cannot hold out part of {num} training example(s).")
  perm = np.random.default_rng(seed + 1).permutation(num)
  num_val = min(max(int(round(val_fraction * num)), 1), num - 1)
  return np.sort(perm[num_val:]), np.sort(perm[:num_val])


def linear_probe(train_x, train_y, test_x, test_y, *, num_classes: int, mesh,
                 variant: str = "standard", lrs=(), weight_decays=(),
                 epochs: int = 90, batch_size: int = 256,
                 val_fraction: float = 0.2, standardize_features: bool = True,
                 seed: int = 0) -> dict:
  """Top-1/top-5 (percent) on the test split of the linear classifier whose
  (lr, wd) won on a held-out `val_fraction` of the train split, refit on all of it.

  `lrs` and `weight_decays` (empty: the variant's defaults) span the grid;
  with a single point nothing is held out. Standardisation uses the whole
  train split's statistics, for the grid and the refit alike; the MAE variant
  ignores `standardize_features` (its BatchNorm standardises).
  """
  if variant not in VARIANTS:
    raise ValueError(f"Unknown linear probe variant {variant!r}; choose one of {VARIANTS}.")
  lrs = tuple(float(v) for v in (lrs or DEFAULT_LRS[variant]))
  weight_decays = tuple(float(v) for v in (weight_decays or DEFAULT_WEIGHT_DECAYS[variant]))
  train_x, test_x = np.asarray(train_x), np.asarray(test_x)  # No copy of numpy input.
  train_y, test_y = np.asarray(train_y, np.int32), np.asarray(test_y, np.int32)
  if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
    raise ValueError(f"Feature shapes {train_x.shape} and {test_x.shape} must be "
                     "[num, dim] with the same dim.")
  if train_y.shape != train_x.shape[:1] or test_y.shape != test_x.shape[:1]:
    raise ValueError("Labels must be 1-D with exactly one label per feature row.")
  for name, labels in (("train", train_y), ("test", test_y)):
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
      raise ValueError(f"{name} labels must lie in [0, {num_classes}).")
  if not len(test_y):
    raise ValueError("The test set is empty.")
  grid = [(lr, wd) for lr in lrs for wd in weight_decays]
  if not grid:
    raise ValueError("The linear probe's learning-rate and weight-decay grids are empty.")
  standardized = bool(standardize_features and variant == "standard")
  stats = feature_stats(train_x) if standardized else None
  common = dict(num_classes=num_classes, mesh=mesh, variant=variant, epochs=epochs,
                batch_size=batch_size, stats=stats, seed=seed)
  result = {"variant": variant, "epochs": int(epochs), "batch_size": int(batch_size),
            "standardized": standardized, "num_train": int(len(train_y)),
            "num_test": int(len(test_y)), "feature_dim": int(train_x.shape[1])}
  if len(grid) > 1:
    fit_rows, val_rows = split_train_val(len(train_y), val_fraction, seed)
    params, norm = fit(train_x, train_y, rows=fit_rows, lrs=[p[0] for p in grid],
                       weight_decays=[p[1] for p in grid], **common)
    val_top1, _ = accuracy(params, norm, train_x, train_y, rows=val_rows, mesh=mesh,
                           variant=variant, batch_size=batch_size)
    best = int(np.argmax(val_top1))  # Ties: the first in grid order.
    result.update(num_val=int(len(val_rows)), val_top1=float(val_top1[best]),
                  grid=[{"lr": lr, "weight_decay": wd, "val_top1": float(v)}
                        for (lr, wd), v in zip(grid, val_top1)])
  else:
    best = 0
    result.update(num_val=0, grid=[])
  lr, wd = grid[best]
  params, norm = fit(train_x, train_y, lrs=[lr], weight_decays=[wd], **common)
  top1, top5 = accuracy(params, norm, test_x, test_y, mesh=mesh, variant=variant,
                        batch_size=batch_size)
  result.update(top1=float(top1[0]), lr=lr, weight_decay=wd,
                learning_rate=lr * batch_size / 256)
  if num_classes >= 5:
    result["top5"] = float(top5[0])
  return result
