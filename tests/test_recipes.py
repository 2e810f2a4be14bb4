"""Every `imagenet` and `cifar10` recipe starts: its state and one train step
trace at the recipe's real batch, resolution and model size (`jax.eval_shape`
through the trainer's own `Setup`: shapes only, no weights, no FLOPs), so no
recipe can be unable to start again (the DINO ViT-S/16 one once could not)."""

import importlib
import pathlib

import jax
import pytest

from configs import common
from repr_learn import config_checks
from repr_learn import parallel
from repr_learn import train
from repr_learn.data import catalog
from repr_learn.data import tokenizers

# Training examples: ImageNet, CIFAR-10, COCO's train+restval, and CC3M (the
# users' caption files: open_clip's README recipe).
NUM_TRAIN = {"imagenet2012": 1_281_167, "cifar10": 50_000, "coco_captions": 113_287,
             "captions": 2_900_000}
CONFIG_DIR = pathlib.Path(__file__).resolve().parent.parent / "configs"


def _recipes():
  for path in sorted(CONFIG_DIR.glob("*.py")):
    if path.stem in ("__init__", "common"):
      continue
    module = importlib.import_module(f"configs.{path.stem}")
    for variant in common.recipe_variants(module):
      yield path.stem, variant


@pytest.mark.parametrize("method,variant", list(_recipes()))
def test_recipe_state_and_step_trace_at_real_shapes(method, variant):
  config = importlib.import_module(f"configs.{method}").get_config(variant)
  config_checks.validate(config)
  if config.data.tokenizer == "clip_bpe":
    try:
      tokenizers.find_clip_vocab()
    except FileNotFoundError as e:
      pytest.skip(str(e))
  spec = catalog.get_spec(config.data.name)
  setup = train.build_setup(config, spec, NUM_TRAIN[spec.name],
                            parallel.make_mesh(jax.devices()[:1]))
  state = setup.abstract_state()
  batch = setup.abstract_batch(spec)
  new_state, metrics = jax.eval_shape(setup.compiled_train_step(state), state, batch)
  assert metrics["loss"].shape == ()
  assert jax.tree.structure(new_state) == jax.tree.structure(state)
  assert all(a.shape == b.shape for a, b in zip(jax.tree.leaves(new_state),
                                                jax.tree.leaves(state)))
