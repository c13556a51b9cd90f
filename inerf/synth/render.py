"""pybullet's TinyRenderer as an exact pinhole camera, with supersampled antialiasing.

Conventions (all measured; see /work/shared/DATA.md and ``tests/synth/test_render.py``):

* The camera is given as an **OpenGL-axes c2w** (x right, y up, looks along -z), because that is what
  pybullet's view matrix inverts; callers convert from the internal OpenCV c2w with
  :func:`inerf.geometry.conventions.opencv_to_opengl_c2w` (the one place that flips axes).
* Intrinsics ``fx, fy, cx, cy`` are those of :mod:`inerf.geometry.cameras`: pixel (i, j) is centred at
  (i + 0.5, j + 0.5), so a centred camera has (cx, cy) = (W / 2, H / 2), exactly as Blender renders.
* pybullet takes 4x4 matrices as flat column-major lists.

This module imports neither torch nor trimesh, so render workers start quickly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "RenderResult",
    "RenderSettings",
    "TinyRenderer",
    "import_pybullet",
    "linear_to_srgb",
    "projection_matrix",
    "srgb_to_linear",
    "view_matrix",
]


@dataclass(frozen=True)
class RenderSettings:
    """How TinyRenderer is driven. Recorded verbatim in every dataset's ``meta.json``."""

    supersample: int = 3
    """Render at k x the size and box-filter k x k blocks (antialiasing, soft alpha). Odd, so that the
    centre sample of each block sits exactly on the pixel centre (i + 0.5, j + 0.5): depth is read there."""
    light_direction: tuple[float, float, float] = (0.35, -0.55, 1.0)
    """World direction *towards* the light (z up: from above, in front and to the right of an object
    whose front faces -y). Fixed in the world, so shading is consistent across views."""
    ambient: float = 0.6
    """TinyRenderer's ambient, diffuse and specular coefficients (its defaults are 0.6 / 0.35 / 0.05)."""
    diffuse: float = 0.4
    specular: float = 0.05
    double_sided: bool = True
    """Draw both sides of open surfaces (TinyRenderer culls back faces, so an open surface seen from behind
    would vanish); closed surfaces are wound outwards and drawn once, their back faces being hidden."""

    def __post_init__(self) -> None:
        if self.supersample < 1 or self.supersample % 2 == 0:
            raise ValueError(f"supersample must be an odd positive integer, got {self.supersample}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RenderResult:
    """One rendered view.

    Attributes:
        rgb: ``[H, W, 3]`` float32 sRGB colour in [0, 1], **straight** (not premultiplied) alpha; 0 where
            alpha = 0.
        alpha: ``[H, W]`` float32 coverage in [0, 1] (fraction of the k x k subsamples on the object).
        depth: ``[H, W]`` float32 z-depth (distance along the camera's viewing axis, not along the ray) of
            the surface at the pixel centre, 0 where the centre sees background; None if not requested.
    """

    rgb: np.ndarray
    alpha: np.ndarray
    depth: np.ndarray | None = None


def projection_matrix(
    fx: float, fy: float, cx: float, cy: float, width: int, height: int, near: float, far: float
) -> np.ndarray:
    """OpenGL projection ``[4, 4]`` (row-major) for TinyRenderer, exact with pixel centres at +0.5.

    A camera-space point (x, y, z) in OpenGL axes (z < 0 in front) lands at u = fx x / (-z) + cx,
    v = -fy y / (-z) + cy (v grows downwards). The textbook matrix maps u to x_ndc = 2u / W - 1 and
    v to y_ndc = 1 - 2v / H. TinyRenderer then samples column i at x_ndc = 2i / W - 1 and row j at
    y_ndc = 1 - 2(j + 1) / H (measured: the image comes out shifted by half a pixel), so we shift NDC by
    -1/W and -1/H: pixel (i, j) then shows u = i + 0.5, v = j + 0.5, its centre in our convention.
    """
    P = np.zeros((4, 4))
    P[0, 0] = 2.0 * fx / width
    P[1, 1] = 2.0 * fy / height
    # Principal point, then the half-pixel correction (+1/W, +1/H; zero and 1/W for a centred camera).
    P[0, 2] = 1.0 - 2.0 * cx / width + 1.0 / width
    P[1, 2] = 2.0 * cy / height - 1.0 + 1.0 / height
    P[2, 2] = -(far + near) / (far - near)
    P[2, 3] = -2.0 * far * near / (far - near)
    P[3, 2] = -1.0
    return P


def view_matrix(c2w_gl: np.ndarray) -> np.ndarray:
    """pybullet's view matrix: the world-to-camera ``[4, 4]`` of an OpenGL-axes c2w (row-major)."""
    c2w_gl = np.asarray(c2w_gl, dtype=np.float64)
    R, t = c2w_gl[:3, :3], c2w_gl[:3, 3]
    w2c = np.eye(4)
    w2c[:3, :3] = R.T
    w2c[:3, 3] = -R.T @ t
    return w2c


def _column_major(m: np.ndarray) -> list[float]:
    return np.asarray(m, dtype=np.float64).reshape(4, 4).T.reshape(-1).tolist()


_SRGB_LUT = None


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] (or uint8) -> linear light, float32 (IEC 61966-2-1)."""
    global _SRGB_LUT
    if x.dtype == np.uint8:
        if _SRGB_LUT is None:
            _SRGB_LUT = srgb_to_linear(np.arange(256, dtype=np.float32) / 255.0)
        return _SRGB_LUT[x]
    x = np.asarray(x, dtype=np.float32)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] -> sRGB-encoded values in [0, 1], float32."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def import_pybullet():
    """``import pybullet`` without the "pybullet build time: ..." line that its C extension prints on
    stderr when it loads (it would garble progress bars and the CLI's output)."""
    import os
    import sys

    if "pybullet" in sys.modules:
        return sys.modules["pybullet"]
    try:
        sys.stderr.flush()
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except (OSError, AttributeError, ValueError):  # no real stderr (embedded, captured): import noisily
        import pybullet

        return pybullet
    os.dup2(devnull, 2)
    try:
        import pybullet
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return pybullet


class TinyRenderer:
    """A private pybullet DIRECT connection holding one object (a list of OBJ parts).

    One per process: pybullet is not thread-safe and every connection has its own scene. Use as a
    context manager, or call :meth:`close`.
    """

    def __init__(self, settings: RenderSettings | None = None):
        self.p = import_pybullet()
        self.settings = settings or RenderSettings()
        self.client = self.p.connect(self.p.DIRECT)
        self._loaded_key: object = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.client is not None and self.client >= 0:
            self.p.disconnect(physicsClientId=self.client)
        self.client = None

    def load(
        self, parts: list[tuple[str | Path, tuple[float, float, float] | None]], key: object = None
    ) -> None:
        """Replace the scene with ``parts``: ``(obj_path, rgb)`` pairs, ``rgb`` None for a textured part.

        The part colour is passed as the visual shape's ``rgbaColor`` (TinyRenderer multiplies the
        texture, or a white default, by it), so a textured part gets white. Skips the work when ``key``
        equals the key of the parts already loaded.
        """
        if key is not None and key == self._loaded_key:
            return
        p = self.p
        p.resetSimulation(physicsClientId=self.client)
        for obj_path, rgb in parts:
            color = [1.0, 1.0, 1.0, 1.0] if rgb is None else [*map(float, rgb), 1.0]
            shape = p.createVisualShape(
                p.GEOM_MESH, fileName=str(obj_path), rgbaColor=color, physicsClientId=self.client
            )
            if shape < 0:
                raise RuntimeError(f"pybullet could not load {obj_path}")
            p.createMultiBody(baseMass=0, baseVisualShapeIndex=shape, physicsClientId=self.client)
        self._loaded_key = key

    def render(
        self,
        c2w_gl: np.ndarray,
        fx: float,
        fy: float,
        cx: float,
        cy: float,
        width: int,
        height: int,
        near: float,
        far: float,
        depth: bool = False,
        bound_points: np.ndarray | None = None,
    ) -> RenderResult:
        """Render the loaded object from one camera.

        Args:
            c2w_gl: ``[4, 4]`` camera-to-world in **OpenGL** camera axes.
            fx, fy, cx, cy: intrinsics in pixels of the output image (pixel centres at +0.5).
            width, height: output size W, H.
            near, far: clipping planes (z-depth); they must enclose the object, and tighter bounds give
                more precise depth.
            depth: also return the z-depth at pixel centres.
            bound_points: ``[N, 3]`` world points whose convex hull holds the object (its vertices).
                Only the box of pixels they project to is rasterised, the rest is background by
                construction; TinyRenderer's cost grows with the pixels it fills, so this saves about
                half the time. The result is identical.
        """
        k = self.settings.supersample
        x0, y0, x1, y1 = 0, 0, width, height
        if bound_points is not None:
            x0, y0, x1, y1 = _pixel_box(bound_points, c2w_gl, fx, fy, cx, cy, width, height)
        w, h = x1 - x0, y1 - y0
        rgb = np.zeros((height, width, 3), np.float32)
        alpha = np.zeros((height, width), np.float32)
        z = np.zeros((height, width), np.float32) if depth else None
        out = RenderResult(rgb=rgb, alpha=alpha, depth=z)
        if w <= 0 or h <= 0:
            return out
        W, H = w * k, h * k
        # Supersampling scales the intrinsics; subsample (a, b) of pixel (i, j) is centred at
        # (i + (a + 0.5) / k, j + (b + 0.5) / k), so the box filter keeps pixel centres at +0.5.
        # Rendering only the window [x0, x1) x [y0, y1) moves the principal point by its corner (whole
        # pixels, so the window's pixel grid is the image's).
        proj = projection_matrix(fx * k, fy * k, (cx - x0) * k, (cy - y0) * k, W, H, near, far)
        s = self.settings
        _, _, rgba, zbuf, seg = self.p.getCameraImage(
            W,
            H,
            viewMatrix=_column_major(view_matrix(c2w_gl)),
            projectionMatrix=_column_major(proj),
            renderer=self.p.ER_TINY_RENDERER,
            lightDirection=list(s.light_direction),
            shadow=0,
            lightAmbientCoeff=s.ambient,
            lightDiffuseCoeff=s.diffuse,
            lightSpecularCoeff=s.specular,
            physicsClientId=self.client,
        )
        rgba = np.asarray(rgba, dtype=np.uint8).reshape(H, W, 4)
        mask = np.asarray(seg).reshape(H, W) >= 0  # -1 where no body was hit
        # Average colours in linear light (physically, coverage mixes light, not sRGB codes), only over
        # subsamples on the object: the result is straight (un-premultiplied) colour.
        lin = srgb_to_linear(rgba[..., :3])
        np.multiply(lin, mask[..., None], out=lin)
        lin_sum = _block_sum(lin, k)
        count = _block_sum(mask.astype(np.float32), k)
        win = (slice(y0, y1), slice(x0, x1))
        rgb[win] = linear_to_srgb(lin_sum / np.maximum(count, 1.0)[..., None])
        rgb[win][count == 0] = 0.0
        alpha[win] = count / float(k * k)
        if depth:
            c = k // 2  # the centre subsample of each block lies on the pixel centre (k is odd)
            d = np.asarray(zbuf, dtype=np.float64).reshape(H, W)[c::k, c::k]
            hit = mask[c::k, c::k]
            # OpenGL depth-buffer value d in [0, 1] -> z-depth (inverse of the projection's z row).
            z_depth = far * near / (far - (far - near) * d)
            out.depth[win] = np.where(hit, z_depth, 0.0)
        return out


def _block_sum(x: np.ndarray, k: int) -> np.ndarray:
    """Sums over k x k blocks of ``[k h, k w(, c)]`` -> ``[h, w(, c)]``, float32. Rows of a block are
    summed first, over contiguous memory; this is the antialiasing box filter."""
    h, w = x.shape[0] // k, x.shape[1] // k
    rest = x.shape[2:]
    rows = x.reshape(h, k, w * k, *rest).sum(axis=1, dtype=np.float32)
    return rows.reshape(h, w, k, *rest).sum(axis=2, dtype=np.float32)


def _pixel_box(
    points: np.ndarray,
    c2w_gl: np.ndarray,
    fx: float,
    fy: float,
    cx: float,
    cy: float,
    width: int,
    height: int,
) -> tuple[int, int, int, int]:
    """Integer pixel box ``(x0, y0, x1, y1)`` (half-open, clipped to the image) that holds the projections
    of ``points`` plus one pixel all round (a triangle covers part of a pixel it touches)."""
    R, t = c2w_gl[:3, :3], c2w_gl[:3, 3]
    p = (np.asarray(points, dtype=np.float64) - t) @ R  # camera coordinates, OpenGL axes
    depth = -p[:, 2]  # the camera looks along -z
    if (depth <= 0).any():  # a point behind the camera: its projection is meaningless, render it all
        return 0, 0, width, height
    u = fx * p[:, 0] / depth + cx
    v = -fy * p[:, 1] / depth + cy  # OpenGL y is up, image rows go down
    x0 = max(0, int(np.floor(u.min())) - 1)
    y0 = max(0, int(np.floor(v.min())) - 1)
    x1 = min(width, int(np.ceil(u.max())) + 1)
    y1 = min(height, int(np.ceil(v.max())) + 1)
    return x0, y0, x1, y1
