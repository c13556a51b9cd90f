"""Similarity alignment of two point sets (Umeyama 1991), to compare poses known up to a similarity.

Structure-from-motion recovers cameras up to a similarity (scale, rotation, translation) of the world, so
its poses are compared with ground truth after aligning the camera centres with :func:`umeyama`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["aligned_centre_errors", "umeyama"]


def umeyama(src, dst, with_scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ~ s R src + t`` between corresponding points ``[N, 3]`` (N >= 3).

    Closed form (Umeyama 1991): with centred points and covariance ``S = dst_c^T src_c / N = U D V^T``,
    ``R = U E V^T`` where ``E = diag(1, 1, det(U V^T))`` keeps R a rotation (no mirror),
    ``s = trace(D E) / var(src)`` and ``t = mean(dst) - s R mean(src)``.

    Returns:
        ``(s, R [3, 3], t [3])`` in float64. ``s = 1`` when ``with_scale`` is False.
    """
    X = np.asarray(src, dtype=np.float64)
    Y = np.asarray(dst, dtype=np.float64)
    if X.shape != Y.shape or X.ndim != 2 or X.shape[1] != 3 or len(X) < 3:
        raise ValueError(f"expected two [N, 3] arrays with N >= 3, got {X.shape} and {Y.shape}")
    mx, my = X.mean(0), Y.mean(0)
    Xc, Yc = X - mx, Y - my
    U, D, Vt = np.linalg.svd(Yc.T @ Xc / len(X))
    E = np.eye(3)
    E[2, 2] = np.sign(np.linalg.det(U @ Vt)) or 1.0  # a reflection would fit better; forbid it
    R = U @ E @ Vt
    var = (Xc**2).sum(1).mean()
    s = float(np.trace(np.diag(D) @ E) / var) if with_scale and var > 0 else 1.0
    return s, R, my - s * R @ mx


def aligned_centre_errors(
    centres_est, centres_ref
) -> tuple[np.ndarray, tuple[float, np.ndarray, np.ndarray]]:
    """Distances ``[N]`` between reference centres and estimated centres after the best similarity
    (:func:`umeyama`, estimated -> reference), in reference units; and that similarity."""
    s, R, t = umeyama(centres_est, centres_ref)
    aligned = s * np.asarray(centres_est, dtype=np.float64) @ R.T + t
    return np.linalg.norm(aligned - np.asarray(centres_ref, dtype=np.float64), axis=1), (s, R, t)
