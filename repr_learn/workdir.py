"""The run directory: writability, the live run's lock, the identity of the
run it holds, config.json.

A workdir belongs to one run. Resuming is automatic, so a workdir that holds a
run of another method, dataset, model or batch size is refused instead of
mixing the two; `overwrite=True` moves the old run aside rather than deleting.
While a run is live it holds a lock, so a second run started on the same
workdir is refused instead of interleaving checkpoints and metrics.
"""

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
import time

from absl import logging
import jax
import ml_collections

from repr_learn import config_schema

CONFIG_FILE = "config.json"
LOCK_PREFIX = ".lock"
# Config fields (or whole sections) that define which run a workdir holds: a
# checkpoint of one cannot be resumed by another. Sections compare leaf by leaf.
IDENTITY_KEYS = ("objective", "model", "data.name", "augment.crop_size", "batch_size")
# Fields inside those sections that choose only how the same computation runs
# (the checkpoint fits either way), so a resume may change them.
EXECUTION_KEYS = ("model.attention", "model.scan_blocks", "model.remat_blocks")


class WorkdirError(RuntimeError):
  """The workdir cannot be used as asked."""


class UnreadableConfigError(WorkdirError):
  """DIR/config.json exists but is not a JSON object (truncated, emptied, edited)."""


def saved_config(workdir: str) -> dict | None:
  """DIR/config.json as a dict; None where there is none yet."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      saved = json.load(f)
    if not isinstance(saved, dict):
      raise ValueError(f"a JSON {type(saved).__name__}, not an object")
  except (OSError, ValueError) as e:
    raise UnreadableConfigError(
        f"{path} is unreadable ({e}), so the run in {workdir} cannot be identified or "
        "resumed; restore that file, or pass --overwrite to move the run aside (nothing "
        "is deleted) and start afresh.") from None
  return saved


def _lookup(tree: dict, dotted: str):
  for part in dotted.split("."):
    tree = tree.get(part) if isinstance(tree, dict) else None
  return tree


def _leaves(tree, prefix: str) -> dict:
  if not isinstance(tree, dict):
    return {prefix: tree}
  out = {}
  for k, v in tree.items():
    out.update(_leaves(v, f"{prefix}.{k}"))
  return out


def identity_differences(old: dict, new: dict) -> list[str]:
  """'field: old -> new' for each identity field that differs (both compared
  as config.json stores them: tuples are lists there)."""
  old, new = _as_json(old), _as_json(new)
  diffs = []
  for key in IDENTITY_KEYS:
    a, b = _leaves(_lookup(old, key), key), _leaves(_lookup(new, key), key)
    diffs += [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
              if a.get(k) != b.get(k) and k not in EXECUTION_KEYS]
  return diffs


class RunLock:
  """An exclusive lock on the workdir for as long as this run lives.

  One lock file per process (`.lock.<process_index>`), held with `flock`: the
  kernel releases it when the process dies, however it dies, so a stale lock
  of a killed run never blocks its rerun. The file names the holder for the
  error message, and is removed when the run ends (a lock taken on a file that
  was removed meanwhile is taken again on the new one). On a file system
  without `flock` the run goes on with a warning (two runs could then share the
  workdir undetected).
  """

  def __init__(self, workdir: str):
    self.workdir = workdir
    self.path = os.path.join(workdir, f"{LOCK_PREFIX}.{jax.process_index()}")
    self._fd = None

  def __enter__(self) -> "RunLock":
    while True:
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except OSError as e:
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
          logging.warning("Cannot lock %s (%s): a second run on this workdir would not "
                          "be detected.", self.path, e.strerror)
          os.close(fd)
          return self
        holder = os.pread(fd, 1000, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise WorkdirError(f"Workdir {self.workdir!r} is in use by a live run ({holder}); "
                           "wait for it to finish, or pass another --workdir.") from None
      if _same_file(fd, self.path):
        break
      os.close(fd)  # Its previous holder removed it as we opened it: lock the new one.
    os.ftruncate(fd, 0)
    started = datetime.datetime.now().isoformat(timespec="seconds")
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, started {started}\n".encode(), 0)
    self._fd = fd
    return self

  def __exit__(self, *exc) -> None:
    if self._fd is not None:
      if _same_file(self._fd, self.path):
        os.remove(self.path)  # while still held: whoever opened it meanwhile retries
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None


def _same_file(fd: int, path: str) -> bool:
  try:
    return os.path.samestat(os.fstat(fd), os.stat(path))
  except FileNotFoundError:
    return False


@contextlib.contextmanager
def held(workdir: str):
  """The workdir, created if needed, proven writable and locked for this run.
  A start that fails before the run writes anything leaves nothing behind:
  the lock file goes, and so does the workdir if this created it."""
  created = not os.path.exists(workdir)
  ensure_writable(workdir)
  try:
    with RunLock(workdir):
      yield workdir
  except BaseException:
    if created and jax.process_index() == 0:
      try:
        os.rmdir(workdir)  # only if empty: a run that started keeps its files
      except OSError:
        pass
    raise


def ensure_writable(workdir: str) -> None:
  """Creates the workdir and proves a file can be written there."""
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, f".write_probe_{jax.process_index()}")
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise WorkdirError(f"Workdir {workdir!r} is not writable ({e.strerror}); "
                       "pass a --workdir you can write to.") from None


def claim(workdir: str, config: ml_collections.ConfigDict, *, overwrite: bool) -> None:
  """Refuses a workdir that holds a different run, unless told to overwrite.

  With `overwrite`, the previous run's files move to `workdir/replaced-<time>/`
  so nothing is lost.
  """
  try:
    saved = saved_config(workdir)
  except UnreadableConfigError:
    if not overwrite:
      raise
    diffs = [f"{CONFIG_FILE} unreadable"]
  else:
    if saved is None:
      return
    diffs = identity_differences(config_schema.with_legacy_values(saved), config.to_dict())
  if not diffs:
    return
  if not overwrite:
    shown = "; ".join(diffs[:3]) + (f"; and {len(diffs) - 3} more" if len(diffs) > 3 else "")
    raise WorkdirError(
        f"Workdir {workdir!r} holds a different run ({shown}); use a new "
        "--workdir, or pass --overwrite to move the old run aside.")
  if jax.process_index() == 0:
    aside = os.path.join(workdir, time.strftime("replaced-%Y%m%d-%H%M%S"))
    os.makedirs(aside)
    for name in os.listdir(workdir):
      if not name.startswith(("replaced-", LOCK_PREFIX)):
        os.rename(os.path.join(workdir, name), os.path.join(aside, name))
    logging.warning("--overwrite: moved the previous run in %s (%s) to %s.", workdir,
                    "; ".join(diffs[:3]), aside)


def keep_trained_numerics(workdir: str, config: ml_collections.ConfigDict
                          ) -> ml_collections.ConfigDict:
  """`config` with the numerics of the run in `workdir` where its config.json
  predates a field whose default changed (`config_schema.LEGACY_VALUES`): an
  in-progress run made before resumes computing what it was trained with."""
  try:
    saved = saved_config(workdir)
  except UnreadableConfigError:
    return config  # `claim` refuses it, or moves it aside.
  if saved is None:
    return config
  missing = config_schema.missing_legacy_fields(saved)
  if not missing:
    return config
  resumed = config.copy_and_resolve_references()
  changed = {}
  for dotted, value in missing.items():
    section, _, leaf = dotted.rpartition(".")
    node = resumed
    for part in section.split("."):
      node = node[part]
    if _as_json(node[leaf]) != _as_json(value):
      changed[dotted] = value
    node[leaf] = value
  if identity_differences(config_schema.with_legacy_values(saved), resumed.to_dict()):
    return config  # Another run: `claim` refuses it or moves it aside.
  if changed:
    logging.warning("%s was trained before these defaults changed; it keeps %s.", workdir,
                    ", ".join(f"{k}={v!r}" for k, v in changed.items()))
  return resumed


def _as_json(value):
  """`value` as config.json stores it: tuples as lists, other objects as str."""
  return json.loads(json.dumps(value, default=str))


def write_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  if jax.process_index() == 0:
    with open(os.path.join(workdir, CONFIG_FILE), "w") as f:
      json.dump(config.to_dict(), f, indent=2, sort_keys=True)
