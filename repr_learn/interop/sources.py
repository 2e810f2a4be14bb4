"""The official releases' checkpoint layouts, unwrapped to torchvision/timm names.

Each reader takes the loaded checkpoint (nested dicts of numpy arrays) and
returns the backbone's state dict in torchvision ResNet or timm ViT names plus
what the weights need beyond their tensors (`Hints`: head count, pooling,
position resampling, input normalisation). Heads, projectors, predictors,
decoders and momentum encoders are dropped. Where each layout was read:

| format      | container and prefixes                                   | source file |
|-------------|----------------------------------------------------------|-------------|
| torchvision | bare state dict; `fc.*` dropped                          | torchvision/models/resnet.py |
| timm        | bare state dict; `head.*` dropped                        | timm/models/vision_transformer.py |
| dino        | `teacher`/`student` with `module.`, `backbone.`; `head.*` dropped; or a bare `*_pretrain.pth` | dino/utils.py::load_pretrained_weights |
| ibot        | as DINO, or `state_dict` (released `checkpoint_teacher.pth`); `masked_embed` dropped | ibot/evaluation/..., ibot/models/vision_transformer.py |
| mae         | `model`; `decoder_*`, `mask_token`, `head.*` dropped     | mae/main_finetune.py, models_mae.py |
| mocov3      | `state_dict` under `module.base_encoder.`; `head`/`fc` (projector), momentum encoder, predictor dropped | moco-v3/convert_to_deit.py |
| ijepa       | `encoder` or `target_encoder` with `module.`             | ijepa/src/train.py |
| dinov2      | bare backbone (hub), or `teacher`, or `model` with `teacher.backbone.`; `mask_token` dropped; `register_tokens` | dinov2/hub/backbones.py, models/vision_transformer.py |
"""

import dataclasses
import re

import numpy as np

from repr_learn.data import augment
from repr_learn.interop import names


@dataclasses.dataclass(frozen=True)
class Hints:
  """What the release's code sets that its weights do not say."""
  family: str                      # 'resnet' | 'vit'
  num_heads: int = 0               # 0: the ViT size's own (`models.vit.VIT_SIZES`)
  pooling: str = ""                # '' : from the layout (cls, mean, gap_fc_norm)
  pos_resample: str = "bicubic"
  pos_resample_offset: float = 0.0
  mean: tuple[float, ...] = augment.IMAGENET_MEAN
  std: tuple[float, ...] = augment.IMAGENET_STD


def _unwrap(checkpoint: dict, keys: tuple[str, ...], asked: str = "") -> dict:
  """The first of `keys` that holds a dict (unwrapped again while it holds
  another container: iBOT's teacher file nests its `state_dict`), else the
  checkpoint itself; `asked` (the user's --key) must exist."""
  if asked and not isinstance(checkpoint.get(asked), dict):
    raise names.LayoutError(f"--key={asked} is not in this checkpoint; its top-level keys: "
                            f"{sorted(checkpoint)[:10]}.")
  for key in keys:
    if key and isinstance(checkpoint.get(key), dict):
      return _unwrap(checkpoint[key], ("state_dict", "model"))
  return checkpoint


def _strip(state_dict: dict, prefixes: tuple[str, ...]) -> dict:
  out = {}
  for key, value in state_dict.items():
    for prefix in prefixes:
      if key.startswith(prefix):
        key = key[len(prefix):]
    out[key] = value
  return out


def _drop(state_dict: dict, prefixes: tuple[str, ...]) -> dict:
  return {k: v for k, v in state_dict.items() if not k.startswith(prefixes)}


def _tensors_only(state_dict: dict) -> dict:
  return {k: v for k, v in state_dict.items() if isinstance(v, np.ndarray)}


def _family(state_dict: dict) -> str:
  if "patch_embed.proj.weight" in state_dict:
    return "vit"
  if "conv1.weight" in state_dict:
    return "resnet"
  if not state_dict:
    raise names.LayoutError("No tensors found where this --format keeps the backbone; check "
                            "--format and --key.")
  shown = ", ".join(sorted(state_dict)[:8])
  raise names.LayoutError(f"Neither a ResNet nor a ViT backbone after unwrapping; keys start "
                          f"{shown}.")


def torchvision(checkpoint: dict, key: str = "") -> tuple[dict, Hints]:
  sd = _tensors_only(_unwrap(checkpoint, (key, "state_dict", "model"), key))
  sd = _drop(_strip(sd, ("module.",)), ("fc.",))
  if _family(sd) != "resnet":
    raise names.LayoutError("--format=torchvision reads ResNets; this is a ViT (--format=timm).")
  return sd, Hints(family="resnet")


def timm(checkpoint: dict, key: str = "") -> tuple[dict, Hints]:
  """timm's own weights; positions resample as its `resample_abs_pos_embed`
  does (antialiased bicubic)."""
  sd = _tensors_only(_unwrap(checkpoint, (key, "state_dict", "model"), key))
  sd = _drop(_strip(sd, ("module.",)), ("head.", "fc.", "mask_token"))
  return sd, Hints(family=_family(sd), pos_resample="bicubic_antialias")


def dino(checkpoint: dict, key: str = "") -> tuple[dict, Hints]:
  """DINO's teacher (what eval_linear/eval_knn load) or student; ViT or ResNet-50.
  Its ViT resamples positions with scale (grid + 0.1) / old grid."""
  sd = _tensors_only(_unwrap(checkpoint, (key or "teacher", "state_dict"), key))
  sd = _drop(_strip(sd, ("module.", "backbone.")), ("head.", "fc."))
  family = _family(sd)
  return sd, Hints(family=family, pos_resample_offset=0.1 if family == "vit" else 0.0)


def ibot(checkpoint: dict, key: str = "") -> tuple[dict, Hints]:
  """iBOT: DINO's layout plus a `masked_embed` token that evaluation drops."""
  sd, hints = dino(checkpoint, key)
  return _drop(sd, ("masked_embed",)), hints


def mae(checkpoint: dict, key: str = "") -> tuple[dict, Hints]:
  """MAE's encoder: pretrained (final norm, evaluate the class token) or
  fine-tuned (`fc_norm` after the average of patch tokens)."""
  sd = _tensors_only(_unwrap(checkpoint, (key, "model"), key))
  sd = _drop(sd, ("decoder_", "mask_token", "head."))
  return sd, Hints(family="vit")


def mocov3(checkpoint: dict, key: str = "") -> tuple[dict, Hints]:
  """MoCo v3's base encoder without its projector (`head` for ViTs, `fc` for
  ResNets) or the momentum encoder and predictor. Its ViT-S has 12 heads; its
  fixed positions are the transpose of MAE's table, so they load as learned."""
  sd = _tensors_only(_unwrap(checkpoint, (key, "state_dict"), key))
  sd = {k[len("module.base_encoder."):]: v for k, v in sd.items()
        if k.startswith("module.base_encoder.")} or _strip(sd, ("module.",))
  sd = _drop(sd, ("head.", "fc."))
  family = _family(sd)
  heads = 12 if family == "vit" and sd["patch_embed.proj.weight"].shape[0] == 384 else 0
  return sd, Hints(family=family, num_heads=heads)


def ijepa(checkpoint: dict, key: str = "") -> tuple[dict, Hints]:
  """I-JEPA's target encoder (its evaluation's choice) or context `encoder`:
  no class token, MAE's sin-cos table, features averaged over patches."""
  sd = _strip(_tensors_only(_unwrap(checkpoint, (key or "target_encoder",), key)),
              ("module.",))
  return sd, Hints(family="vit", pooling="mean")


_CHUNKED_BLOCK = re.compile(r"^blocks\.\d+\.(\d+)\.")


def dinov2(checkpoint: dict, key: str = "") -> tuple[dict, Hints]:
  """DINOv2's backbone: LayerScale, optional register tokens (then resampled
  with antialias and no offset, as hub/backbones.py builds the reg models),
  training checkpoints' FSDP-chunked block names flattened and their teacher
  taken (`teacher` section, or `teacher.`-prefixed keys in `model`)."""
  sd = _tensors_only(_unwrap(checkpoint, (key, "teacher", "model"), key))
  if any(k.startswith("teacher.") for k in sd):
    sd = {k[len("teacher."):]: v for k, v in sd.items() if k.startswith("teacher.")}
  sd = _drop(_strip(sd, ("module.", "backbone.")), ("dino_head.", "ibot_head.", "head.",
                                                      "mask_token"))
  sd = {_CHUNKED_BLOCK.sub(r"blocks.\1.", k): v for k, v in sd.items()}
  if any(".mlp.w12." in k for k in sd):
    raise names.LayoutError("This DINOv2 model uses SwiGLU feed-forward layers (ViT-g), "
                            "which repr_learn's ViT does not have.")
  if "register_tokens" in sd:
    sd["reg_token"] = sd.pop("register_tokens")
  registers = "reg_token" in sd
  return sd, Hints(family="vit", pos_resample="bicubic_antialias" if registers else "bicubic",
                   pos_resample_offset=0.0 if registers else 0.1)


FORMATS = {"torchvision": torchvision, "timm": timm, "dino": dino, "ibot": ibot, "mae": mae,
           "mocov3": mocov3, "ijepa": ijepa, "dinov2": dinov2}


def unwrap(checkpoint: dict, fmt: str, key: str = "") -> tuple[dict, Hints]:
  """(backbone state dict in torchvision/timm names, hints) of a checkpoint."""
  if fmt not in FORMATS:
    raise ValueError(f"Unknown --format {fmt!r}; choose one of {sorted(FORMATS)}.")
  return FORMATS[fmt](checkpoint, key)
