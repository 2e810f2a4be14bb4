"""The objective interface that the trainer drives.

The trainer knows nothing about any method. An objective says which augmented
views it needs, computes its loss from the network's outputs, and owns any state
that evolves outside gradient descent (EMA teacher, queue, centre, prototypes,
memory bank) in the pytree `extra`, which is checkpointed with the rest.
"""

import dataclasses
import math
from typing import Any, Callable, ClassVar, Mapping, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh

from repr_learn import parallel
from repr_learn.data import augment
from repr_learn.losses import siamese
from repr_learn.objectives import memory

PyTree = Any


class LossOutput(NamedTuple):
  """What `Objective.loss` returns beside the scalar loss.

  batch_stats: updated BatchNorm statistics from the training forward pass.
  metrics: scalars to log (already reduced over the global batch).
  aux: arrays `update_extra` needs (e.g. this step's keys to enqueue).
  """
  batch_stats: PyTree
  metrics: Mapping[str, jax.Array]
  aux: PyTree = None


# Dataset-sized state is padded to a multiple of this many rows (and of the
# device count): see `Objective.dataset_rows`.
DATASET_ROW_MULTIPLE = 512


@dataclasses.dataclass(frozen=True)
class Objective:
  """Base class: subclasses set `name`, `defaults` and implement `loss`.

  Attributes:
    config: the objective's own section of the experiment config.
    network: the flax module (see `repr_learn.models.build_network`).
    views: one `ViewConfig` per augmented view the loss consumes.
    total_steps: length of the run (momentum and temperature schedules).
    steps_per_epoch: for schedules the papers give in epochs.
    num_examples: size of the pretraining split (memory banks).
    mesh: the device mesh, for the few pieces that need per-device semantics.
    device_axis: set only inside the per-device (`pmap` mode) step, where each
      device holds its shard of the batch: every forward pass's outputs are
      then gathered over this axis, and whatever else a loss reads per example
      (pixel targets, masks, mixing partners) goes through `gathered`,
      `drawn_for_global_batch` and `local_rows`, so the loss (and everything
      after it) sees the global batch exactly as in the jit mode.
    per_view_batchnorm: one forward pass per view, so BatchNorm normalises each
      view over its own batch, as the official BYOL, SimSiam, Barlow Twins,
      VICReg and MoCo v3 code and every solo-learn recipe do (they call the
      network once per view); otherwise same-size views share one pass.
    pixel_mean, pixel_std: the input normalisation (`config.model.pixel_*`).
    local_bn_network: under SyncBN (per-device mode), the same network with
      BatchNorm over each device's examples alone (`with_local_batchnorm`).
  """
  config: ml_collections.ConfigDict
  network: nn.Module
  views: Sequence[augment.ViewConfig]
  total_steps: int = 1
  steps_per_epoch: int = 1
  num_examples: int = 0
  mesh: Mesh | None = None
  device_axis: str | None = None
  per_view_batchnorm: bool = False
  pixel_mean: tuple[float, ...] = augment.IMAGENET_MEAN
  pixel_std: tuple[float, ...] = augment.IMAGENET_STD
  local_bn_network: nn.Module | None = None

  # Subclasses override these class attributes.
  name: ClassVar[str] = "base"
  defaults: ClassVar[Mapping[str, Any]] = {}
  # An eval-mode output of `network.project` ('features' or 'projection') that
  # the objective needs for every training example before step 0, passed to
  # `setup_from_dataset` (SCAN's neighbour mining, DEC's k-means); None if not.
  dataset_outputs: ClassVar[str | None] = None
  # Batches carry 'neighbour_image', a random one of `extra['neighbours']` (SCAN).
  pairs_with_neighbours: ClassVar[bool] = False
  # Trains on top of another run's encoder (`config.model.init_from`).
  needs_pretrained_encoder: ClassVar[bool] = False
  # Parts of the network `model.init_from` may copy (None: every part whose
  # shapes match; fine-tuning takes the backbone only, never an old head).
  pretrained_parts: ClassVar[tuple[str, ...] | None] = None
  # Supervised: trains on the labeled split (`eval_train_split`), not the
  # pretraining split (STL-10's unlabelled images).
  trains_on_labels: ClassVar[bool] = False
  # `extra` leaves whose leading axis is the training set (memory banks,
  # per-example labels). They hold `dataset_rows()` rows, the first
  # `num_examples` real, and the jit mode splits them over the data axis, so a
  # device holds 1/devices of an ImageNet-sized bank (`extra_shardings`).
  dataset_sized_extra: ClassVar[tuple[str, ...]] = ()
  # False for workdirs that only hold weights trained elsewhere (`imported`).
  trainable: ClassVar[bool] = True
  # The loss acts on the projector's outputs (`projection`, `prediction`,
  # `scores`), so `objective.matryoshka_dims` can nest the features it reads
  # (`nested_loss`); otherwise validation refuses the sizes, saying why.
  supports_matryoshka: ClassVar[bool] = False
  matryoshka_refusal: ClassVar[str] = "its loss does not act on an embedding of the pooled features"

  def __post_init__(self):
    """Subclasses check here that the network and config suit them (called by
    the dataclass __init__, so a bad combination fails when it is built)."""

  def needs_init_from(self) -> bool:
    """Whether this run must start from `model.init_from` (the class's
    `needs_pretrained_encoder`, or a setting: LiT's locked image tower)."""
    return self.needs_pretrained_encoder

  def dataset_rows(self) -> int:
    """`num_examples` rounded up to a multiple of `DATASET_ROW_MULTIPLE` and
    of the device count: the rows split evenly over the devices, and over any
    power-of-two count up to 512, so a checkpoint resumes on another such
    count with the same shapes."""
    devices = self.mesh.devices.size if self.mesh is not None else 1
    multiple = math.lcm(DATASET_ROW_MULTIPLE, devices)
    return -(-self.num_examples // multiple) * multiple

  def extra_shardings(self, extra: PyTree, mesh: Mesh) -> PyTree:
    """Shardings of `extra` (arrays or their shapes) on `mesh`: rows of the
    dataset-sized leaves over the data axis, everything else replicated."""
    def placement(name):
      split = name in self.dataset_sized_extra
      return parallel.batch_sharded(mesh) if split else parallel.replicated(mesh)
    return {name: jax.tree.map(lambda _: placement(name), leaf) for name, leaf in extra.items()}

  def per_device(self, axis_name: str) -> "Objective":
    """This objective as the per-device step runs it (see `device_axis`)."""
    return dataclasses.replace(self, device_axis=axis_name)

  def with_local_batchnorm(self) -> "Objective":
    """This objective with BatchNorm over each device's examples alone, for
    pieces that are per-device by design (MoCo's shuffle-BN key encoder)."""
    if self.local_bn_network is None:
      return self
    return dataclasses.replace(self, network=self.local_bn_network, local_bn_network=None)

  @classmethod
  def decoder_output_dim(cls, config: ml_collections.ConfigDict) -> int | None:
    """Values the masked-modeling head predicts per token (None: no decoder)."""
    del config
    return None

  def steps_in(self, epochs: float) -> int:
    """Whole steps in `epochs` (schedules the papers give in epochs)."""
    return int(epochs * self.steps_per_epoch)

  def init_extra(self, rng: jax.Array, variables: PyTree) -> PyTree:
    """State beside the parameters; empty for purely gradient-based methods."""
    del rng, variables
    return {}

  def setup_from_dataset(self, params: PyTree, extra: PyTree, outputs: np.ndarray
                         ) -> tuple[PyTree, PyTree]:
    """Host-side initialisation from `outputs[i]` of training example i, run
    once on a fresh start (never on resume: the checkpoint has the result)."""
    del outputs
    return params, extra

  def loss(self, params: PyTree, batch_stats: PyTree, extra: PyTree,
           views: Sequence[jax.Array], batch: Mapping[str, jax.Array],
           rng: jax.Array, step: jax.Array) -> tuple[jax.Array, LossOutput]:
    """The scalar loss on the global batch; `step` drives schedules (DINO's
    teacher temperature, SwAV's queue start)."""
    raise NotImplementedError

  def nested_loss(self, loss_fn: Callable[..., jax.Array], *outputs: Mapping[str, Any]
                  ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """`loss_fn(*outputs)`, or with `matryoshka_dims` the Matryoshka loss
    sum_m c_m loss_fn(*outputs at size m) (Kusupati et al. 2022, eq. 1;
    `Matryoshka_CE_Loss` in RAIVNLab/MRL), with each size's loss as a metric.

    `outputs` are the online network's outputs (per view); at a size m their
    head outputs are those computed from the first m feature dimensions
    (`SiameseNetwork`'s 'nested'). Everything else the loss reads (a teacher,
    a queue, labels) stays full-size: it is the target each size learns.
    """
    dims = tuple(self.config.matryoshka_dims)
    if not dims:
      return loss_fn(*outputs), {}
    weights = tuple(self.config.matryoshka_weights) or (1.0,) * len(dims)
    levels = [tuple(o["nested"][i] for o in outputs) for i in range(len(dims) - 1)]
    losses = [loss_fn(*level) for level in levels] + [loss_fn(*outputs)]
    total = sum(w * loss for w, loss in zip(weights, losses))
    return total, {f"loss_dim{m}": jax.lax.stop_gradient(loss) for m, loss in zip(dims, losses)}

  def frozen_parts(self, step: jax.Array) -> Mapping[str, jax.Array]:
    """Parameter groups held fixed at `step`, name (top-level, or a path
    'module/submodule') -> condition.

    The train step stops their gradient and drops their update, so that weight
    decay and momentum do not move them either (SwAV's and DINO's prototypes in
    the first epoch, SCAN's backbone when only the head trains).
    """
    del step
    return {}

  def constrain_params(self, params: PyTree) -> PyTree:
    """The parameters after the optimizer step, projected onto their allowed
    set (CLIP's temperature clamped at 100, as open_clip clamps it in place
    after each step); unchanged by default."""
    return params

  def update_extra(self, extra: PyTree, params: PyTree, aux: PyTree,
                   step: jax.Array) -> PyTree:
    """Evolves `extra` after the optimizer step (EMA, enqueue, ...)."""
    del params, aux, step
    return extra

  def cluster_logits(self, outputs: Mapping[str, jax.Array], extra: PyTree
                     ) -> jax.Array | None:
    """Per-cluster scores from the eval-mode outputs of `network.project`, for
    methods with a clustering head (prototypes by default); None otherwise."""
    del extra
    return outputs.get("scores")

  def apply(self, params, batch_stats, x, *args, train: bool = True,
            method: Callable | None = None, rng: jax.Array | None = None, **kwargs):
    """Runs the network, returning (outputs, new batch_stats) when training.

    `rng` feeds the network's stochastic layers (drop path) in training; the
    step passes a key derived from `fold_in(state.rng, step)`.
    """
    variables = {"params": params, "batch_stats": batch_stats}
    if train:
      if rng is not None and self.device_axis is not None:
        # Each device's examples draw their own drop-path masks.
        rng = jax.random.fold_in(rng, jax.lax.axis_index(self.device_axis))
      rngs = {"dropout": rng} if rng is not None else {}
      out, updates = self.network.apply(variables, x, *args, train=True, rngs=rngs,
                                        mutable=["batch_stats"], method=method, **kwargs)
      return self.gathered(out), updates.get("batch_stats", batch_stats)
    return (self.gathered(self.network.apply(variables, x, *args, train=False, method=method,
                                             **kwargs)),
            batch_stats)

  # -- The global batch, in both modes. In the jit mode every array already
  # spans it; in the per-device mode the images are this device's shard, and
  # these three give a loss the same values the jit mode computes.

  def gathered(self, tree: PyTree) -> PyTree:
    """Arrays of the whole batch: the local shard's gathered over the device
    axis in the per-device mode (all_gather is differentiable)."""
    if self.device_axis is None:
      return tree
    return jax.tree.map(lambda a: parallel.gathered_rows(a, self.device_axis), tree)

  def local_rows(self, tree: PyTree) -> PyTree:
    """This device's rows of arrays drawn for the whole batch (per-example
    masks), so each example gets the same draw in both modes."""
    if self.device_axis is None:
      return tree
    return jax.tree.map(lambda a: parallel.local_rows(a, self.device_axis), tree)

  def drawn_for_global_batch(self, draw: Callable[[int], PyTree], local_size: int
                             ) -> tuple[PyTree, PyTree]:
    """(`draw(rows)` for the global batch's rows, this program's rows of it).
    Per-example randomness (masks) drawn once for the global batch, so the
    per-device mode gives every example the draw the jit mode gives it."""
    drawn = draw(self.global_batch_size(local_size))
    return drawn, self.local_rows(drawn)

  def global_batch_size(self, local_size: int) -> int:
    """Rows of the global batch, from the rows this program holds."""
    if self.device_axis is None:
      return local_size
    return local_size * jax.lax.axis_size(self.device_axis)

  def forward_views(self, params, batch_stats, views, *, method=None, train=True,
                    rng: jax.Array | None = None):
    """Forward passes over the views; outputs split per view.

    Consecutive views of one size (multi-crop's global views, then its local
    views) share a forward pass, interleaved as [N, V, ...] -> [N*V, ...] so each
    device keeps its own examples' views and BatchNorm statistics cover the
    group, as in SwAV's and DINO's per-resolution forward; with
    `per_view_batchnorm` every view has a pass of its own.
    """
    per_view = []
    groups = ([[v] for v in views] if self.per_view_batchnorm
              else _groups_of_equal_shape(views))
    for i, group in enumerate(groups):
      n, v = group[0].shape[0], len(group)
      x = jnp.stack(group, axis=1).reshape((n * v,) + group[0].shape[1:])
      group_rng = None if rng is None else jax.random.fold_in(rng, i)
      out, batch_stats = self.apply(params, batch_stats, x, train=train, method=method,
                                    rng=group_rng)
      # -1, not n: in the per-device mode the outputs span the global batch.
      per_view += [jax.tree.map(lambda a, i=i: a.reshape((-1, v) + a.shape[1:])[:, i], out)
                   for i in range(v)]
    return per_view, batch_stats

  def target_forward(self, target_params, batch_stats, views):
    """The EMA/momentum branch: projections only, batch statistics, no gradient."""
    per_view, _ = self.forward_views(target_params, batch_stats, views,
                                     method=self.network.project)
    return [jax.lax.stop_gradient(o["projection"]) for o in per_view]


class EmaTargetObjective(Objective):
  """An objective with an EMA copy of the online network (BYOL, MoCo v3, DINO,
  data2vec 2.0, I-JEPA).

  By default the momentum follows BYOL's cosine schedule from
  `config.base_momentum` at step 0 to 1 at the end of training and the target
  mirrors every part but the predictor; subclasses override `momentum` and
  `target_parts` (masked-modeling teachers mirror the encoder only).
  """
  # Top-level parameter groups the target mirrors; None: all but 'predictor'.
  target_parts: ClassVar[tuple[str, ...] | None] = None

  def _target_of(self, params):
    if self.target_parts is None:
      return online_params_for_target(params)
    return {k: params[k] for k in self.target_parts}

  def momentum(self, step):
    return memory.cosine_momentum(step, self.total_steps, self.config.base_momentum)

  def init_extra(self, rng, variables):
    del rng
    return {"target_params": self._target_of(variables["params"])}

  def update_extra(self, extra, params, aux, step):
    return {**extra, "target_params": memory.ema(extra["target_params"],
                                                 self._target_of(params),
                                                 self.momentum(step))}


def _groups_of_equal_shape(views: Sequence[jax.Array]) -> list[list[jax.Array]]:
  groups = []
  for view in views:
    if groups and groups[-1][0].shape == view.shape:
      groups[-1].append(view)
    else:
      groups.append([view])
  return groups


def online_params_for_target(params):
  """The parameters an EMA target mirrors: everything but the predictor."""
  return {k: v for k, v in params.items() if k != "predictor"}


def frozen_while(params: PyTree, frozen: Mapping[str, jax.Array]) -> PyTree:
  """`params` whose groups in `frozen` pass no gradient while their condition holds."""
  return _map_frozen(lambda c, p: jnp.where(c, jax.lax.stop_gradient(p), p), params, frozen)


def without_frozen_updates(updates: PyTree, frozen: Mapping[str, jax.Array]) -> PyTree:
  """Optimizer `updates` with zeros for the groups whose condition holds."""
  return _map_frozen(lambda c, u: jnp.where(c, jnp.zeros_like(u), u), updates, frozen)


def _map_frozen(fn, tree: PyTree, frozen: Mapping[str, jax.Array]) -> PyTree:
  """Applies `fn(condition, leaf)` under each group of `frozen`: a top-level
  name, or a '/'-separated path into nested modules ('dino_head/prototypes')."""
  tree = dict(tree)
  for name, c in frozen.items():
    head, _, rest = name.partition("/")
    tree[head] = (_map_frozen(fn, tree[head], {rest: c}) if rest
                  else jax.tree.map(lambda leaf, c=c: fn(c, leaf), tree[head]))
  return tree


def geometry_metrics(z1: jax.Array, z2: jax.Array) -> dict[str, jax.Array]:
  """Wang & Isola's alignment and uniformity, logged for every two-view method."""
  z1, z2 = jax.lax.stop_gradient(z1), jax.lax.stop_gradient(z2)
  return {"alignment": siamese.alignment(z1, z2),
          "uniformity": siamese.uniformity(jnp.concatenate([z1, z2]))}
