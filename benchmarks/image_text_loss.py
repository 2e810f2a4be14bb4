"""Memory and time of the image-text losses, whole against row-chunked.

The plain losses hold the [B, B] float32 logits (and, for the gradient, their
softmax or sigmoid) at once: 1 GiB each at B = 16,384. `chunk_rows` computes
them a block of rows at a time under `jax.checkpoint`, so the backward pass
recomputes each block instead of keeping it. This compiles the loss and its
gradient for each batch size and chunk, and prints XLA's temporary memory
(what the compiled program allocates beyond its inputs and outputs) and the
step time on this backend.

  python benchmarks/image_text_loss.py --batch_sizes=4096,16384 --chunk_rows=0,1024
"""

import json
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from repr_learn.losses import image_text

_BATCHES = flags.DEFINE_list("batch_sizes", ["4096", "16384"], "Global batch sizes B.")
_CHUNKS = flags.DEFINE_list("chunk_rows", ["0", "1024"], "Rows per chunk (0: the plain loss).")
_DIM = flags.DEFINE_integer("dim", 512, "Embedding width.")
_LOSSES = flags.DEFINE_list("losses", ["clip", "siglip"], "Which losses.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed runs (the minimum is printed).")
_OUT = flags.DEFINE_string("out", None, "Append one JSON line per case here.")


def _loss_fn(name: str, chunk: int):
  if name == "clip":
    return lambda i, t, s, b: image_text.clip_loss(i, t, s, chunk_rows=chunk)
  return lambda i, t, s, b: image_text.siglip_loss(i, t, s, b, chunk_rows=chunk)


def measure(name: str, batch: int, chunk: int, dim: int, repeats: int) -> dict:
  rng = np.random.default_rng(0)
  unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
  image = jnp.asarray(unit(rng.normal(size=(batch, dim))).astype(np.float32))
  text = jnp.asarray(unit(rng.normal(size=(batch, dim))).astype(np.float32))
  grad = jax.jit(jax.value_and_grad(_loss_fn(name, chunk), argnums=(0, 1, 2, 3)))
  args = (image, text, jnp.float32(10.0), jnp.float32(-10.0))
  start = time.perf_counter()
  compiled = grad.lower(*args).compile()
  compile_s = time.perf_counter() - start
  memory = compiled.memory_analysis()
  temp = getattr(memory, "temp_size_in_bytes", None) if memory is not None else None
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    times.append(time.perf_counter() - start)
  value = float(compiled(*args)[0])
  return {"loss": name, "batch": batch, "chunk_rows": chunk, "dim": dim,
          "temp_bytes": temp, "compile_s": compile_s, "step_s": min(times), "value": value,
          "backend": jax.default_backend(), "jax": jax.__version__}


def main(argv):
  del argv
  for name in _LOSSES.value:
    for batch in map(int, _BATCHES.value):
      for chunk in map(int, _CHUNKS.value):
        r = measure(name, batch, chunk, _DIM.value, _REPEATS.value)
        temp = "n/a" if r["temp_bytes"] is None else f"{r['temp_bytes'] / 2**20:9.1f} MiB"
        print(f"{name:<7} B={batch:<6} chunk_rows={chunk:<5} temporaries {temp}  "
              f"value+grad {r['step_s'] * 1e3:8.1f} ms  compile {r['compile_s']:.1f} s  "
              f"loss {r['value']:.6f}", flush=True)
        if _OUT.value:
          with open(_OUT.value, "a") as f:
            f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
  app.run(main)
