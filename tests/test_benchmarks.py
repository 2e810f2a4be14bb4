"""benchmarks/throughput.py: the real train step, timed on synthetic data."""

import json

from benchmarks import throughput
from configs import mae as mae_config


def test_measure_reports_every_documented_key_on_the_smoke_config():
  config = mae_config.get_config("smoke")
  config.batch_size = 8
  result = throughput.measure(config, steps=2, warmup=1, model_flops_per_image=1e6)

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
