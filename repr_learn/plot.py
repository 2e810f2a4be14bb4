"""Pictures of a run: `python -m repr_learn.plot DIR`.

  python -m repr_learn.plot DIR [--split=test] [--config.data.data_dir=...]

writes DIR/plots/curves.png (training curves from metrics.jsonl),
DIR/plots/embedding.png (t-SNE of the restored encoder's test-split features,
coloured by class) and, when the eval results hold several feature sizes
(`eval.dims`), DIR/plots/accuracy_by_dim.png. The drawing itself lives in
`repr_learn.evaluation.drawing`, beside the protocols that also draw.
"""

from typing import Sequence

from absl import flags

from repr_learn import embed
from repr_learn import finished_run
from repr_learn import metric_logging
from repr_learn.evaluation import drawing

_FLAGS = flags.FlagValues()
flags.DEFINE_string("split", None, "Split whose features the embedding plot shows "
                    "(default: the evaluation test split).", flag_values=_FLAGS)


def main(argv: Sequence[str]) -> None:
  try:
    args, overrides = finished_run.split_overrides(argv)
    positional = finished_run.parse_flags(_FLAGS, args)
    if len(positional) != 1:
      raise ValueError("Pass one run directory: python -m repr_learn.plot DIR.")
    workdir = positional[0]
    title = drawing.run_title(workdir, finished_run.read_config(workdir))  # fails early
    if drawing.has_metrics(workdir):
      print(f"Wrote {drawing.plot_curves(workdir, title)}")
    else:
      print(f"{workdir} has no {metric_logging.METRICS_FILE} (nothing trained there, e.g. "
            "imported weights): no training curves.")
    arrays = embed.embeddings(finished_run.load(workdir, overrides), _FLAGS.split)
    print(f"Wrote {drawing.plot_embedding(workdir, title, arrays['embeddings'], arrays['labels'])}")
    if drawing.accuracy_by_dim(workdir):
      runs = {drawing.run_label(workdir): workdir}
      print(f"Wrote {drawing.plot_accuracy_by_dim(drawing.by_dim_path(workdir), runs)}")
  except finished_run.ERRORS as e:
    raise SystemExit(finished_run.error_message(e)) from None


if __name__ == "__main__":
  finished_run.run_tool(main)
