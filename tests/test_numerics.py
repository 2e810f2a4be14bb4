"""The standard numerics' options, and runs made before keeping theirs."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import simclr
from repr_learn import config_schema
from repr_learn import finished_run
from repr_learn import pretrained
from repr_learn import workdir as workdir_lib
from repr_learn.models import resnet
from repr_learn.models import vit


def _old_config_json(workdir, config):
  """A config.json as a run made before the numerics fields wrote it."""
  saved = json.loads(json.dumps(config.to_dict(), default=str))
  for dotted in config_schema.LEGACY_VALUES:
    section, _, leaf = dotted.rpartition(".")
    node = saved
    for part in section.split("."):
      node = node[part]
    del node[leaf]
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump(saved, f)


def test_runs_made_before_keep_their_numerics(tmp_path):
  config = simclr.get_config("smoke")
  _old_config_json(str(tmp_path), config)
  read = finished_run.read_config(str(tmp_path))
  assert (read.model.resnet_padding, read.model.gelu, read.model.pos_resample,
          read.augment.crop_sampler) == ("same", "tanh", "bicubic_antialias", "clip")
  # Resuming with the same command keeps them, and the workdir is claimed.
  resumed = workdir_lib.keep_trained_numerics(str(tmp_path), config)
  assert resumed.model.resnet_padding == "same" and resumed.augment.crop_sampler == "clip"
  workdir_lib.claim(str(tmp_path), resumed, overwrite=False)
  # Another run in that workdir is not given the old numerics.
  other = simclr.get_config("smoke")
  other.batch_size = 64
  assert workdir_lib.keep_trained_numerics(str(tmp_path), other).model.gelu == "exact"


def test_new_runs_use_the_standard_numerics(tmp_path):
  config = simclr.get_config("smoke")
  workdir_lib.write_config(str(tmp_path), config)
  read = finished_run.read_config(str(tmp_path))
  assert (read.model.resnet_padding, read.model.gelu, read.model.pos_resample,
          read.augment.crop_sampler) == ("torch", "exact", "bicubic", "torchvision")
  assert workdir_lib.keep_trained_numerics(str(tmp_path), config) is config


def test_resnet_padding_differs_only_on_even_inputs():
  def features(padding, size):
    model = resnet.ResNet(stage_sizes=(1, 1), block=resnet.BasicBlock, width=4,
                          stem="imagenet", padding=padding)
    x = jax.random.normal(jax.random.PRNGKey(0), (1, size, size, 3))
    variables = model.init(jax.random.PRNGKey(1), x, train=False)
    return model.apply(variables, x, train=False)

  assert not np.allclose(features("torch", 16), features("same", 16))
  # 9 px: the stem gives 5, the max-pool 3: every strided window sees an odd input.
  np.testing.assert_allclose(features("torch", 9), features("same", 9), atol=1e-6)


def _tiny_vit(**kwargs):
  model = vit.ViT(width=32, depth=1, num_heads=2, mlp_dim=64, patch_size=4, image_size=8,
                  pos_embedding="learned", **kwargs)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 3))
  return model, model.init(jax.random.PRNGKey(1), x), x


def test_registers_come_after_the_class_token_and_are_not_pooled():
  model, variables, x = _tiny_vit(num_registers=3, pooling="gap")
  assert variables["params"]["register_tokens"].shape == (1, 3, 32)
  tokens = model.apply(variables, x, method=model.encode)["tokens"]
  assert tokens.shape == (2, 1 + 3 + 4, 32) and model.num_prefix_tokens == 4
  np.testing.assert_allclose(model.apply(variables, x), jnp.mean(tokens[:, 4:], axis=1),
                             atol=1e-6)


def test_gap_fc_norm_normalises_after_the_average():
  model, variables, x = _tiny_vit(pooling="gap_fc_norm")
  tokens = model.apply(variables, x, method=model.encode)["tokens"]
  norm = variables["params"]["norm"]
  mean = jnp.mean(tokens[:, 1:], axis=1)
  expected = ((mean - mean.mean(-1, keepdims=True))
              / jnp.sqrt(mean.var(-1, keepdims=True) + 1e-6) * norm["scale"] + norm["bias"])
  np.testing.assert_allclose(model.apply(variables, x), expected, atol=1e-5)


def test_exact_gelu_is_the_default():
  exact, variables, x = _tiny_vit()
  tanh = exact.clone(approximate_gelu=True)
  tokens = exact.apply(variables, x, method=exact.encode)["tokens"]
  expected = tanh.apply(variables, x, method=tanh.encode)["tokens"]
  assert 1e-7 < float(jnp.max(jnp.abs(tokens - expected))) < 1e-2


def test_init_from_a_run_made_before_warns(tmp_path, caplog):
  _old_config_json(str(tmp_path), simclr.get_config("smoke"))
  pretrained._warn_if_legacy_numerics(str(tmp_path))  # pylint: disable=protected-access
  assert "model.resnet_padding='same'" in caplog.text


def test_init_from_refuses_to_drop_pretrained_weights_silently():
  source = {"backbone": {"norm": {"scale": np.ones(4)}, "pos_embedding": np.ones((4, 4)),
                         "mask_token": np.ones((1, 1, 4))}}
  target = {"backbone": {"norm": {"scale": np.zeros(4)}}}
  run = pretrained.Pretrained(params=source, batch_stats={}, source="run", step=1)
  with pytest.raises(ValueError, match=r"no place for the pretrained pos_embedding; set "
                                       r"model.pos_embedding='learned'"):
    pretrained.merge(target, {}, run)
  del source["backbone"]["pos_embedding"]  # the mask token alone is left behind quietly
  merged, _ = pretrained.merge(target, {}, run)
  np.testing.assert_array_equal(merged["backbone"]["norm"]["scale"], np.ones(4))
