"""Meshes split per material, their shading normals, and the OBJ files the renderer loads.

pybullet's TinyRenderer applies one colour and one texture per visual shape, takes per-corner normals from
the OBJ (flat-shading otherwise) and culls back faces. So that colours, textures, shading and silhouettes
all survive, every asset is turned into a list of :class:`MeshPart` (one material each), and each part is
written to its own folder (:func:`write_part_obj`) as a double-sided OBJ with crease-angle normals.

Everything here is plain numpy: vertices ``[V, 3]`` float64, faces ``[F, 3]`` int64 (counter-clockwise
seen from the front, as in OBJ), texture coordinates ``[V, 2]`` with v pointing up (OBJ convention).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

__all__ = [
    "MeshPart",
    "closed_orientation",
    "crease_normals",
    "parts_from_trimesh",
    "parts_vertices",
    "transform_parts",
    "write_part_obj",
]

# A pair of faces meeting at an angle wider than this is a hard edge (SH3D / Blender "auto smooth").
CREASE_ANGLE_DEG = 45.0

_DEFAULT_GREY = (0.7, 0.7, 0.7)


@dataclass
class MeshPart:
    """The triangles of one material.

    Attributes:
        name: material name (for messages and file names only).
        vertices: ``[V, 3]`` float64 vertex positions.
        faces: ``[F, 3]`` int64 vertex indices, counter-clockwise seen from the front.
        color: diffuse RGB in [0, 1]; multiplies nothing when ``texture`` is set (the texture replaces
            it, as in Blender's and Sweet Home 3D's OBJ import).
        uv: ``[V, 2]`` texture coordinates (OBJ convention: v = 0 at the bottom of the image), or None.
        texture: an RGB(A) ``PIL.Image.Image`` or None; used only together with ``uv``.
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    color: tuple[float, float, float] = _DEFAULT_GREY
    uv: np.ndarray | None = None
    texture: object | None = field(default=None, repr=False)

    @property
    def textured(self) -> bool:
        return self.uv is not None and self.texture is not None


def _material_color_and_texture(material) -> tuple[tuple[float, float, float], object | None]:
    """Diffuse colour in [0, 1] and texture image of a trimesh material (Simple or PBR)."""
    image = getattr(material, "image", None)
    diffuse = getattr(material, "diffuse", None)
    if image is None:  # PBRMaterial (glTF/PLY) names them differently
        image = getattr(material, "baseColorTexture", None)
    if diffuse is None:
        diffuse = getattr(material, "baseColorFactor", None)
    if diffuse is None:
        color = _DEFAULT_GREY
    else:
        d = np.asarray(diffuse, dtype=np.float64).reshape(-1)[:3]
        color = tuple(float(c) for c in (d / 255.0 if d.max() > 1.0 else d))
    return color, image


def _mean_image_color(image) -> tuple[float, float, float]:
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    return tuple(float(c) for c in rgb.reshape(-1, 3).mean(axis=0))


def _parts_from_color_visuals(name: str, mesh) -> list[MeshPart]:
    """Per-face colours (PLY/OFF) -> one part per distinct colour (quantised to 5 bits a channel, so a
    smoothly coloured scan gives at most a few hundred parts). TinyRenderer has no vertex colours."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    visual = mesh.visual
    if not getattr(visual, "defined", False):
        return [MeshPart(name, vertices, faces)]
    face_rgb = np.asarray(visual.face_colors, dtype=np.float64)[:, :3] / 255.0
    levels = np.round(face_rgb * 31).astype(np.int64)
    keys = (levels[:, 0] << 10) | (levels[:, 1] << 5) | levels[:, 2]
    uniq, inverse = np.unique(keys, return_inverse=True)
    parts = []
    for k in range(len(uniq)):
        sel = inverse == k
        parts.append(MeshPart(f"{name}_c{k}", vertices, faces[sel], tuple(face_rgb[sel].mean(axis=0))))
    return parts


def parts_from_trimesh(geometry, default_color: tuple[float, float, float] | None = None) -> list[MeshPart]:
    """Split what ``trimesh.load`` returned (a ``Trimesh`` or a ``Scene``) into one part per material.

    trimesh's OBJ loader already groups faces by ``usemtl``; scene-graph transforms (none in OBJ, PLY and
    OFF) are applied, so the parts' vertices are those of the file. Faces of point clouds and paths are
    ignored. A material with a texture but no texture coordinates gets the texture's mean colour; an
    untextured part without a material colour gets ``default_color`` (e.g. a URDF ``<color>``).
    """
    import trimesh

    if isinstance(geometry, trimesh.Scene):
        items = []
        for node in geometry.graph.nodes_geometry:
            transform, geom_name = geometry.graph[node]
            mesh = geometry.geometry[geom_name]
            if isinstance(mesh, trimesh.Trimesh):
                if not np.allclose(transform, np.eye(4)):
                    mesh = mesh.copy()
                    mesh.apply_transform(transform)
                items.append((geom_name, mesh))
    elif isinstance(geometry, trimesh.Trimesh):
        items = [("mesh", geometry)]
    else:
        items = []

    parts: list[MeshPart] = []
    for name, mesh in items:
        if len(mesh.faces) == 0:
            continue
        visual = mesh.visual
        if isinstance(visual, trimesh.visual.ColorVisuals):
            sub = _parts_from_color_visuals(name, mesh)
            if default_color is not None and not getattr(visual, "defined", False):
                sub = [replace(p, color=default_color) for p in sub]
            parts.extend(sub)
            continue
        color, image = _material_color_and_texture(getattr(visual, "material", None))
        uv = getattr(visual, "uv", None)
        vertices = np.asarray(mesh.vertices, dtype=np.float64)
        faces = np.asarray(mesh.faces, dtype=np.int64)
        if image is not None and uv is not None and len(uv) == len(vertices):
            parts.append(MeshPart(name, vertices, faces, color, np.asarray(uv, dtype=np.float64), image))
        else:
            if image is not None:
                color = _mean_image_color(image)
            elif default_color is not None:
                color = default_color
            parts.append(MeshPart(name, vertices, faces, color))
    return parts


def transform_parts(parts: list[MeshPart], matrix: np.ndarray) -> list[MeshPart]:
    """Apply a ``[4, 4]`` affine transform to every part's vertices (winding is kept when det > 0 and
    reversed otherwise, so faces stay counter-clockwise seen from the front)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    flip = np.linalg.det(matrix[:3, :3]) < 0  # a mirror would turn every face inside out
    out = []
    for p in parts:
        v = p.vertices @ matrix[:3, :3].T + matrix[:3, 3]
        f = p.faces[:, ::-1].copy() if flip else p.faces
        out.append(replace(p, vertices=v, faces=f))
    return out


def parts_vertices(parts: list[MeshPart]) -> np.ndarray:
    """All vertices of the parts that belong to at least one face, ``[N, 3]``."""
    if not parts:
        return np.zeros((0, 3))
    return np.concatenate([p.vertices[np.unique(p.faces)] for p in parts])


def crease_normals(
    vertices: np.ndarray, faces: np.ndarray, crease_deg: float = CREASE_ANGLE_DEG, max_pairs: int = 50_000_000
) -> np.ndarray:
    """Per-corner shading normals ``[F, 3, 3]`` (unit length) with hard edges at creases.

    The normal at a corner is the area-weighted sum of the normals of all faces that touch the same
    vertex *position* (OBJ files duplicate vertices at texture seams, which must not become creases) and
    whose normal is within ``crease_deg`` of this face's normal. Flat faces keep their face normal; a
    smooth surface is shaded smoothly. Degenerate faces get +z (they cover no pixel anyway).

    Cost is the sum over vertex positions of (corners at that position)^2; beyond ``max_pairs`` the
    faces are flat-shaded instead.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    n_faces = len(faces)
    tri = vertices[faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = twice the area
    length = np.linalg.norm(face_n, axis=1)
    face_u = face_n / np.maximum(length, 1e-300)[:, None]

    _, pos_id = np.unique(vertices, axis=0, return_inverse=True)
    corner_pos = pos_id.reshape(-1)[faces].reshape(-1)  # [3F]
    order = np.argsort(corner_pos, kind="stable")
    sorted_pos = corner_pos[order]
    starts = np.flatnonzero(np.r_[True, sorted_pos[1:] != sorted_pos[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    n_pairs = int((sizes.astype(np.int64) ** 2).sum())
    if n_pairs > max_pairs:
        normals = np.repeat(face_u[:, None, :], 3, axis=1)
    else:
        group = np.repeat(np.arange(len(starts)), sizes)  # group of each sorted corner
        partners = sizes[group]
        a = np.repeat(np.arange(len(order)), partners)  # every sorted corner, once per partner
        first = np.repeat(np.cumsum(partners) - partners, partners)
        b = starts[group[a]] + (np.arange(len(a)) - first)  # ... paired with every corner of its group
        face_a, face_b = order[a] // 3, order[b] // 3
        keep = (face_u[face_a] * face_u[face_b]).sum(axis=1) >= np.cos(np.radians(crease_deg))
        target = order[a[keep]]
        acc = np.stack(
            [np.bincount(target, weights=face_n[face_b[keep], k], minlength=3 * n_faces) for k in range(3)],
            axis=1,
        )
        normals = acc.reshape(n_faces, 3, 3)
    norm = np.linalg.norm(normals, axis=2, keepdims=True)
    return np.where(norm > 1e-300, normals / np.maximum(norm, 1e-300), np.array([0.0, 0.0, 1.0]))


def closed_orientation(vertices: np.ndarray, faces: np.ndarray) -> int:
    """+1 if the faces form closed surfaces wound counter-clockwise seen from outside, -1 if closed but
    wound the other way (inside out), 0 if not closed (holes, non-manifold or inconsistent edges).

    Vertices are welded by position first (OBJ files split them at texture seams). Closed and
    consistently oriented means every directed edge (a, b) occurs exactly once and so does (b, a); the
    orientation is the sign of the enclosed volume (divergence theorem: sum of det[v0, v1, v2] / 6).
    """
    if len(faces) == 0:
        return 0
    _, pos_id = np.unique(vertices, axis=0, return_inverse=True)
    f = pos_id.reshape(-1)[faces]
    a = f.reshape(-1)
    b = f[:, [1, 2, 0]].reshape(-1)
    if np.any(a == b):  # degenerate faces
        return 0
    n = int(f.max()) + 1
    directed = a * n + b
    uniq, counts = np.unique(directed, return_counts=True)
    if counts.max() > 1:
        return 0
    reverse = b * n + a
    if not np.isin(reverse, uniq).all():
        return 0
    tri = vertices[faces]
    volume = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0
    return 1 if volume > 0 else -1 if volume < 0 else 0


def _format_rows(prefix: str, rows: np.ndarray, fmt: str) -> str:
    if len(rows) == 0:
        return ""
    line = prefix + " " + " ".join([fmt] * rows.shape[1]) + "\n"
    return (line * len(rows)) % tuple(rows.reshape(-1).tolist())


def write_part_obj(part: MeshPart, folder: Path, double_sided: bool | None = None) -> Path:
    """Write ``part`` as ``folder/part.obj`` (+ ``part.mtl``, ``texture.bmp``) for pybullet.

    Each part gets its own folder because pybullet resolves ``mtllib`` and texture names relative to the
    OBJ and caches them by name. With ``double_sided`` every triangle is written a second time with the
    opposite winding and negated normals: TinyRenderer culls back faces, and without the copy an open
    surface seen from behind (a leaf, a sheet of glass, a badly wound model) would vanish from the image
    and its silhouette. ``None`` (the default) decides per part: a closed surface needs no copies (its
    back faces are always hidden behind front faces, and drawing them nearly doubles TinyRenderer's
    time), only to be wound outwards, which it is made to be.

    Returns the path of the OBJ file.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if double_sided is None:
        orientation = closed_orientation(part.vertices, part.faces)
        double_sided = orientation == 0
        if orientation < 0:  # closed but inside out: turn it the right way round
            part = replace(part, faces=part.faces[:, ::-1].copy())
    normals = crease_normals(part.vertices, part.faces).reshape(-1, 3)  # one per corner, [3F, 3]
    # Normals are written to 6 decimals and de-duplicated, which keeps the files small.
    normals, n_index = np.unique(np.round(normals, 6), axis=0, return_inverse=True)
    n_index = n_index.reshape(-1, 3)
    n_normals = len(normals)
    v_index = part.faces + 1  # OBJ indices start at 1
    n_index = n_index + 1
    textured = part.textured

    chunks = ["mtllib part.mtl\n", _format_rows("v", part.vertices, "%.9g")]
    if textured:
        chunks.append(_format_rows("vt", part.uv, "%.7g"))
    chunks.append(_format_rows("vn", normals, "%.6g"))
    if double_sided:
        chunks.append(_format_rows("vn", -normals, "%.6g"))
    chunks.append("usemtl part\n")

    chunks.append(_face_lines(v_index, n_index, textured))
    if double_sided:
        # Reversed winding (corners 0, 2, 1) and the negated normals stored after the first block.
        chunks.append(_face_lines(v_index[:, [0, 2, 1]], n_index[:, [0, 2, 1]] + n_normals, textured))
    obj_path = folder / "part.obj"
    obj_path.write_text("".join(chunks))

    r, g, b = part.color
    mtl = ["newmtl part\n", "Ka 0 0 0\n", "Ks 0 0 0\n", "d 1\n", "illum 1\n"]
    if textured:
        # Uncompressed BMP: pybullet reads it (stb_image), and writing it costs nothing, unlike PNG
        # (0.4 s for a 1024 x 768 texture).
        part.texture.convert("RGB").save(folder / "texture.bmp")
        mtl += ["Kd 1 1 1\n", "map_Kd texture.bmp\n"]
    else:
        mtl += [f"Kd {r:.6f} {g:.6f} {b:.6f}\n"]
    (folder / "part.mtl").write_text("".join(mtl))
    return obj_path


def _face_lines(v_index: np.ndarray, n_index: np.ndarray, textured: bool) -> str:
    """``f`` lines for ``[F, 3]`` 1-based vertex and normal indices (vt index = vertex index)."""
    n = len(v_index)
    if n == 0:
        return ""
    if textured:
        rows = np.stack([v_index, v_index, n_index], axis=2).reshape(n, 9)
        line = "f %d/%d/%d %d/%d/%d %d/%d/%d\n"
    else:
        rows = np.stack([v_index, n_index], axis=2).reshape(n, 6)
        line = "f %d//%d %d//%d %d//%d\n"
    return (line * n) % tuple(rows.reshape(-1).tolist())
