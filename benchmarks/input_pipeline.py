"""Host throughput of the ImageNet input path: JPEG decode and resize, per core
and through grain, and the cores a GPU at the issue-13 goals would need.

  python benchmarks/input_pipeline.py --num_images=200 --workers=0,1,2

ImageNet is read as TFDS stores it: the original JPEGs (typically 500x375 or
500x333, ~110 KB), decoded on the host (TFDS decodes with OpenCV when it is
installed, else PIL: `tfds.features.Image.decode_example_np`), then resized
to the stored 256 px by `sources.TfdsSource` (`resizing.resize_into_canvas`:
shorter side to 256, bicubic, aspect kept up to 4:3, edge-padded 341-px canvas;
the figures in BENCHMARKS.md from before 2026-11-26 stored the central 256-px
square instead); cropping, flipping and colour
run later, on the device. No ImageNet is needed: the images are generated
(a smooth random colour field plus grain, JPEG quality 90, which compresses
and decodes like a photograph of that size) and held in memory, so disk and
network reads, which depend on the cluster, are not part of the figures.

Measured:
  stages, one core   decode alone, decode + resize (the TFDS path), and the
                     same for JPEGs stored pre-resized to a 256-px shorter side
  grain              `pipeline.make_train_iterator` over an in-memory source
                     that decodes and resizes like `TfdsSource`, with 0 (threads
                     only), 1, 2, ... worker processes (`data.worker_count`)
Then, for each GPU goal (images/s per GPU), the cores per GPU the one-core
rate implies. Prints a table and appends one JSON line to `--out`.
"""

import io
import os
import sys
import time
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
  sys.path.insert(0, _HERE)

import numpy as np
from PIL import Image

import throughput  # puts the repository root on sys.path

from repr_learn.data import catalog
from repr_learn.data import pipeline
from repr_learn.data import resizing

# images/s per GPU the issue sets for one H100 (SimCLR R50, MAE ViT-B/16, DINO ViT-S/16).
GPU_GOALS = {"simclr_r50": 4000, "mae_vitb16": 6500, "dino_vits16": 3000}


def photo_like(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  """A smooth random colour field with grain: compresses like a photograph."""
  coarse = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
  smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), np.float32)
  return np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
  return buffer.getvalue()


def decode(jpeg: bytes) -> np.ndarray:
  return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))


IMAGENET = catalog.get_spec("imagenet2012")


def decode_and_resize(jpeg: bytes) -> tuple[np.ndarray, np.ndarray]:
  """The stored canvas and the image's size in it."""
  return resizing.resize_into_canvas(decode(jpeg), IMAGENET.image_size, IMAGENET.max_aspect)


class JpegSource:
  """An in-memory stand-in for `sources.TfdsSource` over ImageNet."""

  def __init__(self, jpegs: list[bytes]):
    self._jpegs = jpegs

  def __len__(self) -> int:
    return len(self._jpegs)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    image, image_hw = decode_and_resize(self._jpegs[index])
    return {"image": image, "image_hw": image_hw, "label": np.int32(0),
            "index": np.int32(index)}


def per_core_rate(fn, items: list[bytes], repeats: int) -> float:
  """Images/s of `fn` over `items`, `repeats` passes, in this thread."""
  fn(items[0])
  start = time.perf_counter()
  for _ in range(repeats):
    for item in items:
      fn(item)
  return repeats * len(items) / (time.perf_counter() - start)


def grain_rate(jpegs: list[bytes], *, workers: int, batch_size: int, batches: int) -> float:
  """Images/s of the training iterator over `jpegs` after its first batch."""
  iterator = pipeline.make_train_iterator(
      JpegSource(jpegs), global_batch_size=batch_size, process_index=0, process_count=1,
      seed=0, worker_count=workers)
  next(iterator)
  start = time.perf_counter()
  for _ in range(batches):
    next(iterator)
  return batches * batch_size / (time.perf_counter() - start)


def measure(*, num_images: int, height: int, width: int, repeats: int, workers: list[int],
            batch_size: int, batches: int) -> dict[str, Any]:
  rng = np.random.default_rng(0)
  originals = [photo_like(rng, height, width) for _ in range(num_images)]
  jpegs = [encode_jpeg(x) for x in originals]
  scale = IMAGENET.image_size / min(height, width)
  small = (round(height * scale), round(width * scale))
  pre_resized = [encode_jpeg(np.asarray(Image.fromarray(x).resize(small[::-1], Image.BICUBIC)))
                 for x in originals]
  stages = {
      "decode": per_core_rate(decode, jpegs, repeats),
      "decode_resize": per_core_rate(decode_and_resize, jpegs, repeats),
      "pre_resized_decode_crop": per_core_rate(decode_and_resize, pre_resized, repeats),
  }
  grain = {w: grain_rate(jpegs, workers=w, batch_size=batch_size, batches=batches)
           for w in workers}
  cores = {goal: {"original": rate / stages["decode_resize"],
                  "pre_resized": rate / stages["pre_resized_decode_crop"]}
           for goal, rate in GPU_GOALS.items()}
  machine, versions = throughput.machine_info()
  import PIL
  versions["pillow"] = PIL.__version__
  return {"image": [height, width], "num_images": num_images,
          "jpeg_kb": {"original": float(np.mean([len(j) for j in jpegs]) / 1024),
                      "pre_resized": float(np.mean([len(j) for j in pre_resized]) / 1024)},
          "pre_resized_image": list(small), "per_core_images_per_sec": stages,
          "grain_images_per_sec": {str(k): v for k, v in grain.items()},
          "grain_batch_size": batch_size, "cores_per_gpu_at_goal": cores,
          "machine": machine, "versions": versions}


def summary(r: dict[str, Any]) -> str:
  s, m = r["per_core_images_per_sec"], r["machine"]
  h, w = r["image"]
  lines = [
      f"{r['num_images']} generated JPEGs of {w}x{h} ({r['jpeg_kb']['original']:.0f} KB; "
      f"pre-resized {r['pre_resized_image'][1]}x{r['pre_resized_image'][0]}, "
      f"{r['jpeg_kb']['pre_resized']:.0f} KB) -> {IMAGENET.image_size}px stored images",
      f"One core: decode {s['decode']:.0f} images/s, decode + resize {s['decode_resize']:.0f}, "
      f"pre-resized decode + crop {s['pre_resized_decode_crop']:.0f}",
      "grain (batch {}): ".format(r["grain_batch_size"]) + ", ".join(
          f"{k} workers {v:.0f} images/s" for k, v in r["grain_images_per_sec"].items()),
  ]
  for goal, c in r["cores_per_gpu_at_goal"].items():
    lines.append(f"At {GPU_GOALS[goal]:,} images/s per GPU ({goal}): {c['original']:.1f} "
                 f"cores per GPU from original JPEGs, {c['pre_resized']:.1f} pre-resized")
  lines.append(f"Machine: {m['cpu_model']}, {m['cpus_usable']} usable of {m['cpu_count']} "
               f"CPUs; load average {', '.join(f'{x:.2f}' for x in m['load_average'] or [])}")
  lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in r["versions"].items()))
  return "\n".join(lines)


def main() -> None:
  from absl import app
  from absl import flags

  num_images = flags.DEFINE_integer("num_images", 200, "Generated JPEGs.")
  size = flags.DEFINE_string("size", "500x375", "Width x height of the JPEGs.")
  repeats = flags.DEFINE_integer("repeats", 2, "Passes over the images per one-core stage.")
  workers = flags.DEFINE_list("workers", ["0", "1", "2"], "grain worker processes to try.")
  batch_size = flags.DEFINE_integer("batch_size", 32, "Batch of the grain iterator.")
  batches = flags.DEFINE_integer("batches", 12, "Timed batches per grain setting.")
  out = flags.DEFINE_string("out", "benchmarks/input_pipeline.jsonl", "JSON lines to append to.")

  def run(argv):
    del argv
    width, height = (int(x) for x in size.value.lower().split("x"))
    r = measure(num_images=num_images.value, height=height, width=width,
                repeats=repeats.value, workers=[int(w) for w in workers.value],
                batch_size=batch_size.value, batches=batches.value)
    print(summary(r))
    throughput.append_record(out.value, r)

  app.run(run)


if __name__ == "__main__":
  main()
