"""The view drawing's Gaussian blur, three ways, on a batch of per-image sigmas.

  python benchmarks/blur.py                          # 256 images of 224 px, 23 taps
  python benchmarks/blur.py --batch=128 --size=96 --taps=9

Every SimCLR/BYOL/DINO view blurs with its own sigma (reflect padding, static
taps). The ways compared, each jitted over the batch as the step vmaps it:

  slices   the taps as shifted slices of the padded image, summed, per axis
           (repr_learn's blur until this benchmark)
  conv     each axis as one depthwise `lax.conv_general_dilated` (a k x 1 and a
           1 x k kernel per image: under vmap, one grouped convolution)
  matrix   each axis as a matrix product with the [size, size] banded blur
           matrix, reflect padding folded into the matrix (no padded copy):
           `augment.gaussian_blur`, chosen on these figures

Prints, per way: lowering + compile time, the run time (median over rounds,
blocked on the result), the HLO text size, and the largest difference from
`slices`. Appends one JSON line per way to `--out`.
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(_HERE))

import jax
import jax.numpy as jnp
import numpy as np

from repr_learn.data import augment


def _kernel(sigma, taps: int):
  radius = taps // 2
  offsets = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
  weights = jnp.exp(-0.5 * (offsets / sigma) ** 2)
  return weights / jnp.sum(weights)


def blur_slices(image, sigma, taps: int):
  radius = taps // 2
  weights = _kernel(sigma, taps)
  h, w = image.shape[0], image.shape[1]
  padded = jnp.pad(image, ((radius, radius), (0, 0), (0, 0)), mode="reflect")
  image = sum(weights[i] * padded[i:i + h] for i in range(taps))
  padded = jnp.pad(image, ((0, 0), (radius, radius), (0, 0)), mode="reflect")
  return sum(weights[i] * padded[:, i:i + w] for i in range(taps))


def blur_conv(image, sigma, taps: int):
  radius = taps // 2
  weights = _kernel(sigma, taps)
  channels = image.shape[-1]
  def one_axis(x, kernel_shape):
    kernel = jnp.broadcast_to(weights.reshape(kernel_shape + (1, 1)),
                              kernel_shape + (1, channels))
    return jax.lax.conv_general_dilated(
        x[None], kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=channels)[0]
  padded = jnp.pad(image, ((radius, radius), (0, 0), (0, 0)), mode="reflect")
  image = one_axis(padded, (taps, 1))
  padded = jnp.pad(image, ((0, 0), (radius, radius), (0, 0)), mode="reflect")
  return one_axis(padded, (1, taps))


def blur_matrix(image, sigma, taps: int):
  return augment.gaussian_blur(image, sigma, taps)


WAYS = {"slices": blur_slices, "conv": blur_conv, "matrix": blur_matrix}


def measure(name, fn, images, sigmas, taps, rounds):
  batched = jax.jit(jax.vmap(lambda x, s: fn(x, s, taps)))
  start = time.perf_counter()
  lowered = batched.lower(images, sigmas)
  compiled = lowered.compile()
  compile_s = time.perf_counter() - start
  out = compiled(images, sigmas).block_until_ready()
  times = []
  for _ in range(rounds):
    start = time.perf_counter()
    compiled(images, sigmas).block_until_ready()
    times.append(time.perf_counter() - start)
  return out, {"way": name, "compile_s": compile_s, "run_s": float(np.median(times)),
               "run_s_min": float(min(times)), "hlo_chars": len(lowered.as_text())}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--taps", type=int, default=0, help="0: augment.blur_kernel_size(size)")
  parser.add_argument("--rounds", type=int, default=10)
  parser.add_argument("--out", default=os.path.join(_HERE, "results.jsonl"))
  args = parser.parse_args(argv)
  taps = args.taps or augment.blur_kernel_size(args.size)
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.random((args.batch, args.size, args.size, 3), np.float32))
  sigmas = jnp.asarray(rng.uniform(0.1, 2.0, args.batch).astype(np.float32))
  reference = None
  device = jax.devices()[0]
  for name, fn in WAYS.items():
    out, record = measure(name, fn, images, sigmas, taps, args.rounds)
    if reference is None:
      reference = out
    record["max_abs_diff_from_slices"] = float(jnp.max(jnp.abs(out - reference)))
    record.update(batch=args.batch, size=args.size, taps=taps,
                  device=f"{device.platform}:{device.device_kind}",
                  machine={"host": platform.node(), "cpus": os.cpu_count(),
                           "load_avg": os.getloadavg()},
                  versions={"jax": jax.__version__},
                  date=datetime.datetime.now().isoformat(timespec="seconds"),
                  command=" ".join(["python"] + sys.argv))
    print(f"{name:7s} compile {record['compile_s']:6.2f} s  run {record['run_s'] * 1e3:8.2f} ms"
          f" (min {record['run_s_min'] * 1e3:.2f})  HLO {record['hlo_chars']:>7,} chars"
          f"  max |diff| {record['max_abs_diff_from_slices']:.2e}")
    with open(args.out, "a") as f:
      f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
  main()
