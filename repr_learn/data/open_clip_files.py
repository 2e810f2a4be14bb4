"""The files repr_learn reads from the open_clip_torch wheel, without importing it.

open_clip's package imports torch; what repr_learn needs from it are two plain
files: CLIP's BPE vocabulary (the tokenizer) and the ImageNet zero-shot
metadata (CLIP's 1,000 class names and its 80 prompt templates). Installed with
`pip install --no-deps open_clip_torch==3.3.0`, the wheel brings them and no
torch. This module is the only one that looks inside it.
"""

import functools
import importlib.util
import os

INSTALL = "pip install --no-deps open_clip_torch==3.3.0"


def path(name: str) -> str:
  """The file `name` of the installed open_clip package."""
  spec = importlib.util.find_spec("open_clip")
  for folder in (spec.submodule_search_locations or []) if spec else []:
    candidate = os.path.join(folder, name)
    if os.path.isfile(candidate):
      return candidate
  raise FileNotFoundError(f"open_clip's {name} was not found: run `{INSTALL}` (only its data "
                          "files are read; torch is not needed).")


@functools.lru_cache(maxsize=1)
def imagenet_zeroshot() -> tuple[tuple[str, ...], tuple[str, ...]]:
  """(CLIP's ImageNet class names, its 80 prompt templates with '{}'), as
  open_clip's zero_shot_metadata.py lists them (plain data, run from its file
  once per process)."""
  spec = importlib.util.spec_from_file_location("_open_clip_zero_shot_metadata",
                                                path("zero_shot_metadata.py"))
  metadata = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(metadata)
  # The templates are lambdas c -> f'...{c}...': called with '{}' they give the format strings.
  return (tuple(metadata.IMAGENET_CLASSNAMES),
          tuple(template("{}") for template in metadata.OPENAI_IMAGENET_TEMPLATES))
