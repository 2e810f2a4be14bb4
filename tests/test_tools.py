"""The tools around a finished run: evaluate, embed, plot, report.

One tiny SimCLR run is trained once for the module; every tool then works on
its workdir through its command-line `main`, in process.
"""

import importlib
import json

import numpy as np
import pytest
from PIL import Image

from repr_learn import embed
from repr_learn import evaluate
from repr_learn import finished_run
from repr_learn import plot
from repr_learn import report
from repr_learn import train
from repr_learn.evaluation import drawing
from tests import config_overrides

PNG_MAGIC = b"\x89PNG"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tfds_dir):
  workdir = tmp_path_factory.mktemp("simclr_smoke")
  config = importlib.import_module("configs.simclr").get_config("smoke")
  config_overrides.override(config, **{
      "data.data_dir": tfds_dir, "eval.protocols": "knn", "eval.periodic_protocols": "knn",
      "eval.random_init_baseline": False})
  train.train_and_evaluate(config, str(workdir))
  return workdir


def _image_folder(root, classes=("a", "b"), per_class=4):
  """Tiny PNGs, one subfolder per class (labeled), or loose files if classes=()."""
  rng = np.random.default_rng(0)
  for name in classes or (".",):
    (root / name).mkdir(parents=True, exist_ok=True)
    for i in range(per_class):
      pixels = rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)
      Image.fromarray(pixels).save(root / name / f"img{i}.png")
  return root


def _error(excinfo) -> str:
  message = str(excinfo.value.code)
  assert message.startswith("error: ") and "\n" not in message, message
  return message


def test_evaluate_writes_each_protocol(run_dir, capsys):
  (run_dir / "eval" / "knn.json").unlink()
  evaluate.main(["evaluate", f"--workdir={run_dir}", "--protocol=knn",
                 "--config.eval.knn_k=5"])
  result = json.loads((run_dir / "eval" / "knn.json").read_text())
  assert result["step"] == 4 and result["k"] == 5 and 0 <= result["top1"] <= 100
  assert "knn at step 4: top1" in capsys.readouterr().out


def test_transfer_evaluation_lands_beside_the_run_own_results(run_dir, tmp_path):
  folder = _image_folder(tmp_path / "photos")
  before = (run_dir / "eval" / "knn.json").read_text()
  evaluate.main(["evaluate", f"--workdir={run_dir}", "--protocol=knn",
                 "--config.eval.dataset=image_folder", f"--config.eval.data_dir={folder}"])
  result = json.loads((run_dir / "transfer" / "image_folder" / "eval" / "knn.json").read_text())
  assert result["dataset"] == "image_folder"
  assert (run_dir / "eval" / "knn.json").read_text() == before


def test_labels_required_is_one_line(run_dir, tmp_path):
  folder = _image_folder(tmp_path / "unlabeled", classes=())
  with pytest.raises(SystemExit) as excinfo:
    evaluate.main(["evaluate", f"--workdir={run_dir}", "--protocol=knn",
                   "--config.eval.dataset=image_folder", f"--config.eval.data_dir={folder}"])
  assert "needs labels" in _error(excinfo)


def test_embed_writes_features_labels_and_ids(run_dir, tmp_path):
  out = tmp_path / "emb.npz"
  embed.main(["embed", f"--workdir={run_dir}", f"--out={out}"])
  arrays = np.load(out)
  n = len(arrays["labels"])
  assert n == 360 and arrays["embeddings"].shape[0] == n and arrays["ids"].shape == (n,)
  assert arrays["embeddings"].dtype == np.float32 and str(arrays["split"]) == "test"
  np.testing.assert_array_equal(arrays["ids"], np.arange(n))

  folder = _image_folder(tmp_path / "photos")
  embed.main(["embed", f"--workdir={run_dir}", f"--out={tmp_path / 'photos.npz'}",
              "--data.name=image_folder", f"--data.data_dir={folder}", "--split=train"])
  arrays = np.load(tmp_path / "photos.npz")
  assert set(arrays["ids"]) <= {f"{c}/img{i}.png" for c in "ab" for i in range(4)}
  assert len(arrays["ids"]) == len(arrays["embeddings"]) == 7  # 1 of 8 held out as test


def test_plot_writes_curves_and_embedding(run_dir, tmp_path):
  plot.main(["plot", str(run_dir)])
  for name in ("curves.png", "embedding.png"):
    assert (run_dir / "plots" / name).read_bytes()[:4] == PNG_MAGIC
  images = np.random.default_rng(0).random((3, 8, 8, 3))
  path = drawing.plot_reconstructions(str(tmp_path / "rec.png"), images, images * 0.5, images)
  assert open(path, "rb").read(4) == PNG_MAGIC


def test_report_has_a_row_per_run(run_dir, tmp_path, capsys):
  report.main(["report", str(run_dir), str(tmp_path)])
  captured = capsys.readouterr()
  lines = captured.out.strip().splitlines()
  assert len(lines) == 3 and lines[0].startswith("| run | method |")
  cells = [c.strip() for c in lines[2].strip("|").split("|")]
  assert cells[:5] == [str(run_dir), "simclr", "resnet_tiny (width 8)", "digits", "4"]
  knn = json.loads((run_dir / "eval" / "knn.json").read_text())["top1"]
  assert cells[5] == f"{knn:.1f}" and cells[6] == report.MISSING
  assert f"warning: {tmp_path} is not a repr_learn workdir" in captured.err


@pytest.mark.parametrize("tool", [evaluate, embed, plot])
def test_bad_workdirs_fail_in_one_line(tool, tmp_path):
  def run(workdir):
    argv = ["tool", str(workdir)] if tool is plot else ["tool", f"--workdir={workdir}"]
    with pytest.raises(SystemExit) as excinfo:
      tool.main(argv + ([f"--out={tmp_path / 'x.npz'}"] if tool is embed else []))
    return _error(excinfo)

  assert "does not exist" in run(tmp_path / "missing")
  assert "not a repr_learn workdir" in run(tmp_path)
  (tmp_path / "config.json").write_text(json.dumps({"data": {"name": "digits"}}))
  (tmp_path / "metrics.jsonl").write_text('{"step": 2, "train/loss": 1.0}\n')
  assert "has no checkpoint yet; train first" in run(tmp_path)


def test_unknown_protocol_fails_in_one_line(tmp_path):
  with pytest.raises(SystemExit) as excinfo:
    evaluate.main(["evaluate", f"--workdir={tmp_path}", "--protocol=knn,knnn"])
  assert "Unknown evaluation protocol 'knnn'" in _error(excinfo)
  with pytest.raises(SystemExit) as excinfo:
    evaluate.main(["evaluate", f"--workdir={tmp_path}", "--protocol="])
  assert "names no protocol" in _error(excinfo)


def test_overrides_touch_only_what_is_evaluated(tmp_path):
  config = importlib.import_module("configs.simclr").get_config("smoke")
  (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
  config = finished_run.read_config(str(tmp_path))
  args, overrides = finished_run.split_overrides(
      ["x", "--workdir=d", "--config.eval.dataset=cifar10", "--data.data_dir=/d",
       "--eval.random_init_baseline=false", "--config.eval.knn_k=7"])
  assert args == ["x", "--workdir=d"]
  changed = finished_run.apply_overrides(config, overrides)
  assert (changed.eval.dataset, changed.data.data_dir) == ("cifar10", "/d")
  assert changed.eval.random_init_baseline is False and changed.eval.knn_k == 7
  assert config.eval.dataset is None  # The run's own config is untouched.
  for bad, message in ((("model.width", "3"), "Cannot override 'model.width'"),
                       (("eval.knn_kk", "3"), "did you mean 'eval.knn_k'"),
                       (("eval.knn_k", "many"), "Bad value for eval.knn_k")):
    with pytest.raises(finished_run.OverrideError, match=message):
      finished_run.apply_overrides(config, dict([bad]))


def test_report_reads_every_figure(tmp_path):
  run = tmp_path / "run"
  (run / "eval").mkdir(parents=True)
  (run / "config.json").write_text(json.dumps(
      {"objective": {"name": "mae"}, "model": {"backbone": "vit_small", "patch_size": 16},
       "data": {"name": "cifar10"}}))
  (run / "metrics.jsonl").write_text('{"step": 10}\n{"step": 20}\n')
  results = {"knn": {"top1": 91.04, "random_init_top1": 30.0},
             "linear": {"top1": 92.5},
             "fewshot": {"1shot_top1": 20.0, "10shot_top1": 61.26, "10shot_top1_std": 1.0,
                         "random_init_10shot_top1": 22.0},
             "rankme": {"rankme": 120.44, "random_init_rankme": 300.0},
             "clustering": {"kmeans": {"acc": 70.0}, "kmeans_acc": 70.0},
             "finetune": {"top1": 97.0},
             "zeroshot": {"top1": 84.38, "random_init_top1": 3.12},
             "retrieval": {"image_to_text_r@1": 21.61, "random_init_image_to_text_r@1": 0.11}}
  for name, result in results.items():
    (run / "eval" / f"{name}.json").write_text(json.dumps(result))
  line = report.report([str(run)]).splitlines()[2]
  assert line == (f"| {run} | mae | vit_small/16 | cifar10 | 20 | 91.0 (30.0) | 92.5 | "
                  "61.3 (22.0) | 120.4 (300.0) | 70.0 | 97.0 | 84.4 (3.1) | 21.6 (0.1) |")


def test_a_run_saved_before_an_objective_gained_fields_reads_with_their_defaults(tmp_path):
  """MoCo v2 runs saved before `symmetric`/`momentum_schedule` existed."""
  config = importlib.import_module("configs.moco_v2").get_config("smoke").to_dict()
  for key in ("symmetric", "momentum_schedule", "final_momentum"):
    del config["objective"][key]
  (tmp_path / "config.json").write_text(json.dumps(config))
  objective = finished_run.read_config(str(tmp_path)).objective
  assert (objective.symmetric, objective.momentum_schedule) == (False, "constant")
