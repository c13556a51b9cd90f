"""BatchNorm over the whole batch of several processes, on any device (gloo on CPUs, NCCL on GPUs).

Data-parallel training splits a batch over processes (:mod:`inerf.distributed`); a BatchNorm layer in train
mode then normalises with the statistics of its process's share only, and the run no longer computes what
one process computes. ``torch.nn.SyncBatchNorm`` fixes that on GPUs but refuses CPU tensors (its kernels are
CUDA-only), so the CPU tests of data-parallel training could not cover it. :class:`SyncBatchNorm2d` does the
same in plain tensor operations and one collective per direction, so it runs wherever the process group runs:

* forward: each process sums ``x - s`` and ``(x - s)^2`` per channel over its rows and pixels, with the
  shift ``s`` = the layer's running mean (the same on every process, and near the batch mean, so the
  difference of squares below loses little to cancellation), and its count; one all-reduce of
  ``[sum, sum of squares, count]`` gives every process the batch's mean ``s + S1 / n`` and biased
  variance ``S2 / n - (S1 / n)^2``; the running statistics take the unbiased variance, as
  ``nn.BatchNorm2d`` does, so they stay equal on every process;
* backward: autograd differentiates those formulas; the all-reduce's gradient is the all-reduce of the
  gradients (:class:`_SumOverRanks`), one collective.

A process may hold no rows at all (an empty share of a small batch): it adds zeros and still takes part in
both collectives. In eval mode, or outside a group of several processes, the layer is ``nn.BatchNorm2d``.
The state_dict keys are ``nn.BatchNorm2d``'s, so checkpoints do not change.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["SyncBatchNorm2d", "convert_sync_batchnorm"]


class _SumOverRanks(torch.autograd.Function):
    """``all_reduce(x, SUM)`` with its gradient: the gradient of every process's input is the sum of the
    gradients of every process's output (each output is the same sum of the inputs)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        return grad


class _FusedSyncBatchNorm(torch.autograd.Function):
    """The GPU path: torch's fused batch-norm kernels with one all-gather forward and one all-reduce backward
    per layer, and no host synchronisation.

    ``torch.nn.SyncBatchNorm`` computes the same, but first drops the statistics of processes that hold no
    rows with a boolean mask: three device-to-host reads per layer and step (87 per step of pixelNeRF's
    ResNet-34 encoder), which serialise the processes (measured on two H200s: 1.14x the throughput of one).
    Here such a process's statistics are replaced by neutral values (mean 0, inverse std 1) with ``where``:
    they carry a count of 0, which gives them no weight in the combined statistics.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, eps, momentum):
        x = x.contiguous()
        C = x.shape[1]
        if x.numel() > 0:
            mean, invstd = torch.batch_norm_stats(x, eps)
        else:  # an empty share: neutral values, weight 0 (and still both collectives, as every process)
            mean = torch.zeros(C, dtype=torch.float32, device=x.device)
            invstd = torch.ones(C, dtype=torch.float32, device=x.device)
        count = torch.full((1,), x.numel() // max(C, 1), dtype=mean.dtype, device=x.device)
        local = torch.cat([mean, invstd, count])
        world = dist.get_world_size()
        gathered = torch.empty(world * local.numel(), dtype=local.dtype, device=x.device)
        dist.all_gather_into_tensor(gathered, local)
        mean_all, invstd_all, count_all = gathered.view(world, -1).split([C, C, 1], dim=1)
        has = count_all >= 1
        mean_all = torch.where(has, mean_all, torch.zeros_like(mean_all))
        invstd_all = torch.where(has, invstd_all, torch.ones_like(invstd_all))
        mean, invstd = torch.batch_norm_gather_stats_with_counts(
            x, mean_all, invstd_all, running_mean, running_var, momentum, eps, count_all.reshape(-1)
        )
        ctx.save_for_backward(x, weight, mean, invstd, count_all.reshape(-1).to(torch.int32))
        return torch.batch_norm_elemt(x, weight, bias, mean, invstd, eps)

    @staticmethod
    def backward(ctx, grad):
        x, weight, mean, invstd, counts = ctx.saved_tensors
        grad = grad.contiguous()
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        sum_dy, sum_dy_xmu, grad_w, grad_b = torch.batch_norm_backward_reduce(
            grad, x, mean, invstd, weight, need_x, need_w, need_b
        )
        grad_x = None
        if need_x:
            C = sum_dy.shape[0]
            both = torch.cat([sum_dy, sum_dy_xmu])
            dist.all_reduce(both)
            sum_dy, sum_dy_xmu = both.split(C)
            grad_x = torch.batch_norm_backward_elemt(
                grad, x, mean, invstd, weight, sum_dy, sum_dy_xmu, counts
            )
        return grad_x, grad_w if need_w else None, grad_b if need_b else None, None, None, None, None


def _several_processes() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class SyncBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training statistics are those of the whole batch over all processes.

    ``forward(x [N, C, H, W]) -> [N, C, H, W]``; ``N`` may differ between processes, and be 0. Statistics are
    computed in float32 (also under bf16 autocast) and the output has ``x``'s dtype. Needs
    ``track_running_stats`` (the shift is the running mean) and the default process group (its backend
    must handle ``x``'s device).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.track_running_stats and _several_processes()):
            return super().forward(x)
        self._check_input_dim(x)
        if x.is_cuda and self.momentum is not None:
            self.num_batches_tracked.add_(1)
            return _FusedSyncBatchNorm.apply(
                x, self.weight, self.bias, self.running_mean, self.running_var, self.eps, self.momentum
            )
        xf = x.float()
        shift = self.running_mean.detach().float()[None, :, None, None]
        d = xf - shift
        count = torch.full((1,), float(d.numel() // max(d.shape[1], 1)), device=x.device)
        local = torch.cat([d.sum(dim=(0, 2, 3)), (d * d).sum(dim=(0, 2, 3)), count])
        total = _SumOverRanks.apply(local)
        C = x.shape[1]
        n = total[2 * C].detach()
        m1 = total[:C] / n  # mean of x - shift
        var = (total[C : 2 * C] / n - m1 * m1).clamp_min(0.0)  # biased, as normalisation uses
        mean = m1 + shift[0, :, 0, 0]
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            f = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - f).add_(mean.detach().to(self.running_mean.dtype), alpha=f)
            unbiased = var.detach() * (n / (n - 1).clamp_min(1.0))
            self.running_var.mul_(1 - f).add_(unbiased.to(self.running_var.dtype), alpha=f)
        scale = torch.rsqrt(var + self.eps)
        y = (xf - mean[None, :, None, None]) * scale[None, :, None, None]
        if self.affine:
            y = y * self.weight.float()[None, :, None, None] + self.bias.float()[None, :, None, None]
        return y.to(x.dtype)


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm2d`` inside ``module`` (or ``module`` itself) by a
    :class:`SyncBatchNorm2d` holding the same parameter and buffer tensors (not copies); returns the
    module (the same object unless it was itself a BatchNorm). State_dict keys are unchanged."""
    if type(module) is nn.BatchNorm2d:
        new = SyncBatchNorm2d.__new__(SyncBatchNorm2d)
        new.__dict__.update(module.__dict__)  # parameters, buffers, hooks and settings, shared
        return new
    for name, child in module.named_children():
        new = convert_sync_batchnorm(child)
        if new is not child:
            setattr(module, name, new)
    return module
