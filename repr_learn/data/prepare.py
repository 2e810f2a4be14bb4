"""Builds a catalog dataset as array_record files, once, where TFDS can download.

  python -m repr_learn.data.prepare --dataset=cifar10 --data_dir=$TFDS
  python -m repr_learn.data.prepare --dataset=imagenet2012 --data_dir=$TFDS \
      --manual_dir=$DIR_WITH_ILSVRC2012_TARS
  python -m repr_learn.data.prepare --dataset=imagenet2012 --data_dir=$TFDS --resized \
      --workers=16

`--resized` then also writes every split resized to the stored size
(`resized_store`), which `--config.data.storage=resized` reads about 4x faster
per core.
"""

import functools
import os

from absl import app
from absl import flags
import tensorflow_datasets as tfds

from repr_learn.data import catalog
from repr_learn.data import resized_store
from repr_learn.data import sources

_DATASET = flags.DEFINE_string("dataset", None, "Catalog name (see catalog.py).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data_dir to build into.")
_MANUAL_DIR = flags.DEFINE_string("manual_dir", None, "Hand-downloaded files (ImageNet).")
_RESIZED = flags.DEFINE_bool("resized", False, "Also write the splits resized to the stored "
                             "size, for data.storage='resized'.")
_WORKERS = flags.DEFINE_integer("workers", os.cpu_count(), "Processes writing the resized copy.")
_QUALITY = flags.DEFINE_integer("jpeg_quality", resized_store.DEFAULT_QUALITY,
                                "JPEG quality of the resized copy.")
flags.mark_flag_as_required("dataset")


def main(argv):
  del argv
  spec = catalog.get_spec(_DATASET.value)
  if not spec.tfds_name:
    raise app.UsageError(f"{spec.name} needs no preparation: its files are read as they are.")
  if spec.captioned and _RESIZED.value:
    raise app.UsageError("The resized copy holds images and labels only; captioned datasets "
                         "are read from TFDS (drop --resized).")
  if not sources.prepare_generated(spec, _DATA_DIR.value):
    builder = tfds.builder(spec.tfds_name, data_dir=_DATA_DIR.value)
    builder.download_and_prepare(
        file_format="array_record",
        download_config=tfds.download.DownloadConfig(manual_dir=_MANUAL_DIR.value))
  if _RESIZED.value:
    folder = resized_store.write_dataset(
        spec, _DATA_DIR.value, functools.partial(sources.open_tfds, spec, data_dir=_DATA_DIR.value),
        workers=_WORKERS.value, quality=_QUALITY.value)
    print(f"{spec.name}: resized copy of every split in {folder}")


if __name__ == "__main__":
  app.run(main)
