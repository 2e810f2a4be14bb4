"""Writes the PyTorch golden files under `tests/golden/interop/`.

Why this exists: `repr_learn` loads and mirrors PyTorch models (timm ViTs,
torchvision ResNets), position-embedding resampling and torchvision's
RandomResizedCrop, but its tests must run without torch installed. This script
runs the reference PyTorch code once on tiny models and stores what the tests
compare against: the state-dict key list and shapes, a seed, the exact
constructor call, the input and the outputs. It stores no weights: they are a
pure-numpy function of (keys_and_shapes, seed), see
`repr_learn/interop/synthetic.py`, so the tests rebuild the very same tensors.

Run it from the repository root, in an environment with torch, torchvision,
timm and numpy:

    python tests/golden/make_interop_golden.py

Rerun it (and commit the regenerated files) whenever a case is added or
changed here, or when `synthetic.py` changes, since the outputs depend on the
weights it generates.

Files, per model case `<case>`:
  <case>.json  metadata: library, constructor, kwargs, seed, keys_and_shapes,
               input_layout, output shapes, notes, library versions.
  <case>.npz   `input` (float32 NCHW, numpy default_rng(seed + 1) normal(0, 1))
               and one float32 array per output.
plus `pos_resample.{json,npz}` (F.interpolate of position tables) and
`rrc_stats.json` (RandomResizedCrop.get_params statistics).
"""

import json
import math
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import timm  # noqa: E402
import timm.models.vision_transformer  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402
import torchvision.models.resnet  # noqa: E402
import torchvision.transforms  # noqa: E402

from repr_learn.interop import synthetic  # noqa: E402

OUT_DIR = os.path.join(ROOT, "tests", "golden", "interop")
MAX_FILE_BYTES = 200 * 1024

VERSIONS = {
    "torch": torch.__version__,
    "torchvision": torchvision.__version__,
    "timm": timm.__version__,
    "numpy": np.__version__,
    "python": platform.python_version(),
}

WEIGHTS_NOTE = ("weights = repr_learn.interop.synthetic.random_state_dict("
                "keys_and_shapes, seed), loaded with load_state_dict(strict=True); "
                "model.eval(), torch.no_grad(), float32 on CPU.")


# ----------------------------------------------------------------------------
# Shared helpers.

def setup_torch():
  """Deterministic float32 CPU execution."""
  torch.manual_seed(0)
  torch.use_deterministic_algorithms(True)
  torch.backends.cudnn.deterministic = True
  torch.backends.cudnn.benchmark = False
  torch.set_default_dtype(torch.float32)


def call_string(fn_name: str, kwargs: dict) -> str:
  """'fn_name(k1=v1, k2=v2)' with the values' reprs."""
  args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
  return f"{fn_name}({args})"


def load_synthetic_weights(model: torch.nn.Module, seed: int):
  """Loads synthetic weights; returns the ordered [(key, shape), ...]."""
  keys_and_shapes = [(k, list(v.shape)) for k, v in model.state_dict().items()]
  weights = synthetic.random_state_dict(keys_and_shapes, seed)
  model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()},
                        strict=True)
  model.eval()
  return keys_and_shapes


def make_input(shape, seed: int) -> np.ndarray:
  return np.random.default_rng(seed + 1).normal(0.0, 1.0, shape).astype(np.float32)


def to_numpy(t: torch.Tensor) -> np.ndarray:
  return t.detach().cpu().numpy().astype(np.float32)


def format_json(obj, indent: str = "") -> str:
  """JSON with dicts expanded one key a line and lists of lists one item a line
  (each item compact), so `keys_and_shapes` reads as one key per line."""
  inner = indent + "  "
  if isinstance(obj, dict) and obj:
    items = [f"{inner}{json.dumps(k)}: {format_json(v, inner)}"
             for k, v in obj.items()]
    return "{\n" + ",\n".join(items) + "\n" + indent + "}"
  if (isinstance(obj, (list, tuple)) and obj
      and all(isinstance(v, (list, tuple, dict)) for v in obj)):
    items = [inner + format_json(v, inner) if isinstance(v, dict)
             else inner + json.dumps(v) for v in obj]
    return "[\n" + ",\n".join(items) + "\n" + indent + "]"
  return json.dumps(obj)


def write_json(path: str, meta: dict):
  with open(path, "w") as f:
    f.write(format_json(meta) + "\n")


def write_case(case: str, meta: dict, arrays: dict):
  """Writes <case>.json and <case>.npz and returns their paths."""
  json_path = os.path.join(OUT_DIR, case + ".json")
  npz_path = os.path.join(OUT_DIR, case + ".npz")
  meta = dict(meta, versions=VERSIONS)
  meta["arrays"] = {k: {"shape": list(v.shape), "dtype": str(v.dtype)}
                    for k, v in arrays.items()}
  write_json(json_path, meta)
  np.savez_compressed(npz_path, **arrays)
  return [json_path, npz_path]


# ----------------------------------------------------------------------------
# Case family 1: timm VisionTransformer.

VIT_BASE = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2,
                mlp_ratio=2, num_classes=0)

VIT_CASES = {
    "timm_vit_cls_ls": (
        dict(init_values=0.1, global_pool="token"),
        "Class token, LayerScale (init_values), final norm on all tokens; "
        "features = class token after the final norm (DINO / DeiT III layout)."),
    "timm_vit_reg": (
        dict(init_values=0.1, global_pool="token", reg_tokens=2,
             no_embed_class=True),
        "DINOv2-with-registers layout: tokens are [cls, reg0, reg1, patches]; "
        "pos_embed covers the patches only (no_embed_class=True) and is added "
        "before the class and register tokens are prepended."),
    "timm_vit_avg_fcnorm": (
        dict(global_pool="avg", fc_norm=True),
        "MAE fine-tuning layout: class token kept, no LayerScale, NO final "
        "norm on the tokens (model.norm is Identity, so `tokens` are the raw "
        "block outputs); features = fc_norm(mean of the patch tokens, class "
        "token excluded)."),
    "timm_vit_gap": (
        dict(global_pool="avg", fc_norm=False),
        "Class token kept; final norm on all tokens, then features = mean of "
        "the normed patch tokens (class token excluded); fc_norm is Identity."),
    "timm_vit_noclass": (
        dict(class_token=False, global_pool="avg", fc_norm=False),
        "I-JEPA-like: no class token, tokens are the patches only; final norm, "
        "then features = mean of all tokens."),
}


def vit_case(case: str, seed: int, extra: dict, note: str):
  kwargs = dict(VIT_BASE, **extra)
  model = timm.models.vision_transformer.VisionTransformer(**kwargs)
  keys_and_shapes = load_synthetic_weights(model, seed)
  x = make_input((2, 3, 32, 32), seed)
  with torch.no_grad():
    tokens = model.forward_features(torch.from_numpy(x))
    features = model.forward_head(model.forward_features(torch.from_numpy(x)),
                                  pre_logits=True)
  meta = {
      "library": "timm",
      "constructor": call_string(
          "timm.models.vision_transformer.VisionTransformer", kwargs),
      "post_constructor": None,
      "kwargs": kwargs,
      "seed": seed,
      "keys_and_shapes": keys_and_shapes,
      "input_layout": "NCHW",
      "outputs": {
          "tokens": "model.forward_features(x): [B, prefix + patches, D], all "
                    "tokens after model.norm (Identity when fc_norm=True).",
          "features": "model.forward_head(model.forward_features(x), "
                      "pre_logits=True): [B, D].",
      },
      "notes": (note + " LayerNorm eps=1e-6, GELU (erf), qkv_bias=True, "
                f"num_prefix_tokens={model.num_prefix_tokens}, patch grid 4x4. "
                + WEIGHTS_NOTE),
  }
  return write_case(case, meta, {"input": x, "tokens": to_numpy(tokens),
                                 "features": to_numpy(features)})


# ----------------------------------------------------------------------------
# Case family 2: torchvision ResNet.

# 2 images of 40x40 rather than 64x64: at 64x64 the Bottleneck file (stem
# 2x64x16x16 + layer2 2x512x8x8 + input) is ~0.5 MB. 40x40 keeps every file
# under 200 KB and gives even sizes for conv1 (40), maxpool (20) and layer2's
# stride-2 conv (10) -- where PyTorch's symmetric padding differs from 'SAME' --
# and odd sizes for layer3 (5) and layer4 (3), ending on a 2x2 map before the
# average pool.
RESNET_INPUT = (2, 3, 40, 40)

RESNET_CASES = {
    "torchvision_resnet18": (
        "torchvision.models.resnet18(weights=None)",
        lambda: torchvision.models.resnet18(weights=None),
        {"weights": None}),
    "torchvision_resnet_bottleneck": (
        "torchvision.models.resnet.ResNet(torchvision.models.resnet.Bottleneck, "
        "[1, 1, 1, 1])",
        lambda: torchvision.models.resnet.ResNet(
            torchvision.models.resnet.Bottleneck, [1, 1, 1, 1]),
        {"block": "torchvision.models.resnet.Bottleneck",
         "layers": [1, 1, 1, 1]}),
}


def resnet_case(case: str, seed: int, constructor: str, build, kwargs: dict):
  model = build()
  model.fc = torch.nn.Identity()  # before the key list: no fc keys
  keys_and_shapes = load_synthetic_weights(model, seed)
  captured = {}
  hooks = [
      model.maxpool.register_forward_hook(
          lambda m, i, o: captured.__setitem__("stem", o)),
      model.layer2.register_forward_hook(
          lambda m, i, o: captured.__setitem__("layer2", o)),
  ]
  x = make_input(RESNET_INPUT, seed)
  with torch.no_grad():
    features = model(torch.from_numpy(x))
  for h in hooks:
    h.remove()
  meta = {
      "library": "torchvision",
      "constructor": constructor,
      "post_constructor": "model.fc = torch.nn.Identity()",
      "kwargs": kwargs,
      "seed": seed,
      "keys_and_shapes": keys_and_shapes,
      "input_layout": "NCHW",
      "outputs": {
          "stem": "output of model.maxpool (conv1 -> bn1 -> relu -> maxpool), NCHW",
          "layer2": "output of model.layer2, NCHW",
          "features": "model(x) with fc = Identity: flattened global average "
                      "pool of layer4, [B, C]",
      },
      "notes": ("BatchNorm in eval mode (running statistics, eps=1e-5); "
                "running_mean/var and scales are randomised too. Input is "
                f"{RESNET_INPUT} (not 64x64) to keep files small; spatial sizes "
                "40 -> conv1 20 -> maxpool 10 -> layer2 5 -> layer3 3 -> "
                "layer4 2. Bottleneck is torchvision's v1.5 (stride on the 3x3 "
                "conv2). " + WEIGHTS_NOTE),
  }
  return write_case(case, meta, {
      "input": x, "stem": to_numpy(captured["stem"]),
      "layer2": to_numpy(captured["layer2"]), "features": to_numpy(features)})


# ----------------------------------------------------------------------------
# Case family 3: position-embedding resampling with F.interpolate.

POS_DIM = 8

POS_CASES = {
    # name: (source grid, call kwargs as passed to F.interpolate, provenance)
    "size_4_to_6": (4, dict(size=(6, 6), mode="bicubic", align_corners=False,
                            antialias=False),
                    "MAE util/pos_embed.py::interpolate_pos_embed"),
    "size_6_to_4": (6, dict(size=(4, 4), mode="bicubic", align_corners=False,
                            antialias=False),
                    "MAE interpolate_pos_embed, downsampling"),
    "size_4_to_6_aa": (4, dict(size=(6, 6), mode="bicubic", align_corners=False,
                               antialias=True),
                       "timm resample_abs_pos_embed default (antialias=True); "
                       "also DINOv2 *_reg hub models (interpolate_offset=0.0 -> "
                       "size=, interpolate_antialias=True)"),
    "size_6_to_4_aa": (6, dict(size=(4, 4), mode="bicubic", align_corners=False,
                               antialias=True),
                       "timm resample_abs_pos_embed default, downsampling"),
    "offset_4_to_6": (4, dict(scale_factor=((6 + 0.1) / 4, (6 + 0.1) / 4),
                              mode="bicubic", antialias=False),
                      "DINO interpolate_pos_encoding / DINOv2 with "
                      "interpolate_offset=0.1, upsampling"),
    "offset_6_to_4": (6, dict(scale_factor=((4 + 0.1) / 6, (4 + 0.1) / 6),
                              mode="bicubic", antialias=False),
                      "DINO / DINOv2 offset form, downsampling"),
}

POS_NOTES = (
    "Each output is F.interpolate(torch.from_numpy(table_g<grid>), **call) on a "
    "[1, D, g, g] table (channels = embedding dims, NCHW). The size_* cases "
    "pass size=; align_corners=False is torch's default. Verified against "
    "source snapshots: MAE (facebookresearch/mae efb2a80, util/pos_embed.py) "
    "calls interpolate(pos_tokens, size=(new, new), mode='bicubic', "
    "align_corners=False). timm 1.0.31 layers/pos_embed.py::"
    "resample_abs_pos_embed calls F.interpolate(posemb, size=new_size, "
    "mode='bicubic', align_corners=None, antialias=True) by default. "
    "DINO (facebookresearch/dino 7c446df, vision_transformer.py::"
    "interpolate_pos_encoding): w0 = w // patch + 0.1, h0 = h // patch + 0.1, "
    "interpolate(..., scale_factor=(w0 / sqrt(N), h0 / sqrt(N)), "
    "mode='bicubic') (no antialias argument, so False; recompute_scale_factor "
    "left at None, so torch maps coordinates with the given scale, not "
    "out/in), then asserts int(w0), int(h0) == output size. DINOv2 "
    "(facebookresearch/dinov2 b8931f7, dinov2/models/vision_transformer.py): "
    "if interpolate_offset: scale_factor=((w0 + offset) / M, (h0 + offset) / "
    "M) else size=(w0, h0); antialias=self.interpolate_antialias; defaults "
    "interpolate_offset=0.1, interpolate_antialias=False; the hub *_reg models "
    "(dinov2/hub/backbones.py) use interpolate_offset=0.0 and "
    "interpolate_antialias=True, i.e. the size_*_aa form. The offset cases "
    "here use square grids, so the (w, h) vs (H, W) order in DINO's "
    "scale_factor does not matter; output sizes were asserted equal to the "
    "target (floor(old * scale) == new).")


def pos_resample_case(seed: int):
  rng = np.random.default_rng(seed)
  tables = {g: rng.normal(0.0, 1.0, (1, POS_DIM, g, g)).astype(np.float32)
            for g in (4, 6)}
  arrays = {f"table_g{g}": t for g, t in tables.items()}
  calls = {}
  for name, (grid, call, provenance) in POS_CASES.items():
    with torch.no_grad():
      out = F.interpolate(torch.from_numpy(tables[grid]), **call)
    target = int(name.split("_to_")[1].split("_")[0])
    assert tuple(out.shape[-2:]) == (target, target), (name, out.shape)
    arrays[name] = to_numpy(out)
    calls[name] = {
        "input": f"table_g{grid}",
        "call": call_string("torch.nn.functional.interpolate",
                            call).replace("(", f"(table_g{grid}, ", 1),
        "kwargs": {k: list(v) if isinstance(v, tuple) else v
                   for k, v in call.items()},
        "provenance": provenance,
    }
  meta = {
      "library": "torch",
      "seed": seed,
      "table_generation": (f"rng = numpy.random.default_rng({seed}); then for "
                           f"g in (4, 6): rng.normal(0, 1, (1, {POS_DIM}, g, "
                           "g)).astype(float32)"),
      "input_layout": "NCHW",
      "cases": calls,
      "notes": POS_NOTES,
  }
  return write_case("pos_resample", meta, arrays)


# ----------------------------------------------------------------------------
# Case family 4: RandomResizedCrop.get_params statistics.

RRC_RATIO = (3 / 4, 4 / 3)
RRC_DRAWS = 200_000
RRC_SETTINGS = [  # (H, W, scale)
    (96, 96, (0.25, 1.0)),
    (96, 96, (0.08, 1.0)),
    (32, 32, (0.08, 1.0)),
    (256, 341, (0.08, 1.0)),
    (96, 96, (0.05, 0.14)),
    (16, 16, (0.25, 1.0)),
    (64, 48, (0.9, 1.0)),
]


def rrc_fallback_box(height: int, width: int, ratio) -> tuple:
  """The (top, left, h, w) get_params returns after 10 failed attempts."""
  in_ratio = float(width) / float(height)
  if in_ratio < min(ratio):
    w = width
    h = int(round(w / min(ratio)))
  elif in_ratio > max(ratio):
    h = height
    w = int(round(h * max(ratio)))
  else:
    w, h = width, height
  return ((height - h) // 2, (width - w) // 2, h, w)


def rrc_setting_stats(height: int, width: int, scale, draws: int):
  """The statistics of `draws` calls, and the seconds they took."""
  img = torch.zeros(3, height, width)
  torch.manual_seed(0)
  start = time.time()
  boxes = np.array([torchvision.transforms.RandomResizedCrop.get_params(
      img, scale, RRC_RATIO) for _ in range(draws)], dtype=np.int64)
  elapsed = time.time() - start
  top, left, h, w = (boxes[:, i].astype(np.float64) for i in range(4))
  area = h * w / (height * width)
  log_aspect = np.log(w / h)
  fallback = rrc_fallback_box(height, width, RRC_RATIO)
  is_fallback = np.all(boxes == np.array(fallback), axis=1)
  hist, edges = np.histogram(area, bins=10, range=(0.0, 1.0))
  return {
      "H": height, "W": width, "scale": list(scale), "ratio": list(RRC_RATIO),
      "draws": draws,
      "area_frac_mean": float(area.mean()),
      "area_frac_std": float(area.std()),
      "log_aspect_mean": float(log_aspect.mean()),
      "log_aspect_std": float(log_aspect.std()),
      "center_y_frac_mean": float(((top + h / 2) / height).mean()),
      "center_x_frac_mean": float(((left + w / 2) / width).mean()),
      "fallback_box": list(fallback),
      "fallback_match_frac": float(is_fallback.mean()),
      "area_frac_hist": (hist / draws).tolist(),
      "area_frac_hist_edges": edges.tolist(),
  }, elapsed


def rrc_stats_case():
  settings = []
  for height, width, scale in RRC_SETTINGS:
    stats, elapsed = rrc_setting_stats(height, width, scale, RRC_DRAWS)
    print(f"  rrc {height}x{width} scale={scale}: area mean "
          f"{stats['area_frac_mean']:.4f}, fallback "
          f"{stats['fallback_match_frac']:.4f} ({elapsed:.1f} s)")
    settings.append(stats)
  meta = {
      "library": "torchvision",
      "call": ("torchvision.transforms.RandomResizedCrop.get_params("
               "torch.zeros(3, H, W), scale, ratio=(3/4, 4/3)) -> (top, left, "
               "h, w), called `draws` times in a row after torch.manual_seed(0) "
               "(the seed is reset for each setting)."),
      "statistics": {
          "area_frac": "h * w / (H * W)",
          "log_aspect": "log(w / h)",
          "center_y_frac": "(top + h / 2) / H",
          "center_x_frac": "(left + w / 2) / W",
          "fallback_match_frac": (
              "fraction of draws exactly equal to fallback_box (top, left, h, "
              "w), the central crop get_params returns after 10 rejected "
              "attempts; a regular accepted draw can coincide with it (e.g. a "
              "full-image crop), so this is an upper bound on the true "
              "fallback rate."),
          "area_frac_hist": "10 bins over [0, 1] (numpy.histogram), fractions "
                            "of all draws; the last bin includes 1.0.",
      },
      "std": "population standard deviation (numpy ddof=0)",
      "settings": settings,
      "versions": VERSIONS,
  }
  path = os.path.join(OUT_DIR, "rrc_stats.json")
  write_json(path, meta)
  return [path]


# ----------------------------------------------------------------------------

def main():
  setup_torch()
  os.makedirs(OUT_DIR, exist_ok=True)
  written = []
  seed = 0
  for case, (extra, note) in VIT_CASES.items():
    written += vit_case(case, seed, extra, note)
    seed += 10
  for case, (constructor, build, kwargs) in RESNET_CASES.items():
    written += resnet_case(case, seed, constructor, build, kwargs)
    seed += 10
  written += pos_resample_case(seed)
  written += rrc_stats_case()

  print("\nWritten:")
  total = 0
  for path in written:
    size = os.path.getsize(path)
    total += size
    print(f"  {os.path.relpath(path, ROOT):50s} {size / 1024:8.1f} KB")
    assert size < MAX_FILE_BYTES, f"{path} is larger than {MAX_FILE_BYTES} bytes"
  print(f"  total {total / 1024:.1f} KB")
  print("Versions: " + ", ".join(f"{k} {v}" for k, v in VERSIONS.items()))


if __name__ == "__main__":
  main()
