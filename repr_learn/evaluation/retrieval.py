"""Image-text retrieval and zero-shot classification on embeddings (numpy).

Retrieval follows the COCO/Flickr convention with several captions per image
(big_vision `evaluators/proj/image_text/retrieval.py`, CLIP_benchmark
`zeroshot_retrieval.py`): image->text Recall@k counts an image as found when
any of its captions ranks in the top k; text->image counts a caption when its
image does. Zero-shot classifies with class vectors that average each class's
prompt embeddings (CLIP's prompt ensembling, open_clip
`build_zero_shot_classifier`).
"""

import numpy as np


def normalized(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float32)
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def recall_at_k(similarity: np.ndarray, caption_image: np.ndarray,
                ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
  """{'image_to_text_r@k', 'text_to_image_r@k'} in percent.

  Args:
    similarity: [num_images, num_captions] image-caption scores.
    caption_image: [num_captions] the image each caption describes.
    ks: the cut-offs.

  Exactly tied scores (identical captions of different images embed
  identically) are ordered at random, in expectation (`_hit_probability`):
  constant scores give chance, neither 0 nor 100.
  """
  similarity = np.asarray(similarity, np.float32)
  caption_image = np.asarray(caption_image)
  num_images, num_captions = similarity.shape
  if caption_image.shape != (num_captions,):
    raise ValueError(f"caption_image has shape {caption_image.shape}; expected ({num_captions},).")
  own = caption_image[None, :] == np.arange(num_images)[:, None]  # [images, captions]
  others = np.where(own, -np.inf, similarity)  # every pair but the true ones
  # Image -> text: where the image's best-scored own caption(s) rank.
  best_own = np.where(own, similarity, -np.inf).max(axis=1, keepdims=True)
  image_query = ((others > best_own).sum(axis=1), (others == best_own).sum(axis=1),
                 (np.where(own, similarity, np.nan) == best_own).sum(axis=1))
  # Text -> image: where the caption's own image ranks.
  own_score = similarity[caption_image, np.arange(num_captions)][None, :]
  text_query = ((others > own_score).sum(axis=0), (others == own_score).sum(axis=0),
                np.ones(num_captions, int))
  out = {}
  for k in ks:
    out[f"image_to_text_r@{k}"] = float(100.0 * np.mean(_hit_probability(*image_query, k)))
    out[f"text_to_image_r@{k}"] = float(100.0 * np.mean(_hit_probability(*text_query, k)))
  return out


def _hit_probability(better: np.ndarray, tied_others: np.ndarray, tied_own: np.ndarray,
                     k: int) -> np.ndarray:
  """P(one of `tied_own` relevant items is in the top k) when `better` items
  score higher and the tie group (the relevant items and `tied_others` more)
  is ordered uniformly at random: 1 - C(others, r) / C(others + own, r) for
  the r = k - better places the group can take."""
  total = tied_others + tied_own
  places = np.clip(k - better, 0, total)
  miss = np.ones(better.shape, np.float64)
  for j in range(k):
    factor = np.clip(tied_others - j, 0, None) / np.maximum(total - j, 1)
    miss = np.where(j < places, miss * factor, miss)
  return 1.0 - miss


def zeroshot_classifier(prompt_embeddings: np.ndarray, num_classes: int) -> np.ndarray:
  """[num_classes, D] class vectors from [num_classes * templates, D] prompt
  embeddings (class-major): normalise each, average per class, normalise."""
  per_class = normalized(prompt_embeddings).reshape(num_classes, -1,
                                                    prompt_embeddings.shape[-1])
  return normalized(per_class.mean(axis=1))


def zeroshot_accuracy(image_embeddings: np.ndarray, classifier: np.ndarray,
                      labels: np.ndarray, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
  """{'top1', 'top5', 'per_class_top1'} in percent of classifying by the
  nearest class vector (per class: None for a class with no examples)."""
  scores = normalized(image_embeddings) @ classifier.T
  labels = np.asarray(labels)
  true_score = scores[np.arange(len(labels)), labels][:, None]
  better = (scores > true_score).sum(axis=1)
  tied = (scores == true_score).sum(axis=1) - 1  # ties ordered at random, as in `recall_at_k`
  hits = {k: _hit_probability(better, tied, np.ones_like(tied), k) for k in ks
          if k <= classifier.shape[0]}
  out = {f"top{k}": float(100.0 * np.mean(hit)) for k, hit in hits.items()}
  out["per_class_top1"] = [float(100.0 * np.mean(hits[1][labels == c])) if np.any(labels == c)
                           else None for c in range(classifier.shape[0])]
  return out
