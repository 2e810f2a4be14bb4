"""import_weights and export end to end, on the golden models' weights.

An imported workdir must compute PyTorch's outputs (the golden files), be
evaluated and read by `model.init_from` like any run, and export back to the
same PyTorch weights.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from repr_learn import config_checks
from repr_learn import config_schema
from repr_learn import evaluate
from repr_learn import export
from repr_learn import finished_run
from repr_learn import import_weights
from repr_learn import plot
from repr_learn import pretrained
from repr_learn.interop import checkpoint_files
from repr_learn.interop import names
from repr_learn.interop import synthetic

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "interop")


def _golden(case):
  with open(os.path.join(GOLDEN, f"{case}.json")) as f:
    meta = json.load(f)
  with np.load(os.path.join(GOLDEN, f"{case}.npz")) as data:
    arrays = {k: data[k] for k in data.files}
  return synthetic.random_state_dict(meta["keys_and_shapes"], meta["seed"]), arrays


def _features(run, images_nchw):
  """The imported run's backbone on the golden input (eval mode)."""
  x = jnp.asarray(np.transpose(images_nchw, (0, 2, 3, 1)))
  network = run.objective.network
  variables = {"params": run.state.params}
  if run.state.batch_stats:
    variables["batch_stats"] = run.state.batch_stats
  return network.apply(variables, x, train=False, method=network.embed)


def _import(tmp_path, name, checkpoint, fmt, *flags):
  workdir = str(tmp_path / name)
  import_weights.main(["import_weights", f"--checkpoint={checkpoint}", f"--format={fmt}",
                       f"--workdir={workdir}", *flags])
  return workdir


def test_timm_vit_imports_evaluates_and_exports_back(tmp_path):
  state_dict, arrays = _golden("timm_vit_cls_ls")
  checkpoint = str(tmp_path / "vit.safetensors")
  checkpoint_files.write_safetensors(checkpoint, state_dict, {"format": "pt"})
  workdir = _import(tmp_path, "vit", checkpoint, "timm", "--mean=0.5,0.5,0.5",
                    "--std=0.5,0.5,0.5")
  run = finished_run.load(workdir)
  assert run.config.objective.name == "imported" and tuple(run.config.model.pixel_mean) == (0.5,) * 3
  assert run.config.model.backbone == "vit_test" and run.config.augment.crop_size == 32
  np.testing.assert_allclose(_features(run, arrays["input"]), arrays["features"], atol=1e-5)
  # Evaluated like any run (digits images at the weights' 32 px).
  evaluate.main(["evaluate", f"--workdir={workdir}", "--protocol=knn",
                 "--config.eval.random_init_baseline=false"])
  with open(os.path.join(workdir, "eval", "knn.json")) as f:
    assert 0.0 <= json.load(f)["top1"] <= 100.0
  plot.main(["plot", workdir])  # no training curves to draw: the embedding only
  assert os.path.isfile(os.path.join(workdir, "plots", "embedding.png"))
  # model.init_from reads it as it reads a trained run.
  np.testing.assert_array_equal(pretrained.load(workdir).params["backbone"]["cls_token"],
                                run.state.params["backbone"]["cls_token"])
  # Exported to timm: the same network (class position folded both ways).
  out = str(tmp_path / "timm_out")
  export.main(["export", f"--workdir={workdir}", "--format=timm", f"--out={out}"])
  exported = checkpoint_files.read(os.path.join(out, "model.safetensors"))
  ours, _ = names.vit_from_timm(exported, num_heads=2)
  theirs, _ = names.vit_from_timm(state_dict, num_heads=2)
  jax.tree.map(np.testing.assert_array_equal, ours, theirs)
  with open(os.path.join(out, "config.json")) as f:
    timm_config = json.load(f)
  assert timm_config["model_args"]["init_values"] > 0
  assert timm_config["pretrained_cfg"]["mean"] == [0.5, 0.5, 0.5]


def test_torchvision_resnet_imports_and_exports_bit_exact(tmp_path):
  state_dict, arrays = _golden("torchvision_resnet18")
  checkpoint = str(tmp_path / "resnet18.npz")
  np.savez(checkpoint, **state_dict, **{"fc.weight": np.ones((3, 512), np.float32)})
  workdir = _import(tmp_path, "resnet", checkpoint, "torchvision", "--image_size=64")
  run = finished_run.load(workdir)
  assert run.config.model.backbone == "resnet18" and run.config.model.resnet_padding == "torch"
  features = _features(run, arrays["input"])
  assert np.abs(features - arrays["features"]).max() <= 1e-5 * np.abs(arrays["features"]).max()
  out = str(tmp_path / "tv_out")
  export.main(["export", f"--workdir={workdir}", "--format=torchvision", f"--out={out}",
               "--projector"])
  exported = checkpoint_files.read(os.path.join(out, "model.safetensors"))
  projector = checkpoint_files.read(os.path.join(out, "projector.safetensors"))
  np.testing.assert_array_equal(projector["dense_0.weight"],
                                np.asarray(run.state.params["projector"]["dense_0"]["kernel"]).T)
  assert sorted(exported) == sorted(state_dict)
  for key, value in state_dict.items():
    np.testing.assert_array_equal(exported[key], value, err_msg=key)
  with open(os.path.join(out, "config.json")) as f:
    assert json.load(f)["architecture"] == "torchvision.models.resnet18"


def test_unplaceable_weights_fail_with_one_line_and_write_nothing(tmp_path):
  state_dict, _ = _golden("timm_vit_cls_ls")
  state_dict["blocks.0.attn.extra_bias"] = np.zeros(3, np.float32)
  checkpoint = str(tmp_path / "odd.safetensors")
  checkpoint_files.write_safetensors(checkpoint, state_dict, {})
  with pytest.raises(SystemExit, match=r"^error: timm ViT: could not place 1 keys "
                                       r"\(blocks.0.attn.extra_bias\)"):
    _import(tmp_path, "odd", checkpoint, "timm")
  assert not os.path.exists(tmp_path / "odd")


def test_exports_that_pytorch_cannot_reproduce_are_refused():
  config = config_schema.base_config()
  config.model.update(backbone="resnet18", resnet_padding="same")
  with pytest.raises(export.ExportError, match="SAME"):
    export.torchvision_files(config, {}, {})
  config.model.update(backbone="vit_test", post_norm=True)
  with pytest.raises(export.ExportError, match="post-LayerNorm"):
    export.timm_files(config, {})


def test_imported_workdirs_do_not_train():
  config = config_schema.with_objective(config_schema.base_config(), "imported")
  with pytest.raises(ValueError, match="trains nothing.*init_from"):
    config_checks.validate(config)
