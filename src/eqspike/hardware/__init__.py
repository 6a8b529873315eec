"""Energy and hardware cost of trained networks: event counts from real runs, device profiles
(YAML data with citations), GPU/CPU measurements where the machine allows, and reports.

``counting``: per-sample events of a run's inference and training, per layer;
``profiles``: the device profiles; ``measure``: NVML (GPU) and RAPL (CPU) energy counters;
``report``: prices the events on every profile and writes JSON, Markdown and a bar plot.
"""
