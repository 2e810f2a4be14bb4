"""Reading and writing weight files: .pth/.pt (PyTorch), .safetensors, .npz.

The one module that touches the `safetensors` library; `.pth` goes through
`interop.pth` (torch when installed, else a reader that needs no torch).
"""

import os

import numpy as np
import safetensors
from safetensors import numpy as safetensors_numpy

from repr_learn.interop import pth

SUFFIXES = (".pth", ".pt", ".pth.tar", ".tar", ".bin", ".safetensors", ".npz")


def read(path: str) -> dict:
  """The checkpoint as nested dicts with numpy arrays for tensors."""
  path = os.path.expanduser(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"Checkpoint {path} does not exist; pass --checkpoint=FILE.")
  if path.endswith(".safetensors"):
    return dict(safetensors_numpy.load_file(path))
  if path.endswith(".npz"):
    with np.load(path, allow_pickle=False) as data:
      return {key.replace("/", "."): np.asarray(data[key]) for key in data.files}
  if path.endswith((".pth", ".pt", ".pth.tar", ".tar", ".bin")):
    return pth.load(path)
  raise ValueError(f"Unknown checkpoint file type {os.path.basename(path)!r}; expected one "
                   f"of {', '.join(SUFFIXES)}.")


def write_safetensors(path: str, tensors: dict[str, np.ndarray], metadata: dict[str, str]
                      ) -> None:
  """Contiguous arrays, with `metadata` (safetensors allows strings only)."""
  safetensors_numpy.save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, path,
                              metadata={k: str(v) for k, v in metadata.items()})


def read_safetensors_metadata(path: str) -> dict[str, str]:
  with safetensors.safe_open(path, framework="np") as f:
    return dict(f.metadata() or {})
