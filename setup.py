"""repr_learn: self-supervised representation learning in JAX/Flax."""

import setuptools

setuptools.setup(
    name="repr_learn",
    version="0.1.0",
    description="Self-supervised representation learning (contrastive, clustering, masked modeling) in JAX/Flax.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["repr_learn", "repr_learn.*"]),
    python_requires=">=3.11",
    install_requires=[
        "jax>=0.10,<0.13",
        "flax>=0.12,<0.14",
        "optax>=0.2.5,<0.3",
        "orbax-checkpoint>=0.11,<0.14",
        "tensorflow-datasets>=4.9.8,<5",
        # TFDS's builders and clu's TensorBoard writer import TensorFlow; the CPU build
        # never grabs the GPU that JAX trains on.
        "tensorflow-cpu>=2.18,<3",
        "importlib_resources>=6",
        "tensorboard>=2.18",
        "ml-collections>=1.0,<2",
        "clu>=0.0.12",
        "grain>=0.2.12,<0.3",
        "array_record>=0.7",
        "chex>=0.1.90",
        "absl-py>=2.1",
        "numpy>=1.26",
        "scikit-learn>=1.5",
        "scipy>=1.13",
        "pillow>=10",
        # Pictures of a run (repr_learn/plot.py): curves, t-SNE, reconstructions.
        "matplotlib>=3.8",
        # Weights in and out (repr_learn/interop): the format timm and Hugging Face ship.
        "safetensors>=0.4",
        # CLIP's BPE tokenizer (repr_learn/data/tokenizers.py) cleans with ftfy and splits with regex.
        "regex>=2023",
        "ftfy>=6",
    ],
    extras_require={
        "cuda": ["jax[cuda12]>=0.10,<0.13"],
        "test": ["pytest>=8", "pytest-xdist>=3.5"],
        "bench": ["torch>=2.14,<3", "torchvision>=0.29,<1", "timm>=1.0,<2"],  # benchmarks/pytorch_*.py
    },
)
