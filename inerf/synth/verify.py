"""Checks that a generated dataset's poses are exact to the pixel, using only what the dataset records.

For every view: the asset's mesh vertices (``meta.json``'s ``mesh_path`` read by trimesh, mapped by
``object_to_world``) are projected with the dataset's intrinsics and pose through
:func:`inerf.geometry.cameras.project`; they must land on object pixels, and the box around them must
match the silhouette's box. With depth maps, pixel centres are unprojected with
:func:`inerf.geometry.cameras.unproject` and must lie on the mesh (exact point-triangle distances); they
are also compared with rays cast against the mesh (a plain Moller-Trumbore intersection, independent of
the renderer).

This is the acceptance test of ``inerf synth``; it is also a quick way to check a dataset from elsewhere
in the same layouts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from inerf.errors import InerfError
from inerf.geometry.cameras import project, unproject
from inerf.geometry.conventions import PIXEL_CENTER, opengl_to_opencv_c2w

__all__ = [
    "ViewCheck",
    "check_scene",
    "check_srn_split",
    "closest_points_on_triangles",
    "point_mesh_distance",
    "ray_mesh_depth",
    "read_srn_intrinsics",
    "summarise",
    "world_mesh",
]


@dataclass
class ViewCheck:
    """Result for one view.

    Attributes:
        name: ``split/index`` or ``instance/index``.
        inside_fraction: fraction of mesh vertices that land on a pixel with alpha > 0.5. Vertices on the
            silhouette's rim land on partly covered pixels (about half the time below 0.5), so this is
            1 only for coarse meshes; ~0.9-0.97 is normal for smooth ones.
        near_fraction: fraction that land on such a pixel or one of its 8 neighbours (within one pixel,
            the tolerance of the box test).
        bbox_error: largest |difference| in pixels between a side of the silhouette's box (alpha > 0.5)
            and the same side of the projected vertices' box.
        bbox_signed: the four signed differences (left, top, right, bottom), silhouette minus projection.
            Their mean over many views is ~0 for exact poses and +-0.5 for a half-pixel error.
        depth_error: largest distance from a depth sample, unprojected through its pixel centre, to the
            mesh (world units), or None without depth maps.
        ray_depth_error: largest |stored z-depth - ray-cast z-depth| over the same pixels. Larger than
            ``depth_error`` at grazing angles, where a tiny sub-pixel rasterisation offset changes the
            depth along the ray a lot but hardly moves the point off the surface.
    """

    name: str
    inside_fraction: float
    near_fraction: float
    bbox_error: float
    bbox_signed: tuple[float, float, float, float]
    depth_error: float | None = None
    ray_depth_error: float | None = None


def world_mesh(meta_asset: dict, object_to_world) -> tuple[np.ndarray, np.ndarray]:
    """The asset's mesh in the world frame: vertices ``[N, 3]`` and faces ``[F, 3]``."""
    from inerf.synth.assets import load_mesh

    path = Path(meta_asset["mesh_path"])
    if not path.is_file():
        raise InerfError(f"the dataset's mesh {path} is not on this machine")
    vertices, faces = load_mesh(path)
    M = np.asarray(object_to_world, dtype=np.float64)
    return vertices @ M[:3, :3].T + M[:3, 3], faces


def _silhouette_checks(
    vertices: torch.Tensor, c2w: torch.Tensor, fx, fy, cx, cy, mask: np.ndarray
) -> tuple[float, float, float, tuple]:
    """(inside_fraction, near_fraction, bbox_error, bbox_signed) of :class:`ViewCheck`."""
    uv, z = project(vertices, c2w, fx, fy, cx, cy)
    uv = uv.numpy()
    H, W = mask.shape
    # Pixel (i, j) covers [i, i + 1) x [j, j + 1): the pixel a point lands on is floor(uv).
    ij = np.floor(uv).astype(np.int64)
    valid = (ij[:, 0] >= 0) & (ij[:, 0] < W) & (ij[:, 1] >= 0) & (ij[:, 1] < H) & (z.numpy() > 0)
    padded = np.pad(mask, 1)
    dilated = np.zeros_like(mask)
    for dj in (0, 1, 2):
        for di in (0, 1, 2):
            dilated |= padded[dj : dj + H, di : di + W]
    inside = np.zeros(len(uv), dtype=bool)
    near = np.zeros(len(uv), dtype=bool)
    inside[valid] = mask[ij[valid, 1], ij[valid, 0]]
    near[valid] = dilated[ij[valid, 1], ij[valid, 0]]
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return float(inside.mean()), float(near.mean()), float("inf"), (np.inf,) * 4
    # The silhouette's box in continuous coordinates: from the left edge of its first pixel to the
    # right edge of its last.
    sil = np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float64)
    proj = np.array([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])
    signed = sil - proj
    return float(inside.mean()), float(near.mean()), float(np.abs(signed).max()), tuple(signed.tolist())


def ray_mesh_depth(
    origins: np.ndarray, directions: np.ndarray, vertices: np.ndarray, faces: np.ndarray, chunk: int = 2048
) -> np.ndarray:
    """Nearest intersection parameter t (``origins + t * directions``) of each ray with the triangles,
    both sides; inf where a ray misses. Shapes: ``[M, 3]``, ``[M, 3]``, ``[N, 3]``, ``[F, 3]`` -> ``[M]``.
    Plain Moller-Trumbore in float64, chunked over faces."""
    best = np.full(len(origins), np.inf)
    for s in range(0, len(faces), chunk):
        tri = vertices[faces[s : s + chunk]]  # [f, 3, 3]
        e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
        pvec = np.cross(directions[:, None, :], e2[None])  # [M, f, 3]
        det = (e1[None] * pvec).sum(-1)
        ok = np.abs(det) > 1e-14
        inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        tvec = origins[:, None, :] - tri[None, :, 0]
        u = (tvec * pvec).sum(-1) * inv
        qvec = np.cross(tvec, e1[None])
        v = (directions[:, None, :] * qvec).sum(-1) * inv
        t = (e2[None] * qvec).sum(-1) * inv
        hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
        best = np.minimum(best, np.where(hit, t, np.inf).min(axis=1))
    return best


def closest_points_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Closest point of triangle (a, b, c) to point p, for ``[K, 3]`` arrays of pairs (Voronoi-region
    case analysis, as in Ericson's Real-Time Collision Detection, 5.1.5)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = p - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = p - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    denom = va + vb + vc
    safe = np.where(np.abs(denom) > 1e-300, denom, 1.0)
    out = a + ab * (vb / safe)[:, None] + ac * (vc / safe)[:, None]  # interior (face region)
    # Edge regions, then vertex regions (later assignments win, so vertices override edges).
    t_ab = d1 / np.where(d1 - d3 != 0, d1 - d3, 1.0)
    m = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    out[m] = (a + ab * t_ab[:, None])[m]
    t_ac = d2 / np.where(d2 - d6 != 0, d2 - d6, 1.0)
    m = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    out[m] = (a + ac * t_ac[:, None])[m]
    e = (d4 - d3) + (d5 - d6)
    t_bc = (d4 - d3) / np.where(e != 0, e, 1.0)
    m = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)
    out[m] = (b + (c - b) * t_bc[:, None])[m]
    m = (d1 <= 0) & (d2 <= 0)
    out[m] = a[m]
    m = (d3 >= 0) & (d4 <= d3)
    out[m] = b[m]
    m = (d6 >= 0) & (d5 <= d6)
    out[m] = c[m]
    return out


def point_mesh_distance(
    points: np.ndarray, vertices: np.ndarray, faces: np.ndarray, radius: float = 1e-2
) -> np.ndarray:
    """Distance ``[M]`` from each point ``[M, 3]`` to the triangle mesh, exact up to ``radius`` (points
    farther than that from every triangle's bounding box get inf). Only triangles whose box, grown by
    ``radius``, holds the point are tested."""
    tri = vertices[faces]
    lo, hi = tri.min(axis=1) - radius, tri.max(axis=1) + radius
    out = np.full(len(points), np.inf)
    for k, p in enumerate(points):
        cand = np.flatnonzero(((p >= lo) & (p <= hi)).all(axis=1))
        if len(cand):
            t = tri[cand]
            q = closest_points_on_triangles(np.broadcast_to(p, (len(cand), 3)), t[:, 0], t[:, 1], t[:, 2])
            out[k] = np.sqrt(((q - p) ** 2).sum(axis=1)).min()
    return out


def _depth_check(
    depth: np.ndarray,
    c2w: torch.Tensor,
    fx,
    fy,
    cx,
    cy,
    vertices: np.ndarray,
    faces: np.ndarray,
    samples: int,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """(largest distance from an unprojected depth sample to the mesh, largest |stored - ray-cast| z)."""
    j, i = np.nonzero(depth > 0)
    if len(i) == 0:
        return float("inf"), float("inf")
    pick = rng.choice(len(i), size=min(samples, len(i)), replace=False)
    ij = torch.from_numpy(np.stack([i[pick], j[pick]], axis=1)).double() + PIXEL_CENTER
    c2w = c2w.double()
    stored = torch.from_numpy(depth[j[pick], i[pick]].astype(np.float64))
    points = unproject(ij, stored, c2w, fx, fy, cx, cy).numpy()
    distance = point_mesh_distance(points, vertices, faces)
    # Rays through the pixel centres with unit z-depth step: then the ray parameter t is the z-depth.
    target = unproject(ij, torch.ones_like(stored), c2w, fx, fy, cx, cy).numpy()
    origin = c2w[:3, 3].numpy()
    t = ray_mesh_depth(np.broadcast_to(origin, target.shape), target - origin, vertices, faces)
    return float(distance.max()), float(np.abs(stored.numpy() - t).max())


def check_scene(
    folder: str | Path,
    splits=("train", "val", "test"),
    views_per_split: int | None = None,
    depth_samples: int = 200,
    seed: int = 0,
) -> list[ViewCheck]:
    """Check a NeRF-synthetic scene written by ``inerf synth scene`` (transparent background).

    Args:
        folder: the scene folder.
        views_per_split: check only the first N views of each split (None: all).
        depth_samples: pixels per view compared with ray casting when depth maps exist.
    """
    from PIL import Image

    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    if meta.get("images", {}).get("background") != "transparent":
        raise InerfError("the silhouette check needs a scene with a transparent background")
    vertices, faces = world_mesh(meta["asset"], meta["object_to_world"])
    v = torch.from_numpy(vertices)
    rng = np.random.default_rng(seed)
    out = []
    for split in splits:
        tf = json.loads((folder / f"transforms_{split}.json").read_text())
        frames = tf["frames"][:views_per_split]
        for idx, frame in enumerate(frames):
            path = folder / (frame["file_path"] + ".png")
            with Image.open(path) as im:
                rgba = np.asarray(im.convert("RGBA"))
            H, W = rgba.shape[:2]
            f = 0.5 * W / np.tan(0.5 * tf["camera_angle_x"])
            c2w = opengl_to_opencv_c2w(torch.tensor(frame["transform_matrix"], dtype=torch.float64))
            sil = _silhouette_checks(v, c2w, f, f, W / 2, H / 2, rgba[..., 3] > 127)
            depth_errors = (None, None)
            depth_file = folder / (frame["file_path"] + "_depth.npy")
            if depth_file.is_file():
                depth_errors = _depth_check(
                    np.load(depth_file), c2w, f, f, W / 2, H / 2, vertices, faces, depth_samples, rng
                )
            out.append(ViewCheck(f"{split}/{idx}", *sil, *depth_errors))
    return out


def read_srn_intrinsics(path: str | Path) -> tuple[float, float, float, int, int]:
    """``f, cx, cy, H, W`` from an SRN ``intrinsics.txt`` (line 1: ``f cx cy 0.``; last line: ``H W``)."""
    lines = [ln.split() for ln in Path(path).read_text().splitlines() if ln.strip()]
    f, cx, cy = (float(x) for x in lines[0][:3])
    H, W = (int(float(x)) for x in lines[-1][:2])
    return f, cx, cy, H, W


def check_srn_split(folder: str | Path, views_per_instance: int | None = None) -> list[ViewCheck]:
    """Check one split folder (``<out>_train``) written by ``inerf synth category``.

    The silhouette is SRN's (and pixelNeRF's) foreground: pixels where no channel equals 255.
    ``intrinsics.txt`` puts pixel centres at integers (SRN's convention), so its cx, cy move by +0.5.
    """
    from PIL import Image

    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    out = []
    for name, inst in sorted(meta["instances"].items()):
        vertices, _ = world_mesh(inst["asset"], inst["object_to_world"])
        v = torch.from_numpy(vertices)
        f, cx, cy, _, _ = read_srn_intrinsics(folder / name / "intrinsics.txt")
        cx, cy = cx + PIXEL_CENTER, cy + PIXEL_CENTER  # SRN's integer pixel centres -> ours
        poses = sorted((folder / name / "pose").glob("*.txt"))[:views_per_instance]
        for pose_file in poses:
            c2w = torch.from_numpy(np.loadtxt(pose_file).reshape(4, 4))  # SRN stores OpenCV c2w
            with Image.open(folder / name / "rgb" / (pose_file.stem + ".png")) as im:
                rgb = np.asarray(im.convert("RGB"))
            mask = (rgb != 255).all(axis=2)  # SRN's foreground: no saturated channel
            out.append(ViewCheck(f"{name}/{pose_file.stem}", *_silhouette_checks(v, c2w, f, f, cx, cy, mask)))
    return out


def summarise(checks: list[ViewCheck]) -> dict:
    """Worst case over views, and the mean signed box difference (its bias)."""
    signed = np.array([c.bbox_signed for c in checks], dtype=np.float64)
    depth = [c.depth_error for c in checks if c.depth_error is not None]
    ray = [c.ray_depth_error for c in checks if c.ray_depth_error is not None]
    return {
        "views": len(checks),
        "inside_fraction_min": min(c.inside_fraction for c in checks),
        "near_fraction_min": min(c.near_fraction for c in checks),
        "bbox_error_max": max(c.bbox_error for c in checks),
        "bbox_bias": signed.mean(axis=0).tolist(),
        # A shift of the image moves both sides of the box the same way; a looser or tighter silhouette
        # threshold moves them apart. So the mean of opposite sides isolates a shift.
        "bbox_shift": [
            float((signed[:, 0] + signed[:, 2]).mean() / 2),
            float((signed[:, 1] + signed[:, 3]).mean() / 2),
        ],
        "depth_error_max": max(depth) if depth else None,
        "ray_depth_error_max": max(ray) if ray else None,
    }
