"""Zero-shot classification and image-text retrieval, for image-text runs.

`zeroshot` (DIR/eval/zeroshot.json) classifies the test split of the
evaluation data, or of `eval.zeroshot_dataset`, from class-name prompts alone
(`retrieval.zeroshot_classifier`); `retrieval` (DIR/eval/retrieval.json) ranks
the captioned test split's captions for each image and images for each
caption (Recall@1/5/10, several captions per image). Both read images through
the shared extractor (centre views, eval mode) and prompts or captions through
`features.TextEmbedder`.
"""

from typing import Any

import ml_collections
import numpy as np

from repr_learn.data import captions
from repr_learn.data import catalog
from repr_learn.data import class_names
from repr_learn.data import sources
from repr_learn.evaluation import features
from repr_learn.evaluation import protocol_base
from repr_learn.evaluation import retrieval


def is_image_text(objective) -> bool:
  """Whether the run has a text tower (CLIP, SigLIP, LiT)."""
  return hasattr(objective.network, "encode_text")


def image_embeddings(context: protocol_base.EvalContext, state, source,
                     passthrough: tuple[str, ...] = ()):
  """({'embedding': the image tower's embeddings [N, D], + `passthrough`
  fields}, labels [N]) of `source`, in its order (not normalised)."""
  objective = context.objective

  def outputs(params, batch_stats, extra, x):
    del extra
    out, _ = objective.apply(params, batch_stats, x, train=False,
                             method=objective.network.encode_image)
    return {"embedding": out["embedding"]}

  extractor = context.kept(("image_text.image", passthrough),
                           lambda: context.extractor(outputs, passthrough))
  return extractor(state, source)


def text_embeddings(context: protocol_base.EvalContext, state, texts_or_tokens) -> np.ndarray:
  """The text tower's embeddings [M, D] (not normalised) of captions, given
  as strings (tokenized as `config.data` says) or as tokens [M, L]."""
  tokens = texts_or_tokens
  if len(tokens) and isinstance(tokens[0], str):
    tokens = captions.from_config(context.config.data)(list(tokens),
                                                       context.config.data.context_length)
  embedder = context.kept("image_text.text", lambda: features.TextEmbedder(
      context.objective, context.mesh, context.config.eval.batch_size))
  return embedder(state, np.asarray(tokens))


class _ImageTextProtocol(protocol_base.Protocol):
  """What both protocols share: the towers' embeddings."""

  def _check_network(self) -> None:
    if not is_image_text(self.context.objective):
      raise ValueError(f"The {self.name} protocol needs an image-text run (objective clip or "
                       f"siglip); drop it from config.eval.protocols.")

  def _image_embeddings(self, state, source, passthrough=()):
    return image_embeddings(self.context, state, source, passthrough)

  def _text_embeddings(self, state, tokens) -> np.ndarray:
    return text_embeddings(self.context, state, tokens)


@protocol_base.register
class ZeroShotProtocol(_ImageTextProtocol):
  name = "zeroshot"
  headline = ("top1", "top5")

  @property
  def needs_labels(self) -> bool:
    """Labels of the evaluation data, unless it classifies another dataset."""
    return not self.config.eval.zeroshot_dataset

  def _data_config(self) -> ml_collections.ConfigDict:
    data = self.context.data_config
    if not self.config.eval.zeroshot_dataset:
      return data
    data = ml_collections.ConfigDict(data.to_dict())
    data.name, data.storage = self.config.eval.zeroshot_dataset, "tfds"
    return data

  def evaluate(self, state, step: int) -> dict[str, Any]:
    self._check_network()
    data = self._data_config()
    spec = catalog.get_spec(data.name)
    source = (self.context.source(spec.eval_test_split) if data is self.context.data_config
              else sources.open_source(spec, spec.eval_test_split, data))
    names = sources.label_names(spec, data)
    templates = class_names.templates(spec.name, self.config.eval.zeroshot_templates)
    prompts = [t.format(n) for n in names for t in templates]
    classifier = retrieval.zeroshot_classifier(self._text_embeddings(state, prompts),
                                               len(names))
    outputs, labels = self._image_embeddings(state, source)
    self.context.require_labels(labels, spec.eval_test_split, self.name)
    result = retrieval.zeroshot_accuracy(outputs["embedding"], classifier, labels)
    result.update(step=int(step), dataset=spec.name, split=spec.eval_test_split,
                  num_classes=len(names), num_templates=len(templates),
                  num_examples=int(len(labels)))
    return result


@protocol_base.register
class RetrievalProtocol(_ImageTextProtocol):
  name = "retrieval"
  headline = ("image_to_text_r@1", "text_to_image_r@1")

  def evaluate(self, state, step: int) -> dict[str, Any]:
    self._check_network()
    spec = self.context.spec
    if not spec.captioned:
      raise ValueError(f"The retrieval protocol ranks captions; {spec.name} has none: "
                       "evaluate on a captioned dataset.")
    split = spec.eval_test_split
    outputs, _ = self._image_embeddings(state, self.context.source(split),
                                        passthrough=("tokens", "num_captions"))
    counts = outputs["num_captions"].astype(int)
    caption_tokens = np.concatenate([t[:c] for t, c in zip(outputs["tokens"], counts)])
    caption_image = np.repeat(np.arange(len(counts)), counts)
    text = retrieval.normalized(self._text_embeddings(state, caption_tokens))
    image = retrieval.normalized(outputs["embedding"])
    result = retrieval.recall_at_k(image @ text.T, caption_image)
    result.update(step=int(step), dataset=spec.name, split=split,
                  num_images=int(len(counts)), num_captions=int(len(caption_image)))
    return result
