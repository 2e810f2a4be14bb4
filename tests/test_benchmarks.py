"""benchmarks/throughput.py: the real train step, timed on synthetic data."""

import ast
import importlib
import json
import pathlib
import re

import pytest

from benchmarks import input_pipeline
from benchmarks import memory
from benchmarks import throughput
from configs import mae as mae_config
from configs import simclr as simclr_config
from repr_learn import config_checks
from tests import config_overrides


def test_measure_reports_every_documented_key_on_the_smoke_config(tfds_dir):
  config = mae_config.get_config("smoke")
  config.batch_size = 8
  config.data.data_dir = tfds_dir
  result = throughput.measure(config, steps=2, warmup=1, model_flops_per_image=1e6,
                              end_to_end=True)

  assert set(result) == set(throughput.RESULT_KEYS)
  json.dumps(result)  # one JSON line per run
  assert result["config"]["method"] == "mae"
  assert result["config"]["image_size"] == 32  # digits' stored size, cropped on device
  assert result["steps"] == 2 and result["warmup"] == 1
  assert result["lower_s"] > 0 and result["compile_s"] > 0
  assert result["xla_flops_per_step"] > 0
  assert result["xla_flops_per_image"] * 8 == result["xla_flops_per_step"]
  assert result["model_flops_per_image"] == 1e6
  ips = result["images_per_sec"]
  assert 0 < ips["min"] <= ips["p25"] <= ips["median"] <= ips["p75"] <= ips["max"]
  assert result["step_time_s"]["median"] > 0
  assert result["num_params"] > 0
  assert result["memory"]["peak_bytes"] > 0
  # CPU: no peak, so no MFU.
  assert result["peak_flops_per_device"] is None and result["mfu"] is None
  for key in ("jax", "jaxlib", "flax", "optax", "python"):
    assert result["versions"][key]
  assert result["machine"]["device_kind"] and result["machine"]["cpu_count"] > 0
  assert "MFU: n/a (CPU)" in throughput.summary(result)
  assert result["augment_time_s"]["median"] > 0
  # The same step fed by the input pipeline (digits' pretraining split, via grain).
  fed = result["end_to_end"]
  assert fed["examples"] == 1437
  assert fed["images_per_sec"] > 0 and 0 <= fed["host_wait_s_per_step"] < fed["step_time_s"] * 2
  assert "End to end (real input pipeline" in throughput.summary(result)


def test_memory_compiles_a_recipe_at_its_per_device_batch_without_running_it():
  config = simclr_config.get_config("smoke")
  config.batch_size = 64
  r = memory.measure(config, devices=8)
  assert r["per_device_batch"] == 8 and r["global_batch"] == 64
  assert r["memory"]["source"] == "compiled.memory_analysis"
  assert r["memory"]["peak_bytes"] > r["state_bytes"] > 0


def test_input_pipeline_decodes_resizes_and_counts_cores():
  r = input_pipeline.measure(num_images=4, height=60, width=80, repeats=1, workers=[0],
                             batch_size=2, batches=1)
  assert r["resized_image"] == [256, 341]  # shorter side to 256, aspect kept
  stages = r["per_core_images_per_sec"]
  assert all(v > 0 for v in stages.values())
  assert r["grain_images_per_sec"]["tfds 0 workers"] > 0
  assert r["grain_images_per_sec"]["resized 0 workers"] > 0
  assert 0 < r["resized_mean_abs_difference"] < 16  # one JPEG generation
  assert r["jpeg_kb"]["resized_store"] > 0
  goal = input_pipeline.GPU_GOALS["simclr_r50"]
  cores = r["cores_per_gpu_at_goal"]["simclr_r50"]
  assert cores["original"] == goal / stages["decode_resize"]
  assert cores["resized"] == goal / stages["resized_store_read"]


def _script_configs(script_name: str):
  """(config file, variant, {field: value}) for each `--config=` run of the
  benchmark script whose fields are written out (not shell variables)."""
  script = pathlib.Path(__file__).parent.parent / "benchmarks" / script_name
  text = script.read_text().replace("\\\n", " ").replace('"', "")
  runs = []
  for line in text.splitlines():
    found = re.search(r"--config=configs/(\w+)\.py:(\w+)", line)
    if not found or "$" in found.group(0):
      continue
    fields = dict(re.findall(r"--config\.([\w.]+)=(\S+)", line))
    runs.append((found.group(1), found.group(2), fields))
  return runs


@pytest.mark.parametrize("script_name", ["gpu_goals.sh", "cpu_library_fusions.sh"])
def test_the_benchmark_scripts_ask_for_valid_configs(script_name):
  """The device lease is scarce: a typo or a refused combination in
  gpu_goals.sh must fail here, not on the GPU (and in the CPU sweep, not
  after its first half hour)."""
  runs = _script_configs(script_name)
  assert len(runs) >= 3
  if script_name == "gpu_goals.sh":
    assert any(fields.get("model.remat_blocks") == "True" for _, _, fields in runs)
  for name, variant, fields in runs:
    config = importlib.import_module(f"configs.{name}").get_config(variant)
    config_overrides.override(config, **{k: _literal(v) for k, v in fields.items()})
    config_checks.validate(config)


def _literal(text: str):
  """A command-line value as absl's config flags read it: a Python literal, or a string."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text
