"""Crops per forward batch, per engine: the defaults the engines use and the command line states. The measurements
behind them are in the README ('Speed')."""
from __future__ import annotations

#: ONNX Runtime on the CPU: batches of 16 keep both workers busy between batches
ONNXRUNTIME_BATCH = 16
#: PyTorch eager on the CPU
TORCH_CPU_BATCH = 4
#: PyTorch on a GPU (not measured here)
TORCH_GPU_BATCH = 8
