"""``inerf synth scene``: one asset rendered into the NeRF-synthetic ("Blender") layout.

Layout written to ``out/``::

    transforms_{train,val,test}.json   {"camera_angle_x": ..., "frames": [{"file_path": "./train/r_0",
                                        "rotation": ..., "transform_matrix": 4x4 c2w, OpenGL axes}, ...]}
    train/r_0.png ...                  RGBA PNG, 8 bit, sRGB colour, straight alpha (or opaque on white)
    train/r_0_depth.npy ...            with depth: float32 [H, W] z-depth at pixel centres, 0 = background
    meta.json                          asset, object_to_world, near/far, cameras, renderer, seed, credits
    ATTRIBUTION.txt                    the credit line(s) the asset's licence asks for
    preview.png                        with preview: a contact sheet
    transforms_path.json, path/r_i.png with a camera path (``path="orbit"`` or ``"handheld"``): an image
                                        sequence in the same layout, for ``inerf track``
    path.tum                           its ground truth: ``timestamp tx ty tz qx qy qz qw`` (OpenCV c2w)

Cameras follow the published scenes: horizontal field of view 0.6911 rad (lego's), square pixels,
principal point at the image centre, pixel centres at +0.5; all look at the origin with no roll. Every
view shares this one camera. Train and val positions are uniform on the upper hemisphere, test positions
on a 30 degree circle.

``environment="room"`` puts the object in a textured room (:mod:`inerf.synth.environment`: floor and
walls at 1.5 x the camera radius), so the images are opaque photographs of a furnished scene in which
structure-from-motion (``inerf colmap``) finds its features; ``meta.json`` records the room.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from inerf.errors import InerfError
from inerf.synth.environment import ENVIRONMENTS
from inerf.synth.output import GENERATOR, staged, write_json, write_png
from inerf.synth.render import RenderSettings
from inerf.synth.workers import (
    BACKGROUNDS,
    Intrinsics,
    RenderJob,
    ViewTask,
    chunks,
    default_workers,
    render_job,
    run_parallel,
)

__all__ = ["BLENDER_CAMERA_ANGLE_X", "SceneConfig", "generate_scene"]

BLENDER_CAMERA_ANGLE_X = 0.6911112070083618
"""camera_angle_x of the published NeRF-synthetic lego scene (radians)."""

SPLITS = ("train", "val", "test")
ROOM_MIN_RADIUS = 6.0
"""Default camera distance with ``environment="room"`` (4.0 without)."""
ROOM_FLOOR_GAP = 1e-3
"""How far below the object's base the room's floor lies (world units; the object is 2 across)."""


@dataclass
class SceneConfig:
    """Settings of a NeRF-synthetic scene (defaults: the published layout)."""

    size: int = 400
    """Image width and height in pixels."""
    n_train: int = 100
    n_val: int = 20
    n_test: int = 40
    seed: int = 0
    """Seeds the random train/val camera positions."""
    depth: bool = False
    """Also write z-depth maps (``r_i_depth.npy``)."""
    background: str = "transparent"
    """``transparent`` (RGBA, straight alpha) or ``white`` (opaque RGBA composited over white)."""
    camera_angle_x: float = BLENDER_CAMERA_ANGLE_X
    radius: float | None = None
    """Camera distance from the origin; None: 4.0 (6.0 in a room), or more if the object would not fit in
    the image."""
    test_elevation_deg: float = 30.0
    supersample: int = 3
    """Antialiasing factor (odd; see :class:`~inerf.synth.render.RenderSettings`)."""
    workers: int | None = None
    """Render processes (None: one per CPU, at most 8)."""
    preview: bool = False
    """Write ``preview.png``, a contact sheet."""
    up: str = "auto"
    """Which axis of the mesh file points up: auto, y or z (see :func:`~inerf.synth.assets.resolve_asset`)."""
    environment: str = "none"
    """Surroundings: ``none`` (the object alone on the background) or ``room`` (a textured floor and walls
    around it, see :mod:`inerf.synth.environment`)."""
    path: str = "none"
    """A camera path rendered as an extra split ``path`` (an image sequence for tracking): ``none``,
    ``orbit`` or ``handheld`` (see :func:`~inerf.synth.trajectories.path_poses`)."""
    path_frames: int = 60
    """Frames of the path."""
    path_step: float = 1.5
    """Degrees of azimuth the path advances per frame (its mean speed)."""
    path_noise: float = 0.2
    """Per-frame camera shake (degrees, standard deviation per axis) on top of the smooth path."""
    fps: float = 30.0
    """Frame rate of the path: the timestamps of ``path.tum`` are ``i / fps`` seconds."""

    def validate(self) -> None:
        if self.size < 8:
            raise InerfError(f"--size must be at least 8, got {self.size}")
        for name in ("n_train", "n_val", "n_test"):
            if getattr(self, name) < 0:
                raise InerfError(f"--{name[2:]} must be >= 0, got {getattr(self, name)}")
        if self.path != "none":
            from inerf.synth.trajectories import PATH_KINDS

            if self.path not in PATH_KINDS:
                raise InerfError(f"--path must be none or one of {', '.join(PATH_KINDS)}, got {self.path!r}")
            if self.path_frames < 1:
                raise InerfError(f"--frames must be >= 1, got {self.path_frames}")
            if not (np.isfinite(self.path_noise) and self.path_noise >= 0) or not np.isfinite(self.path_step):
                raise InerfError(
                    f"--path-noise must be >= 0 and --path-step finite, got {self.path_noise}, {self.path_step}"
                )
            if not (np.isfinite(self.fps) and self.fps > 0):
                raise InerfError(f"--fps must be > 0, got {self.fps}")
        n_path = self.path_frames if self.path != "none" else 0
        if self.n_train + self.n_val + self.n_test + n_path == 0:
            raise InerfError("nothing to render: --train, --val and --test are all 0")
        if self.background not in BACKGROUNDS:
            raise InerfError(f"--background must be one of {', '.join(BACKGROUNDS)}, got {self.background!r}")
        if not 0 < self.camera_angle_x < np.pi:
            raise InerfError(f"camera_angle_x must be in (0, pi), got {self.camera_angle_x}")
        if self.radius is not None and self.radius <= 0:
            raise InerfError(f"--radius must be positive, got {self.radius}")
        if self.supersample < 1 or self.supersample % 2 == 0:
            raise InerfError(f"--supersample must be an odd positive integer, got {self.supersample}")
        if self.environment not in ENVIRONMENTS:
            raise InerfError(
                f"--environment must be one of {', '.join(ENVIRONMENTS)}, got {self.environment!r}"
            )


def _round_down(x: float) -> float:
    return round(float(np.floor(x * 10)) / 10, 1)


def _round_up(x: float) -> float:
    return round(float(np.ceil(x * 10)) / 10, 1)


def scene_poses(config: SceneConfig, radius: float) -> dict[str, np.ndarray]:
    """OpenCV c2w ``[n, 4, 4]`` per split, looking at the origin (see the module docstring)."""
    from inerf.synth.trajectories import circle_positions, hemisphere_positions, look_at, path_poses

    rng = np.random.default_rng(config.seed)
    positions = {
        "train": hemisphere_positions(config.n_train, radius, rng),
        "val": hemisphere_positions(config.n_val, radius, rng),
        "test": circle_positions(config.n_test, radius, config.test_elevation_deg),
    }
    poses = {
        s: np.stack([look_at(p) for p in pos]) if len(pos) else np.zeros((0, 4, 4))
        for s, pos in positions.items()
    }
    if config.path != "none":
        # Its own generator: adding a path leaves the train/val cameras of a seed unchanged.
        path_rng = np.random.default_rng([config.seed, 1])
        poses["path"] = path_poses(
            config.path,
            config.path_frames,
            radius,
            path_rng,
            step_deg=config.path_step,
            noise_deg=config.path_noise,
            elevation_deg=config.test_elevation_deg,
        )
    return poses


def generate_scene(
    asset: str,
    out: str | Path,
    config: SceneConfig | None = None,
    overwrite: bool = False,
    progress: bool = True,
    command: str | None = None,
) -> dict:
    """Render ``asset`` into a NeRF-synthetic scene at ``out``; return the ``meta.json`` contents.

    Args:
        asset: asset name or mesh path (:func:`inerf.synth.assets.resolve_asset`).
        out: destination folder; must be absent or empty, or an earlier inerf synth dataset with
            ``overwrite``.
        config: :class:`SceneConfig`.
        progress: show a progress bar.
        command: the command line, recorded in ``meta.json``.
    Raises:
        InerfError: bad settings, unknown or unreadable asset, unusable destination.
    """
    from inerf import __version__
    from inerf.synth.assets import export_parts, prepare_asset, resolve_asset
    from inerf.synth.output import check_destination
    from inerf.synth.trajectories import depth_extents, fit_radius, to_opengl

    config = config or SceneConfig()
    config.validate()
    out = Path(out)
    check_destination(out, overwrite)  # fail before the (long) rendering
    info = resolve_asset(asset, up=config.up)
    prepared = prepare_asset(info, normalise="max_side", size=2.0)

    W = H = config.size
    focal = 0.5 * W / np.tan(0.5 * config.camera_angle_x)
    fov = 2 * np.arctan(0.5 * min(W, H) / focal)  # the narrower field of view decides what fits
    # In a room the default camera distance is 6: measured, SfM then registers all 24 views of a 96 px
    # circle, against 2 at distance 4 (the object fills the view and hides the textured room).
    minimum = ROOM_MIN_RADIUS if config.environment == "room" else 4.0
    radius = (
        config.radius if config.radius is not None else fit_radius(prepared.vertices, fov, minimum=minimum)
    )
    poses = scene_poses(config, radius)
    splits = tuple(poses)  # SPLITS, plus "path" when a camera path is asked for
    all_c2w = np.concatenate([poses[s] for s in splits])
    z_min, d_max = depth_extents(prepared.vertices, all_c2w)
    if z_min.min() <= 0:
        raise InerfError(
            f"--radius {radius} puts cameras inside the object (object radius "
            f"{np.sqrt((prepared.vertices**2).sum(1)).max():.3f})"
        )
    # near/far enclose the object in every view, as z-depth and as distance along any ray, with a
    # margin of 5% of the object size (2), rounded to 0.1 so they read like the published 2.0 / 6.0.
    near = max(0.1, _round_down(z_min.min() - 0.1))
    far = _round_up(d_max.max() + 0.1)
    room = None
    if config.environment == "room":
        from inerf.synth.environment import room_bounds_near_far, room_for_cameras

        # The floor a hair below the object's base: coplanar faces would flicker (z-fighting).
        room = room_for_cameras(radius, prepared.bounds[0, 2] - ROOM_FLOOR_GAP, W, seed=config.seed)
        half_diag_fov = float(np.arctan(np.hypot(W / 2, H / 2) / focal))
        room_near, room_far = room_bounds_near_far(room, all_c2w, half_diag_fov)
        near = max(0.01, min(near, _round_down(room_near)))
        far = max(far, _round_up(room_far + 0.1))
    intrinsics = Intrinsics(focal, focal, W / 2, H / 2, W, H, near, far)
    settings = RenderSettings(supersample=config.supersample)
    workers = config.workers or default_workers()
    mode = "rgba" if config.background == "transparent" else "rgba_white"

    with staged(out, overwrite) as stage, tempfile.TemporaryDirectory(prefix="inerf-synth-parts-") as tmp:
        parts = export_parts(prepared, Path(tmp), double_sided=settings.double_sided)
        if room is not None:
            from inerf.synth.environment import room_parts
            from inerf.synth.meshes import write_part_obj

            for k, part in enumerate(room_parts(room)):
                # Single-sided: the cameras are inside and the faces look inwards.
                parts.append(
                    (str(write_part_obj(part, Path(tmp) / "room" / f"{k:03d}", double_sided=False)), None)
                )
        tasks, frames = [], {s: [] for s in splits}
        for split in splits:
            (stage / split).mkdir()
            c2w_gl = to_opengl(poses[split])
            # "rotation" is unused by loaders; the published files hold 0.012566 (train/val) and the
            # test path's angular step.
            rotation = 2 * np.pi / max(1, config.n_test) if split == "test" else 0.012566370614359171
            for i, m in enumerate(c2w_gl):
                frames[split].append(
                    {"file_path": f"./{split}/r_{i}", "rotation": rotation, "transform_matrix": m.tolist()}
                )
                depth_path = str(stage / split / f"r_{i}_depth.npy") if config.depth else None
                tasks.append(ViewTask(m, str(stage / split / f"r_{i}.png"), depth_path))
        jobs = [
            RenderJob(
                parts_key=tmp,
                parts=parts,
                intrinsics=intrinsics,
                settings=settings,
                image_mode=mode,
                views=c,
                # With a room every pixel sees something: no box to skip.
                bound_points=prepared.vertices if room is None else None,
            )
            for c in chunks(tasks, workers * 6)
        ]
        stats = [None] * len(jobs)
        for i, result in run_parallel(
            render_job,
            jobs,
            workers,
            desc=f"synth {info.name}",
            units=lambda j: len(j.views),
            progress=progress,
        ):
            stats[i] = result
        view_stats = [s for chunk in stats for s in chunk]

        for split in splits:
            write_json(
                stage / f"transforms_{split}.json",
                {"camera_angle_x": config.camera_angle_x, "frames": frames[split]},
            )
        if config.path != "none":
            from inerf.geometry.formats import write_poses

            # Ground truth of the sequence for `inerf track --gt`: TUM, OpenCV c2w, timestamps i / fps.
            n = len(poses["path"])
            write_poses(
                stage / "path.tum",
                poses["path"],
                "tum",
                timestamps=np.arange(n) / config.fps,
                frame=f"inerf synth scene world (z up), {config.path} path",
            )
        meta = {
            "generator": {"name": f"{GENERATOR} scene", "version": __version__, "command": command},
            "format": "nerf_synthetic",
            "asset": prepared.meta(),
            "object_to_world": prepared.object_to_world.tolist(),
            "object_bounds": prepared.bounds.tolist(),
            "world": "z up, right-handed; the object's axis-aligned bounding box is centred at the origin "
            "and its largest side is 2 (it rests on its base at z = min z)",
            "environment": None if room is None else room.to_dict(),
            "near": near,
            "far": far,
            "depth_range": {"z_min": float(z_min.min()), "distance_max": float(d_max.max())},
            "camera": {
                "model": "pinhole",
                "shared": "one camera (these intrinsics) for every view",
                "width": W,
                "height": H,
                "camera_angle_x": config.camera_angle_x,
                "fx": focal,
                "fy": focal,
                "cx": W / 2,
                "cy": H / 2,
                "pixel_centers": 0.5,
                "transform_matrix": "camera-to-world, OpenGL/Blender camera axes "
                "(x right, y up, looks along -z)",
                "look_at": [0.0, 0.0, 0.0],
                "radius": radius,
            },
            "splits": {
                "train": {"count": config.n_train, "placement": "uniform on the upper hemisphere (z >= 0)"},
                "val": {"count": config.n_val, "placement": "uniform on the upper hemisphere (z >= 0)"},
                "test": {
                    "count": config.n_test,
                    "placement": "circle, counter-clockwise from +x",
                    "elevation_deg": config.test_elevation_deg,
                },
                **(
                    {
                        "path": {
                            "count": config.path_frames,
                            "placement": f"{config.path} camera path of {config.path_frames} frames "
                            f"({config.path_step:g} deg per frame, shake {config.path_noise:g} deg), see "
                            "inerf.synth.trajectories.path_poses",
                            "fps": config.fps,
                            "ground_truth": "path.tum (timestamp tx ty tz qx qy qz qw, OpenCV c2w)",
                        }
                    }
                    if config.path != "none"
                    else {}
                ),
            },
            "images": {
                "format": "PNG RGBA 8-bit, sRGB",
                "background": config.background,
                "alpha": "straight (not premultiplied); coverage of the pixel"
                if mode == "rgba"
                else "opaque: composited over white as c * a + (1 - a) in sRGB values",
            },
            "depth": {
                "file": "<split>/r_<i>_depth.npy",
                "dtype": "float32",
                "shape": [H, W],
                "kind": "z-depth along the camera's viewing axis at pixel centres, world units",
                "background": 0.0,
            }
            if config.depth
            else None,
            "renderer": renderer_meta(settings),
            "seed": config.seed,
            "config": asdict(config),
            # In a room every view is full to the border; the count is about the object alone.
            "views_touching_border": None
            if room is not None
            else sum(s["touches_border"] for s in view_stats),
            "attribution": prepared.info.attribution,
        }
        write_json(stage / "meta.json", meta)
        (stage / "ATTRIBUTION.txt").write_text(attribution_text([prepared.info.attribution]))
        if config.preview:
            write_png(stage / "preview.png", scene_preview(stage, config, info.title))
    return meta


def renderer_meta(settings: RenderSettings) -> dict:
    """The ``renderer`` entry of ``meta.json``."""
    from inerf.synth.assets import pybullet_version

    return {
        "name": "pybullet TinyRenderer",
        "package": pybullet_version(),
        "settings": settings.to_dict(),
        "projection": "OpenGL matrix built from fx, fy, cx, cy with the measured half-pixel correction "
        "(entries [0,2] += 1/W, [1,2] += 1/H): pixel (i, j) shows the ray through "
        "(i + 0.5, j + 0.5)",
        "antialiasing": "rendered at supersample x the size, k x k box filter in linear light",
        "materials": "one visual shape per material (colour or texture), double-sided, crease-angle normals",
    }


def attribution_text(lines: list[str]) -> str:
    """Contents of ``ATTRIBUTION.txt``."""
    head = (
        "This dataset was generated by inerf synth from 3D models made by other people.\n"
        "Their licences ask you to keep the credits below with the data and anything derived "
        "from it.\n\n"
    )
    return head + "\n".join(f"- {line}" for line in lines) + "\n"


def scene_preview(folder: Path, config: SceneConfig, title: str, max_tiles: int = 32) -> np.ndarray:
    """Contact sheet of a scene: up to ``max_tiles`` views spread over the three splits."""
    from inerf.synth.preview import contact_sheet

    counts = {"train": config.n_train, "val": config.n_val, "test": config.n_test}
    if config.path != "none":
        counts["path"] = config.path_frames
    total = sum(counts.values())
    paths, labels = [], []
    for split, n in counts.items():
        take = min(n, max(1, round(max_tiles * n / total))) if n else 0
        for i in np.unique(np.linspace(0, n - 1, take).round().astype(int)) if take else []:
            paths.append(folder / split / f"r_{i}.png")
            labels.append(f"{split} {i}")
    return contact_sheet(
        paths,
        labels,
        columns=8,
        tile=min(128, config.size),
        title=f"{title}: {config.n_train}/{config.n_val}/{config.n_test} views"
        + (f" + {config.path} path of {config.path_frames} frames" if config.path != "none" else "")
        + f", {config.size}px",
    )
