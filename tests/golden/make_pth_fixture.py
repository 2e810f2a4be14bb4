"""Writes `tests/golden/interop/pth_fixture.{pth,npz}` for the torch-free .pth reader.

Why this exists: `repr_learn.interop.pth` parses `torch.save` files without
torch, and its tests (tests/test_pth_reader.py) must run without torch too.
So this script, run once with torch, saves a small checkpoint shaped like the
official SSL releases (DINO's `teacher`/`student` with `module.backbone.`
prefixes, an `argparse.Namespace` of args, an epoch, an optimizer state) plus
the cases a reader can get wrong: every dtype numpy holds, bfloat16, a
transposed (non-contiguous) view, two views into one storage at different
offsets, a 0-d tensor, an empty tensor, an `nn.Parameter`, a conjugate view,
and torch values that are not tensors (`torch.Size`, `torch.device`, a dtype).
The `.npz` holds every tensor's expected numpy value under its dotted path
(bfloat16 widened to float32, the conjugate resolved).

Run it from the repository root with torch installed (values are
deterministic; only the archive's random serialization id changes):

    python tests/golden/make_pth_fixture.py
"""

import argparse
import collections
import os

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "interop")
BACKBONE = (("cls_token", (1, 1, 8)), ("pos_embed", (1, 5, 8)),
            ("patch_embed.proj.weight", (8, 3, 2, 2)), ("patch_embed.proj.bias", (8,)),
            ("blocks.0.norm1.weight", (8,)), ("blocks.0.attn.qkv.weight", (24, 8)),
            ("blocks.0.attn.qkv.bias", (24,)))
HEAD = (("mlp.0.weight", (16, 8)), ("mlp.0.bias", (16,)))


def _tensor(rng, shape) -> torch.Tensor:
  return torch.from_numpy(rng.normal(0.0, 1.0, shape).astype(np.float32))


def _model(seed: int) -> collections.OrderedDict:
  """A DINO-wrapped ViT state dict: `module.backbone.*` and `module.head.*`."""
  rng = np.random.default_rng(seed)
  sd = collections.OrderedDict()
  for name, shape in BACKBONE:
    sd[f"module.backbone.{name}"] = _tensor(rng, shape)
  for name, shape in HEAD:
    sd[f"module.head.{name}"] = _tensor(rng, shape)
  return sd


def _extras() -> dict:
  rng = np.random.default_rng(3)
  base = torch.arange(12, dtype=torch.float32) * 0.5
  matrix = torch.from_numpy(rng.normal(size=(3, 4)).astype(np.float32))
  complex_values = torch.complex(torch.tensor([1.0, -2.0]), torch.tensor([0.5, 3.0]))
  extras = {
      "half": torch.tensor([0.1, -2.5, 65504.0], dtype=torch.float16),
      "bf16": torch.tensor([[1.0, -0.3359375], [3.140625, 1e30]], dtype=torch.bfloat16),
      "double": torch.tensor([1 / 3, -1e300], dtype=torch.float64),
      "long": torch.tensor([2**40, -7, 0], dtype=torch.int64),
      "int": torch.tensor([[-(2**31), 2**31 - 1]], dtype=torch.int32),
      "short": torch.tensor([-300, 300], dtype=torch.int16),
      "char": torch.tensor([-128, 127], dtype=torch.int8),
      "byte": torch.tensor([0, 255], dtype=torch.uint8),
      "uint16": torch.tensor([0, 65535], dtype=torch.int32).to(torch.uint16),
      "bool": torch.tensor([True, False, True]),
      "transposed": matrix.t(),                       # stride (1, 4)
      "shared_a": base[2:6],                          # offset 2
      "shared_b": base[5:11].view(2, 3),              # offset 5, same storage
      "scalar": torch.tensor(2.5),
      "empty": torch.zeros(0, 3),
      "param": torch.nn.Parameter(torch.tensor([0.25, -4.0])),
      "conj": complex_values.conj(),                  # stored unconjugated, conj bit set
  }
  assert not extras["transposed"].is_contiguous()
  assert extras["shared_a"].untyped_storage().data_ptr() == base.untyped_storage().data_ptr()
  assert extras["conj"].is_conj()
  return extras


def checkpoint() -> dict:
  return {
      "teacher": _model(seed=1),
      "student": _model(seed=2),
      "args": argparse.Namespace(arch="vit_small", patch_size=16, lr=0.0005),
      "epoch": 7,
      "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]},
      "extras": _extras(),
      "meta": {"size": torch.Size([2, 3]), "device": torch.device("cuda", 0),
               "dtype": torch.float16, "tuple": (1, "a"), "none": None},
  }


def expected_arrays(obj, prefix: str = "") -> dict[str, np.ndarray]:
  """{dotted path: numpy value} for every tensor in `obj`."""
  if isinstance(obj, torch.Tensor):
    tensor = obj.detach().resolve_conj()
    if tensor.dtype == torch.bfloat16:
      tensor = tensor.float()
    return {prefix: np.array(tensor.numpy(), order="C")}  # ascontiguousarray makes 0-d 1-d
  if isinstance(obj, dict):
    out = {}
    for key, value in obj.items():
      out.update(expected_arrays(value, f"{prefix}.{key}" if prefix else str(key)))
    return out
  return {}


def main():
  os.makedirs(OUT, exist_ok=True)
  ckpt = checkpoint()
  pth_path = os.path.join(OUT, "pth_fixture.pth")
  torch.save(ckpt, pth_path)
  arrays = expected_arrays(ckpt)
  np.savez(os.path.join(OUT, "pth_fixture.npz"), **arrays)
  print(f"torch {torch.__version__}: {pth_path} ({os.path.getsize(pth_path)} bytes), "
        f"{len(arrays)} tensors")


if __name__ == "__main__":
  main()
