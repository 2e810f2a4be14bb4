"""`compile_options`: ResNets on the CPU compile with YNNPACK's fused products
and most convolutions in XLA; the options reach the train step and the
evaluation forwards, change no number, and a jaxlib that refuses them falls
back to the defaults."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from repr_learn import compile_options
from repr_learn import config_schema
from repr_learn import models
from repr_learn import parallel
from repr_learn import train
from repr_learn.data import catalog
from repr_learn.evaluation import protocols

BOGUS = {"xla_cpu_no_such_option": "1"}


def _model(backbone):
  model = config_schema.base_config().model
  model.backbone = backbone
  return model


def test_resnets_on_the_cpu_keep_convolutions_out_of_ynnpack(monkeypatch):
  mesh = parallel.make_mesh(jax.devices("cpu")[:1])
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
  chosen = compile_options.for_network(_model("resnet50"), mesh)
  assert chosen == compile_options.RESNET_ON_CPU
  assert compile_options.for_network(_model("vit_small"), mesh) is None
  monkeypatch.setenv("XLA_FLAGS", f"--{compile_options.YNN_FUSION_TYPE}=")  # the user's choice
  assert compile_options.for_network(_model("resnet50"), mesh) is None


def test_an_option_this_jaxlib_refuses_falls_back_to_the_defaults():
  assert not compile_options._accepted(tuple(BOGUS.items()))
  assert compile_options._accepted(tuple(compile_options.RESNET_ON_CPU.items()))


def test_the_options_change_no_number():
  """A ResNet's forward and gradient with and without the options."""
  net = models.build_backbone(_model("resnet_tiny"), image_size=16)
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 16, 16, 3))
  variables = net.init(jax.random.PRNGKey(1), x, train=False)

  def loss(params):
    return jnp.sum(jnp.sin(net.apply({**variables, "params": params}, x, train=False)))

  grad = jax.value_and_grad(loss)
  want = jax.jit(grad)(variables["params"])
  got = jax.jit(grad, compiler_options=compile_options.RESNET_ON_CPU)(variables["params"])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), got, want)


def test_the_train_step_and_the_evaluation_forwards_compile_with_them(monkeypatch):
  """Wiring: an option XLA refuses, handed out for the network, fails the
  compilation of the train step and of the evaluation context's forwards, so
  the real ones reach them."""
  monkeypatch.setattr(compile_options, "for_network", lambda model, mesh: dict(BOGUS))
  config = importlib.import_module("configs.simclr").get_config("smoke")
  config.seed = 20261205  # a Setup of its own (build_setup memoises per config)
  mesh = parallel.make_mesh(jax.devices("cpu")[:1])
  spec = catalog.get_spec(config.data.name)
  setup = train.build_setup(config, spec, 64, mesh)
  state = setup.abstract_state()
  with pytest.raises(jax.errors.JaxRuntimeError, match="xla_cpu_no_such_option"):
    setup.compiled_train_step(state).lower(state, setup.abstract_batch(spec)).compile()
  context = protocols.EvalContext(setup.objective, config, mesh, config.augment.crop_size)
  images = jnp.zeros((8, spec.image_size, spec.image_size, 3), jnp.uint8)
  for extractor in (context._extract, context.extractor(lambda p, b, e, x: {"features": x})):
    with pytest.raises(jax.errors.JaxRuntimeError, match="xla_cpu_no_such_option"):
      extractor._forward.lower(state.params, state.batch_stats, state.extra, images,
                               None).compile()
