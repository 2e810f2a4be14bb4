"""Checks a finished experiment config before anything is built.

`validate` re-checks a config against `config_schema` (including configs built
in code, which ml_collections' lock cannot police) and fails with one line:
the nearest valid key for a typo, the allowed values, the ranges, and options
set where nothing reads them (refused, not ignored).
"""

import difflib
from typing import Any

import ml_collections

from repr_learn import config_schema


def _nearest(key: str, options) -> str:
  close = difflib.get_close_matches(key, list(options), n=1, cutoff=0.5)
  return f"; did you mean {close[0]!r}?" if close else ""


def _check_keys(config: ml_collections.ConfigDict, schema: Any, path: str) -> None:
  for key in config.keys():
    full = f"{path}{key}"
    if key not in schema:
      raise KeyError(f"Unknown config key {full!r}{_nearest(key, schema.keys())} "
                     f"(valid keys here: {sorted(schema.keys())}).")
    value, default = config[key], schema[key]
    if isinstance(default, (ml_collections.ConfigDict, dict)):
      if not isinstance(value, (ml_collections.ConfigDict, dict)):
        raise TypeError(f"Config key {full!r} must be a section, got {value!r}.")
      _check_keys(value, default, full + ".")


def objective_schema(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The fields `config.objective` may hold: its name, the fields common to
  every objective and the class defaults."""
  from repr_learn import objectives  # Local import: objectives import models.
  cls = objectives.get_objective_class(config.objective.name)
  return {"name": config.objective.name, **config_schema.COMMON_OBJECTIVE_FIELDS, **cls.defaults}


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises a one-line error for unknown keys, missing fields or bad values."""
  schema = config_schema.base_config()
  objective_fields = objective_schema(config)
  schema.unlock()
  schema.objective = ml_collections.ConfigDict(objective_fields)
  _check_keys(config, schema, "")
  for key in objective_fields:
    if key not in config.objective:
      raise KeyError(f"Config key 'objective.{key}' is missing for objective "
                     f"{config.objective.name!r}; start from configs/{config.objective.name}.py.")
  for (section, key), choices in config_schema.CHOICES.items():
    value = config_schema.get(config, f"{section}.{key}")
    if value not in choices:
      raise ValueError(f"config.{section}.{key}={value!r} is not one of {choices}.")
  from repr_learn import objectives  # Local import: objectives import models.
  if not objectives.get_objective_class(config.objective.name).trainable:
    raise ValueError(f"objective {config.objective.name!r} holds weights trained elsewhere and "
                     "trains nothing; evaluate or embed its workdir, or start a run from it "
                     "with --config.model.init_from=DIR.")
  from repr_learn.evaluation import protocols  # Local import: protocols import objectives.
  protocols.parse_names(config.eval.protocols)
  protocols.parse_names(config.eval.periodic_protocols)
  _check_ranges(config)


# Integer fields that must be >= 1, and numeric fields that must be >= 0.
_AT_LEAST_ONE = ("batch_size", "eval.batch_size", "log_every_steps", "checkpoint_every_steps",
                 "keep_checkpoints")
_NON_NEGATIVE = ("eval.every_steps", "model.num_heads", "model.num_registers",
                 "optimizer.weight_decay", "optimizer.warmup_epochs",
                 "optimizer.clip_each_module_norm", "augment.blur_kernel_size",
                 "optimizer.warmup_start_lr", "optimizer.min_lr", "optimizer.clip_global_norm",
                 "optimizer.bias_lr_scale")


def _check_ranges(config: ml_collections.ConfigDict) -> None:
  """One-line errors for values that would crash later or silently misbehave
  (`keep_checkpoints=0` would delete every checkpoint)."""
  from repr_learn import optim  # Local import: keeps this module free of jax.
  for key in _AT_LEAST_ONE:
    value = config_schema.get(config, key)
    if value < 1:
      raise ValueError(f"config.{key} must be at least 1, got {value}.")
  for key in _NON_NEGATIVE + ("optimizer.warmup_steps",):
    value = config_schema.get(config, key)
    if value is not None and value < 0:
      raise ValueError(f"config.{key} must not be negative, got {value}.")
  if config.optimizer.lars_clip_lr and not (config.optimizer.name == "lars"
                                            and config.optimizer.lars_variant == "solo_learn"):
    raise ValueError("config.optimizer.lars_clip_lr applies to optimizer.name='lars' with "
                     "lars_variant='solo_learn' only; set those or drop lars_clip_lr.")
  if not config.optimizer.base_lr > 0:
    raise ValueError(f"config.optimizer.base_lr must be positive, got {config.optimizer.base_lr}.")
  if config.num_steps is not None and config.num_steps < 1:
    raise ValueError(f"config.num_steps must be at least 1 (or None to use num_epochs), "
                     f"got {config.num_steps}.")
  if config.num_steps is None and not config.num_epochs > 0:
    raise ValueError("Set config.num_epochs > 0 or config.num_steps.")
  decoder = config.model.decoder
  if decoder.kind in ("transformer", "predictor") and decoder.width % decoder.num_heads:
    raise ValueError(f"config.model.decoder.width={decoder.width} does not split into "
                     f"num_heads={decoder.num_heads} heads; pick a divisor of the width.")
  if config.optimizer.schedule != "cosine" and config.optimizer.min_lr:
    raise ValueError("config.optimizer.min_lr applies to the cosine schedule only; drop it "
                     f"with schedule={config.optimizer.schedule!r}.")
  if config.optimizer.schedule != "steps" and config.optimizer.lr_decay_epochs:
    raise ValueError("config.optimizer.lr_decay_epochs applies to schedule='steps' only; "
                     "set --config.optimizer.schedule=steps or drop it.")
  group = config.objective.get("koleo_group_size", 0)
  if group and config.batch_size % group:
    raise ValueError(f"config.objective.koleo_group_size={group} must divide "
                     f"config.batch_size={config.batch_size} (KoLeo runs per group of that "
                     "many examples, DINOv2's per-GPU batch); set a divisor, or 0 for one group.")
  _check_matryoshka(config)
  _check_options_apply(config)
  decays = config.optimizer.weight_decay > 0 or (config.optimizer.weight_decay_end or 0) > 0
  if (config.model.freeze_patch_embed and decays
      and "patch_embed" not in optim.name_set(config.optimizer.no_decay_names)):
    raise ValueError("config.model.freeze_patch_embed keeps the patch projection at init, but "
                     "weight decay would still shrink it; add 'patch_embed' to "
                     "config.optimizer.no_decay_names.")
  if config.model.pooling == "gap_fc_norm" and (config.model.post_norm
                                                or config.model.decoder.kind != "none"):
    raise ValueError("config.model.pooling='gap_fc_norm' leaves the tokens un-normalised, which "
                     "post-LN blocks and masked-modeling decoders do not expect; use 'gap'.")
  if config.parallel.mode == "jit" and config.parallel.sync_batchnorm is False:
    raise ValueError("BatchNorm statistics are always global in parallel.mode=jit; for "
                     "per-device BatchNorm set --config.parallel.mode=pmap.")


def _check_matryoshka(config: ml_collections.ConfigDict) -> None:
  """Nested sizes: ascending positive ints, weights to match, and an objective
  whose loss acts on an embedding of the features (`supports_matryoshka`)."""
  from repr_learn import objectives  # Local import: objectives import models.
  for key in ("objective.matryoshka_dims", "eval.dims"):
    dims = list(config_schema.get(config, key))
    if dims and (any(not isinstance(d, int) or d < 1 for d in dims)
                 or dims != sorted(set(dims))):
      raise ValueError(f"config.{key}={dims!r} must be strictly ascending positive integers, "
                       "e.g. (8, 16, 32, 64).")
  if (config.eval.dims and config.eval.linear_features == "dinov2"
      and "linear" in config.eval.protocols + config.eval.periodic_protocols):
    raise ValueError("config.eval.dims truncates the pooled features; the linear probe's "
                     "eval.linear_features='dinov2' input has no nested sizes. Use 'pooled' or "
                     "drop eval.dims.")
  obj = config.objective
  if obj.matryoshka_weights and len(obj.matryoshka_weights) != len(obj.matryoshka_dims):
    raise ValueError(f"config.objective.matryoshka_weights has {len(obj.matryoshka_weights)} "
                     f"entries for {len(obj.matryoshka_dims)} matryoshka_dims; give one per size "
                     "or () for 1 each.")
  if not obj.matryoshka_dims:
    if obj.matryoshka_weights or obj.matryoshka_efficient:
      raise ValueError("config.objective.matryoshka_weights/matryoshka_efficient take effect "
                       "only with objective.matryoshka_dims; drop them or set the sizes.")
    return
  cls = objectives.get_objective_class(obj.name)
  if not cls.supports_matryoshka:
    supported = sorted(n for n, c in objectives.REGISTRY.items() if c.supports_matryoshka)
    raise ValueError(f"objective {obj.name!r} cannot nest its representation "
                     f"(objective.matryoshka_dims): {cls.matryoshka_refusal}. Methods that can: "
                     f"{', '.join(supported)}.")
  if config.model.projector.num_layers < 1:
    raise ValueError("objective.matryoshka_dims needs a projector (model.projector.num_layers "
                     ">= 1): its first layer is the nested head that reads each size.")


def has_transformer(config: ml_collections.ConfigDict) -> bool:
  """Whether the network has a block stack `model.scan_blocks` applies to."""
  model = config.model
  return (model.backbone.startswith("vit") or model.text.size != "none"
          or model.decoder.kind in ("transformer", "predictor"))


def _check_options_apply(config: ml_collections.ConfigDict) -> None:
  """Options that only some settings read: one set away from its default where
  nothing reads it is refused, not ignored."""
  defaults = config_schema.base_config()
  model, opt, aug = config.model, config.optimizer, config.augment
  vit = model.backbone.startswith("vit")
  from repr_learn.data import catalog  # Local import, as the others here.
  spec = catalog.CATALOG.get(config.data.name)
  captioned = spec is not None and spec.captioned
  checks = (
      ("model.num_heads", vit, "a ViT backbone"),
      ("model.freeze_patch_embed", vit, "a ViT backbone"),
      ("model.drop_path_uniform", vit, "a ViT backbone"),
      ("model.scan_blocks", has_transformer(config),
       "a transformer (ViT backbone, transformer or predictor decoder, text tower)"),
      ("model.remat_blocks", model.scan_blocks,
       "model.scan_blocks=True (the blocks are recomputed inside the scan)"),
      ("optimizer.patch_embed_lr_scale", vit, "a ViT backbone"),
      ("model.patch_head.hidden_dim", model.patch_head.kind == "separate",
       "model.patch_head.kind='separate'"),
      ("model.patch_head.output_dim", model.patch_head.kind == "separate",
       "model.patch_head.kind='separate'"),
      ("model.patch_head.num_layers", model.patch_head.kind == "separate",
       "model.patch_head.kind='separate'"),
      ("model.patch_head.num_prototypes", model.patch_head.kind == "separate",
       "model.patch_head.kind='separate'"),
      ("model.num_registers", vit and model.decoder.kind == "none",
       "a ViT backbone without a masked-modeling decoder (their heads read patch tokens "
       "after the class token only)"),
      ("model.pos_resample_offset", vit and model.pos_embedding == "learned",
       "learned ViT positions (model.pos_embedding='learned')"),
      ("model.prototypes.learned_norm",
       model.prototypes.num_prototypes > 0 and model.prototypes.kind == "cosine",
       "cosine prototypes (model.prototypes.num_prototypes > 0, kind='cosine')"),
      ("model.predictor.last_bn", model.predictor.num_layers > 0,
       "a predictor (model.predictor.num_layers > 0)"),
      ("optimizer.lr_decay_factor", opt.schedule == "steps", "optimizer.schedule='steps'"),
      ("augment.solarize_probs", aug.recipe in ("byol", "multicrop_byol", "multicrop_dinov2"),
       "augment.recipe 'byol', 'multicrop_byol' or 'multicrop_dinov2'"),
      ("eval.linear_features", vit and model.pooling in ("cls", "gap") and not model.post_norm,
       "a pre-LN ViT with a class token (model.pooling 'cls' or 'gap')"),
      ("eval.linear_n_last_blocks", config.eval.linear_features == "dinov2",
       "eval.linear_features='dinov2'"),
      ("eval.linear_avgpool", config.eval.linear_features == "dinov2",
       "eval.linear_features='dinov2'"),
      ("augment.blur_kernel_size", aug.recipe == "multicrop_dinov2",
       "augment.recipe 'multicrop_dinov2'"),
      ("data.storage", config.data.name != "image_folder" and not captioned,
       "a catalogued TFDS dataset without captions (image folders are read as they are; the "
       "resized copy holds no captions)"),
      ("data.captions", config.data.name == "captions", "data.name='captions'"),
      ("data.eval_captions", config.data.name == "captions", "data.name='captions'"),
  )
  for key in ("tokenizer", "tokenizer_vocab", "context_length", "max_captions"):
    checks += ((f"data.{key}", captioned or config.data.name not in catalog.CATALOG,
                "a captioned dataset (data.name 'shapes', 'coco_captions' or 'captions')"),)
  text = model.text.size != "none"
  for key in ("causal", "pooling", "projection_bias", "norm_epsilon"):
    checks += ((f"model.text.{key}", text, "a text tower (model.text.size)"),)
  for key in ("embed_dim", "logit_scale_init", "logit_bias_init"):
    checks += ((f"model.{key}", text, "a text tower (model.text.size)"),)
  for key, applies, needs in checks:
    value = config_schema.get(config, key)
    if not applies and value != config_schema.get(defaults, key):
      raise ValueError(f"config.{key}={value!r} takes effect only with {needs}; "
                       "drop it or set that.")
