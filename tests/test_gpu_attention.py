"""cuDNN's fused attention against XLA's on a GPU (skipped elsewhere): the
`model.attention='cudnn'` choice must not change what a ViT computes.

  JAX_PLATFORMS=cuda CUDA_VISIBLE_DEVICES=0 pytest tests/test_gpu_attention.py

(the test session's conftest otherwise pins JAX to the CPU).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from repr_learn.models import vit

pytestmark = pytest.mark.skipif(jax.default_backend() != "gpu", reason="needs a GPU")


# MAE ViT/16's encoder (49 kept + class token) and 196 patches without one. The
# odd lengths with a class token (37, 197) are refused by jax 0.11.2's cuDNN
# path in training (seen on an H200) and stay on XLA (`attention_implementation`).
@pytest.mark.parametrize("length", [50, 196])
def test_cudnn_attention_matches_xla(length):
  x = jax.random.normal(jax.random.key(0), (4, length, 384), jnp.bfloat16)
  modules = {impl: vit.SelfAttention(6, jnp.bfloat16, impl) for impl in ("xla", "cudnn")}
  assert vit.attention_implementation("cudnn", jnp.bfloat16, 64, length, masked=False) == "cudnn"
  params = modules["xla"].init(jax.random.key(1), x)

  def loss(impl, p, inputs):
    return jnp.sum(modules[impl].apply(p, inputs).astype(jnp.float32) ** 2)

  outs = {impl: modules[impl].apply(params, x).astype(jnp.float32) for impl in modules}
  grads = {impl: jax.grad(lambda p: loss(impl, p, x))(params) for impl in modules}
  np.testing.assert_allclose(outs["cudnn"], outs["xla"], atol=2e-2, rtol=2e-2)
  for a, b in zip(jax.tree.leaves(grads["cudnn"]), jax.tree.leaves(grads["xla"])):
    scale = float(jnp.max(jnp.abs(b.astype(jnp.float32))))
    assert float(jnp.max(jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32)))) < 3e-2 * scale
