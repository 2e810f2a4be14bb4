"""The interop comparisons run live against torch, torchvision and timm.

Skipped unless they are installed (`pip install -e '.[bench]'`): CI compares
against the golden files instead (tests/test_interop.py). Here the PyTorch
models run beside ours, and exported weights load into timm/torchvision
(`strict=True`) and give our outputs.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
timm = pytest.importorskip("timm")

# pylint: disable=g-import-not-at-top
from repr_learn import config_schema
from repr_learn import export
from repr_learn.interop import checkpoint_files
from repr_learn.interop import names
from repr_learn.interop import synthetic
from repr_learn.models import resnet
from repr_learn.models import vit

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "interop")


def _torch_model(meta):
  """The golden case's PyTorch model with its synthetic weights, eval mode."""
  kwargs = meta["kwargs"]
  if meta["library"] == "timm":
    model = timm.models.vision_transformer.VisionTransformer(**kwargs)
  elif kwargs.get("layers"):
    model = torchvision.models.resnet.ResNet(torchvision.models.resnet.Bottleneck,
                                             kwargs["layers"])
    model.fc = torch.nn.Identity()
  else:
    model = torchvision.models.resnet18(weights=None)
    model.fc = torch.nn.Identity()
  weights = synthetic.random_state_dict(meta["keys_and_shapes"], meta["seed"])
  model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
  return model.eval(), weights


def _meta(case):
  with open(os.path.join(GOLDEN, f"{case}.json")) as f:
    return json.load(f)


def _torch_features(model, x_nchw):
  with torch.no_grad():
    return model(torch.from_numpy(x_nchw)).numpy()


@pytest.mark.parametrize("case", ["timm_vit_cls_ls", "timm_vit_reg", "timm_vit_avg_fcnorm"])
def test_vit_matches_timm_live(case):
  meta = _meta(case)
  model, weights = _torch_model(meta)
  x = np.random.default_rng(0).normal(size=(3, 3, 32, 32)).astype(np.float32)
  params, layout = names.vit_from_timm(weights, num_heads=2)
  pooling = {"timm_vit_avg_fcnorm": "gap_fc_norm"}.get(case, "cls")
  ours = vit.ViT(width=32, depth=2, num_heads=2, mlp_dim=64, patch_size=8, image_size=32,
                 pooling=pooling, pos_embedding="learned", num_registers=layout.num_registers,
                 layer_scale=0.1 if layout.layer_scale else 0.0)
  features = ours.apply({"params": params}, jnp.asarray(x.transpose(0, 2, 3, 1)))
  np.testing.assert_allclose(features, _torch_features(model, x), atol=1e-5)


def test_resnet_matches_torchvision_live():
  model, weights = _torch_model(_meta("torchvision_resnet18"))
  x = np.random.default_rng(0).normal(size=(2, 3, 48, 48)).astype(np.float32)
  params, stats, _ = names.resnet_from_torch(weights)
  ours = resnet.ResNet(stage_sizes=(2, 2, 2, 2), block=resnet.BasicBlock, width=64)
  features = ours.apply({"params": params, "batch_stats": stats},
                        jnp.asarray(x.transpose(0, 2, 3, 1)), train=False)
  theirs = _torch_features(model, x)
  np.testing.assert_allclose(features, theirs, atol=1e-5 * np.abs(theirs).max())


def test_exported_vit_loads_into_timm(tmp_path):
  config = config_schema.base_config()
  config.model.update(backbone="vit_test", patch_size=8, pooling="cls", num_registers=2,
                      pos_embedding="learned", layer_scale=0.1, gelu="tanh")
  config.augment.crop_size = 32
  model = vit.ViT(width=32, depth=2, num_heads=2, mlp_dim=64, patch_size=8, image_size=32,
                  pooling="cls", pos_embedding="learned", num_registers=2, layer_scale=0.1,
                  approximate_gelu=True)
  x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype(np.float32)
  params = jax.device_get(model.init(jax.random.PRNGKey(0), jnp.asarray(x))["params"])
  timm_config, state_dict = export.timm_files(config, params)
  out = tmp_path / "timm"
  out.mkdir()
  checkpoint_files.write_safetensors(str(out / "model.safetensors"), state_dict,
                                     {"format": "pt"})
  (out / "config.json").write_text(json.dumps(timm_config))
  loaded = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
  np.testing.assert_allclose(_torch_features(loaded, x.transpose(0, 3, 1, 2)),
                             model.apply({"params": params}, jnp.asarray(x)), atol=1e-5)


def test_exported_resnet_loads_into_torchvision_strictly():
  model = resnet.ResNet(stage_sizes=(2, 2, 2, 2), block=resnet.BasicBlock, width=64)
  x = np.random.default_rng(2).normal(size=(2, 40, 40, 3)).astype(np.float32)
  variables = jax.device_get(model.init(jax.random.PRNGKey(0), jnp.asarray(x), train=False))
  # Non-trivial statistics, so a mapped-wrong BN would show.
  stats = jax.tree.map(lambda v: v + 0.3, variables["batch_stats"])
  state_dict = names.resnet_to_torch(variables["params"], stats)
  theirs = torchvision.models.resnet18(weights=None)
  theirs.fc = torch.nn.Identity()
  theirs.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict.items()}, strict=True)
  expected = model.apply({"params": variables["params"], "batch_stats": stats},
                         jnp.asarray(x), train=False)
  np.testing.assert_allclose(_torch_features(theirs.eval(), x.transpose(0, 3, 1, 2)),
                             expected, atol=1e-5 * float(np.abs(expected).max()))
