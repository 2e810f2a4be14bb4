"""CLIP, SigLIP and LiT: the losses against numpy transcriptions of open_clip
and big_vision, their chunked form, the text tower, the objective in both
parallel modes, retrieval and zero-shot metrics on hand-built cases, and runs
on the generated shapes captions (exact resume, LiT's locked tower)."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from repr_learn import parallel
from repr_learn import train
from repr_learn.data import catalog
from repr_learn.evaluation import retrieval
from repr_learn.losses import image_text
from repr_learn.models import text as text_lib
from tests import config_overrides
from tests import test_train_step as step_helpers


def _unit_rows(rng, n, d):
  x = rng.normal(size=(n, d)).astype(np.float32)
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def _log_softmax(x, axis):
  x = x - x.max(axis=axis, keepdims=True)
  return x - np.log(np.exp(x).sum(axis=axis, keepdims=True))


def _clip_reference(image, text, scale):
  """open_clip `ClipLoss` (world size 1): (CE(L, arange) + CE(L^T, arange)) / 2."""
  logits = scale * image.astype(np.float64) @ text.T.astype(np.float64)
  idx = np.arange(len(image))
  per_image = -_log_softmax(logits, 1)[idx, idx].mean()
  per_text = -_log_softmax(logits.T, 1)[idx, idx].mean()
  return (per_image + per_text) / 2


def _siglip_reference(image, text, scale, bias):
  """big_vision `siglip.py`: loglik = log_sigmoid(z * logits), nll = -sum over
  texts, mean over images."""
  logits = scale * image.astype(np.float64) @ text.T.astype(np.float64) + bias
  z = 2 * np.eye(len(image)) - 1
  loglik = -np.logaddexp(0.0, -z * logits)
  return np.mean(-loglik.sum(axis=-1))


_clip = jax.jit(image_text.clip_loss, static_argnames="chunk_rows")
_siglip = jax.jit(image_text.siglip_loss, static_argnames="chunk_rows")


def test_clip_loss_equals_open_clips_two_cross_entropies():
  rng = np.random.default_rng(0)
  image, text = _unit_rows(rng, 6, 5), _unit_rows(rng, 6, 5)
  np.testing.assert_allclose(_clip(image, text, 14.285714), _clip_reference(image, text, 14.285714),
                             rtol=1e-5)


def test_clip_loss_of_indistinguishable_pairs_is_log_batch():
  """Every logit equal: each softmax is uniform over the B candidates."""
  same = np.tile(_unit_rows(np.random.default_rng(1), 1, 4), (8, 1))
  np.testing.assert_allclose(_clip(same, same, 14.3), np.log(8), rtol=1e-6)


def test_siglip_loss_equals_big_visions_and_is_normalised_per_image():
  rng = np.random.default_rng(2)
  image, text = _unit_rows(rng, 6, 5), _unit_rows(rng, 6, 5)
  np.testing.assert_allclose(_siglip(image, text, 10.0, -10.0),
                             _siglip_reference(image, text, 10.0, -10.0), rtol=1e-5)
  # Orthonormal pairs at t=10, b=-10: each row is softplus(-(t+b)) for its pair
  # plus (B-1) softplus(b) for the others, summed per image (not averaged over
  # the B^2 pairs): the paper's initial loss, log 2 + (B-1) log(1 + e^-10).
  eye = np.eye(8, dtype=np.float32)
  expected = np.log(2.0) + 7 * np.log1p(np.exp(-10.0))
  np.testing.assert_allclose(_siglip(eye, eye, 10.0, -10.0), expected, rtol=1e-6)


@pytest.mark.parametrize("which", ["clip", "siglip"])
def test_chunked_losses_equal_the_plain_ones_with_their_gradients(which):
  rng = np.random.default_rng(3)
  image, text = _unit_rows(rng, 12, 6), _unit_rows(rng, 12, 6)
  if which == "clip":
    fn = lambda i, t, s, b, chunk: image_text.clip_loss(i, t, s, chunk_rows=chunk)
  else:
    fn = lambda i, t, s, b, chunk: image_text.siglip_loss(i, t, s, b, chunk_rows=chunk)
  grad = jax.jit(jax.value_and_grad(fn, argnums=(0, 1, 2, 3)), static_argnums=4)
  plain = grad(image, text, 9.0, -3.0, 0)
  for chunk in (3, 4):
    chunked = grad(image, text, 9.0, -3.0, chunk)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 plain, chunked)


def test_a_chunk_size_that_does_not_divide_the_batch_is_refused():
  ones = np.ones((10, 4), np.float32)
  with pytest.raises(ValueError, match="objective.chunk_rows to a divisor"):
    image_text.clip_loss(ones, ones, 1.0, chunk_rows=4)


# -- The text tower.

def _tower(causal, pooling):
  return text_lib.TextTransformer(vocab_size=20, context_length=6, width=16, depth=1,
                                  num_heads=2, mlp_dim=32, output_dim=8, causal=causal,
                                  pooling=pooling, eot_id=2)


def test_causal_tower_pooled_at_eot_ignores_what_follows_it():
  tower = _tower(True, "eot")
  tokens = np.array([[1, 5, 7, 2, 0, 0]], np.int32)
  variables = tower.init(jax.random.PRNGKey(0), tokens)
  apply = jax.jit(tower.apply)
  after = tokens.copy()
  after[0, 4:] = (9, 2)  # tokens after the first EOT
  before = tokens.copy()
  before[0, 1] = 6  # a token before it
  base = apply(variables, tokens)
  np.testing.assert_allclose(apply(variables, after), base, rtol=1e-6)
  assert not np.allclose(apply(variables, before), base)


def test_bidirectional_tower_pooled_last_reads_every_token():
  tower = _tower(False, "last")
  tokens = np.array([[1, 5, 7, 2, 0, 0]], np.int32)
  variables = tower.init(jax.random.PRNGKey(0), tokens)
  changed = tokens.copy()
  changed[0, 1] = 6
  assert not np.allclose(tower.apply(variables, changed), tower.apply(variables, tokens))


def test_tokens_of_another_length_are_refused():
  tower = _tower(True, "eot")
  with pytest.raises(ValueError, match="tokenize to data.context_length"):
    tower.init(jax.random.PRNGKey(0), np.zeros((1, 5), np.int32))


# -- Retrieval and zero-shot metrics.

def test_recall_counts_any_own_caption_for_images_and_the_own_image_for_captions():
  # 3 images, captions 0,1 -> image 0; 2 -> image 1; 3,4 -> image 2.
  caption_image = np.array([0, 0, 1, 2, 2])
  sims = np.array([[0.1, 0.9, 0.2, 0.95, 0.0],   # best own caption (0.9) ranks 2nd
                   [0.5, 0.45, 0.4, 0.2, 0.3],   # own caption (0.4) ranks 3rd
                   [0.0, 0.2, 0.1, 0.3, 0.8]])   # own caption ranks 1st
  r = retrieval.recall_at_k(sims, caption_image, ks=(1, 2, 3))
  np.testing.assert_allclose([r["image_to_text_r@1"], r["image_to_text_r@2"],
                              r["image_to_text_r@3"]], [100 / 3, 200 / 3, 100])
  # Each caption's rank of its image (its column): c0 0.1 < 0.5 -> 2nd; c1 0.9 -> 1st;
  # c2 0.4 -> 1st; c3 0.3 < 0.95 -> 2nd; c4 0.8 -> 1st.
  np.testing.assert_allclose([r["text_to_image_r@1"], r["text_to_image_r@2"]], [60.0, 100.0])


def test_tied_scores_are_ordered_at_random_in_expectation():
  """Constant scores give chance; an image with 2 of 6 identical captions
  finds one in the top 2 with probability 1 - C(4,2)/C(6,2) = 9/15."""
  r = retrieval.recall_at_k(np.zeros((4, 4)), np.arange(4), ks=(1, 2))
  np.testing.assert_allclose([r["image_to_text_r@1"], r["text_to_image_r@2"]], [25.0, 50.0])
  r = retrieval.recall_at_k(np.zeros((3, 6)), np.array([0, 0, 1, 1, 2, 2]), ks=(2,))
  np.testing.assert_allclose(r["image_to_text_r@2"], 100 * 9 / 15)
  # Monte Carlo over random tie orders agrees.
  rng = np.random.default_rng(0)
  sims = np.round(rng.uniform(size=(5, 10)), 1)  # many ties
  caption_image = np.repeat(np.arange(5), 2)
  draws = []
  for _ in range(2000):
    jitter = rng.uniform(0, 1e-3, sims.shape)  # a random order within each tie
    draws.append(retrieval.recall_at_k(sims + jitter, caption_image, ks=(1, 3)))
  r = retrieval.recall_at_k(sims, caption_image, ks=(1, 3))
  for key in r:
    np.testing.assert_allclose(r[key], np.mean([d[key] for d in draws]), atol=1.5)


def test_zeroshot_averages_normalised_prompt_embeddings_per_class():
  prompts = np.array([[2.0, 0.0], [0.0, 1.0],    # class 0: mean of (1,0) and (0,1)
                      [0.0, -3.0], [0.0, -1.0]])  # class 1: (0,-1)
  classifier = retrieval.zeroshot_classifier(prompts, 2)
  np.testing.assert_allclose(classifier, [[2 ** -0.5, 2 ** -0.5], [0.0, -1.0]], atol=1e-6)
  images = np.array([[1.0, 0.2], [0.1, -1.0], [0.3, 1.0]])  # the last is misclassified
  r = retrieval.zeroshot_accuracy(images, classifier, np.array([0, 1, 1]))
  np.testing.assert_allclose(r["top1"], 200 / 3)
  assert r["per_class_top1"] == [100.0, 50.0]


# -- The objective in the trainer's step.

def _config(method="clip", variant="smoke", **overrides):
  config = importlib.import_module(f"configs.{method}").get_config(variant)
  return config_overrides.override(config, **overrides)


def _one_step(config, devices=None, batch_seed=0):
  mesh = parallel.make_mesh(devices)
  setup = train.build_setup(config, catalog.get_spec(config.data.name), config.batch_size, mesh)
  state = setup.initial_state()
  before = jax.device_get(state)
  batch = step_helpers._batch(config, mesh, batch_seed)
  new_state, metrics = setup.compiled_train_step(state)(state, batch)
  return before, jax.device_get(new_state), jax.device_get(metrics)


def _assert_close(a, b, rtol=1e-4, atol=1e-6):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=atol), a, b)


def test_the_per_device_mode_equals_the_jit_mode_on_eight_devices():
  """SGD, so the update is linear in the gradient (see test_pmap_mode); the
  jit mode's loss on 8 devices equals 1 device's in test_objectives. CLIP
  stands for both losses: they read the gathered global batch, and the
  objective around them is one class."""
  sgd = {"optimizer.name": "sgd"}
  _, jit, jit_metrics = _one_step(_config("clip", **sgd))
  _, per_device, metrics = _one_step(_config("clip", **sgd, **{
      "parallel.mode": "pmap", "parallel.sync_batchnorm": True}))
  for name in ("loss", "grad_norm", "image_to_text_acc", "logit_scale"):
    np.testing.assert_allclose(metrics[name], jit_metrics[name], rtol=1e-4, atol=1e-6)
  _assert_close(per_device.params, jit.params)
  _assert_close(per_device.batch_stats, jit.batch_stats)


def test_clip_steps_lower_the_loss_and_the_temperature_stays_clamped():
  config = _config("clip", **{"optimizer.base_lr": 3e-3, "model.logit_scale_init": 99.0})
  mesh = parallel.make_mesh()
  setup = train.build_setup(config, catalog.get_spec("shapes"), config.batch_size, mesh)
  state = setup.initial_state()
  step = setup.compiled_train_step(state)
  batch = step_helpers._batch(config, mesh)
  losses = []
  for _ in range(6):
    state, metrics = step(state, batch)
    losses.append(float(metrics["loss"]))
    assert float(state.params["logit_scale"]) <= np.log(100.0) + 1e-6
  assert losses[-1] < losses[0] - 0.1
  assert float(metrics["logit_scale"]) <= 100.0 + 1e-4


def test_captions_are_drawn_among_each_images_own():
  config = _config("clip")
  objective = train.build_objective(config, num_examples=64)
  tokens = jnp.arange(6 * 3 * 2).reshape(6, 3, 2)
  counts = jnp.array([1, 2, 3, 3, 3, 3])
  draw = jax.jit(objective._drawn_captions)
  picked = np.stack([np.asarray(draw(tokens, counts, jax.random.PRNGKey(s))) for s in range(40)])
  index = (picked[..., 0] - np.arange(6)[None, :] * 6) // 2  # which caption row
  assert np.all(index[:, 0] == 0) and set(index[:, 1].tolist()) == {0, 1}
  assert set(index[:, 2:].ravel().tolist()) == {0, 1, 2}


def test_lit_leaves_the_locked_tower_and_its_statistics_unchanged():
  config = _config("lit", **{"optimizer.base_lr": 1e-2})
  before, after, _ = _one_step(config)
  _assert_close(after.params["backbone"], before.params["backbone"], rtol=0, atol=0)
  _assert_close(after.batch_stats, before.batch_stats, rtol=0, atol=0)
  moved = jax.tree.leaves(jax.tree.map(lambda a, b: np.abs(a - b).max(),
                                       after.params["text"], before.params["text"]))
  assert max(moved) > 0


def test_siglip_without_a_bias_and_clip_without_a_text_tower_are_refused():
  with pytest.raises(ValueError, match="model.logit_bias_init"):
    train.build_objective(_config("siglip", **{"model.logit_bias_init": None}))
  with pytest.raises(ValueError, match="model.text.size"):
    train.build_objective(_config("clip", **{"model.text.size": "none",
                                             "model.embed_dim": 512}))


# -- Data: the generated captions, COCO through TFDS, users' caption files.

def test_shapes_captions_name_the_label_and_hold_out_four_pairs_from_training():
  from repr_learn.data import shapes
  names = shapes.class_names()
  train_pairs = set()
  for example in shapes.generate("train")[:200]:
    colour, shape = names[example["label"]].split()
    train_pairs.add((colour, shape))
    texts = example["captions"]["text"]
    assert len(texts) == 5 and all(colour in t and shape in t for t in texts)
  assert not train_pairs & set(shapes.HELD_OUT)
  test_pairs = {tuple(names[e["label"]].split()) for e in shapes.generate("test")}
  assert set(shapes.HELD_OUT) <= test_pairs and len(test_pairs) == 24


def test_coco_captions_through_tfds_mock_data(tmp_path):
  import tensorflow_datasets as tfds
  from repr_learn.data import sources
  (tmp_path / "coco_captions").mkdir()  # what a prepared data_dir has
  config = _config("clip", **{"data.name": "coco_captions", "data.data_dir": str(tmp_path),
                              "data.max_captions": 3})
  with tfds.testing.mock_data(num_examples=6):
    source = sources.open_source(catalog.get_spec("coco_captions"), "test", config.data)
    example = source[0]
    texts = source.captions_of(source._source[0])
  assert example["tokens"].shape == (3, config.data.context_length)
  assert example["image"].shape == (224, 224, 3)
  count = int(example["num_captions"])
  assert count == min(3, len(texts)) and np.all(example["tokens"][count:] == 0)
  assert np.all(example["tokens"][:count, 0] == 1)  # start-of-text
  assert np.all(source.labels == -1)  # COCO has no classes


def test_a_caption_table_is_a_training_source(tmp_path):
  from PIL import Image
  from repr_learn.data import pipeline
  from repr_learn.data import sources
  rows = ["filepath\ttitle"]
  for i in range(4):
    Image.fromarray(np.full((40, 30, 3), 60 * i, np.uint8)).save(tmp_path / f"{i}.png")
    rows += [f"{i}.png\ta grey square number {i}", f"{i}.png\tsquare {i}"]
  (tmp_path / "train.tsv").write_text("\n".join(rows) + "\n")
  config = _config("clip", **{"data.name": "captions",
                              "data.captions": str(tmp_path / "train.tsv")})
  source = sources.open_source(catalog.get_spec("captions"), "train", config.data)
  batch = next(pipeline.make_train_iterator(source, global_batch_size=4, process_index=0,
                                            process_count=1, seed=0))
  assert batch["tokens"].shape == (4, 5, config.data.context_length)
  np.testing.assert_array_equal(batch["num_captions"], 2)
  config.data.captions = None
  with pytest.raises(FileNotFoundError, match="--config.data.captions="):
    sources.open_source(catalog.get_spec("captions"), "train", config.data)


@pytest.mark.parametrize("key,value,message", [
    ("data.tokenizer", "clip_bpe", "takes effect only with a captioned dataset"),
    ("data.storage", "resized", "the resized copy holds no captions"),
    ("model.logit_bias_init", -10.0, "a text tower"),
])
def test_image_text_options_that_nothing_reads_are_refused(key, value, message):
  from repr_learn import config_checks
  base = "simclr" if key == "data.tokenizer" or key == "model.logit_bias_init" else "clip"
  config = importlib.import_module(f"configs.{base}").get_config("smoke")
  config_overrides.override(config, **{key: value})
  with pytest.raises(ValueError, match=message):
    config_checks.validate(config)


def test_a_text_tower_needs_captioned_data():
  config = _config("clip", **{"data.name": "digits"})
  with pytest.raises(ValueError, match="needs captioned data"):
    train.build_objective(config)


# -- End to end on the generated shapes.

@pytest.fixture
def shapes_config(tfds_dir):
  def make(method, **overrides):
    config = _config(method, **{"data.data_dir": tfds_dir, "eval.protocols": "zeroshot,retrieval",
                                **overrides})
    return config
  return make


@pytest.mark.slow
def test_clip_run_resumes_exactly_and_writes_zeroshot_and_retrieval(tmp_path, shapes_config):
  import json
  from repr_learn import embed
  from repr_learn import finished_run
  config = shapes_config("clip", num_steps=4)
  straight = train.train_and_evaluate(config, str(tmp_path / "straight"))
  first = train.train_and_evaluate(config, str(tmp_path / "resumed"), interrupt_after_steps=2)
  assert int(first.state.step) == 2 and first.stopped is not None
  resumed = train.train_and_evaluate(config, str(tmp_path / "resumed"))
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(straight.state.params),
               jax.device_get(resumed.state.params))
  zeroshot = json.loads((tmp_path / "straight" / "eval" / "zeroshot.json").read_text())
  assert zeroshot["num_classes"] == 24 and zeroshot["num_templates"] == 3
  assert 0.0 <= zeroshot["top1"] <= 100.0
  recall = json.loads((tmp_path / "straight" / "eval" / "retrieval.json").read_text())
  assert recall["num_images"] == 960 and recall["num_captions"] == 4800
  # embed: the shared-space image embeddings and those of given captions.
  run = finished_run.load(str(tmp_path / "straight"))
  arrays = embed.embeddings(run, texts=["a red circle", "a blue cross"])
  assert arrays["image_embeddings"].shape == (960, config.model.embed_dim)
  assert arrays["text_embeddings"].shape == (2, config.model.embed_dim)
  np.testing.assert_allclose(np.linalg.norm(arrays["text_embeddings"], axis=1), 1.0, rtol=1e-5)


@pytest.mark.slow
def test_lit_locks_a_finished_simclr_encoder(tmp_path, shapes_config, tfds_dir):
  simclr = importlib.import_module("configs.simclr").get_config("smoke")
  config_overrides.override(simclr, **{"data.name": "shapes", "data.data_dir": tfds_dir,
                                       "eval.protocols": "knn",
                                       "eval.random_init_baseline": False})
  source = train.train_and_evaluate(simclr, str(tmp_path / "simclr"))
  lit = shapes_config("lit")
  with pytest.raises(ValueError, match="--config.model.init_from"):
    train.train_and_evaluate(lit, str(tmp_path / "lit"))
  lit.model.init_from = str(tmp_path / "simclr")
  result = train.train_and_evaluate(lit, str(tmp_path / "lit"))
  _assert_close(jax.device_get(result.state.params["backbone"]),
                jax.device_get(source.state.params["backbone"]), rtol=0, atol=0)
  _assert_close(jax.device_get(result.state.batch_stats["backbone"]),
                jax.device_get(source.state.batch_stats["backbone"]), rtol=0, atol=0)
  assert "zeroshot" in result.eval and "retrieval" in result.eval


def test_imagenet_prompts_are_clips_from_the_open_clip_wheel():
  from repr_learn.data import class_names
  from repr_learn.data import open_clip_files
  try:
    open_clip_files.path("zero_shot_metadata.py")
  except FileNotFoundError as e:
    pytest.skip(str(e))
  names = class_names.known_names("imagenet2012")
  templates = class_names.templates("imagenet2012")
  assert len(names) == 1000 and names[:2] == ["tench", "goldfish"]
  assert len(templates) == 80 and templates[0] == "a bad photo of a {}."
  with pytest.raises(ValueError, match="WordNet ids"):
    class_names.readable(["n01440764", "n01443537"], "imagenette")
