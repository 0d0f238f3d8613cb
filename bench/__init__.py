"""Decode-step benchmarks: mpk against PyTorch eager, CUDA graphs and torch.compile (bench/README.md)."""
