# Environment for GPU training runs; source it before main.py.
# Let XLA use most GPU memory up front but leave room for cuDNN workspaces.
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}
# Latency-hiding scheduler overlaps gradient all-reduces with the backward pass.
export XLA_FLAGS="${XLA_FLAGS:-} --xla_gpu_enable_latency_hiding_scheduler=true"
# TensorFlow is only used by TFDS/clu on the host: keep it off the GPUs.
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
export TF_FORCE_GPU_ALLOW_GROWTH=true
