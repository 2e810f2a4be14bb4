"""Objective registry: `config.objective.name` -> Objective subclass."""

import difflib

from repr_learn.objectives import align_uniform
from repr_learn.objectives import base
from repr_learn.objectives import byol
from repr_learn.objectives import data2vec
from repr_learn.objectives import dec
from repr_learn.objectives import deepcluster
from repr_learn.objectives import dino
from repr_learn.objectives import finetune
from repr_learn.objectives import ibot
from repr_learn.objectives import ijepa
from repr_learn.objectives import image_text
from repr_learn.objectives import imported
from repr_learn.objectives import mim
from repr_learn.objectives import moco
from repr_learn.objectives import nnclr
from repr_learn.objectives import npid
from repr_learn.objectives import redundancy
from repr_learn.objectives import scan
from repr_learn.objectives import simclr
from repr_learn.objectives import supcon
from repr_learn.objectives import swav

REGISTRY: dict[str, type[base.Objective]] = {
    cls.name: cls for cls in (
        finetune.Finetune,
        simclr.SimCLR, moco.MoCoV2, moco.MoCoV3, nnclr.NNCLR, supcon.SupCon, npid.NPID,
        byol.BYOL, byol.SimSiam, redundancy.BarlowTwins, redundancy.VICReg,
        align_uniform.AlignUniform, swav.SwAV, deepcluster.DeepClusterV2,
        deepcluster.SeLa, dino.DINO, ibot.IBOT, ibot.DINOv2, scan.SCAN, dec.DEC,
        mim.MAE, mim.SimMIM, mim.MaskFeat, data2vec.Data2Vec2, ijepa.IJEPA,
        image_text.CLIP, image_text.SigLIP, imported.Imported)
}


def get_objective_class(name: str) -> type[base.Objective]:
  if name not in REGISTRY:
    close = difflib.get_close_matches(name, REGISTRY, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(f"Unknown objective {name!r}; {hint}valid: {sorted(REGISTRY)}.")
  return REGISTRY[name]
