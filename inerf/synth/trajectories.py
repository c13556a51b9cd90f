"""Camera placements for generated datasets, as internal-convention poses.

Every pose here is a camera-to-world ``c2w`` ``[4, 4]`` float64 numpy array in **OpenCV camera axes**
(x right, y down, looks along +z; :mod:`inerf.geometry.conventions`). The world is z-up. Cameras look at
a target (the origin) with no roll: the image's "up" is the projection of world +z.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "PATH_KINDS",
    "circle_positions",
    "depth_extents",
    "fit_radius",
    "hemisphere_positions",
    "look_at",
    "path_poses",
    "spiral_positions",
    "to_opengl",
]


def look_at(eye, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """OpenCV c2w ``[4, 4]`` of a camera at ``eye`` looking at ``target``, world ``up`` up in the image.

    Looking straight along ``up`` (a camera at the pole) leaves the roll undefined; world +y then
    points up in the image instead.
    """
    eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-6:  # forward is parallel to up
        right = np.cross(forward, np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)  # OpenCV: y points down, z forward, x = y cross z = right
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, eye
    return c2w


def hemisphere_positions(n: int, radius: float, rng: np.random.Generator) -> np.ndarray:
    """``[n, 3]`` points uniform (by area) on the upper hemisphere z >= 0 of ``radius``: z uniform in
    [0, 1] (Archimedes' hat-box theorem), azimuth uniform."""
    z = rng.uniform(0.0, 1.0, n)
    phi = rng.uniform(0.0, 2 * np.pi, n)
    s = np.sqrt(1.0 - z**2)
    return radius * np.stack([s * np.cos(phi), s * np.sin(phi), z], axis=1)


def circle_positions(n: int, radius: float, elevation_deg: float = 30.0) -> np.ndarray:
    """``[n, 3]`` points on a horizontal circle at ``elevation_deg`` above the equator, starting on the
    +x side and turning counter-clockwise seen from above (azimuth 2 pi i / n), as the NeRF test paths."""
    phi = 2 * np.pi * np.arange(n) / n
    el = np.radians(elevation_deg)
    return radius * np.stack(
        [np.cos(el) * np.cos(phi), np.cos(el) * np.sin(phi), np.full(n, np.sin(el))], axis=1
    )


def spiral_positions(n: int, radius: float) -> np.ndarray:
    """``[n, 3]`` points on a spiral over the upper hemisphere, from the top down to the equator, evenly
    spread by area (z = 1 - (i + 0.5) / n, azimuth advancing by the golden angle). The same for every
    object, like SRN's test trajectories, and deterministic."""
    i = np.arange(n)
    z = 1.0 - (i + 0.5) / n
    phi = i * np.pi * (3.0 - np.sqrt(5.0))
    s = np.sqrt(1.0 - z**2)
    return radius * np.stack([s * np.cos(phi), s * np.sin(phi), z], axis=1)


PATH_KINDS = ("orbit", "handheld")
"""Camera paths of :func:`path_poses`."""


def _rotation(axis_angle: np.ndarray) -> np.ndarray:
    """Rotation matrix of a rotation vector ``[3]`` (Rodrigues)."""
    theta = float(np.linalg.norm(axis_angle))
    if theta < 1e-12:
        return np.eye(3)
    k = axis_angle / theta
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * K + (1 - np.cos(theta)) * K @ K


def path_poses(
    kind: str,
    n: int,
    radius: float,
    rng: np.random.Generator,
    step_deg: float = 1.5,
    noise_deg: float = 0.2,
    elevation_deg: float = 30.0,
) -> np.ndarray:
    """``[n, 4, 4]`` OpenCV c2w of a smooth camera path of ``n`` frames around the origin, with small noise.

    * ``orbit``: a circle about the vertical axis, ``step_deg`` degrees of azimuth per frame, the elevation
      swinging +-5 degrees about ``elevation_deg`` once per turn, looking at the origin upright.
    * ``handheld``: a walk around the object as a person holding a camera makes it: the pace varies
      (+-30%), the elevation swings +-10 degrees, the distance +-6%, the aim wanders up to 0.1 units off the
      origin and the camera rolls up to +-4 degrees, each on its own cycle of about one turn.

    Then every frame is shaken independently: the camera turns about its own centre by a random rotation of
    ``noise_deg`` degrees (standard deviation per axis) and its centre moves by ``radius * noise_deg``
    radians' worth (the same angle seen from the origin), so frame-to-frame motion is smooth plus jitter.
    """
    if kind not in PATH_KINDS:
        raise ValueError(f"unknown camera path {kind!r}; expected one of {PATH_KINDS}")
    i = np.arange(n, dtype=np.float64)
    step = np.radians(step_deg)
    # Progress in turns around the object: the slow cycles below are tied to it, so a short path moves as
    # gently per frame as a long one (one turn = 240 frames at 1.5 degrees per frame).
    u = i * abs(step) / (2 * np.pi)
    phase = rng.uniform(0.0, 2 * np.pi, 4)
    if kind == "orbit":
        azimuth = step * i
        elevation = np.radians(elevation_deg + 5.0 * np.sin(2 * np.pi * u + phase[0]))
        dist = np.full(n, radius)
        aim = np.zeros((n, 3))
        roll = np.zeros(n)
    else:
        # The pace varies, so the azimuth is the running sum of the per-frame steps.
        pace = 1.0 + 0.3 * np.sin(2 * np.pi * 1.5 * u + phase[0])
        azimuth = step * np.concatenate([[0.0], np.cumsum(pace[:-1])])
        elevation = np.radians(elevation_deg - 5.0 + 10.0 * np.sin(2 * np.pi * 0.8 * u + phase[1]))
        dist = radius * (1.0 + 0.06 * np.sin(2 * np.pi * 1.2 * u + phase[2]))
        aim = 0.1 * np.stack(
            [
                np.sin(2 * np.pi * 0.7 * u + phase[3]),
                np.cos(2 * np.pi * 0.9 * u + phase[0]),
                0.5 * np.sin(2 * np.pi * u),
            ],
            axis=1,
        )
        roll = np.radians(4.0) * np.sin(2 * np.pi * 1.1 * u + phase[1])
    eyes = dist[:, None] * np.stack(
        [np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)], axis=1
    )
    noise = np.radians(noise_deg)
    out = np.empty((n, 4, 4))
    for k in range(n):
        c2w = look_at(eyes[k] + radius * noise * rng.standard_normal(3), aim[k])
        # Roll about the optical axis (camera z: a right multiplication), then shake about the centre.
        shake = _rotation(noise * rng.standard_normal(3))
        c2w[:3, :3] = shake @ c2w[:3, :3] @ _rotation(np.array([0.0, 0.0, roll[k]]))
        out[k] = c2w
    return out


def depth_extents(
    vertices: np.ndarray, c2w: np.ndarray, chunk: int = 1 << 20
) -> tuple[np.ndarray, np.ndarray]:
    """Per view: the smallest z-depth and the largest Euclidean distance of any vertex.

    Args:
        vertices: ``[N, 3]`` world points.
        c2w: ``[B, 4, 4]`` OpenCV c2w.
    Returns:
        ``z_min [B]`` and ``dist_max [B]``. Near <= min z-depth and far >= max distance bound the object
        both as z-depth and as distance along any ray (z-depth <= distance).
    """
    z_min = np.empty(len(c2w))
    d_max = np.empty(len(c2w))
    step = max(1, chunk // max(1, len(vertices)))
    for s in range(0, len(c2w), step):
        R, t = c2w[s : s + step, :3, :3], c2w[s : s + step, :3, 3]
        rel = vertices[None] - t[:, None, :]  # [b, N, 3]
        z = np.einsum("bnk,bk->bn", rel, R[:, :, 2])  # camera z = forward axis . (p - eye)
        z_min[s : s + step] = z.min(axis=1)
        d_max[s : s + step] = np.sqrt((rel**2).sum(axis=2).max(axis=1))
    return z_min, d_max


def fit_radius(vertices: np.ndarray, fov: float, minimum: float, margin: float = 1.1) -> float:
    """Smallest camera distance (at least ``minimum``) from which the sphere around the origin that
    holds every vertex fits in a cone of half-angle ``fov / 2`` with ``margin`` to spare, so the object
    never touches the image border from any viewpoint looking at the origin."""
    r = float(np.sqrt((vertices**2).sum(axis=1).max()))
    return max(minimum, margin * r / np.sin(fov / 2))


def to_opengl(c2w: np.ndarray) -> np.ndarray:
    """OpenCV c2w ``[..., 4, 4]`` -> OpenGL/Blender c2w, through the package's one named converter."""
    import torch

    from inerf.geometry.conventions import opencv_to_opengl_c2w

    return opencv_to_opengl_c2w(torch.from_numpy(np.ascontiguousarray(c2w, dtype=np.float64))).numpy()
