"""SE(3) and SO(3): exponential and logarithm maps, composition, inversion, errors.

Conventions (the only Lie-group maths in the package lives here):

* A **twist** ``xi`` has shape ``[..., 6]`` and is ordered ``(rho, phi)``: ``rho = xi[..., :3]`` is the
  translational part, ``phi = xi[..., 3:]`` the rotation vector (axis * angle, radians). This is the
  order used by Sophus and Barfoot's *State Estimation for Robotics*.
* ``exp(xi)`` is the 4x4 matrix ``[[R, V rho], [0, 1]]`` with ``R = exp(phi^)`` (Rodrigues) and
  ``V = I + B phi^ + C phi^2``.
* Pose updates are **left** updates in the world frame, as in iNeRF (T = exp([S]theta) T0):
  ``c2w = exp(xi) @ c2w0``. At ``xi = 0`` every function here is exact and has finite gradients: all
  ratios such as sin(t)/t switch to Taylor series below a small angle, and the angle is computed from a
  guarded square root (``torch.where`` alone would still give NaN gradients through the unused branch).

All functions work in float32 and float64 and broadcast over leading batch dimensions.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "axis_angle_to_matrix",
    "compose",
    "hat",
    "inverse",
    "rotation_angle",
    "rotation_error_deg",
    "se3_exp",
    "se3_exp_series",
    "se3_log",
    "so3_exp",
    "so3_log",
    "translation_error",
    "vee",
]


def hat(phi: torch.Tensor) -> torch.Tensor:
    """``[..., 3]`` vector -> ``[..., 3, 3]`` skew-symmetric matrix with ``hat(a) @ b = a x b``."""
    x, y, z = phi.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*phi.shape[:-1], 3, 3)


def vee(m: torch.Tensor) -> torch.Tensor:
    """``[..., 3, 3]`` skew-symmetric matrix -> ``[..., 3]`` vector (inverse of :func:`hat`)."""
    return torch.stack([m[..., 2, 1], m[..., 0, 2], m[..., 1, 0]], dim=-1)


# Below this squared angle the closed forms lose precision (cancellation in 1 - cos t), so use series.
_SMALL2 = 1e-6


def _coefficients(theta2: torch.Tensor):
    """A = sin t / t, B = (1 - cos t) / t^2, C = (t - sin t) / t^3 for t^2 = theta2, stable at 0."""
    small = theta2 < _SMALL2
    # Guarded square root: sqrt has an infinite derivative at 0, even in the branch torch.where drops.
    t2 = torch.where(small, torch.ones_like(theta2), theta2)
    t = t2.sqrt()
    a = torch.where(small, 1 - theta2 / 6 + theta2**2 / 120, torch.sin(t) / t)
    b = torch.where(small, 0.5 - theta2 / 24 + theta2**2 / 720, (1 - torch.cos(t)) / t2)
    c = torch.where(small, 1.0 / 6 - theta2 / 120 + theta2**2 / 5040, (t - torch.sin(t)) / (t2 * t))
    return a, b, c


def so3_exp(phi: torch.Tensor) -> torch.Tensor:
    """Rotation vector ``[..., 3]`` (radians) -> rotation matrix ``[..., 3, 3]`` (Rodrigues)."""
    theta2 = (phi * phi).sum(-1)
    a, b, _ = _coefficients(theta2)
    K = hat(phi)
    eye = torch.eye(3, dtype=phi.dtype, device=phi.device).expand_as(K)
    return eye + a[..., None, None] * K + b[..., None, None] * (K @ K)


def rotation_angle(R: torch.Tensor) -> torch.Tensor:
    """Geodesic angle in radians ``[...]`` of rotation matrices ``[..., 3, 3]``.

    Uses atan2(|vee(R - R^T)| / 2, (tr R - 1) / 2), which is accurate over the whole range [0, pi]
    (acos of the trace alone loses half the digits near 0 and near pi).
    """
    cos = (R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    sin = vee(R - R.transpose(-1, -2)).norm(dim=-1) / 2
    return torch.atan2(sin, cos)


def so3_log(R: torch.Tensor, static: bool = False) -> torch.Tensor:
    """Rotation matrix ``[..., 3, 3]`` -> rotation vector ``[..., 3]`` with angle in [0, pi].

    ``static``: compute the near-pi form always and select it per rotation, instead of asking the device
    whether any rotation needs it (a host sync; the same numbers, for code captured in a CUDA graph)."""
    theta = rotation_angle(R)
    w = vee(R - R.transpose(-1, -2)) / 2  # = sin(t) * axis
    theta2 = theta * theta
    small = theta2 < _SMALL2
    sin_t = torch.sin(theta)
    safe_sin = torch.where(small, torch.ones_like(sin_t), sin_t)
    # t / sin t, with its series near 0.
    scale = torch.where(small, 1 + theta2 / 6 + 7 * theta2**2 / 360, theta / safe_sin)
    phi = w * scale[..., None]
    # Near pi, sin t -> 0 and the antisymmetric part carries no axis: read the axis from the symmetric
    # part instead, R + R^T = 2 cos t I + 2 (1 - cos t) n n^T.
    near_pi = theta > math.pi - 1e-3
    if static or near_pi.any():
        cos_t = torch.cos(theta)
        nnT = (
            (R + R.transpose(-1, -2)) / 2
            - cos_t[..., None, None] * torch.eye(3, dtype=R.dtype, device=R.device)
        ) / ((1 - cos_t)[..., None, None]).clamp_min(1e-12)
        diag = nnT.diagonal(dim1=-2, dim2=-1)
        k = diag.argmax(-1)
        col = torch.gather(nnT, -1, k[..., None, None].expand(*nnT.shape[:-1], 1)).squeeze(-1)
        n = col / col.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        # Choose the sign that agrees with the (small) antisymmetric part, if any.
        sign = torch.where((n * w).sum(-1) < 0, -1.0, 1.0).to(R.dtype)
        phi = torch.where(near_pi[..., None], n * (theta * sign)[..., None], phi)
    return phi


def se3_exp(xi: torch.Tensor) -> torch.Tensor:
    """Twist ``[..., 6]`` ordered (rho, phi) -> homogeneous transform ``[..., 4, 4]``."""
    rho, phi = xi[..., :3], xi[..., 3:]
    theta2 = (phi * phi).sum(-1)
    a, b, c = _coefficients(theta2)
    K = hat(phi)
    K2 = K @ K
    eye = torch.eye(3, dtype=xi.dtype, device=xi.device).expand_as(K)
    R = eye + a[..., None, None] * K + b[..., None, None] * K2
    V = eye + b[..., None, None] * K + c[..., None, None] * K2
    t = (V @ rho[..., None])[..., 0]
    top = torch.cat([R, t[..., None]], dim=-1)
    bottom = torch.zeros(*xi.shape[:-1], 1, 4, dtype=xi.dtype, device=xi.device)
    bottom[..., 0, 3] = 1
    return torch.cat([top, bottom], dim=-2)


_SERIES_SQUARINGS = 5
_SERIES_ORDER = 8
_series_cache: dict[torch.device, tuple[torch.Tensor, ...]] = {}


def _series_constants(device: torch.device) -> tuple[torch.Tensor, ...]:
    """float64 ``(G [6, 16], I4, I8, H [16, 6])``: ``xi @ G`` is ``hat(xi) / 2^s`` flattened (s squarings),
    the 4x4 and 8x8 identities, and ``H`` with ``dL/dxi = dL/dhat(xi) @ H``. Built once per device (outside
    any CUDA graph capture: a solve's first, uncaptured call builds them) and never modified."""
    if device not in _series_cache:
        g = torch.zeros(6, 4, 4, dtype=torch.float64)
        for i in range(3):
            g[i, i, 3] = 1.0  # rho -> translation column
        for k, (i, j) in enumerate(((2, 1), (0, 2), (1, 0))):  # phi_k -> skew entries: hat(phi) @ b = phi x b
            g[3 + k, i, j], g[3 + k, j, i] = 1.0, -1.0
        g = g.reshape(6, 16)
        eye4, eye8 = torch.eye(4, dtype=torch.float64), torch.eye(8, dtype=torch.float64)
        # Powers of two: exact.
        _series_cache[device] = tuple(t.to(device) for t in (g / 2.0**_SERIES_SQUARINGS, eye4, eye8, g.t()))
    return _series_cache[device]


def _expm_scaled(X: torch.Tensor, eye: torch.Tensor) -> torch.Tensor:
    """``exp(2^s X)`` for ``X`` ``[N, n, n]`` (already divided by ``2^s``): a degree-8 Taylor polynomial of
    ``exp(X)`` in Horner form on integer coefficients (``sum_j (q! / j!) X^j``, then one division by
    ``q!``, so every product has unit scale), then ``s`` squarings."""
    eye = eye.expand_as(X)
    q = _SERIES_ORDER
    P = torch.add(X, eye, alpha=float(q))
    coeff = float(q)
    for j in range(q - 2, -1, -1):
        coeff *= j + 1  # q! / j!
        P = torch.baddbmm(eye, X, P, beta=coeff)
    P = P / coeff
    for _ in range(_SERIES_SQUARINGS):
        P = P @ P
    return P


class _SeriesExp(torch.autograd.Function):
    """``exp(hat(xi))`` ``[N, 4, 4]`` of float64 twists ``[N, 6]``, with the gradient from the Frechet
    derivative of the matrix exponential: ``dL/dX = `` the top-right block of ``exp([[X^T, G], [0, X^T]])``
    for ``G = dL/d exp(X)`` (the same series on 8x8 blocks): ~20 ops, where autograd through the series
    takes ~40."""

    @staticmethod
    def forward(ctx, xi: torch.Tensor) -> torch.Tensor:
        gens, eye4, _, _ = _series_constants(xi.device)
        X = (xi @ gens).reshape(-1, 4, 4)  # hat(xi) / 2^s: one non-zero term per entry, exact
        ctx.save_for_backward(X)
        return _expm_scaled(X, eye4)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (X,) = ctx.saved_tensors
        _, _, eye8, hat_t = _series_constants(X.device)
        N = X.shape[0]
        block = X.new_zeros(N, 8, 8)
        Xt = X.transpose(-1, -2)
        block[:, :4, :4] = Xt
        block[:, 4:, 4:] = Xt
        block[:, :4, 4:] = grad * 2.0**-_SERIES_SQUARINGS  # the whole block scaled by 2^-s, as X is
        dX = _expm_scaled(block, eye8)[:, :4, 4:]
        # dX is the gradient with respect to hat(xi) (the Frechet derivative of exp at hat(xi)).
        return dX.reshape(N, 16) @ hat_t


def se3_exp_series(xi: torch.Tensor) -> torch.Tensor:
    """:func:`se3_exp` by scaling and squaring: ``exp(X) = (exp(X / 2^5))^(2^5)`` for ``X = hat(xi)``
    ``[..., 4, 4]``, with a degree-8 Taylor polynomial of ``exp(X / 2^5)``; all in float64, returned in
    ``xi``'s dtype. Its gradient comes from the Frechet derivative of the matrix exponential (the same
    series on 8x8 blocks).

    Why: it is the same map in ~16 batched matrix ops (and ~20 for its gradient) where the closed form takes
    ~50 small elementwise ops (and ~100 for its gradient), which matters inside a CUDA graph of a pose step
    bound by its kernel count. Accuracy: for rotation angles ``t`` the truncation error is below
    ``(t / 32)^9 / 9!`` (2e-15 at pi, 1e-10 at 10 rad) and float64 rounding is ~1e-15, so the result equals
    the closed form's to float32 rounding, gradient included (tested). Smooth everywhere, no small-angle
    branches. Float64 also keeps TF32 matrix products (``allow_tf32``) out of it.
    """
    batch = xi.shape[:-1]
    T = _SeriesExp.apply(xi.reshape(-1, 6).to(torch.float64))
    return T.reshape(*batch, 4, 4).to(xi.dtype)


def se3_log(T: torch.Tensor, static: bool = False) -> torch.Tensor:
    """Homogeneous transform ``[..., 4, 4]`` (or ``[..., 3, 4]``) -> twist ``[..., 6]`` (rho, phi).
    ``static``: no host sync (see :func:`so3_log`)."""
    R, t = T[..., :3, :3], T[..., :3, 3]
    phi = so3_log(R, static)
    theta2 = (phi * phi).sum(-1)
    a, b, _ = _coefficients(theta2)
    small = theta2 < _SMALL2
    safe = torch.where(small, torch.ones_like(theta2), theta2)
    # V^-1 = I - phi^/2 + D phi^2 with D = (1 - A / (2B)) / t^2 -> 1/12 + t^2/720 near 0.
    d = torch.where(small, 1.0 / 12 + theta2 / 720, (1 - a / (2 * b)) / safe)
    K = hat(phi)
    eye = torch.eye(3, dtype=T.dtype, device=T.device).expand_as(K)
    V_inv = eye - 0.5 * K + d[..., None, None] * (K @ K)
    rho = (V_inv @ t[..., None])[..., 0]
    return torch.cat([rho, phi], dim=-1)


def compose(T1: torch.Tensor, T2: torch.Tensor) -> torch.Tensor:
    """``T1 @ T2`` for ``[..., 4, 4]`` transforms (broadcasting)."""
    return T1 @ T2


def inverse(T: torch.Tensor) -> torch.Tensor:
    """Inverse of a rigid ``[..., 4, 4]`` transform, using R^T rather than a general inverse."""
    R, t = T[..., :3, :3], T[..., :3, 3:]
    Rt = R.transpose(-1, -2)
    top = torch.cat([Rt, -Rt @ t], dim=-1)
    return torch.cat([top, T[..., 3:, :]], dim=-2)


def axis_angle_to_matrix(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Unit axis ``[..., 3]`` and angle ``[...]`` (radians) -> rotation ``[..., 3, 3]``."""
    return so3_exp(axis * angle[..., None])


def _common_dtype(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both tensors in their promoted dtype (float32 with float64 -> float64): an estimate is often float64
    while a camera is float32, and matmul refuses mixed dtypes."""
    dtype = torch.promote_types(a.dtype, b.dtype)
    return a.to(dtype), b.to(dtype)


def rotation_error_deg(R_est: torch.Tensor, R_gt: torch.Tensor) -> torch.Tensor:
    """Geodesic distance in degrees between rotations ``[..., 3, 3]`` (or the rotation blocks of poses),
    broadcasting; mixed dtypes are computed in the wider one."""
    R_est, R_gt = _common_dtype(R_est[..., :3, :3], R_gt[..., :3, :3])
    return torch.rad2deg(rotation_angle(R_est.transpose(-1, -2) @ R_gt))


def translation_error(T_est: torch.Tensor, T_gt: torch.Tensor) -> torch.Tensor:
    """Euclidean distance (scene units) between the translations (camera centres for c2w) of two poses
    ``[..., 4, 4]`` (or ``[..., 3, 4]``), broadcasting; mixed dtypes are computed in the wider one."""
    t_est, t_gt = _common_dtype(T_est[..., :3, 3], T_gt[..., :3, 3])
    return (t_est - t_gt).norm(dim=-1)
