"""Reads PyTorch `.pth`/`.pt` checkpoints into numpy, with or without torch.

Why this exists: the official SSL releases (DINO, MAE, MoCo v3, I-JEPA, ...)
ship their weights as `torch.save` files, but torch is a 5 GB install that
this codebase and its tests must not need. So `load` has two paths:
`torch.load(weights_only=True)` when torch is installed, else a reader of the
file format written here with numpy and the standard library.

The format (torch >= 1.6, the default since): a zip with one top folder
`<name>/` holding `data.pkl`, a pickle whose persistent ids
`('storage', <storage type>, key, location, numel)` name raw storage files
`data/<key>`, plus `byteorder` (absent before torch 1.11: little-endian),
`version` and bookkeeping. Tensors are rebuilt by `torch._utils`
`_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks,
[metadata])`; torch 2.14 still names the storage type by its legacy class
(`torch FloatStorage`, `torch BFloat16Storage`, ...) with `numel` in elements,
except for dtypes that have no legacy class (uint16/32/64, float8): those
write `torch.storage UntypedStorage` with `numel` in bytes and
`_rebuild_tensor_v3(..., dtype, [metadata])` with a `torch <dtype>` global.
llama.cpp's `convert_legacy_llama.py` (`LazyUnpickler`) reads the same format.

Safety: like `weights_only=True`, the reader resolves only the globals in
`_GLOBALS` (tensor and parameter rebuilders, storage types, dtypes,
`torch.Size`, `torch.device`, `OrderedDict`, `Counter`, `argparse.Namespace`,
numpy scalars and arrays, a few builtins); any other global raises a one-line
`ValueError` naming it, so a checkpoint can never run code.

What comes back (both paths alike):
  * tensors (and `nn.Parameter`s) as C-contiguous numpy arrays that own their
    memory: strides and storage offset honoured, views of one storage copied
    apart, conjugate/negative bits resolved. float16/32/64, complex64/128,
    int8/16/32/64, uint8/16/32/64 and bool keep their dtype; bfloat16 becomes
    float32 (exactly: numpy has no bfloat16). float8 and quantized tensors
    raise a `ValueError` (load those with torch);
  * `argparse.Namespace` (DINO's and MAE's `args`) as `types.SimpleNamespace`,
    so `ckpt['args'].arch` works as in the releases' code without argparse's
    class; `torch.Size` as a tuple, `torch.device` as its string ('cuda:0'),
    a torch dtype as its string ('torch.float16');
  * dicts, `OrderedDict`s, lists, numbers and strings unchanged.

The legacy pre-1.6 format (a bare pickle stream, or a tar) is read only
through torch; without it `load` says to re-save the file with a recent torch.
"""

import argparse
import codecs
import collections
import dataclasses
import importlib.util
import io
import os
import pickle
import re
import types
import zipfile
from typing import Any

import numpy as np

# torch dtype name -> numpy type code (bfloat16: its raw 16 bits, widened later).
_NUMPY_CODES = {
    "float64": "f8", "float32": "f4", "float16": "f2", "bfloat16": "u2",
    "complex128": "c16", "complex64": "c8",
    "int64": "i8", "int32": "i4", "int16": "i2", "int8": "i1",
    "uint64": "u8", "uint32": "u4", "uint16": "u2", "uint8": "u1", "bool": "b1",
}
# dtypes torch may name in a pickle that numpy cannot hold.
_UNSUPPORTED_DTYPES = (
    "float8_e5m2", "float8_e4m3fn", "float8_e5m2fnuz", "float8_e4m3fnuz", "float8_e8m0fnu",
    "float4_e2m1fn_x2", "complex32", "qint8", "quint8", "qint32", "quint4x2", "quint2x4",
)
# legacy storage class -> dtype name; UntypedStorage is raw bytes.
_STORAGE_DTYPES = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "ComplexDoubleStorage": "complex128",
    "ComplexFloatStorage": "complex64", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "UntypedStorage": "uint8",
    "QInt8Storage": "qint8", "QUInt8Storage": "quint8", "QInt32Storage": "qint32",
    "QUInt4x2Storage": "quint4x2", "QUInt2x4Storage": "quint2x4",
}
_STORAGE_MODULES = ("torch", "torch.storage", "torch.cuda")
_PICKLE_RECORD = re.compile(r"^[^/]+/data\.pkl$")


# --- Values the unpickler builds -------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _StorageType:
  """What a `torch <X>Storage` global resolves to: only its dtype matters."""
  dtype: str


@dataclasses.dataclass(frozen=True)
class _Storage:
  """A storage named by a persistent id; its bytes are read when a tensor needs them."""
  archive: "_Archive"
  key: str
  dtype: str
  nbytes: int


def _array(storage: _Storage, dtype: str, offset: int, size, stride) -> np.ndarray:
  """The tensor `storage[offset + sum(i * stride)]` of shape `size`, copied."""
  if not isinstance(storage, _Storage):
    raise ValueError(f"Malformed checkpoint: a tensor rebuilt from {type(storage).__name__}, "
                     "not a storage.")
  shape, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
  if len(shape) != len(stride):
    raise ValueError(f"Malformed checkpoint: tensor size {shape} with stride {stride}.")
  code = _numpy_code(dtype)
  native = np.dtype(code)
  if 0 in shape:
    return _widen(np.zeros(shape, native), dtype)
  stored = native.newbyteorder("<" if storage.archive.byteorder == "little" else ">")
  data = storage.archive.read(storage)
  last = int(offset) + sum((n - 1) * s for n, s in zip(shape, stride))
  if int(offset) < 0 or any(s < 0 for s in stride) or last >= len(data) // stored.itemsize:
    raise ValueError(f"Malformed checkpoint: a tensor of size {shape}, stride {stride} at "
                     f"offset {offset} reaches past its storage {storage.key!r} "
                     f"({len(data) // stored.itemsize} elements).")
  view = np.ndarray(shape, stored, buffer=data,
                    offset=int(offset) * stored.itemsize,
                    strides=tuple(s * stored.itemsize for s in stride))
  return _widen(np.array(view, dtype=native, order="C"), dtype)


def _numpy_code(dtype: str) -> str:
  if dtype in _NUMPY_CODES:
    return _NUMPY_CODES[dtype]
  raise ValueError(f"A torch.{dtype} tensor: numpy has no such type; load this checkpoint "
                   "with torch installed and convert it there.")


def _widen(array: np.ndarray, dtype: str) -> np.ndarray:
  """bfloat16's bits are float32's upper half, so the widening is exact."""
  if dtype != "bfloat16":
    return array
  return (array.astype(np.uint32) << 16).view(np.float32)


def _with_metadata(array: np.ndarray, metadata) -> np.ndarray:
  """Applies the lazy conjugate/negative bits torch stores beside the data."""
  metadata = metadata or {}
  if metadata.get("neg"):
    array = np.negative(array)
  if metadata.get("conj"):
    array = np.conj(array)
  return array


def _rebuild_tensor(storage, storage_offset, size, stride):
  return _array(storage, getattr(storage, "dtype", ""), storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       metadata=None):
  del requires_grad, backward_hooks
  return _with_metadata(_rebuild_tensor(storage, storage_offset, size, stride), metadata)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       dtype, metadata=None):
  """Storages without a legacy class: the dtype comes as a `torch <dtype>` global."""
  del requires_grad, backward_hooks
  name = dtype[len("torch."):] if isinstance(dtype, str) and dtype.startswith("torch.") else ""
  return _with_metadata(_array(storage, name, storage_offset, size, stride), metadata)


def _rebuild_parameter(data, requires_grad, backward_hooks):
  del requires_grad, backward_hooks
  return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
  del requires_grad, backward_hooks, state
  return data


def _rebuild_from_type_v2(func, new_type, args, state):
  """Tensor subclasses and tensors with Python attributes: the plain tensor.
  `func` is already one of the rebuilders above (it came through `find_class`)."""
  del new_type, state
  return func(*args)


def _device(kind: str, index=None) -> str:
  return kind if index is None else f"{kind}:{index}"


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
  """Protocol-2 pickles write `bytes` as `_codecs.encode(str, 'latin1')`."""
  if encoding not in ("latin1", "latin-1"):
    raise ValueError(f"Malformed checkpoint: _codecs.encode with encoding {encoding!r}.")
  return codecs.encode(text, "latin1")


def _numpy_scalar(dtype: np.dtype, data=None):
  """numpy's `multiarray.scalar`, for metrics saved as numpy numbers."""
  if dtype.hasobject:
    return data
  return np.frombuffer(data, dtype, count=1)[0]


def _numpy_reconstruct(subtype, shape, dtype):
  """numpy's `multiarray._reconstruct`; the array's data arrives by `__setstate__`."""
  if subtype is not np.ndarray:
    raise ValueError(f"Malformed checkpoint: a numpy array of type {subtype!r}.")
  return np.ndarray(shape, dtype)


_TORCH_DTYPES = {f"torch.{name}": f"torch.{name}"
                 for name in (*_NUMPY_CODES, *_UNSUPPORTED_DTYPES)}
_GLOBALS = {
    "collections.OrderedDict": collections.OrderedDict,
    "collections.Counter": collections.Counter,
    "argparse.Namespace": types.SimpleNamespace,
    "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
    "torch._utils._rebuild_tensor_v3": _rebuild_tensor_v3,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter_with_state,
    "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
    "torch.tensor._rebuild_from_type_v2": _rebuild_from_type_v2,  # its module before 1.9
    "torch.Tensor": "torch.Tensor",                                # _rebuild_from_type_v2's type
    "torch.nn.parameter.Parameter": "torch.nn.parameter.Parameter",
    "torch.Size": tuple,
    "torch.device": _device,
    **_TORCH_DTYPES,
    "_codecs.encode": _latin1_encode,
    "numpy.dtype": np.dtype,
    "numpy.ndarray": np.ndarray,
    "numpy.core.multiarray.scalar": _numpy_scalar,
    "numpy._core.multiarray.scalar": _numpy_scalar,
    "numpy.core.multiarray._reconstruct": _numpy_reconstruct,
    "numpy._core.multiarray._reconstruct": _numpy_reconstruct,
    "builtins.set": set,
    "builtins.frozenset": frozenset,
    "builtins.bytearray": bytearray,
    "builtins.complex": complex,
    "builtins.slice": slice,
}


# --- The zip archive and its unpickler ---------------------------------------------

class _Archive:
  """The open zip, its record prefix and byte order; keeps the last storage read,
  since the views of one storage are usually pickled one after another."""

  def __init__(self, path: str, zf: zipfile.ZipFile):
    self.path, self.zf = path, zf
    self.prefix = _pickle_record(path, zf)[:-len("data.pkl")]
    self.byteorder = self._byteorder()
    self._last: tuple[str, bytes] | None = None

  def _byteorder(self) -> str:
    name = self.prefix + "byteorder"
    if name not in self.zf.NameToInfo:
      return "little"
    order = self.zf.read(name).decode("ascii", "replace").strip()
    if order not in ("little", "big"):
      raise ValueError(f"{self.path}: unknown byte order {order!r} in {name}.")
    return order

  def read(self, storage: _Storage) -> bytes:
    if self._last is None or self._last[0] != storage.key:
      name = f"{self.prefix}data/{storage.key}"
      try:
        data = self.zf.read(name)
      except KeyError:
        raise ValueError(f"{self.path}: storage record {name} is missing.") from None
      if len(data) < storage.nbytes:
        raise ValueError(f"{self.path}: storage record {name} holds {len(data)} bytes, the "
                         f"pickle says {storage.nbytes}.")
      self._last = (storage.key, data)
    return self._last[1]


def _pickle_record(path: str, zf: zipfile.ZipFile) -> str:
  names = zf.namelist()
  records = [n for n in names if _PICKLE_RECORD.match(n)]
  if len(records) == 1:
    return records[0]
  if any("/code/" in n or n.endswith("/constants.pkl") for n in names):
    raise ValueError(f"{path} is a TorchScript archive (torch.jit.save), not a torch.save "
                     "checkpoint; save the model's state_dict() with torch.save instead.")
  raise ValueError(f"{path} is a zip but not a torch.save checkpoint: expected one "
                   f"<name>/data.pkl record, found {len(records)}.")


class _Unpickler(pickle.Unpickler):
  """Resolves only allowlisted globals and turns persistent ids into storages."""

  def __init__(self, archive: _Archive):
    super().__init__(io.BytesIO(archive.zf.read(archive.prefix + "data.pkl")))
    self.archive = archive
    self.storages: dict[str, _Storage] = {}

  def find_class(self, module: str, name: str):
    if name.endswith("Storage") and module in _STORAGE_MODULES and name in _STORAGE_DTYPES:
      return _StorageType(_STORAGE_DTYPES[name])
    qualified = f"{module}.{name}"
    if qualified in _GLOBALS:
      return _GLOBALS[qualified]
    raise ValueError(f"{self.archive.path}: refusing to load global {qualified} (not on "
                     "repr_learn.interop.pth's allowlist; unpickling it could run code).")

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) == 5 and _ascii(pid[0]) == "storage"):
      raise ValueError(f"{self.archive.path}: unknown persistent id {pid!r:.80}.")
    _, storage_type, key, _, numel = pid
    if not isinstance(storage_type, _StorageType):
      raise ValueError(f"{self.archive.path}: storage of unknown type {storage_type!r:.80}.")
    key = _ascii(key)
    if key not in self.storages:
      itemsize = np.dtype(_NUMPY_CODES.get(storage_type.dtype, "u1")).itemsize
      self.storages[key] = _Storage(self.archive, key, storage_type.dtype, int(numel) * itemsize)
    return self.storages[key]


def _ascii(value) -> str:
  return value.decode("ascii") if isinstance(value, bytes) else str(value)


def _load_zip(path: str) -> Any:
  if not os.path.isfile(path):
    raise FileNotFoundError(f"Checkpoint {path} does not exist.")
  if not zipfile.is_zipfile(path):
    raise ValueError(f"{path} is not a zip-format torch.save file (torch < 1.6 wrote a legacy "
                     "format); re-save it with a recent torch (torch.save(torch.load(f), f)) or "
                     "install torch to read it.")
  with zipfile.ZipFile(path) as zf:
    return _Unpickler(_Archive(path, zf)).load()


# --- With torch ----------------------------------------------------------------------

def _torch_safe_globals() -> list:
  """What `weights_only=True` must accept beyond its own list to match the reader."""
  safe = [argparse.Namespace, np.dtype, np.ndarray, *(
      getattr(np.dtypes, n) for n in np.dtypes.__all__)]
  # pylint: disable-next=protected-access
  multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
  for name in ("scalar", "_reconstruct"):
    func = getattr(multiarray, name)
    safe += [(func, f"numpy.core.multiarray.{name}"), (func, f"numpy._core.multiarray.{name}")]
  return safe


def _load_torch(path: str) -> Any:
  import torch  # pylint: disable=g-import-not-at-top  (optional, and 5 GB)
  with torch.serialization.safe_globals(_torch_safe_globals()):
    try:
      obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
      found = re.search(r"GLOBAL ([\w.]+)", str(e))
      what = f"global {found.group(1)}" if found else str(e).splitlines()[0]
      raise ValueError(f"{path}: torch.load(weights_only=True) refuses {what}.") from None
  return _from_torch(obj, torch)


def _from_torch(obj, torch) -> Any:
  """torch.load's result in the reader's terms (see the module docstring)."""
  if isinstance(obj, torch.Tensor):
    tensor = obj.detach().cpu().resolve_conj().resolve_neg()
    name = str(tensor.dtype)[len("torch."):]
    _numpy_code(name)  # the reader's error for dtypes numpy lacks
    if name == "bfloat16":
      tensor = tensor.float()
    return np.array(tensor.numpy(), order="C", copy=True)
  if isinstance(obj, dict):
    out = obj.copy()
    for key, value in obj.items():
      out[key] = _from_torch(value, torch)
    return out
  if isinstance(obj, list):
    return [_from_torch(v, torch) for v in obj]
  if isinstance(obj, tuple):  # torch.Size too
    return tuple(_from_torch(v, torch) for v in obj)
  if isinstance(obj, argparse.Namespace):
    return types.SimpleNamespace(**{k: _from_torch(v, torch) for k, v in vars(obj).items()})
  if isinstance(obj, (torch.device, torch.dtype)):
    return str(obj)
  return obj


# --- Entry point ------------------------------------------------------------------------

def torch_available() -> bool:
  return importlib.util.find_spec("torch") is not None


def load(path: str | os.PathLike, use_torch: bool | None = None) -> Any:
  """The checkpoint object (usually a dict) with numpy arrays for tensors.

  use_torch: True reads with `torch.load(weights_only=True)`, False with the
  torch-free reader, None (default) with torch when it is installed (it also
  reads the legacy pre-1.6 format). Both paths return the same values.
  """
  path = os.fspath(path)
  if use_torch is None:
    use_torch = torch_available()
  return _load_torch(path) if use_torch else _load_zip(path)
