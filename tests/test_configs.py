"""Every config file and variant validates: no recipe can fail only when a
user starts it (the I-JEPA digits predictor once had 3 heads on a width of 64,
which a head dimension of 21 silently turned into a narrower attention)."""

import importlib
import pathlib

import pytest

from configs import common
from repr_learn import config_checks

CONFIGS = sorted(p.stem for p in (pathlib.Path(__file__).resolve().parents[1] / "configs").glob("*.py")
                 if p.stem not in ("__init__", "common"))


@pytest.mark.parametrize("name", CONFIGS)
def test_every_variant_validates(name):
  module = importlib.import_module(f"configs.{name}")
  for variant in common.variants(module):
    config_checks.validate(module.get_config(variant))


def test_a_decoder_width_that_does_not_split_into_its_heads_is_refused():
  config = importlib.import_module("configs.mae").get_config("digits")
  config.model.decoder.num_heads = 3
  with pytest.raises(ValueError, match="does not split into num_heads=3"):
    config_checks.validate(config)


@pytest.mark.parametrize("key,value", [("model.num_heads", 12),
                                       ("model.prototypes.learned_norm", True),
                                       ("optimizer.lr_decay_factor", 0.5),
                                       ("augment.solarize_probs", (0.1, 0.1))])
def test_an_option_nothing_reads_is_refused(key, value):
  """SimCLR's ResNet config: a ViT head count, a prototype norm, a step-decay
  factor or BYOL-pair solarisation would be silently ignored."""
  config = importlib.import_module("configs.simclr").get_config("smoke")
  section, leaf = key.rsplit(".", 1)
  node = config
  for part in section.split("."):
    node = node[part]
  node[leaf] = value
  with pytest.raises(ValueError, match="takes effect only with"):
    config_checks.validate(config)
