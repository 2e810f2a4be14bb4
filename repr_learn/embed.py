"""Exports a trained encoder's embeddings: `python -m repr_learn.embed`.

  python -m repr_learn.embed --workdir=DIR --out=FILE.npz [--split=test] \
    [--dims=64] [--data.name=image_folder --data.data_dir=PHOTOS ...]

Like lightly's `embed`: one backbone feature vector per image of a split (eval
mode, centre view, the features kNN and linear probes use), for retrieval,
deduplication or plotting outside repr_learn. The .npz holds `embeddings`
[N, D] float32, `labels` [N] (-1 where unlabeled), `ids` [N] (relative file
names for image folders, else the example index in the split) and `dataset`,
`split`, `step`. `--dims=m` keeps the first m dimensions (a Matryoshka size
of a run trained with `objective.matryoshka_dims`). `--data.*`/`--config.eval.*`
overrides embed another dataset.

Image-text runs (CLIP, SigLIP, LiT) add `image_embeddings` [N, E], the image
tower's L2-normalised embeddings in the space it shares with text, and with
`--texts=FILE` (one caption per line) `texts` and their `text_embeddings`
[M, E], so `image_embeddings @ text_embeddings.T` ranks captions per image.
"""

import os
from typing import Sequence

from absl import flags
import numpy as np

from repr_learn import finished_run
from repr_learn.evaluation import image_text_protocols
from repr_learn.evaluation import protocols
from repr_learn.evaluation import retrieval

_FLAGS = flags.FlagValues()
flags.DEFINE_string("workdir", None, "Run directory written by main.py.", flag_values=_FLAGS)
flags.DEFINE_string("out", None, "The .npz file to write.", flag_values=_FLAGS)
flags.DEFINE_string("split", None, "Split to embed (default: the dataset's evaluation "
                    "test split, e.g. 'test').", flag_values=_FLAGS)
flags.DEFINE_integer("dims", None, "Keep the first DIMS dimensions of each embedding (a "
                     "Matryoshka size); default: all.", flag_values=_FLAGS, lower_bound=1)
flags.DEFINE_string("texts", None, "Image-text runs: a file of captions, one per line, to "
                    "embed with the text tower too.", flag_values=_FLAGS)


def splits(context: protocols.EvalContext) -> list[str]:
  """The splits repr_learn reads of the evaluation dataset."""
  spec = context.spec
  return list(dict.fromkeys((spec.eval_test_split, spec.eval_train_split, spec.pretrain_split)))


def _ids(context: protocols.EvalContext, split: str, count: int) -> np.ndarray:
  """Image file names relative to their folder for image folders (the source's
  paths, in the order features come), else the example index."""
  source = context.source(split)
  # ImageFolderSource keeps its file list private; read it until it is public.
  paths = getattr(source, "paths", None)
  if paths is None or len(paths) != count:
    return np.arange(count, dtype=np.int64)
  data = context.data_config
  root = data.eval_dir if split == context.spec.eval_test_split and data.eval_dir else data.data_dir
  return np.asarray([os.path.relpath(p, root) for p in paths])


def embeddings(run: finished_run.FinishedRun, split: str | None = None,
               dims: int | None = None, texts: Sequence[str] = ()) -> dict[str, np.ndarray]:
  """{embeddings, labels, ids, dataset, split, step} of `split` (default: the
  evaluation test split) of the run's evaluation dataset; the first `dims`
  dimensions of each when given. Image-text runs add `image_embeddings` and,
  for `texts`, `texts` and `text_embeddings` (see the module docstring)."""
  context = run.eval_context()
  valid = splits(context)
  split = split or context.splits[1]
  if split not in valid:
    raise ValueError(f"Split {split!r} is not one of {context.spec.name}'s splits {valid}.")
  with context.leading_dims(dims):
    features, labels = context.backbone_features(run.state, split)
  arrays = {"embeddings": np.asarray(features, np.float32),
            "labels": np.asarray(labels, np.int64),
            "ids": _ids(context, split, len(features)),
            "dataset": np.asarray(context.spec.name), "split": np.asarray(split),
            "step": np.asarray(run.step)}
  if not image_text_protocols.is_image_text(context.objective):
    if texts:
      raise ValueError("--texts needs an image-text run (CLIP, SigLIP, LiT); this one has no "
                       "text tower.")
    return arrays
  outputs, _ = image_text_protocols.image_embeddings(context, run.state, context.source(split))
  arrays["image_embeddings"] = retrieval.normalized(outputs["embedding"])
  if texts:
    arrays["texts"] = np.asarray(list(texts))
    arrays["text_embeddings"] = retrieval.normalized(
        image_text_protocols.text_embeddings(context, run.state, list(texts)))
  return arrays


def read_texts(path: str) -> list[str]:
  """The non-empty lines of a UTF-8 caption file."""
  with open(os.path.expanduser(path), encoding="utf-8") as f:
    texts = [line.strip() for line in f if line.strip()]
  if not texts:
    raise ValueError(f"--texts={path} holds no captions (one per line).")
  return texts


def write(path: str, arrays: dict[str, np.ndarray]) -> str:
  """Writes `arrays` as an uncompressed .npz (suffix added if missing)."""
  path = os.path.abspath(os.path.expanduser(path))
  if not path.endswith(".npz"):
    path += ".npz"
  os.makedirs(os.path.dirname(path), exist_ok=True)
  np.savez(path, **arrays)
  return path


def main(argv: Sequence[str]) -> None:
  try:
    overrides = finished_run.parse_tool_args(_FLAGS, argv)
    if not _FLAGS.workdir or not _FLAGS.out:
      raise ValueError("Pass --workdir=DIR (a run directory) and --out=FILE.npz.")
    run = finished_run.load(_FLAGS.workdir, overrides)
    texts = read_texts(_FLAGS.texts) if _FLAGS.texts else ()
    arrays = embeddings(run, _FLAGS.split, _FLAGS.dims, texts)
    path = write(_FLAGS.out, arrays)
  except finished_run.ERRORS as e:
    raise SystemExit(finished_run.error_message(e)) from None
  except OSError as e:
    raise SystemExit(f"error: cannot write {_FLAGS.out} ({e.strerror}).") from None
  count, dim = arrays["embeddings"].shape
  print(f"Wrote {count} embeddings of size {dim} ({arrays['dataset']} {arrays['split']}, "
        f"step {run.step}) to {path}")


if __name__ == "__main__":
  finished_run.run_tool(main)
