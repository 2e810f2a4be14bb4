"""The torch-free .pth reader (`repr_learn.interop.pth`) against torch's own output.

`tests/golden/interop/pth_fixture.pth` was written by torch.save
(tests/golden/make_pth_fixture.py) and `pth_fixture.npz` holds what each of its
tensors must read as. The other files here are built by hand from pickle
opcodes, for what torch never writes: a malicious global, a big-endian
archive, a tensor reaching past its storage. No torch is needed except by the
last tests, which compare the torch path with the reader.
"""

import os
import pickle
import struct
import types
import zipfile

import numpy as np
import pytest

from repr_learn.interop import pth

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "interop")
FIXTURE = os.path.join(GOLDEN, "pth_fixture.pth")


def _expected() -> dict[str, np.ndarray]:
  with np.load(os.path.join(GOLDEN, "pth_fixture.npz")) as data:
    return {key: data[key] for key in data.files}


def _arrays(obj, prefix: str = "") -> dict[str, np.ndarray]:
  """{dotted path: array} for every array in nested dicts."""
  if isinstance(obj, np.ndarray):
    return {prefix: obj}
  if isinstance(obj, dict):
    out = {}
    for key, value in obj.items():
      out.update(_arrays(value, f"{prefix}.{key}" if prefix else str(key)))
    return out
  return {}


def _assert_fixture(ckpt):
  got, expected = _arrays(ckpt), _expected()
  assert sorted(got) == sorted(expected)
  for key, want in expected.items():
    assert got[key].dtype == want.dtype, key
    assert got[key].shape == want.shape, key
    np.testing.assert_array_equal(got[key], want, err_msg=key)
    assert got[key].flags.c_contiguous and got[key].flags.writeable, key
  assert isinstance(ckpt["args"], types.SimpleNamespace)
  assert vars(ckpt["args"]) == {"arch": "vit_small", "patch_size": 16, "lr": 0.0005}
  assert ckpt["epoch"] == 7 and isinstance(ckpt["epoch"], int)
  assert ckpt["optimizer"] == {"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]}
  assert ckpt["meta"] == {"size": (2, 3), "device": "cuda:0", "dtype": "torch.float16",
                          "tuple": (1, "a"), "none": None}
  assert list(ckpt["teacher"])[0] == "module.backbone.cls_token"  # order kept


def test_reader_reproduces_torch_save():
  ckpt = pth.load(FIXTURE, use_torch=False)
  _assert_fixture(ckpt)
  extras = ckpt["extras"]
  assert extras["bf16"].dtype == np.float32
  assert not np.shares_memory(extras["shared_a"], extras["shared_b"])
  np.testing.assert_array_equal(extras["shared_a"][3], extras["shared_b"][0, 0])


# --- Hand-made archives ------------------------------------------------------------

def _zip(path, data_pkl: bytes, records: dict[str, bytes] | None = None,
         byteorder: str = "little") -> str:
  """A torch.save-shaped zip: archive/data.pkl, byteorder, version, data/<key>."""
  with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
    zf.writestr("archive/data.pkl", data_pkl)
    zf.writestr("archive/byteorder", byteorder)
    for key, data in (records or {}).items():
      zf.writestr(f"archive/data/{key}", data)
    zf.writestr("archive/version", "3\n")
  return str(path)


def _ints(values) -> bytes:
  return b"(" + b"".join(b"K" + bytes([v]) for v in values) + b"t"


def _text(s: str) -> bytes:
  return b"X" + struct.pack("<I", len(s)) + s.encode()


def _tensor_pickle(storage_class: str, numel: int, offset: int, size, stride) -> bytes:
  """{'t': _rebuild_tensor_v2(<storage '0'>, offset, size, stride, False, OrderedDict())}."""
  storage = (b"(" + _text("storage") + b"ctorch\n" + storage_class.encode() + b"\n" +
             _text("0") + _text("cpu") + b"K" + bytes([numel]) + b"tQ")
  return (b"\x80\x02}" + _text("t") + b"ctorch._utils\n_rebuild_tensor_v2\n(" + storage +
          b"K" + bytes([offset]) + _ints(size) + _ints(stride) +
          b"\x89ccollections\nOrderedDict\n)RtRs.")


def test_disallowed_global_is_refused_unexecuted(tmp_path):
  marker = tmp_path / "pwned"
  command = f"touch {marker}"
  # os.system("touch <marker>") as GLOBAL + REDUCE, the classic malicious pickle.
  data_pkl = b"\x80\x02cos\nsystem\n" + _text(command) + b"\x85R."
  path = _zip(tmp_path / "evil.pth", data_pkl)
  with pytest.raises(ValueError, match=r"refusing to load global os\.system") as info:
    pth.load(path, use_torch=False)
  assert "\n" not in str(info.value)
  assert not marker.exists()


def test_non_zip_file_says_resave_or_install_torch(tmp_path):
  path = tmp_path / "legacy.pth"
  path.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + b"\x00" * 32)
  with pytest.raises(ValueError, match="re-save it with a recent torch") as info:
    pth.load(path, use_torch=False)
  assert "\n" not in str(info.value) and "install torch" in str(info.value)


def test_big_endian_archive(tmp_path):
  values = np.arange(6, dtype=np.float32) - 2.5
  data_pkl = _tensor_pickle("FloatStorage", 6, 1, (2, 2), (1, 2))
  path = _zip(tmp_path / "big.pth", data_pkl, {"0": values.astype(">f4").tobytes()},
              byteorder="big")
  got = pth.load(path, use_torch=False)["t"]
  np.testing.assert_array_equal(got, [[values[1], values[3]], [values[2], values[4]]])
  assert got.dtype == np.float32 and got.dtype.isnative


def test_tensor_past_its_storage_is_refused(tmp_path):
  data_pkl = _tensor_pickle("FloatStorage", 4, 2, (3,), (1,))
  path = _zip(tmp_path / "short.pth", data_pkl, {"0": np.zeros(4, np.float32).tobytes()})
  with pytest.raises(ValueError, match="reaches past its storage"):
    pth.load(path, use_torch=False)


def test_missing_storage_record(tmp_path):
  path = _zip(tmp_path / "missing.pth", _tensor_pickle("FloatStorage", 4, 0, (4,), (1,)))
  with pytest.raises(ValueError, match="archive/data/0 is missing"):
    pth.load(path, use_torch=False)


def test_numpy_values(tmp_path):
  """Metrics saved as numpy numbers or arrays (protocol 2, as torch.save pickles)."""
  obj = {"best_acc": np.float64(81.5), "step": np.int64(3), "hist": np.arange(4, dtype=np.int16),
         "raw": b"\x00\xff"}
  path = _zip(tmp_path / "numpy.pth", pickle.dumps(obj, protocol=2))
  got = pth.load(path, use_torch=False)
  assert got["best_acc"] == 81.5 and got["best_acc"].dtype == np.float64
  assert got["step"] == 3 and got["step"].dtype == np.int64
  np.testing.assert_array_equal(got["hist"], obj["hist"])
  assert got["hist"].dtype == np.int16 and got["raw"] == b"\x00\xff"


# --- With torch ----------------------------------------------------------------------

def test_torch_path_matches_reader():
  pytest.importorskip("torch")
  _assert_fixture(pth.load(FIXTURE, use_torch=True))


def test_torch_path_refuses_disallowed_global(tmp_path):
  pytest.importorskip("torch")
  path = _zip(tmp_path / "evil.pth", b"\x80\x02cos\nsystem\n" + _text("true") + b"\x85R.")
  with pytest.raises(ValueError, match="os.system") as info:
    pth.load(path, use_torch=True)
  assert "\n" not in str(info.value)


def test_torch_path_numpy_values(tmp_path):
  pytest.importorskip("torch")
  obj = {"best_acc": np.float64(81.5), "hist": np.arange(4, dtype=np.int16)}
  path = _zip(tmp_path / "numpy.pth", pickle.dumps(obj, protocol=2))
  got = pth.load(path, use_torch=True)
  assert got["best_acc"] == 81.5
  np.testing.assert_array_equal(got["hist"], obj["hist"])


def test_legacy_format_reads_through_torch_only(tmp_path):
  torch = pytest.importorskip("torch")
  path = tmp_path / "legacy.pth"
  torch.save({"w": torch.arange(3.0)}, path, _use_new_zipfile_serialization=False)
  np.testing.assert_array_equal(pth.load(path, use_torch=True)["w"], [0.0, 1.0, 2.0])
  with pytest.raises(ValueError, match="re-save it with a recent torch"):
    pth.load(path, use_torch=False)
