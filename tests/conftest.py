"""Test session setup: 8 fake CPU devices, set before JAX initialises its backend.

LLVM optimisation is off (`--xla_backend_optimization_level=0`): the tests run
tiny programs once, so compiling dominates; a smoke training run takes about a
third less time (BENCHMARKS.md, "Test suite on CPU").
"""

import os

_TEST_XLA_FLAGS = ("--xla_force_host_platform_device_count=8",
                   "--xla_backend_optimization_level=0")
os.environ.setdefault("XLA_FLAGS", "")
for _flag in _TEST_XLA_FLAGS:
  if _flag.split("=")[0] not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " " + _flag
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pathlib
import shutil
import sys
import tempfile

# `configs/` lives beside the package, as in flax's examples.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import pytest

try:
  # torchvision's compiled ops segfault when they load after TensorFlow (which
  # TFDS brings in); where the live interop tests can run, load them first.
  import torchvision  # pylint: disable=g-import-not-at-top,unused-import
except ImportError:
  pass


def pytest_configure(config):
  """A persistent XLA compilation cache for this test process.

  Compilation dominates the suite on CPU (about 4 s per train step), and the
  end-to-end tests compile the same programs again and again (a stopped and a
  resumed run, the same smoke model under several objectives). One directory
  per process: JAX writes cache entries non-atomically, so xdist workers do not
  share one.
  """
  import jax  # pylint: disable=g-import-not-at-top  (after XLA_FLAGS above)
  cache_dir = tempfile.mkdtemp(prefix="repr_learn_xla_cache_")
  config.add_cleanup(lambda: shutil.rmtree(cache_dir, ignore_errors=True))
  jax.config.update("jax_compilation_cache_dir", cache_dir)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
  # Image-folder scan verdicts (repr_learn.data.image_folder) stay out of ~/.cache.
  user_cache = tempfile.mkdtemp(prefix="repr_learn_user_cache_")
  config.add_cleanup(lambda: shutil.rmtree(user_cache, ignore_errors=True))
  os.environ["XDG_CACHE_HOME"] = user_cache


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
  """One TFDS data_dir per test session (the digits dataset builds into it once)."""
  return str(tmp_path_factory.mktemp("tfds"))
