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
                     resized copy (`data.storage='resized'`: `prepare --resized`
                     writes it with `resized_store.write_split`, here into a
                     temporary folder; `ResizedSource` decodes and pads)
  fidelity           mean |difference| between the resized copy's images and
                     the TFDS path's (one more JPEG generation)
  grain              `pipeline.make_train_iterator` over both sources, with 0
                     (threads only), 1, 2, ... worker processes
                     (`data.worker_count`)
Then, for each GPU goal (images/s per GPU), the cores per GPU the one-core
rates imply. Prints a table and appends one JSON line to `--out`.
"""

import glob
import io
import os
import sys
import tempfile
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
from repr_learn.data import resized_store
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


def grain_rate(source, *, workers: int, batch_size: int, batches: int) -> float:
  """Images/s of the training iterator over `source` after its first batch."""
  iterator = pipeline.make_train_iterator(
      source, global_batch_size=batch_size, process_index=0, process_count=1,
      seed=0, worker_count=workers)
  next(iterator)
  start = time.perf_counter()
  for _ in range(batches):
    next(iterator)
  return batches * batch_size / (time.perf_counter() - start)


def measure(*, num_images: int, height: int, width: int, repeats: int, workers: list[int],
            batch_size: int, batches: int,
            quality: int = resized_store.DEFAULT_QUALITY) -> dict[str, Any]:
  rng = np.random.default_rng(0)
  jpegs = [encode_jpeg(photo_like(rng, height, width)) for _ in range(num_images)]
  with tempfile.TemporaryDirectory() as tmp:
    # The resized copy as `prepare --resized` writes it (from the decoded
    # originals, as TFDS gives them), read by the trainer's own source.
    raw = [{"image": decode(j), "label": 0} for j in jpegs]
    folder = resized_store.write_split(lambda: raw, IMAGENET, "train", tmp, shards=1,
                                       quality=quality)
    stored = resized_store.open_split(IMAGENET, "train", tmp, "")
    record_kb = os.path.getsize(glob.glob(os.path.join(folder, "train.array_record-*"))[0]) / 1024
    stages = {
        "decode": per_core_rate(decode, jpegs, repeats),
        "decode_resize": per_core_rate(decode_and_resize, jpegs, repeats),
        "resized_store_read": per_core_rate(stored.__getitem__, range(len(stored)), repeats),
    }
    differences = []
    for i, jpeg in enumerate(jpegs):
      canvas, (h, w) = decode_and_resize(jpeg)
      differences.append(np.abs(stored[i]["image"][:h, :w].astype(int) - canvas[:h, :w]).mean())
    grain = {f"{name} {w} workers": grain_rate(source, workers=w, batch_size=batch_size,
                                               batches=batches)
             for name, source in (("tfds", JpegSource(jpegs)), ("resized", stored))
             for w in workers}
    stored_image = stored[0]["image_hw"].tolist()
  cores = {goal: {"original": rate / stages["decode_resize"],
                  "resized": rate / stages["resized_store_read"]}
           for goal, rate in GPU_GOALS.items()}
  machine, versions = throughput.machine_info()
  import PIL
  versions["pillow"] = PIL.__version__
  return {"image": [height, width], "num_images": num_images, "jpeg_quality": quality,
          "jpeg_kb": {"original": float(np.mean([len(j) for j in jpegs]) / 1024),
                      "resized_store": float(record_kb / num_images)},
          "resized_image": stored_image, "per_core_images_per_sec": stages,
          "resized_mean_abs_difference": float(np.mean(differences)),
          "grain_images_per_sec": grain, "grain_batch_size": batch_size,
          "cores_per_gpu_at_goal": cores, "machine": machine, "versions": versions}


def summary(r: dict[str, Any]) -> str:
  s, m = r["per_core_images_per_sec"], r["machine"]
  h, w = r["image"]
  lines = [
      f"{r['num_images']} generated JPEGs of {w}x{h} ({r['jpeg_kb']['original']:.0f} KB; "
      f"resized copy {r['resized_image'][1]}x{r['resized_image'][0]} at quality "
      f"{r['jpeg_quality']}, {r['jpeg_kb']['resized_store']:.0f} KB) -> "
      f"{IMAGENET.image_size}px stored images",
      f"One core: decode {s['decode']:.0f} images/s, decode + resize (the TFDS path) "
      f"{s['decode_resize']:.0f}, the resized copy (decode + pad) {s['resized_store_read']:.0f}",
      f"Resized copy against the TFDS path's image: mean |difference| "
      f"{r['resized_mean_abs_difference']:.2f} of 255",
      "grain (batch {}): ".format(r["grain_batch_size"]) + ", ".join(
          f"{k} {v:.0f} images/s" for k, v in r["grain_images_per_sec"].items()),
  ]
  for goal, c in r["cores_per_gpu_at_goal"].items():
    lines.append(f"At {GPU_GOALS[goal]:,} images/s per GPU ({goal}): {c['original']:.1f} "
                 f"cores per GPU from original JPEGs, {c['resized']:.1f} from the resized copy")
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
  quality = flags.DEFINE_integer("jpeg_quality", resized_store.DEFAULT_QUALITY,
                                 "JPEG quality of the resized copy.")
  out = flags.DEFINE_string("out", "benchmarks/input_pipeline.jsonl", "JSON lines to append to.")

  def run(argv):
    del argv
    width, height = (int(x) for x in size.value.lower().split("x"))
    r = measure(num_images=num_images.value, height=height, width=width,
                repeats=repeats.value, workers=[int(w) for w in workers.value],
                batch_size=batch_size.value, batches=batches.value, quality=quality.value)
    print(summary(r))
    throughput.append_record(out.value, r)

  app.run(run)


if __name__ == "__main__":
  main()
