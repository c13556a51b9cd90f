"""Surroundings for generated scenes: a textured room (floor and four walls) around the object.

Why: structure-from-motion needs texture that stays put while the camera moves. An object on plain white
gives COLMAP too few features (measured: 2 of 30 chair views registered); the same views inside this room
register fully (``tests/data/test_sfm.py``). The room also makes realistic, fully opaque scenes for the
pose engine.

Geometry (world z up, object centred at the origin and resting on ``floor_z``): a square floor of
half-width ``half_width`` and four walls from the floor up to ``wall_top``; every face is wound to face
the inside and drawn single-sided (cameras are always inside, so the outsides are never seen). Each
surface is split into a grid of small quads (:data:`SUBDIVISIONS`) because TinyRenderer drops a whole
triangle when a corner lies behind the camera.

Textures: procedural "terrazzo", seeded: a multi-octave value-noise base around the surface's colour plus
thousands of random stones (discs and triangles, 1/300 to 1/30 of the texture's side, colours scattered
around the base colour). Nothing repeats, and there is detail at every scale SIFT looks at from 64 px to
400 px images; flat colours or tiled textures (checkerboards, a repeated wood image) would give
ambiguous matches.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from inerf.synth.meshes import MeshPart

__all__ = ["ENVIRONMENTS", "RoomConfig", "room_bounds_near_far", "room_for_cameras", "room_parts", "terrazzo"]

ENVIRONMENTS = ("none", "room")

# Base colours (linear-ish sRGB in [0, 1]) of the floor and the four walls: a warm floor, muted walls.
_FLOOR_COLOUR = (0.55, 0.50, 0.44)
_WALL_COLOURS = ((0.62, 0.66, 0.70), (0.70, 0.64, 0.56), (0.58, 0.66, 0.58), (0.68, 0.60, 0.64))
SUBDIVISIONS = 16
"""Each surface is an n x n grid of quads: TinyRenderer drops a triangle with a corner behind the camera
(measured: whole walls vanished from views towards the room's corners with one quad per wall)."""


@dataclass(frozen=True)
class RoomConfig:
    """A box-shaped room around the origin.

    Attributes:
        half_width: the floor spans [-half_width, half_width]^2 (world units).
        floor_z: height of the floor (the object's base).
        wall_top: height of the top of the walls.
        texture_size: side of each surface's texture in pixels.
        seed: seeds the textures.
    """

    half_width: float
    floor_z: float
    wall_top: float
    texture_size: int = 1024
    seed: int = 0

    def to_dict(self) -> dict:
        return {
            "kind": "room",
            **asdict(self),
            "textures": "procedural terrazzo (seeded noise + random stones), one per surface, no tiling",
            "faces": "floor and four walls, facing inwards, single-sided; no ceiling",
        }


def room_for_cameras(radius: float, floor_z: float, image_size: int, seed: int = 0) -> RoomConfig:
    """The room used by ``inerf synth scene --environment room`` for cameras at ``radius`` from the origin.

    Walls at 1.5 x the camera radius (measured: SfM registers every view of a 24-view circle at 96 and
    128 px with this spacing; walls much farther away shrink their texture below SIFT's scales) and
    twice the radius high (no sky in any view of the upper hemisphere: a camera on the equator looking at
    the origin sees the far wall up to 0.4 x its distance above its own height). Textures of 1024 px,
    2048 px beyond 256 px images, so that texels stay about as small as image pixels.
    """
    return RoomConfig(
        half_width=1.5 * radius,
        floor_z=float(floor_z),
        wall_top=2.0 * radius,
        texture_size=1024 if image_size <= 256 else 2048,
        seed=seed,
    )


def terrazzo(size: int, rng: np.random.Generator, base: tuple[float, float, float]):
    """A ``size x size`` RGB ``PIL.Image`` of procedural terrazzo around the colour ``base``."""
    from PIL import Image, ImageDraw

    img = np.zeros((size, size, 3))
    for cells in (4, 16, 64, 256):  # value noise: random grids upsampled bicubically, summed
        grid = rng.uniform(0.0, 255.0, (cells, cells, 3)).astype(np.uint8)
        up = np.asarray(Image.fromarray(grid).resize((size, size), Image.BICUBIC), dtype=np.float64)
        img += (up / 127.5 - 1.0) * 0.08
    img = np.clip(np.asarray(base) + img, 0.0, 1.0)
    im = Image.fromarray(np.round(img * 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    n_stones = int(3000 * (size / 1024) ** 2)
    base255 = np.asarray(base) * 255.0
    for _ in range(n_stones):
        r = size * np.exp(rng.uniform(np.log(0.003), np.log(0.03)))  # log-uniform sizes: every scale
        x, y = rng.uniform(0, size, 2)
        colour = tuple(int(c) for c in np.clip(base255 + rng.normal(0.0, 70.0, 3), 0, 255))
        if rng.random() < 0.5:
            e = r * rng.uniform(0.5, 1.5)
            draw.ellipse([x - r, y - e, x + r, y + e], fill=colour)
        else:
            corners = np.array([x, y]) + r * rng.uniform(-1.0, 1.0, (3, 2))
            draw.polygon([tuple(c) for c in corners], fill=colour)
    return im


def _quad(corner, u, v, name: str, texture, n: int) -> MeshPart:
    """A textured parallelogram ``corner + a u + b v`` (a, b in [0, 1]) split into ``n x n`` cells, front
    face towards ``u x v``."""
    corner, u, v = (np.asarray(a, dtype=np.float64) for a in (corner, u, v))
    a, b = np.meshgrid(np.linspace(0.0, 1.0, n + 1), np.linspace(0.0, 1.0, n + 1), indexing="ij")
    a, b = a.reshape(-1), b.reshape(-1)
    vertices = corner + a[:, None] * u + b[:, None] * v
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    p00, p10, p11, p01 = (
        idx[:-1, :-1].ravel(),
        idx[1:, :-1].ravel(),
        idx[1:, 1:].ravel(),
        idx[:-1, 1:].ravel(),
    )
    # Counter-clockwise seen from u x v.
    faces = np.concatenate([np.stack([p00, p10, p11], 1), np.stack([p00, p11, p01], 1)]).astype(np.int64)
    return MeshPart(name, vertices, faces, (1.0, 1.0, 1.0), np.stack([a, b], 1), texture)


def room_parts(cfg: RoomConfig) -> list[MeshPart]:
    """The room's floor and walls as textured :class:`MeshPart` s, every face facing the inside."""
    rng = np.random.default_rng(cfg.seed)
    L, z0, H = cfg.half_width, cfg.floor_z, cfg.wall_top - cfg.floor_z
    size = cfg.texture_size
    n = SUBDIVISIONS
    parts = [
        _quad((-L, -L, z0), (2 * L, 0, 0), (0, 2 * L, 0), "floor", terrazzo(size, rng, _FLOOR_COLOUR), n)
    ]
    up = (0.0, 0.0, H)
    # (corner, direction along the wall): u x up points into the room for each.
    walls = [
        ((-L, L, z0), (2 * L, 0, 0)),  # y = +L, faces -y
        ((L, -L, z0), (-2 * L, 0, 0)),  # y = -L, faces +y
        ((L, L, z0), (0, -2 * L, 0)),  # x = +L, faces -x
        ((-L, -L, z0), (0, 2 * L, 0)),  # x = -L, faces +x
    ]
    for k, ((corner, u), colour) in enumerate(zip(walls, _WALL_COLOURS, strict=True)):
        parts.append(_quad(corner, u, up, f"wall{k}", terrazzo(size, rng, colour), n))
    return parts


def room_bounds_near_far(cfg: RoomConfig, c2w: np.ndarray, half_diag_fov: float) -> tuple[float, float]:
    """Bounds on what the cameras ``c2w [B, 4, 4]`` (OpenCV, inside the room) can see of the room:
    ``(smallest z-depth, largest distance)``.

    A visible room point is at least as far as the nearest room plane, and its z-depth is at least that
    distance times the cosine of the largest angle between a pixel's ray and the optical axis
    (``half_diag_fov``). No point of the box is farther than its farthest corner.
    """
    centres = c2w[:, :3, 3]
    L = cfg.half_width
    to_planes = np.stack(
        [
            L - centres[:, 0],
            L + centres[:, 0],
            L - centres[:, 1],
            L + centres[:, 1],
            centres[:, 2] - cfg.floor_z,
        ],
        axis=1,
    )
    if (to_planes <= 0).any():
        raise ValueError("a camera is outside the room")
    corners = np.array([[x, y, z] for x in (-L, L) for y in (-L, L) for z in (cfg.floor_z, cfg.wall_top)])
    far = float(np.linalg.norm(centres[:, None] - corners[None], axis=-1).max())
    return float(to_planes.min() * np.cos(half_diag_fov)), far
