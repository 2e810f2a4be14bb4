"""Weights in and out: PyTorch/timm/official SSL checkpoints <-> this codebase.

numpy at the core (`names` maps flat state dicts to parameter trees and back,
`sources` unwraps the official releases' layouts, `checkpoint_files` reads and
writes .pth/.safetensors/.npz); the command-line tools `import_weights` and
`export` sit on top.
"""
