"""Where a traced train step spends its device time: the top ops of a Perfetto trace.

  python benchmarks/throughput.py --config=configs/mae.py:imagenet --config.batch_size=256 \
      --profile_dir=benchmarks/gpu/profile_mae
  python benchmarks/profile_summary.py benchmarks/gpu/profile_mae [--top=25]

Reads the newest `*.trace.json.gz` under the folder (written by
`jax.profiler.trace(..., create_perfetto_trace=True)`), keeps the complete
events of the device tracks (processes named `/device:GPU:*`; on a CPU-only
trace, the host's XLA threads, Python and executor events left out), and sums
their durations by op name and by kind (matmul/attention/convolution kernels,
fusions, copies and transposes, collectives, the rest). Prints both tables with
each row's share of the device's busy time; `--json` appends them as one JSON
line.
"""

import argparse
import collections
import gzip
import json
import os
import pathlib
import re

# (kind, pattern on the lower-cased op or kernel name), first match wins.
KINDS = (
    ("attention", r"flash|fmha|attention|sdpa|softmax"),
    ("matmul", r"gemm|cublas|matmul|dot|cutlass|xmma|sm90_|nvjet"),
    ("convolution", r"conv|cudnn|implicit|winograd|wgrad|dgrad"),
    ("collective", r"all-reduce|all-gather|reduce-scatter|nccl|collective|all-to-all"),
    ("copy/transpose", r"copy|transpose|memcpy|memset|bitcast|broadcast|pad|slice"),
    ("reduction", r"reduce"),
    ("fusion", r"fusion|loop_|input_"),
)


def newest_trace(folder: str) -> pathlib.Path:
  traces = sorted(pathlib.Path(folder).rglob("*.trace.json.gz"), key=os.path.getmtime)
  if not traces:
    raise SystemExit(f"No *.trace.json.gz under {folder}; trace with "
                     "jax.profiler.trace(folder, create_perfetto_trace=True).")
  return traces[-1]


def device_events(trace: dict) -> tuple[list[dict], str]:
  """Complete events of the GPU tracks, else of the host's XLA op threads."""
  names = {e["pid"]: e["args"]["name"] for e in trace["traceEvents"]
           if e.get("ph") == "M" and e.get("name") == "process_name"}
  threads = {(e["pid"], e.get("tid")): e["args"]["name"] for e in trace["traceEvents"]
             if e.get("ph") == "M" and e.get("name") == "thread_name"}
  complete = [e for e in trace["traceEvents"] if e.get("ph") == "X" and "dur" in e]
  gpu = [e for e in complete if "GPU" in names.get(e["pid"], "")]
  if gpu:
    return gpu, "GPU tracks"
  ops = [e for e in complete if threads.get((e["pid"], e.get("tid")), "").startswith("tf_XLA")
         and not e["name"].startswith(("$", "ThunkExecutor"))]
  return (ops, "host XLA threads (summed over threads)") if ops else (complete, "all tracks")


def kind_of(name: str) -> str:
  lowered = name.lower()
  for kind, pattern in KINDS:
    if re.search(pattern, lowered):
      return kind
  return "other"


def summarise(events: list[dict]) -> dict:
  by_name, counts = collections.Counter(), collections.Counter()
  for e in events:
    by_name[e["name"]] += e["dur"]
    counts[e["name"]] += 1
  by_kind = collections.Counter()
  for name, dur in by_name.items():
    by_kind[kind_of(name)] += dur
  return {"busy_us": sum(by_name.values()), "by_name": by_name, "counts": counts,
          "by_kind": by_kind}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("folder")
  parser.add_argument("--top", type=int, default=25)
  parser.add_argument("--json", default=None, help="JSON lines file to append the tables to.")
  args = parser.parse_args(argv)
  path = newest_trace(args.folder)
  with gzip.open(path) as f:
    events, source = device_events(json.load(f))
  s = summarise(events)
  busy = s["busy_us"] or 1
  print(f"{path}: {len(events):,} events on the {source}, busy {busy / 1e3:.1f} ms in all")
  print(f"{'kind':16s} {'ms':>10s} {'share':>7s}")
  for kind, dur in s["by_kind"].most_common():
    print(f"{kind:16s} {dur / 1e3:10.2f} {dur / busy:7.1%}")
  print(f"\n{'op':60s} {'kind':15s} {'calls':>6s} {'ms':>9s} {'share':>7s}")
  for name, dur in s["by_name"].most_common(args.top):
    print(f"{name[:60]:60s} {kind_of(name):15s} {s['counts'][name]:6d} {dur / 1e3:9.2f} "
          f"{dur / busy:7.1%}")
  if args.json:
    with open(args.json, "a") as f:
      f.write(json.dumps({"trace": str(path), "source": source, "busy_us": busy,
                          "by_kind": dict(s["by_kind"]),
                          "top": s["by_name"].most_common(args.top)}) + "\n")


if __name__ == "__main__":
  main()
