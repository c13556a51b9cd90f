"""360-degree videos of a pixelNeRF conditioned on a few source views (the published ``gen_video.py``).

Frames are rendered by the shared renderer (:mod:`inerf.render`) with pixelNeRF's published settings
(:mod:`inerf.pixelnerf.rendering`), like every other render of a pixelNeRF (pose solves included).

Trajectories are returned as c2w in inerf's convention (OpenCV camera axes); they are built in the
published OpenGL form and converted once with :func:`inerf.geometry.conventions.opengl_to_opencv_c2w`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from inerf.geometry.cameras import Cameras
from inerf.geometry.conventions import opengl_to_opencv_c2w
from inerf.render.model import Model

__all__ = [
    "orbit_c2w",
    "real_orbit_c2w",
    "render_video_frames",
    "scene_orbit_c2w",
    "spherical_c2w",
    "video_stem",
    "write_video",
]

# NeRF's spherical camera is built in a y-up frame; pixelNeRF's SRN/NMR worlds are z-up. This rotation maps
# the former onto the latter (x -> -x, y -> z, z -> y).
_Y_UP_TO_Z_UP = torch.tensor([[-1.0, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=torch.float64)


def spherical_c2w(theta_deg: float, phi_deg: float, radius: float) -> torch.Tensor:
    """Camera on a sphere looking at the origin in a z-up world (NeRF's ``pose_spherical``).

    The camera starts at distance ``radius`` on +z of a y-up frame, is rotated by ``phi`` about x (negative
    = above the object) and by ``theta`` about y, then the frame is turned z-up.

    Returns:
        ``[4, 4]`` float32 c2w, OpenCV camera axes.
    """
    th, ph = math.radians(theta_deg), math.radians(phi_deg)
    trans = torch.eye(4, dtype=torch.float64)
    trans[2, 3] = radius
    rot_phi = torch.tensor(
        [[1, 0, 0, 0], [0, math.cos(ph), -math.sin(ph), 0], [0, math.sin(ph), math.cos(ph), 0], [0, 0, 0, 1]],
        dtype=torch.float64,
    )
    rot_theta = torch.tensor(
        [[math.cos(th), 0, -math.sin(th), 0], [0, 1, 0, 0], [math.sin(th), 0, math.cos(th), 0], [0, 0, 0, 1]],
        dtype=torch.float64,
    )
    c2w_gl = _Y_UP_TO_Z_UP @ rot_theta @ rot_phi @ trans  # OpenGL camera: looks along its -z, at the origin
    return opengl_to_opencv_c2w(c2w_gl).float()


def orbit_c2w(num_views: int, elevation_deg: float = -10.0, radius: float = 1.3) -> torch.Tensor:
    """``[N, 4, 4]`` c2w (OpenCV axes) around the z axis, ``theta`` from -180 degrees in ``N`` equal steps."""
    thetas = np.linspace(-180.0, 180.0, num_views + 1)[:-1]
    return torch.stack([spherical_c2w(float(t), elevation_deg, radius) for t in thetas])


# pixelNeRF's ``coord_from_blender``: z-up world -> the canonical frame of a real photo (y up, the source
# camera on +z), so that the orbit's first frame (theta = -180) is the source camera itself.
_Z_UP_TO_CANONICAL = torch.tensor(
    [[1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=torch.float64
)


def real_orbit_c2w(num_views: int = 24, elevation_deg: float = 0.0, radius: float = 1.3) -> torch.Tensor:
    """The published ``eval_real`` path: ``N`` c2w (OpenCV axes) around the object of a real photo.

    The world is the photo's canonical frame (:func:`inerf.pixelnerf.pose.canonical_source_c2w`: the source
    camera at ``(0, 0, radius)`` looking at the origin, world y up). Frame 0 is the source camera, then the
    camera circles the world y axis; ``elevation_deg`` < 0 puts it above the object.

    Returns:
        ``[N, 4, 4]`` float32 c2w, OpenCV camera axes.
    """
    # Left-multiplying changes the world frame only, so it commutes with the OpenGL -> OpenCV camera flip.
    return (_Z_UP_TO_CANONICAL.float() @ orbit_c2w(num_views, elevation_deg, radius)).float()


def scene_orbit_c2w(camera_c2w: torch.Tensor, num_views: int, radius: float = 2.0) -> torch.Tensor:
    """A closed loop for forward-facing scenes (DTU) looking at the world origin.

    The published DTU video interpolates five hard-coded key orientations; instead this circles the mean
    viewing direction of the scene's cameras at a cone angle of half their median spread, at distance
    ``radius`` from the origin, keeping the cameras' mean "up" direction. It stays inside the range of the
    capture, which is what the published path does too.

    Args:
        camera_c2w: ``[M, 4, 4]`` the scene's cameras (OpenCV axes).
    Returns:
        ``[N, 4, 4]`` c2w, OpenCV axes.
    """
    c2w = camera_c2w.double()
    centres = c2w[:, :3, 3]
    axis = centres.mean(0)
    axis = axis / axis.norm().clamp_min(1e-12)
    dirs = centres / centres.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    spread = torch.arccos((dirs @ axis).clamp(-1.0, 1.0)).median()
    cone = float(0.5 * spread) if spread > 1e-6 else math.radians(10.0)
    up = -c2w[:, :3, 1].mean(0)  # OpenCV camera y points down: the cameras' "up" is -y
    # Orthonormal basis (e1, e2) of the plane orthogonal to the axis, e2 roughly "up".
    e2 = up - (up @ axis) * axis
    if e2.norm() < 1e-6:
        e2 = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64) - axis[2] * axis
    e2 = e2 / e2.norm()
    e1 = torch.linalg.cross(e2, axis)
    out = []
    for k in range(num_views):
        a = 2 * math.pi * k / num_views
        d = math.cos(cone) * axis + math.sin(cone) * (math.cos(a) * e1 + math.sin(a) * e2)
        eye = radius * d
        forward = -d  # looks at the origin
        right = torch.linalg.cross(forward, up)
        right = right / right.norm().clamp_min(1e-12)
        down = torch.linalg.cross(forward, right)  # OpenCV: x right, y down, z forward
        m = torch.eye(4, dtype=torch.float64)
        m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, down, forward, eye
        out.append(m)
    return torch.stack(out).float()


def video_stem(split: str, subset: int, source: list[int]) -> str:
    """Published file stem: ``video<t|v|><SSSS>_v<src1:03>_<src2:03>...`` (t = test, v = val, '' = train)."""
    prefix = {"test": "t", "val": "v"}.get(split, "")
    return f"video{prefix}{subset:04d}_v" + "_".join(f"{s:03d}" for s in source)


@torch.no_grad()
def render_video_frames(
    model: Model,
    cameras: Cameras,
    *,
    progress: bool = True,
    generator: torch.Generator | None = None,
    frames_dir: str | os.PathLike | None = None,
) -> np.ndarray:
    """Render one frame per camera of a path.

    Args:
        model: what to render, e.g. an encoded pixelNeRF
            (:func:`inerf.pixelnerf.rendering.pixelnerf_model`); its ``config.chunk`` rays per pass.
        cameras: the ``N`` cameras of the path (OpenCV c2w), e.g. ``camera.with_c2w(orbit_c2w(N))``.
        generator: seeded random samples (the published renderer's jitter), drawn frame after frame.
        frames_dir: also write each frame as ``frame_NNNN.png`` here as soon as it is rendered, so a long
            render that is stopped keeps what it has done.
    Returns:
        ``[N, H, W, 3]`` uint8 frames.
    """
    from tqdm import tqdm

    if frames_dir is not None:
        Path(frames_dir).mkdir(parents=True, exist_ok=True)
    frames = []
    for k in tqdm(range(len(cameras)), desc="rendering", unit="frame", disable=not progress):
        # The inner bar moves chunk by chunk, so a slow first frame does not sit at 0% for minutes.
        rgb = model.render_image(cameras[k].to(model.device), progress=progress, generator=generator).rgb
        frames.append((rgb.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy())
        if frames_dir is not None:
            import imageio.v3 as iio

            iio.imwrite(Path(frames_dir) / f"frame_{k:04d}.png", frames[-1])
    return np.stack(frames)


def estimate_render_seconds(model: Model, camera: Cameras, probe_rays: int = 512) -> float:
    """Seconds one full frame of ``camera`` will take, extrapolated from timing ``probe_rays`` of its rays
    (after a one-ray warm-up), so a command can say how long it will run before it starts."""
    import time

    from inerf.rays.rays import rays_for_image

    rays = rays_for_image(camera.to(model.device))
    n = min(probe_rays, len(rays))
    with torch.no_grad():
        model.render_rays(rays[:1])
        t0 = time.perf_counter()
        model.render_rays(rays[:n])
        if rays.origins.is_cuda:
            torch.cuda.synchronize()
    return (time.perf_counter() - t0) * len(rays) / n


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: int = 30) -> Path:
    """Write ``[N, H, W, 3]`` uint8 frames as ``.mp4`` (H.264) or ``.gif`` (by suffix); returns the path."""
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        imageio.mimwrite(path, list(frames), duration=1000.0 / fps, loop=0)
        return path
    # H.264 with yuv420p needs even sizes: replicate the last row / column instead of resampling.
    h, w = frames.shape[1:3]
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    imageio.mimwrite(path, list(frames), fps=fps, quality=8, macro_block_size=2)
    return path
