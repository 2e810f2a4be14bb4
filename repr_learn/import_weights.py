"""Brings released weights in as a workdir: `python -m repr_learn.import_weights`.

  python -m repr_learn.import_weights --checkpoint=dino_deitsmall16_pretrain.pth \
    --format=dino --workdir=runs/dino_vits16_official [--image_size=224] \
    [--key=teacher] [--num_heads=N] [--pooling=cls] [--mean=... --std=...]

Formats: torchvision (ResNet-18/34/50/101), timm (ViT: LayerScale, registers,
no class token), and the official SSL releases dino, ibot, mae, mocov3, ijepa,
dinov2 (`interop.sources`). Files: .pth/.pt (torch not needed), .safetensors,
.npz. The workdir holds one checkpoint (step 0) of an `imported` objective and
a config.json that records the architecture, the input normalisation the
weights expect (`model.pixel_mean/std`) and where they came from; `evaluate`,
`embed`, `export` and `model.init_from` take it like any finished run.
Everything is checked before anything is written: a layout that does not fit
fails with one line naming the keys it could not place.
"""

import os
from typing import Sequence

from absl import flags
import jax
import ml_collections
import numpy as np

from repr_learn import checkpointing
from repr_learn import config_schema
from repr_learn import finished_run
from repr_learn import parallel
from repr_learn import pretrained as pretrained_lib
from repr_learn import train
from repr_learn import workdir as workdir_lib
from repr_learn.data import catalog
from repr_learn.data import sources as data_sources
from repr_learn.interop import checkpoint_files
from repr_learn.interop import names
from repr_learn.interop import sources
from repr_learn.models import resnet
from repr_learn.models import vit

_FLAGS = flags.FlagValues()
flags.DEFINE_string("checkpoint", None, "The weights file (.pth, .pt, .safetensors, .npz).",
                    flag_values=_FLAGS)
flags.DEFINE_enum("format", None, sorted(sources.FORMATS), "The checkpoint's layout.",
                  flag_values=_FLAGS)
flags.DEFINE_string("workdir", None, "The workdir to create (must not hold a run).",
                    flag_values=_FLAGS)
flags.DEFINE_string("key", "", "Which network of a training checkpoint: teacher/student "
                    "(dino, ibot), encoder/target_encoder (ijepa).", flag_values=_FLAGS)
flags.DEFINE_integer("num_heads", 0, "ViT attention heads (0: the release's or the "
                     "size's own).", flag_values=_FLAGS)
flags.DEFINE_enum("pooling", "", ["", "cls", "gap", "mean", "gap_fc_norm"],
                  "ViT features ('' : the release's).", flag_values=_FLAGS)
flags.DEFINE_integer("image_size", 0, "Evaluation resolution (0: ViTs their position "
                     "table's, ResNets 224); learned positions are resampled to it.",
                     flag_values=_FLAGS)
flags.DEFINE_list("mean", [], "Input mean per channel (default: the release's).",
                  flag_values=_FLAGS)
flags.DEFINE_list("std", [], "Input std per channel (default: the release's).",
                  flag_values=_FLAGS)
flags.DEFINE_string("dataset", "digits", "data.name of the workdir: what `evaluate` reads "
                    "unless told otherwise.", flag_values=_FLAGS)


def _backbone_name(table: dict, key, what: str) -> str:
  for name, value in table.items():
    if value == key:
      return name
  raise names.LayoutError(f"No backbone of this codebase has the {what} {key}; the "
                          f"sizes known are {sorted(table)}.")


def _resnet_model(config: ml_collections.ConfigDict, state_dict: dict):
  params, stats, layout = names.resnet_from_torch(state_dict)
  block = resnet.Bottleneck if layout.bottleneck else resnet.BasicBlock
  depths = {name: (tuple(stages), blk) for name, (stages, blk) in resnet.RESNET_DEPTHS.items()}
  config.model.update(backbone=_backbone_name(depths, (layout.stage_sizes, block), "stages"),
                      width=layout.width, stem=layout.stem, resnet_padding="torch")
  return params, stats


def _vit_model(config: ml_collections.ConfigDict, state_dict: dict, hints: sources.Hints,
               num_heads: int, pooling: str, image_size: int):
  layout = names.vit_layout(state_dict)
  sizes = {name: (w, d, m) for name, (w, d, _, m) in vit.VIT_SIZES.items()}
  backbone = _backbone_name(sizes, (layout.width, layout.depth, layout.mlp_dim),
                            "(width, depth, mlp_dim)")
  heads = num_heads or hints.num_heads or vit.VIT_SIZES[backbone][2]
  params, layout = names.vit_from_timm(state_dict, heads)
  if layout.fc_norm and not layout.class_token:
    raise names.LayoutError("A ViT without a class token but with fc_norm has no pooling here "
                            "('mean' normalises the tokens before averaging).")
  if not pooling:
    pooling = hints.pooling or ("gap_fc_norm" if layout.fc_norm else
                                "cls" if layout.class_token else "mean")
  if (pooling == "mean") == layout.class_token:
    raise ValueError(f"--pooling={pooling} does not fit weights "
                     f"{'with' if layout.class_token else 'without'} a class token.")
  if (pooling == "gap_fc_norm") != layout.fc_norm:
    raise ValueError(f"--pooling={pooling} does not fit weights "
                     f"{'with' if layout.fc_norm else 'without'} fc_norm: use "
                     f"{'gap_fc_norm' if layout.fc_norm else 'cls, gap or mean'}.")
  grid = layout.grid
  if image_size:
    if image_size % layout.patch_size:
      raise ValueError(f"--image_size={image_size} is not a multiple of the patch size "
                       f"{layout.patch_size}.")
    grid = image_size // layout.patch_size
    if "pos_embedding" in params:
      params["pos_embedding"] = np.asarray(vit.resample_positions(
          params["pos_embedding"], grid, hints.pos_resample, hints.pos_resample_offset))
  config.model.update(backbone=backbone, patch_size=layout.patch_size, pooling=pooling,
                      pos_embedding=layout.pos_embedding, num_registers=layout.num_registers,
                      layer_scale=1e-5 if layout.layer_scale else 0.0,
                      pos_resample=hints.pos_resample,
                      pos_resample_offset=(hints.pos_resample_offset
                                           if layout.pos_embedding == "learned" else 0.0))
  if heads != vit.VIT_SIZES[backbone][2]:
    config.model.num_heads = heads
  config.augment.crop_size = grid * layout.patch_size
  return params, {}


def build(checkpoint: str, fmt: str, *, key: str = "", num_heads: int = 0, pooling: str = "",
          image_size: int = 0, mean=(), std=(), dataset: str = "digits"
          ) -> tuple[ml_collections.ConfigDict, dict, dict]:
  """(config, backbone params, backbone batch_stats) of a checkpoint file."""
  raw = checkpoint_files.read(checkpoint)
  state_dict, hints = sources.unwrap(raw, fmt, key)
  config = config_schema.base_config()
  config_schema.with_objective(config, "imported", format=fmt,
                               checkpoint=os.path.abspath(checkpoint))
  config.data.name = dataset
  config.batch_size = 8
  config.model.projector.update(num_layers=1, output_dim=16)
  if hints.family == "resnet":
    if num_heads or pooling:
      raise ValueError("--num_heads and --pooling apply to ViTs; this is a ResNet.")
    params, stats = _resnet_model(config, state_dict)
    config.augment.crop_size = image_size or 224
  else:
    params, stats = _vit_model(config, state_dict, hints, num_heads, pooling, image_size)
  config.model.pixel_mean = tuple(float(m) for m in mean) or hints.mean
  config.model.pixel_std = tuple(float(s) for s in std) or hints.std
  if len(config.model.pixel_mean) != 3 or len(config.model.pixel_std) != 3:
    raise ValueError("--mean and --std need one value per RGB channel.")
  return config, params, stats


def _flat_shapes(tree) -> dict:
  return {jax.tree_util.keystr(path): tuple(np.shape(leaf))
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def write_workdir(workdir: str, config: ml_collections.ConfigDict, params: dict, stats: dict
                  ) -> str:
  """Creates the workdir: the network built from `config` with the imported
  backbone, saved as step 0. Refuses a workdir that holds a run."""
  workdir = os.path.abspath(os.path.expanduser(workdir))
  if os.path.isdir(workdir) and os.listdir(workdir):
    raise workdir_lib.WorkdirError(f"Workdir {workdir} is not empty; pass a new --workdir.")
  mesh = parallel.make_mesh()
  spec = catalog.get_spec(config.data.name)
  source = data_sources.open_source(spec, train.training_split(config, spec), config.data)
  setup = train.build_setup(config, spec, len(source), mesh)
  abstract = jax.eval_shape(setup.initial_state).params["backbone"]
  expected, given = _flat_shapes(abstract), _flat_shapes(params)
  if expected != given:
    missing = sorted(set(expected) - set(given))
    wrong = sorted(k for k in set(expected) & set(given) if expected[k] != given[k])
    raise names.LayoutError(f"The weights do not fit {config.model.backbone}: missing "
                            f"{missing[:5]}, other shapes at {wrong[:5]}.")
  pretrained = pretrained_lib.Pretrained(params={"backbone": params},
                                         batch_stats={"backbone": stats} if stats else {},
                                         source=config.objective.checkpoint, step=0)
  state = setup.initial_state(pretrained)
  workdir_lib.ensure_writable(workdir)
  checkpointer = checkpointing.Checkpointer(os.path.join(workdir, finished_run.CHECKPOINT_DIR),
                                            keep=1, every_steps=1)
  try:
    checkpointer.save(state, {}, force=True)
  finally:
    checkpointer.close()
  workdir_lib.write_config(workdir, config)
  return workdir


_FLAG_ERRORS = finished_run.ERRORS + (names.LayoutError, workdir_lib.WorkdirError)


def main(argv: Sequence[str]) -> None:
  try:
    finished_run.parse_tool_args(_FLAGS, argv)
    if not (_FLAGS.checkpoint and _FLAGS.format and _FLAGS.workdir):
      raise ValueError("Pass --checkpoint=FILE, --format=NAME and --workdir=DIR.")
    config, params, stats = build(
        _FLAGS.checkpoint, _FLAGS.format, key=_FLAGS.key, num_heads=_FLAGS.num_heads,
        pooling=_FLAGS.pooling, image_size=_FLAGS.image_size, mean=_FLAGS.mean,
        std=_FLAGS.std, dataset=_FLAGS.dataset)
    workdir = write_workdir(_FLAGS.workdir, config, params, stats)
  except _FLAG_ERRORS as e:
    raise SystemExit(finished_run.error_message(e)) from None
  print(f"Imported {_FLAGS.format} weights ({config.model.backbone}, "
        f"{config.augment.crop_size} px) into {workdir}; evaluate with "
        f"python -m repr_learn.evaluate --workdir={workdir} --protocol=knn")


if __name__ == "__main__":
  finished_run.run_tool(main)
