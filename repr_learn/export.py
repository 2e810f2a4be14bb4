"""Writes a run's encoder for PyTorch: `python -m repr_learn.export`.

  python -m repr_learn.export --workdir=DIR --format=timm --out=OUT
  python -m repr_learn.export --workdir=DIR --format=torchvision --out=OUT [--projector]

timm (ViTs): OUT/config.json + OUT/model.safetensors in timm's local layout,
loadable offline with `timm.create_model("local-dir:OUT", pretrained=True)`; the
config's `model_args` reproduce this run's numerics (class token, registers,
LayerScale, pooling, `act_layer='gelu_tanh'` for runs trained with tanh GELU).
torchvision (ResNets): OUT/model.safetensors with torchvision's names
(`load_state_dict(strict=True)` on `torchvision.models.resnet50()` minus `fc`,
or on a ResNet of the same width and stem, see README) and OUT/config.json with
the architecture and input normalisation. `--projector` adds the projector's
weights as OUT/projector.safetensors (torch Linear/BatchNorm layouts). A run whose
numerics PyTorch cannot reproduce (XLA 'SAME' padding, post-LN ViT blocks) is
refused with one line; nothing is written then.
"""

import json
import os
from typing import Sequence

from absl import flags
import jax
import numpy as np

from repr_learn import finished_run
from repr_learn.interop import checkpoint_files
from repr_learn.interop import names
from repr_learn.models import resnet
from repr_learn.models import vit

_FLAGS = flags.FlagValues()
flags.DEFINE_string("workdir", None, "Run directory (trained or imported).", flag_values=_FLAGS)
flags.DEFINE_enum("format", None, ["timm", "torchvision"], "timm for ViTs, torchvision for "
                  "ResNets.", flag_values=_FLAGS)
flags.DEFINE_string("out", None, "Directory to write (created; must be empty).",
                    flag_values=_FLAGS)
flags.DEFINE_bool("projector", False, "Also write the projector's weights.",
                  flag_values=_FLAGS)

# timm's factory whose defaults the `model_args` override (every size field is set).
_TIMM_ARCHITECTURE = "vit_base_patch16_224"


class ExportError(ValueError):
  """The run's network has no faithful PyTorch counterpart in that format."""


def _pretrained_cfg(config) -> dict:
  size = config.augment.crop_size
  return {"input_size": [3, size, size], "mean": list(config.model.pixel_mean),
          "std": list(config.model.pixel_std), "interpolation": "bicubic", "crop_pct": 0.875,
          "num_classes": 0}


def timm_files(config, params) -> tuple[dict, dict]:
  """(timm config.json, state dict) for a run's ViT backbone."""
  model = config.model
  if model.backbone not in vit.VIT_SIZES:
    raise ExportError(f"--format=timm exports ViTs; this run's backbone is {model.backbone} "
                      "(use --format=torchvision).")
  if model.post_norm:
    raise ExportError("timm's VisionTransformer has no post-LayerNorm blocks "
                      "(model.post_norm); this run cannot be exported to timm.")
  width, depth, default_heads, mlp_dim = vit.VIT_SIZES[model.backbone]
  grid = config.augment.crop_size // model.patch_size
  pooling = model.pooling
  has_cls = pooling != "mean"
  args = {"img_size": config.augment.crop_size, "patch_size": model.patch_size,
          "embed_dim": width, "depth": depth, "num_heads": model.num_heads or default_heads,
          "mlp_ratio": mlp_dim / width, "class_token": has_cls,
          "global_pool": "token" if pooling == "cls" else "avg",
          "fc_norm": pooling == "gap_fc_norm", "num_classes": 0}
  if model.layer_scale > 0:
    args["init_values"] = model.layer_scale
  if model.num_registers:
    args.update(reg_tokens=model.num_registers, no_embed_class=True)
  if model.gelu == "tanh":
    args["act_layer"] = "gelu_tanh"
  backbone = {k: v for k, v in params.items() if k != "mask_token"}
  state_dict = names.vit_to_timm(backbone, grid=grid, fc_norm=pooling == "gap_fc_norm")
  timm_config = {"architecture": _TIMM_ARCHITECTURE, "num_classes": 0, "num_features": width,
                 "global_pool": args["global_pool"], "model_args": args,
                 "pretrained_cfg": _pretrained_cfg(config)}
  return timm_config, state_dict


def torchvision_files(config, params, batch_stats) -> tuple[dict, dict]:
  """(config.json, state dict) for a run's ResNet backbone."""
  model = config.model
  if model.backbone not in resnet.RESNET_DEPTHS:
    raise ExportError(f"--format=torchvision exports ResNets; this run's backbone is "
                      f"{model.backbone} (use --format=timm).")
  if model.resnet_padding != "torch":
    raise ExportError("This run was trained with XLA's 'SAME' padding (model.resnet_padding="
                      "'same'), which torchvision's ResNet cannot reproduce on even inputs; "
                      "retrain with the default torch padding to export it.")
  stages, block = resnet.RESNET_DEPTHS[model.backbone]
  standard = model.width == 64 and model.stem == "imagenet"
  info = {"architecture": f"torchvision.models.{model.backbone}" if standard else "ResNet",
          "block": block.__name__, "layers": list(stages), "width": model.width,
          "stem": model.stem, "num_classes": 0, "fc": "removed (Identity)",
          "pretrained_cfg": _pretrained_cfg(config)}
  return info, names.resnet_to_torch(params, batch_stats)


def _torch_layout(tree: dict) -> dict[str, np.ndarray]:
  """A head's parameters with '.'-joined names in torch's layouts (Linear weight
  [out, in], BatchNorm weight/bias/running_mean/running_var)."""
  renames = {"kernel": "weight", "scale": "weight", "mean": "running_mean",
             "var": "running_var"}
  out = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    parts = [str(getattr(p, "key", p)) for p in path]
    parts[-1] = renames.get(parts[-1], parts[-1])
    value = np.asarray(leaf, np.float32)
    out[".".join(parts)] = value.T.copy() if parts[-1] == "weight" and value.ndim == 2 else value
  return out


def export(workdir: str, fmt: str, out: str, projector: bool = False) -> str:
  """Writes the files; returns `out` (absolute)."""
  run = finished_run.load(workdir)
  config = run.trained_config
  params = jax.device_get(run.state.params)
  stats = jax.device_get(run.state.batch_stats)
  if projector and "projector" not in params:
    raise ValueError(f"{run.workdir} has no projector (its parts: {sorted(params)}); drop "
                     "--projector to export the backbone alone.")
  if fmt == "timm":
    info, state_dict = timm_files(config, params["backbone"])
  else:
    info, state_dict = torchvision_files(config, params["backbone"], stats.get("backbone", {}))
  out = os.path.abspath(os.path.expanduser(out))
  if os.path.isdir(out) and os.listdir(out):
    raise FileExistsError(f"{out} is not empty; pass a new --out directory.")
  os.makedirs(out, exist_ok=True)
  metadata = {"format": "pt", "source": run.workdir, "step": run.step}
  checkpoint_files.write_safetensors(os.path.join(out, "model.safetensors"), state_dict, metadata)
  if projector:
    head = {**_torch_layout(params["projector"]), **_torch_layout(stats.get("projector", {}))}
    checkpoint_files.write_safetensors(os.path.join(out, "projector.safetensors"), head, metadata)
  with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(info, f, indent=2)
  return out


def main(argv: Sequence[str]) -> None:
  try:
    finished_run.parse_tool_args(_FLAGS, argv)
    if not (_FLAGS.workdir and _FLAGS.format and _FLAGS.out):
      raise ValueError("Pass --workdir=DIR, --format=timm|torchvision and --out=DIR.")
    out = export(_FLAGS.workdir, _FLAGS.format, _FLAGS.out, _FLAGS.projector)
  except finished_run.ERRORS + (ExportError, FileExistsError) as e:
    raise SystemExit(finished_run.error_message(e)) from None
  print(f"Wrote {_FLAGS.format} weights to {out}")


if __name__ == "__main__":
  finished_run.run_tool(main)
