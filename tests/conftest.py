"""Suite-wide settings."""

import os

import torch

# `make test` runs two pytest workers on two cores. Two torch threads per worker would oversubscribe
# the cores, and an oversubscribed OpenMP barrier makes small ops 10-30x slower (measured in
# benchmarks/RESULTS_grid.md), so each worker computes on one thread.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
