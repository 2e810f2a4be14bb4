"""Summary statistics the benchmark scripts report (numpy only, so the
PyTorch references can use it without importing JAX)."""

import numpy as np


def spread(values) -> dict[str, float]:
  """{median, min, max, p25, p75} of `values` (per-step times or rates)."""
  v = np.asarray(values, np.float64)
  p25, median, p75 = np.percentile(v, [25, 50, 75])
  return {"median": float(median), "min": float(v.min()), "max": float(v.max()),
          "p25": float(p25), "p75": float(p75)}
