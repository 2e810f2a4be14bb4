"""Weights in and out at real sizes, against torchvision and timm (needs the bench extra).

  python benchmarks/interop_parity.py parity            # ResNet-50, ViT-B/16
  python benchmarks/interop_parity.py official DIR      # DINO ViT-S/16, MAE ViT-B/16 layouts
  python benchmarks/interop_parity.py digits RUN DIR    # a trained digits ResNet, exported

`parity`: torchvision's resnet50 and timm's vit_base_patch16_224 with every
tensor randomised (`interop.synthetic`, BN statistics included), imported
through our name maps; prints the largest absolute and relative difference of
the features (and all ViT tokens) on 224-px inputs, in float32 on the CPU.
`official`: synthetic checkpoints in DINO's (teacher/student, `module.backbone.`,
DINOHead, Namespace args) and MAE's (`model`, decoder, mask token) layouts,
saved with torch.save, imported with `repr_learn.import_weights` at 32 px and
evaluated with `repr_learn.evaluate --protocol=knn` on digits.
`digits`: a finished ResNet run exported with `repr_learn.export`, loaded in
PyTorch (`interop.torch_models.load_resnet`), against `repr_learn.embed`'s
embeddings of the digits test split.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import timm
import torch
import torchvision

from repr_learn import embed
from repr_learn import export
from repr_learn import finished_run
from repr_learn.data import augment
from repr_learn.interop import names
from repr_learn.interop import synthetic
from repr_learn.interop import torch_models
from repr_learn.models import resnet
from repr_learn.models import vit


def _randomised(model, seed):
  keys = [(k, list(v.shape)) for k, v in model.state_dict().items()]
  weights = synthetic.random_state_dict(keys, seed)
  model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
  return model.eval(), weights


def _report(name, ours, theirs):
  ours, theirs = np.asarray(ours), np.asarray(theirs)
  diff = float(np.max(np.abs(ours - theirs)))
  scale = float(np.max(np.abs(theirs)))
  print(json.dumps({"model": name, "max_abs_diff": diff, "max_abs_reference": scale,
                    "relative": diff / scale}))


def parity() -> None:
  x = np.random.default_rng(0).normal(size=(2, 3, 224, 224)).astype(np.float32)
  x_nhwc = jnp.asarray(x.transpose(0, 2, 3, 1))
  model = torchvision.models.resnet50(weights=None)
  model.fc = torch.nn.Identity()
  model, weights = _randomised(model, 1)
  with torch.no_grad():
    theirs = model(torch.from_numpy(x)).numpy()
  params, stats, layout = names.resnet_from_torch(weights)
  ours = resnet.ResNet(stage_sizes=layout.stage_sizes, block=resnet.Bottleneck, width=64)
  _report("resnet50 features", jax.jit(lambda v, x: ours.apply(v, x, train=False))(
      {"params": params, "batch_stats": stats}, x_nhwc), theirs)
  model, weights = _randomised(timm.create_model("vit_base_patch16_224", num_classes=0), 2)
  with torch.no_grad():
    tokens = model.forward_features(torch.from_numpy(x))
    features = model.forward_head(tokens, pre_logits=True).numpy()
  params, _ = names.vit_from_timm(weights, num_heads=12)
  ours = vit.ViT(width=768, depth=12, num_heads=12, mlp_dim=3072, patch_size=16,
                 image_size=224, pos_embedding="learned")
  out = jax.jit(lambda p, x: ours.apply({"params": p}, x, method=ours.encode))(params, x_nhwc)
  _report("vit_base_patch16_224 tokens", out["tokens"], tokens.numpy())
  _report("vit_base_patch16_224 features", out["tokens"][:, 0], features)


def _torch(state_dict, prefix):
  return {prefix + k: torch.from_numpy(v) for k, v in state_dict.items()}


def _official_checkpoints(directory: str) -> dict[str, str]:
  """DINO's full training checkpoint (ViT-S/16) and MAE's pretraining one
  (ViT-B/16, its fixed sin-cos table with a zero class slot), random weights."""
  _, small = _randomised(timm.create_model("vit_small_patch16_224", num_classes=0), 3)
  _, base = _randomised(timm.create_model("vit_base_patch16_224", num_classes=0), 4)
  base["pos_embed"] = np.concatenate(
      [np.zeros((1, 768), np.float32), vit.sincos_2d_positions(14, 768)])[None]
  t = _torch
  head = {"head.mlp.0.weight": torch.randn(2048, 384),
          "head.last_layer.weight_g": torch.ones(65536, 1),
          "head.last_layer.weight_v": torch.randn(65536, 256)}
  dino = {"teacher": {**t(small, "backbone."), **{k: v for k, v in head.items()}},
          "student": {**t(small, "module.backbone."), **{"module." + k: v for k, v in head.items()}},
          "optimizer": {}, "epoch": 300, "args": argparse.Namespace(arch="vit_small", patch_size=16)}
  mae = {"model": {**t(base, ""), "mask_token": torch.zeros(1, 1, 768),
                   "decoder_embed.weight": torch.randn(512, 768),
                   "decoder_pos_embed": torch.zeros(1, 197, 512)},
         "epoch": 799, "args": argparse.Namespace(model="mae_vit_base_patch16")}
  paths = {"dino": os.path.join(directory, "dino_vits16.pth"),
           "mae": os.path.join(directory, "mae_pretrain_vit_base.pth")}
  torch.save(dino, paths["dino"])
  torch.save(mae, paths["mae"])
  return paths


def official(directory: str) -> None:
  os.makedirs(directory, exist_ok=True)
  for fmt, path in _official_checkpoints(directory).items():
    workdir = os.path.join(directory, f"{fmt}_imported")
    for command in (["-m", "repr_learn.import_weights", f"--checkpoint={path}", f"--format={fmt}",
                     f"--workdir={workdir}", "--image_size=32"],
                    ["-m", "repr_learn.evaluate", f"--workdir={workdir}", "--protocol=knn"]):
      start = time.time()
      done = subprocess.run([sys.executable, *command], capture_output=True, text=True)
      print(json.dumps({"command": " ".join(["python"] + command), "exit": done.returncode,
                        "seconds": round(time.time() - start, 1),
                        "last_line": (done.stdout + done.stderr).strip().splitlines()[-1]}))
    with open(os.path.join(workdir, "eval", "knn.json")) as f:
      print(json.dumps({"format": fmt, "knn_top1": json.load(f)["top1"]}))


def digits(run_dir: str, out: str) -> None:
  export.export(run_dir, "torchvision", out)
  model = torch_models.load_resnet(out)
  run = finished_run.load(run_dir)
  ours = embed.embeddings(run)["embeddings"]
  context = run.eval_context()
  source = context.source(context.splits[1])
  images = np.stack([source[i]["image"] for i in range(len(source))])
  x = augment.center_view(jnp.asarray(images), run.image_size, run.objective.pixel_mean,
                          run.objective.pixel_std)
  with torch.no_grad():
    theirs = model(torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())).numpy()
  _report(f"{run.config.model.backbone} width {run.config.model.width} "
          f"({len(images)} digits, repr_learn.embed vs torch)", ours, theirs)


if __name__ == "__main__":
  mode, *args = sys.argv[1:]
  {"parity": parity, "official": official, "digits": digits}[mode](*args)
