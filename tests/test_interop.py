"""Weights in and out: name maps, official layouts, and golden PyTorch outputs.

The golden files (tests/golden/interop, made by tests/golden/make_interop_golden.py
with torch, torchvision and timm) hold a model's key list, a seed, an input and
the model's outputs; the weights are rebuilt here with numpy
(`interop.synthetic`), imported through our name maps and run through our
networks, which must reproduce PyTorch's outputs. No torch is needed.
"""

import argparse
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from repr_learn.data import augment
from repr_learn.interop import names
from repr_learn.interop import sources
from repr_learn.interop import synthetic
from repr_learn.models import resnet
from repr_learn.models import vit

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "interop")


def _golden(case: str):
  with open(os.path.join(GOLDEN, f"{case}.json")) as f:
    meta = json.load(f)
  with np.load(os.path.join(GOLDEN, f"{case}.npz")) as data:
    arrays = {k: data[k] for k in data.files}
  return meta, arrays


def _state_dict(meta) -> dict:
  return synthetic.random_state_dict(meta["keys_and_shapes"], meta["seed"])


def _nhwc(x):
  return jnp.asarray(np.transpose(x, (0, 2, 3, 1)))


def _close(ours, theirs, tol=1e-5):
  """Agreement relative to the reference's scale (random deep nets grow)."""
  ours, theirs = np.asarray(ours), np.asarray(theirs)
  assert ours.shape == theirs.shape
  return float(np.max(np.abs(ours - theirs))) <= tol * max(1.0, float(np.max(np.abs(theirs))))


# --- ViT against timm ---------------------------------------------------------

_VIT_CASES = {  # golden case -> our pooling
    "timm_vit_cls_ls": "cls", "timm_vit_reg": "cls", "timm_vit_avg_fcnorm": "gap_fc_norm",
    "timm_vit_gap": "gap", "timm_vit_noclass": "mean"}


def _timm_vit(case: str, **overrides):
  meta, arrays = _golden(case)
  params, layout = names.vit_from_timm(_state_dict(meta), num_heads=2)
  options = dict(width=layout.width, depth=layout.depth, num_heads=2, mlp_dim=layout.mlp_dim,
                 patch_size=layout.patch_size, pooling=_VIT_CASES[case],
                 pos_embedding=layout.pos_embedding, image_size=layout.grid * layout.patch_size,
                 layer_scale=0.1 if layout.layer_scale else 0.0,
                 num_registers=layout.num_registers)
  model = vit.ViT(**{**options, **overrides})
  x = _nhwc(arrays["input"])
  tokens = model.apply({"params": params}, x, method=model.encode)["tokens"]
  return model.apply({"params": params}, x), tokens, arrays


@pytest.mark.parametrize("case", sorted(_VIT_CASES))
def test_vit_reproduces_timm(case):
  features, tokens, arrays = _timm_vit(case)
  assert _close(tokens, arrays["tokens"]), case
  assert _close(features, arrays["features"]), case


def test_tanh_gelu_breaks_timm_parity():
  features, _, arrays = _timm_vit("timm_vit_cls_ls", approximate_gelu=True)
  assert not _close(features, arrays["features"])


# --- ResNet against torchvision -------------------------------------------------


def _torchvision_resnet(case: str, padding: str = "torch"):
  meta, arrays = _golden(case)
  params, stats, layout = names.resnet_from_torch(_state_dict(meta))
  block = resnet.Bottleneck if layout.bottleneck else resnet.BasicBlock
  model = resnet.ResNet(stage_sizes=layout.stage_sizes, block=block, width=layout.width,
                        stem=layout.stem, padding=padding)
  features = jax.jit(lambda v, x: model.apply(v, x, train=False))(
      {"params": params, "batch_stats": stats}, _nhwc(arrays["input"]))
  return features, arrays


@pytest.mark.parametrize("case", ["torchvision_resnet18", "torchvision_resnet_bottleneck"])
def test_resnet_reproduces_torchvision(case):
  features, arrays = _torchvision_resnet(case)
  assert _close(features, arrays["features"]), float(np.abs(features - arrays["features"]).max())


def test_same_padding_breaks_torchvision_parity():
  features, arrays = _torchvision_resnet("torchvision_resnet18", padding="same")
  assert not _close(features, arrays["features"], tol=1e-3)


# --- Name maps round trip --------------------------------------------------------


@pytest.mark.parametrize("case", ["torchvision_resnet18", "torchvision_resnet_bottleneck"])
def test_resnet_names_round_trip_exactly(case):
  meta, _ = _golden(case)
  state_dict = _state_dict(meta)
  params, stats, _ = names.resnet_from_torch(state_dict)
  _assert_same(names.resnet_to_torch(params, stats), state_dict)
  again, again_stats, _ = names.resnet_from_torch(names.resnet_to_torch(params, stats))
  jax.tree.map(np.testing.assert_array_equal, (again, again_stats), (params, stats))


@pytest.mark.parametrize("case", sorted(_VIT_CASES))
def test_vit_names_round_trip_exactly(case):
  """ours -> timm -> ours is exact for every layout; timm -> ours -> timm too
  where positions have no class slot (elsewhere the slot is folded into the
  class token, which is the same network: see test_vit_reproduces_timm)."""
  meta, _ = _golden(case)
  state_dict = _state_dict(meta)
  params, layout = names.vit_from_timm(state_dict, num_heads=2)
  exported = names.vit_to_timm(params, grid=layout.grid, fc_norm=layout.fc_norm)
  jax.tree.map(np.testing.assert_array_equal, names.vit_from_timm(exported, 2)[0], params)
  if state_dict["pos_embed"].shape[1] == layout.grid ** 2:
    _assert_same(exported, state_dict)


# --- Position resampling against torch.nn.functional.interpolate -----------------


def _resampled(table_nchw, name):
  """Our resampling of a [1, D, g, g] table for a golden case name."""
  d, g = table_nchw.shape[1], table_nchw.shape[2]
  pos = jnp.asarray(np.transpose(table_nchw[0], (1, 2, 0)).reshape(g * g, d))
  new = int(name.split("_to_")[1].split("_")[0])
  method = "bicubic_antialias" if name.endswith("_aa") else "bicubic"
  offset = 0.1 if name.startswith("offset") else 0.0
  out = vit.resample_positions(pos, new, method, offset)
  return np.transpose(np.asarray(out).reshape(new, new, d), (2, 0, 1))[None]


def test_position_resampling_matches_torch_bicubic():
  meta, arrays = _golden("pos_resample")
  cases = [k for k in arrays if k.startswith(("size_", "offset_"))]
  assert len(cases) >= 6, cases
  for name in cases:
    table = arrays['table_g' + name.split('_')[1]]
    np.testing.assert_allclose(_resampled(table, name), arrays[name], atol=1e-5, err_msg=name)


def test_legacy_cubic_equals_torch_antialiased_bicubic():
  """Runs made before used jax.image.resize('cubic'): the same numbers as the
  antialiased option, so they keep computing what they were trained with."""
  table = np.random.default_rng(0).normal(size=(36, 5)).astype(np.float32)
  for grid in (3, 4, 9):
    legacy = jax.image.resize(table.reshape(6, 6, 5), (grid, grid, 5), "cubic")
    ours = vit.resample_positions(table, grid, "bicubic_antialias")
    np.testing.assert_allclose(ours, legacy.reshape(grid * grid, 5), atol=2e-6)


# --- Random-resized crops against torchvision's sampler ----------------------------


def test_crop_boxes_follow_torchvision_statistics():
  """Our static-shape sampler against `RandomResizedCrop.get_params` over 200k
  draws each (tests/golden/interop/rrc_stats.json), 20k draws here: the means
  have standard errors under 0.002."""
  with open(os.path.join(GOLDEN, "rrc_stats.json")) as f:
    settings = json.load(f)["settings"]
  keys = jax.random.split(jax.random.PRNGKey(0), 20000)
  for entry in settings:
    h, w = entry["H"], entry["W"]
    boxes = jax.jit(jax.vmap(lambda k: augment.torchvision_crop_box(  # pylint: disable=cell-var-from-loop
        k, float(h), float(w), tuple(entry["scale"]), tuple(entry["ratio"]))))(keys)
    top, left, ch, cw = (np.asarray(b) for b in boxes)
    assert np.all(ch >= 1) and np.all(top >= 0) and np.all(top + ch <= h), entry
    assert np.all(cw >= 1) and np.all(left >= 0) and np.all(left + cw <= w), entry
    assert np.all(ch == np.round(ch)) and np.all(top == np.round(top))
    area = ch * cw / (h * w)
    log_aspect = np.log(cw / ch)
    setting = (h, w, entry["scale"])
    assert abs(area.mean() - entry["area_frac_mean"]) < 0.01, setting
    assert abs(area.std() - entry["area_frac_std"]) < 0.01, setting
    assert abs(log_aspect.mean() - entry["log_aspect_mean"]) < 0.01, setting
    assert abs(log_aspect.std() - entry["log_aspect_std"]) < 0.01, setting
    assert abs(((top + ch / 2) / h).mean() - entry["center_y_frac_mean"]) < 0.01, setting
    assert abs(((left + cw / 2) / w).mean() - entry["center_x_frac_mean"]) < 0.01, setting
    hist, _ = np.histogram(area, bins=entry["area_frac_hist_edges"])
    np.testing.assert_allclose(hist / len(area), entry["area_frac_hist"], atol=0.015,
                               err_msg=str(setting))


def test_clipped_crops_are_larger_than_torchvision_crops():
  """The issue's measurement: at scale (0.25, 1) on 96-px images the sampler of
  runs made before (boxes clipped to the image) averages 0.62 of the image,
  torchvision's 0.57."""
  keys = jax.random.split(jax.random.PRNGKey(1), 20000)

  def mean_area(box):
    _, _, ch, cw = jax.jit(jax.vmap(lambda k: box(k, 96.0, 96.0, (0.25, 1.0),
                                                   (3 / 4, 4 / 3))))(keys)
    return float(jnp.mean(ch * cw)) / 96 ** 2

  assert 0.60 < mean_area(augment.clipped_crop_box) < 0.64
  assert 0.55 < mean_area(augment.torchvision_crop_box) < 0.59


# --- Official layouts ----------------------------------------------------------------


def _vit_state_dict():
  meta, _ = _golden("timm_vit_cls_ls")
  return _state_dict(meta)


def _prefixed(sd, prefix):
  return {prefix + k: v for k, v in sd.items()}


def _assert_same(a, b):
  assert sorted(a) == sorted(b)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_official_layouts_unwrap_to_the_same_backbone():
  base = _vit_state_dict()
  head = {"head.mlp.0.weight": np.ones((4, 32), np.float32),
          "head.last_layer.weight_g": np.ones((8, 1), np.float32)}
  dino = {"teacher": {**_prefixed(base, "backbone."), **head},
          "student": _prefixed({k: v + 1 for k, v in base.items()}, "module.backbone."),
          "args": argparse.Namespace(arch="vit_small"), "epoch": 3}
  mae = {"model": {**base, "mask_token": np.zeros((1, 1, 32), np.float32),
                   "decoder_embed.weight": np.ones((16, 32), np.float32),
                   "decoder_blocks.0.norm1.weight": np.ones(16, np.float32)}}
  mocov3 = {"state_dict": {**_prefixed(base, "module.base_encoder."),
                           "module.base_encoder.head.0.weight": np.ones((8, 32), np.float32),
                           **_prefixed(base, "module.momentum_encoder."),
                           "module.predictor.0.weight": np.ones((8, 8), np.float32)}}
  ijepa_base = {k: v for k, v in base.items() if k != "cls_token"}
  ijepa = {"encoder": _prefixed({k: v + 1 for k, v in ijepa_base.items()}, "module."),
           "target_encoder": _prefixed(ijepa_base, "module."),
           "predictor": {"module.predictor_embed.weight": np.ones((8, 32), np.float32)}}
  ibot = {"teacher": {**_prefixed(base, "module.backbone."),
                      "module.backbone.masked_embed": np.zeros((1, 32), np.float32), **head}}
  _assert_same(sources.unwrap(dino, "dino")[0], base)
  _assert_same(sources.unwrap(dino, "dino", "student")[0],
               {k: v + 1 for k, v in base.items()})
  _assert_same(sources.unwrap(mae, "mae")[0], base)
  _assert_same(sources.unwrap(mocov3, "mocov3")[0], base)
  _assert_same(sources.unwrap(ijepa, "ijepa")[0], ijepa_base)
  _assert_same(sources.unwrap(ibot, "ibot")[0], base)
  released_ibot = {"state_dict": {**base, "masked_embed": np.zeros((1, 32), np.float32)}}
  _assert_same(sources.unwrap(released_ibot, "ibot")[0], base)
  assert sources.unwrap(dino, "dino")[1].pos_resample_offset == 0.1
  with pytest.raises(names.LayoutError, match="--key=teachr is not in this checkpoint"):
    sources.unwrap(dino, "dino", "teachr")


def test_dinov2_layout_with_registers_and_chunked_blocks():
  meta, _ = _golden("timm_vit_reg")
  base = _state_dict(meta)
  official = {("register_tokens" if k == "reg_token" else k): v for k, v in base.items()}
  official = {k.replace("blocks.1.", "blocks.0.1.").replace("blocks.0.n", "blocks.0.0.n")
              .replace("blocks.0.a", "blocks.0.0.a").replace("blocks.0.m", "blocks.0.0.m")
              .replace("blocks.0.l", "blocks.0.0.l"): v for k, v in official.items()}
  official["mask_token"] = np.zeros((1, 32), np.float32)
  sd, hints = sources.unwrap({"teacher": _prefixed(official, "backbone.")}, "dinov2")
  _assert_same(sd, base)
  fvcore = {"model": {**_prefixed(official, "teacher.backbone."),
                      **_prefixed(official, "student.backbone.")}}
  _assert_same(sources.unwrap(fvcore, "dinov2")[0], base)
  assert hints.pos_resample == "bicubic_antialias" and hints.pos_resample_offset == 0.0


def test_unknown_layout_names_the_keys():
  with pytest.raises(names.LayoutError, match="could not place 1 keys .*surprise"):
    names.vit_from_timm({**_vit_state_dict(), "surprise.weight": np.ones(3, np.float32)}, 2)
  with pytest.raises(names.LayoutError, match="Neither a ResNet nor a ViT"):
    sources.unwrap({"model": {"encoder.layer.0.weight": np.ones(2, np.float32)}}, "timm")


def test_mae_sincos_table_is_ours_and_mocov3_is_its_transpose():
  table = vit.sincos_2d_positions(4, 32)
  mae = {**_vit_state_dict(), "pos_embed": np.concatenate([np.zeros((1, 32)), table])[None]}
  assert names.vit_layout(mae).pos_embedding == "sincos"
  moco = table.reshape(4, 4, 32).transpose(1, 0, 2).reshape(16, 32)
  mocov3 = {**mae, "pos_embed": np.concatenate([np.zeros((1, 32)), moco])[None]}
  assert names.vit_layout(mocov3).pos_embedding == "learned"
