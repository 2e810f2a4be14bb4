"""Name maps between PyTorch state dicts and this codebase's parameter trees.

Both directions are explicit tables, not heuristics: our module names are
positional (`BasicBlock_3/Conv_1`), so a map is a function of the architecture.
Two layouts cover every release we read: torchvision's ResNet (timm's ResNets
and DINO's ResNet-50 use the same names) and timm's VisionTransformer (DINO,
MAE, MoCo v3, I-JEPA, iBOT and DINOv2 reach it through `sources`). Arrays are
numpy; tensors transpose as the Flax guide's PyTorch conversion does (a conv
weight [O, I, kh, kw] is a kernel [kh, kw, I, O], a linear weight is
transposed), and a round trip is bit-exact.
"""

import dataclasses

import numpy as np

from repr_learn.models import vit as vit_lib

PyTree = dict


class LayoutError(ValueError):
  """A state dict that the layout cannot place, with the keys it could not."""


def _conv_in(w):
  return np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)))


def _conv_out(k):
  return np.ascontiguousarray(np.transpose(k, (3, 2, 0, 1)))


def _set(tree: dict, path: tuple, value) -> None:
  for part in path[:-1]:
    tree = tree.setdefault(part, {})
  tree[path[-1]] = value


def _flatten(tree: dict, prefix=()) -> dict:
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flatten(value, prefix + (key,)))
    else:
      out[prefix + (key,)] = value
  return out


def _take_all(state_dict: dict, used: set, what: str) -> None:
  unplaced = sorted(set(state_dict) - used)
  if unplaced:
    more = f" and {len(unplaced) - 8} more" if len(unplaced) > 8 else ""
    shown = ", ".join(unplaced[:8]) + more
    raise LayoutError(f"{what}: could not place {len(unplaced)} keys ({shown}).")


# --- ResNet ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ResNetLayout:
  """What a torchvision ResNet state dict says about the network."""
  stage_sizes: tuple[int, ...]
  bottleneck: bool
  width: int
  stem: str  # 'imagenet' (7x7 conv) or 'cifar' (3x3 conv)

  @property
  def block_name(self) -> str:
    return "Bottleneck" if self.bottleneck else "BasicBlock"

  @property
  def convs_per_block(self) -> int:
    return 3 if self.bottleneck else 2


def _resnet_pairs(layout: ResNetLayout):
  """(torch prefix, our module path, 'conv' | 'bn') for every conv and norm."""
  yield "conv1", ("stem_conv",), "conv"
  yield "bn1", ("stem_bn",), "bn"
  k = 0
  for s, blocks in enumerate(layout.stage_sizes):
    for j in range(blocks):
      ours = f"{layout.block_name}_{k}"
      for r in range(layout.convs_per_block):
        yield f"layer{s + 1}.{j}.conv{r + 1}", (ours, f"Conv_{r}"), "conv"
        yield f"layer{s + 1}.{j}.bn{r + 1}", (ours, f"BatchNorm_{r}"), "bn"
      yield f"layer{s + 1}.{j}.downsample.0", (ours, "proj_conv"), "conv"
      yield f"layer{s + 1}.{j}.downsample.1", (ours, "proj_bn"), "bn"
      k += 1


def resnet_layout(state_dict: dict) -> ResNetLayout:
  """The architecture a torchvision-named ResNet state dict holds."""
  if "conv1.weight" not in state_dict or "layer1.0.conv1.weight" not in state_dict:
    raise LayoutError("Not a torchvision ResNet state dict (no conv1.weight / "
                      "layer1.0.conv1.weight).")
  stages = []
  while any(k.startswith(f"layer{len(stages) + 1}.") for k in state_dict):
    s = len(stages) + 1
    stages.append(1 + max(int(k.split(".")[1]) for k in state_dict if k.startswith(f"layer{s}.")))
  stem_kernel = state_dict["conv1.weight"].shape[-1]
  return ResNetLayout(stage_sizes=tuple(stages),
                      bottleneck="layer1.0.conv3.weight" in state_dict,
                      width=int(state_dict["conv1.weight"].shape[0]),
                      stem="imagenet" if stem_kernel == 7 else "cifar")


def resnet_from_torch(state_dict: dict) -> tuple[PyTree, PyTree, ResNetLayout]:
  """(params, batch_stats, layout) of our ResNet from torchvision names; every
  key must be placed (`fc.*` must be removed first)."""
  layout = resnet_layout(state_dict)
  params, stats, used = {}, {}, set()
  for prefix, path, kind in _resnet_pairs(layout):
    if f"{prefix}.weight" not in state_dict:
      continue  # A block without a downsample.
    if kind == "conv":
      _set(params, path + ("kernel",), _conv_in(state_dict[f"{prefix}.weight"]))
      used.add(f"{prefix}.weight")
      continue
    for theirs, tree, ours in (("weight", params, "scale"), ("bias", params, "bias"),
                               ("running_mean", stats, "mean"), ("running_var", stats, "var")):
      _set(tree, path + (ours,), np.asarray(state_dict[f"{prefix}.{theirs}"], np.float32))
      used.add(f"{prefix}.{theirs}")
    used.add(f"{prefix}.num_batches_tracked")
  used &= set(state_dict)
  _take_all(state_dict, used, "torchvision ResNet")
  return params, stats, layout


def resnet_to_torch(params: PyTree, batch_stats: PyTree) -> dict[str, np.ndarray]:
  """torchvision names for our ResNet backbone's params and BatchNorm
  statistics, `num_batches_tracked` included so `load_state_dict(strict=True)`
  accepts it."""
  blocks = sorted((k for k in params if k.startswith(("BasicBlock_", "Bottleneck_"))),
                  key=lambda k: int(k.rsplit("_", 1)[1]))
  bottleneck = blocks[0].startswith("Bottleneck")
  # Stage boundaries: the first block of every stage after the first projects.
  stages, count = [], 0
  for i, name in enumerate(blocks):
    if i > 0 and "proj_conv" in params[name] and count:
      stages.append(count)
      count = 0
    count += 1
  stages.append(count)
  layout = ResNetLayout(tuple(stages), bottleneck, int(params["stem_conv"]["kernel"].shape[-1]),
                        "imagenet")
  out = {}
  for prefix, path, kind in _resnet_pairs(layout):
    node = params
    for part in path:
      node = node.get(part) if isinstance(node, dict) else None
    if node is None:
      continue
    if kind == "conv":
      out[f"{prefix}.weight"] = _conv_out(np.asarray(node["kernel"]))
      continue
    stat = batch_stats[path[0]] if len(path) == 1 else batch_stats[path[0]][path[1]]
    out[f"{prefix}.weight"] = np.array(node["scale"], np.float32)
    out[f"{prefix}.bias"] = np.array(node["bias"], np.float32)
    out[f"{prefix}.running_mean"] = np.array(stat["mean"], np.float32)
    out[f"{prefix}.running_var"] = np.array(stat["var"], np.float32)
    out[f"{prefix}.num_batches_tracked"] = np.zeros((), np.int64)
  return out


# --- ViT ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ViTLayout:
  """What a timm-named ViT state dict says about the network (the head count is
  not in the weights: it comes from the release or the user)."""
  width: int
  depth: int
  mlp_dim: int
  patch_size: int
  grid: int
  class_token: bool
  num_registers: int
  layer_scale: bool
  fc_norm: bool        # LayerNorm after pooling (timm fc_norm, MAE fine-tuned)
  pos_embedding: str   # 'learned', or 'sincos' when the stored table is ours


def vit_layout(state_dict: dict) -> ViTLayout:
  if "patch_embed.proj.weight" not in state_dict or "blocks.0.attn.qkv.weight" not in state_dict:
    raise LayoutError("Not a timm ViT state dict (no patch_embed.proj.weight / "
                      "blocks.0.attn.qkv.weight).")
  width, _, patch, _ = state_dict["patch_embed.proj.weight"].shape
  depth = 1 + max(int(k.split(".")[1]) for k in state_dict if k.startswith("blocks."))
  class_token = "cls_token" in state_dict
  registers = state_dict["reg_token"].shape[1] if "reg_token" in state_dict else 0
  positions = state_dict["pos_embed"].shape[1]
  # Slots before the patches: none (no_embed_class), the class token's, or the
  # class and register tokens'.
  squares = [n for n in (positions, positions - int(class_token),
                         positions - int(class_token) - registers)
             if n > 0 and int(round(np.sqrt(n))) ** 2 == n]
  if not squares:
    raise LayoutError(f"pos_embed holds {positions} positions: not a square grid after "
                      f"{int(class_token)} class and {registers} register slots.")
  grid = int(round(np.sqrt(squares[0])))
  table = _patch_positions(state_dict, grid)
  sincos = np.allclose(table, vit_lib.sincos_2d_positions(grid, width), atol=1e-5) \
      if width % 4 == 0 else False
  return ViTLayout(width=int(width), depth=depth,
                   mlp_dim=int(state_dict["blocks.0.mlp.fc1.weight"].shape[0]),
                   patch_size=int(patch), grid=grid, class_token=class_token,
                   num_registers=int(registers), layer_scale="blocks.0.ls1.gamma" in state_dict,
                   fc_norm="fc_norm.weight" in state_dict,
                   pos_embedding="sincos" if sincos else "learned")


def _patch_positions(state_dict: dict, grid: int) -> np.ndarray:
  pos = np.asarray(state_dict["pos_embed"], np.float32)[0]
  return pos[pos.shape[0] - grid * grid:]


def vit_from_timm(state_dict: dict, num_heads: int) -> tuple[PyTree, ViTLayout]:
  """(params, layout) of our ViT backbone from timm names. Position slots of the
  class and register tokens are folded into those tokens (timm's
  `no_embed_class` form, ours), which is exact."""
  layout = vit_layout(state_dict)
  d, h = layout.width, num_heads
  if d % h:
    raise LayoutError(f"Width {d} does not split into num_heads={h}.")
  sd = {k: np.asarray(v) for k, v in state_dict.items()}
  used = set()

  def take(key):
    if key not in sd:
      raise LayoutError(f"timm ViT: {key} is missing (a layout this codebase's ViT does not "
                        "have, e.g. attention without biases).")
    used.add(key)
    return np.asarray(sd[key], np.float32)

  params = {"patch_embed": {"kernel": _conv_in(take("patch_embed.proj.weight")),
                            "bias": take("patch_embed.proj.bias")}}
  pos = take("pos_embed")[0]
  slots = pos.shape[0] - layout.grid ** 2
  if layout.pos_embedding == "learned":
    params["pos_embedding"] = np.ascontiguousarray(pos[slots:])
  if layout.class_token:
    params["cls_token"] = take("cls_token") + (pos[None, :1] if slots else 0.0)
  if layout.num_registers:
    reg = take("reg_token")
    if slots > int(layout.class_token):
      reg = reg + pos[None, int(layout.class_token):slots]
    params["register_tokens"] = reg
  for i in range(layout.depth):
    b = f"blocks.{i}."
    block = {
        "norm1": {"scale": take(b + "norm1.weight"), "bias": take(b + "norm1.bias")},
        "norm2": {"scale": take(b + "norm2.weight"), "bias": take(b + "norm2.bias")},
        "attention": {
            "qkv": {"kernel": take(b + "attn.qkv.weight").T.reshape(d, 3, h, d // h).copy(),
                    "bias": take(b + "attn.qkv.bias").reshape(3, h, d // h)},
            "out": {"kernel": take(b + "attn.proj.weight").T.reshape(h, d // h, d).copy(),
                    "bias": take(b + "attn.proj.bias")}},
        "mlp_in": {"kernel": take(b + "mlp.fc1.weight").T.copy(),
                   "bias": take(b + "mlp.fc1.bias")},
        "mlp_out": {"kernel": take(b + "mlp.fc2.weight").T.copy(),
                    "bias": take(b + "mlp.fc2.bias")},
    }
    if layout.layer_scale:
      block["gamma1"] = take(b + "ls1.gamma")
      block["gamma2"] = take(b + "ls2.gamma")
    params[f"block_{i}"] = block
  norm = "fc_norm" if layout.fc_norm else "norm"
  params["norm"] = {"scale": take(f"{norm}.weight"), "bias": take(f"{norm}.bias")}
  _take_all(sd, used, "timm ViT")
  return params, layout


def vit_to_timm(params: PyTree, *, grid: int, fc_norm: bool = False) -> dict[str, np.ndarray]:
  """timm names for our ViT backbone. The position table gets no slot for the
  class token when registers are present (export as `no_embed_class=True`),
  else a zero slot (timm's default layout, numerically the same). Fixed sin-cos
  positions are written out as a table."""
  p = {k: v for k, v in params.items()}
  width = np.asarray(p["patch_embed"]["kernel"]).shape[-1]
  out = {"patch_embed.proj.weight": _conv_out(np.asarray(p["patch_embed"]["kernel"])),
         "patch_embed.proj.bias": np.asarray(p["patch_embed"]["bias"])}
  table = (np.asarray(p["pos_embedding"]) if "pos_embedding" in p
           else vit_lib.sincos_2d_positions(grid, width))
  if "cls_token" in p:
    out["cls_token"] = np.asarray(p["cls_token"])
    if "register_tokens" not in p:
      table = np.concatenate([np.zeros((1, width), np.float32), table])
  if "register_tokens" in p:
    out["reg_token"] = np.asarray(p["register_tokens"])
  out["pos_embed"] = np.ascontiguousarray(table[None], np.float32)
  depth = sum(1 for k in p if k.startswith("block_"))
  for i in range(depth):
    blk, b = p[f"block_{i}"], f"blocks.{i}."
    attn = blk["attention"]
    qkv_kernel = np.asarray(attn["qkv"]["kernel"])
    out.update({
        b + "norm1.weight": np.asarray(blk["norm1"]["scale"]),
        b + "norm1.bias": np.asarray(blk["norm1"]["bias"]),
        b + "attn.qkv.weight": np.ascontiguousarray(qkv_kernel.reshape(width, -1).T),
        b + "attn.qkv.bias": np.asarray(attn["qkv"]["bias"]).reshape(-1),
        b + "attn.proj.weight": np.ascontiguousarray(
            np.asarray(attn["out"]["kernel"]).reshape(-1, width).T),
        b + "attn.proj.bias": np.asarray(attn["out"]["bias"]),
        b + "norm2.weight": np.asarray(blk["norm2"]["scale"]),
        b + "norm2.bias": np.asarray(blk["norm2"]["bias"]),
        b + "mlp.fc1.weight": np.ascontiguousarray(np.asarray(blk["mlp_in"]["kernel"]).T),
        b + "mlp.fc1.bias": np.asarray(blk["mlp_in"]["bias"]),
        b + "mlp.fc2.weight": np.ascontiguousarray(np.asarray(blk["mlp_out"]["kernel"]).T),
        b + "mlp.fc2.bias": np.asarray(blk["mlp_out"]["bias"]),
    })
    if "gamma1" in blk:
      out[b + "ls1.gamma"] = np.asarray(blk["gamma1"])
      out[b + "ls2.gamma"] = np.asarray(blk["gamma2"])
  norm = "fc_norm" if fc_norm else "norm"
  out[f"{norm}.weight"] = np.asarray(p["norm"]["scale"])
  out[f"{norm}.bias"] = np.asarray(p["norm"]["bias"])
  return {k: np.ascontiguousarray(v, dtype=v.dtype if v.dtype == np.int64 else np.float32)
          for k, v in out.items()}
