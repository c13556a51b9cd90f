"""Assets: finding a 3D model by name, loading it per material, and placing it in the world.

Three sources, tried in this order for a bare name (a ``source:`` prefix picks one):

* ``pybullet_data`` (``pybullet:NAME``): the named models of :data:`PYBULLET_ASSETS` (duck, soccerball,
  jenga, torus, textured_sphere, table, ...), ``random_urdfs/NNN`` (1000 single-colour blobs), or any
  single-link URDF or mesh by its path inside pybullet_data. URDF visuals are honoured (their origin, scale
  and colour), so the table is a table and jenga a block.
* a mesh file (``file:PATH`` or any existing path): OBJ (with MTL and textures), PLY, OFF, STL.
* Sweet Home 3D (``sweethome3d:NAME``): see :mod:`inerf.synth.sweethome3d`.

The world frame of every generated dataset is **z up**, right-handed, with the object's axis-aligned
bounding box centred at the origin (so it rests on its base at z = -height / 2). The map from the
vertices of the asset's mesh file, *as trimesh loads that file*, to the world is one affine ``[4, 4]``
matrix, ``object_to_world = normalise @ mesh_to_upright``: ``mesh_to_upright`` turns the file's frame z-up
(URDF origin and scale, Sweet Home 3D's ``modelRotation`` and Y-up fix), ``normalise`` scales uniformly
and centres. It is written to every ``meta.json``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inerf.errors import InerfError
from inerf.synth import sweethome3d
from inerf.synth.meshes import MeshPart, parts_from_trimesh, parts_vertices, transform_parts, write_part_obj

__all__ = [
    "MESH_SUFFIXES",
    "PYBULLET_ASSETS",
    "AssetInfo",
    "PreparedAsset",
    "cache_dir",
    "export_parts",
    "load_mesh",
    "load_mesh_vertices",
    "normalise_transform",
    "prepare_asset",
    "pybullet_version",
    "random_urdf_assets",
    "resolve_asset",
]

MESH_SUFFIXES = (".obj", ".ply", ".off", ".stl")

# Y-up (OBJ exporters, scanners, Sweet Home 3D) -> z-up: rotate +90 degrees about x (y -> z, z -> -y).
# A Sweet Home 3D model's front (+z) then faces -y, as in the NeRF-synthetic scenes.
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

_PYBULLET_LICENCE = (
    "zlib (distributed with pybullet, Bullet Physics SDK)",
    "https://github.com/bulletphysics/bullet3/blob/master/LICENSE.txt",
)
_PYBULLET_CREDIT = "Erwin Coumans and the Bullet Physics contributors (pybullet_data)"


@dataclass(frozen=True)
class _PybulletEntry:
    path: str  # inside pybullet_data: a URDF (its visuals are used) or a mesh
    title: str
    creator: str = _PYBULLET_CREDIT
    up: str = "z"  # the axis of the file's frame that points up (URDF frames are z-up)


PYBULLET_ASSETS: dict[str, _PybulletEntry] = {
    # The duck, torus, sphere and teddy meshes are Y-up (their URDFs, if any, do not rotate them).
    "duck": _PybulletEntry(
        "duck_vhacd.urdf",
        "textured duck",
        "COLLADA sample model (Sony Computer Entertainment), via pybullet_data",
        up="y",
    ),
    "soccerball": _PybulletEntry("soccerball.urdf", "soccer ball"),
    "jenga": _PybulletEntry("jenga/jenga.urdf", "jenga block (wood texture with Top/Front/Left labels)"),
    "torus": _PybulletEntry("torus/torus_textured.obj", "textured torus", up="y"),
    "textured_sphere": _PybulletEntry("textured_sphere_smooth.obj", "checker-textured sphere", up="y"),
    "table": _PybulletEntry("table/table.urdf", "table (textured top and four legs)"),
    "domino": _PybulletEntry("domino/domino.urdf", "domino", "Erwin Coumans (pybullet_data)"),
    "lego": _PybulletEntry("lego/lego.urdf", "lego brick"),
    "mug": _PybulletEntry("objects/mug.urdf", "mug"),
    "teddy": _PybulletEntry("teddy_large.urdf", "teddy bear", up="y"),
}
"""Named pybullet_data assets (the first six are those of issue 3), with the axis that points up."""


@dataclass
class AssetInfo:
    """Where an asset comes from and who made it (everything ``meta.json`` records about it).

    Attributes:
        name: canonical name that resolves to this asset again (``duck``, ``sweethome3d:scopia/chair``).
        source: ``pybullet_data``, ``sweethome3d`` or ``file``.
        package: the package that ships it and its version (``pybullet 3.2.7``).
        path: the file the name designates: a mesh, a URDF or a ``.sh3f`` archive.
        member: the OBJ inside the archive (Sweet Home 3D only).
        title: human-readable name.
        creator, licence, licence_url: provenance; ``attribution`` is the credit line to reproduce.
        up: ``y`` or ``z``, the axis of the mesh file that points up.
        model_rotation: ``[3, 3]`` rotation applied first (Sweet Home 3D's ``modelRotation``), or None.
        sh3d: the catalog entry (Sweet Home 3D only).
    """

    name: str
    source: str
    package: str
    path: Path
    title: str
    creator: str
    licence: str
    licence_url: str | None
    attribution: str
    up: str = "z"
    member: str | None = None
    model_rotation: np.ndarray | None = field(default=None, repr=False)
    sh3d: sweethome3d.SH3DModel | None = field(default=None, repr=False)


@dataclass
class PreparedAsset:
    """An asset placed in the world, split per material.

    Attributes:
        info: provenance.
        mesh_path: the file whose vertices (as ``trimesh.load`` returns them; its processing merges
            and reorders vertices but never moves them) ``object_to_world`` maps: the asset file itself,
            or a file written to the cache (extracted from an archive, or the union of a URDF's visuals).
        object_to_world: ``[4, 4]`` affine map, mesh-file coordinates -> world (z up, centred).
        parts: the per-material parts, vertices already in the world frame.
        vertices: ``[N, 3]`` world positions of every vertex used by a face.
    """

    info: AssetInfo
    mesh_path: Path
    object_to_world: np.ndarray
    parts: list[MeshPart]
    vertices: np.ndarray

    @property
    def bounds(self) -> np.ndarray:
        """``[2, 3]`` world axis-aligned bounding box (min, max)."""
        return np.stack([self.vertices.min(axis=0), self.vertices.max(axis=0)])

    def meta(self) -> dict:
        """The ``asset`` entry of ``meta.json``."""
        i = self.info
        return {
            "name": i.name,
            "title": i.title,
            "source": i.source,
            "package": i.package,
            "path": str(i.path),
            "member": i.member,
            "mesh_path": str(self.mesh_path),
            "creator": i.creator,
            "licence": i.licence,
            "licence_url": i.licence_url,
            "attribution": i.attribution,
            "up_axis": i.up,
            "model_rotation": None if i.model_rotation is None else np.asarray(i.model_rotation).tolist(),
            "n_vertices": len(self.vertices),
            "n_faces": int(sum(len(p.faces) for p in self.parts)),
            "n_materials": len(self.parts),
            "textured": any(p.textured for p in self.parts),
        }


def cache_dir() -> Path:
    """Where extracted and derived meshes are kept: ``$INERF_CACHE_DIR/synth`` (default
    ``~/.cache/inerf/synth``)."""
    root = Path(os.environ.get("INERF_CACHE_DIR", Path.home() / ".cache" / "inerf")).expanduser()
    return root / "synth"


def _pybullet_data() -> tuple[Path, str]:
    try:
        from inerf.synth.render import import_pybullet

        pybullet = import_pybullet()
        import pybullet_data
    except ImportError:
        raise InerfError(
            "pybullet is not installed: run `pip install 'inerf[synth]'` (or pip install pybullet trimesh)"
        ) from None
    version = getattr(pybullet, "__version__", None)
    if version is None:
        from importlib.metadata import version as pkg_version

        version = pkg_version("pybullet")
    return Path(pybullet_data.getDataPath()), f"pybullet {version}"


def _pybullet_info(name: str, rel: str, entry: _PybulletEntry | None = None) -> AssetInfo:
    root, package = _pybullet_data()
    path = root / rel
    if not path.is_file():
        raise InerfError(f"unknown asset {name!r}: {path} does not exist")
    entry = entry or _PybulletEntry(rel, Path(rel).stem)
    licence, url = _PYBULLET_LICENCE
    return AssetInfo(
        name=name,
        source="pybullet_data",
        package=package,
        path=path,
        title=entry.title,
        creator=entry.creator,
        licence=licence,
        licence_url=url,
        up=entry.up,
        attribution=(
            f'"{entry.title}" ({rel}) from pybullet_data ({package}), by {entry.creator}; '
            f"{licence}. Please cite PyBullet (Coumans and Bai, 2016-2019, http://pybullet.org). "
            "Re-oriented, rescaled and rendered by inerf synth."
        ),
    )


def _file_info(path: Path, up: str) -> AssetInfo:
    if not path.is_file():
        raise InerfError(f"asset file {path} does not exist")
    if path.suffix.lower() not in MESH_SUFFIXES + (".urdf",):
        raise InerfError(
            f"{path}: unsupported mesh format {path.suffix!r} (use one of "
            f"{', '.join(MESH_SUFFIXES)} or a single-link .urdf)"
        )
    return AssetInfo(
        name=str(path.resolve()),
        source="file",
        package="user file",
        path=path.resolve(),
        title=path.stem,
        creator="unknown (user-supplied file)",
        licence="unknown (user-supplied file)",
        licence_url=None,
        up="z" if path.suffix.lower() == ".urdf" else up,  # URDF frames are z-up by definition
        attribution=f"{path.name}: user-supplied model; check its licence before publishing.",
    )


def _sh3d_info(model: sweethome3d.SH3DModel) -> AssetInfo:
    short, url = model.licence
    return AssetInfo(
        name=f"sweethome3d:{model.key}",
        source="sweethome3d",
        package=f'sweethome3d-furniture (catalog "{model.catalog}" {model.catalog_version})',
        path=model.archive,
        member=model.member,
        title=model.name,
        creator=model.creator,
        licence=short,
        licence_url=url,
        attribution=sweethome3d.attribution(model),
        up="y",
        model_rotation=model.rotation_matrix() if model.model_rotation is not None else None,
        sh3d=model,
    )


def resolve_asset(name: str, up: str = "auto") -> AssetInfo:
    """Find the asset called ``name`` (see the module docstring for the lookup order).

    Args:
        name: a pybullet_data name or path, a mesh path, or a Sweet Home 3D model, optionally prefixed by
            ``pybullet:``, ``file:`` or ``sweethome3d:``.
        up: ``auto`` (the source's convention: URDF and pybullet meshes z, Sweet Home 3D y, and y for
            mesh files, the usual convention of OBJ/PLY exporters and scanners), ``y`` or ``z``.
    Raises:
        InerfError: unknown or ambiguous name, missing file, Sweet Home 3D not installed.
    """
    if up not in ("auto", "y", "z"):
        raise InerfError(f"--up must be auto, y or z, got {up!r}")
    text = name.strip()
    prefix, _, rest = text.partition(":")
    prefix = prefix.lower() if rest else ""
    if prefix in ("pybullet", "pybullet_data"):
        info = _resolve_pybullet(rest, strict=True)
    elif prefix == "file":
        info = _file_info(Path(rest).expanduser(), "y")
    elif prefix in ("sweethome3d", "sh3d"):
        info = _sh3d_info(sweethome3d.find_model(rest))
    else:
        path = Path(text).expanduser()
        if path.is_file():
            info = _file_info(path, "y")
        else:
            info = _resolve_pybullet(text, strict=False)
            if info is None and path.suffix.lower() in MESH_SUFFIXES + (".urdf",):
                raise InerfError(f"asset file {path} does not exist")
            if info is None:
                info = _sh3d_info(sweethome3d.find_model(text))
    if up != "auto":
        info.up = up
    return info


def _resolve_pybullet(text: str, strict: bool) -> AssetInfo | None:
    key = text.strip()
    if key.lower() in PYBULLET_ASSETS:
        entry = PYBULLET_ASSETS[key.lower()]
        return _pybullet_info(key.lower(), entry.path, entry)
    if key.startswith("random_urdfs/"):
        idx = key.split("/", 1)[1]
        if not idx.isdigit():
            raise InerfError(f"unknown asset {text!r}: expected random_urdfs/NNN with NNN in 000..999")
        n = f"{int(idx):03d}"
        return _pybullet_info(
            f"random_urdfs/{n}",
            f"random_urdfs/{n}/{n}.urdf",
            _PybulletEntry(f"random_urdfs/{n}/{n}.urdf", f"random blob {n}"),
        )
    root, _ = _pybullet_data()
    if (root / key).is_file() and Path(key).suffix.lower() in MESH_SUFFIXES + (".urdf",):
        return _pybullet_info(f"pybullet:{key}", key)
    if strict:
        raise InerfError(
            f"unknown pybullet_data asset {text!r} (named: {', '.join(PYBULLET_ASSETS)}; or "
            "random_urdfs/NNN, or a path inside pybullet_data)"
        )
    return None


def random_urdf_assets() -> list[str]:
    """Names of pybullet_data's random blobs (``random_urdfs/000`` ...), sorted."""
    root, _ = _pybullet_data()
    return sorted(
        f"random_urdfs/{p.name}"
        for p in (root / "random_urdfs").iterdir()
        if p.is_dir() and (p / f"{p.name}.urdf").is_file()
    )


# --------------------------------------------------------------------------------------------------------
# Loading


def _quiet_trimesh() -> None:
    # trimesh logs a stack trace when scipy is missing for normals we never use.
    logging.getLogger("trimesh").setLevel(logging.ERROR)


def _load_trimesh(path: Path):
    import trimesh

    _quiet_trimesh()
    try:
        # process=False: keep the file's vertices exactly (no merging, no reordering), so that
        # object_to_world refers to the coordinates that are in the file.
        return trimesh.load(str(path), process=False)
    except Exception as exc:  # noqa: BLE001 - trimesh raises many exception types for a bad file
        raise InerfError(f"{path}: cannot read the mesh ({type(exc).__name__}: {exc})") from None


def load_mesh(mesh_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices ``[N, 3]`` and faces ``[F, 3]`` of a mesh file as trimesh loads it (all materials
    together; only vertices used by a face): the points that ``meta.json``'s ``object_to_world`` maps to
    the world."""
    parts = parts_from_trimesh(_load_trimesh(Path(mesh_path)))
    vertices, faces, offset = [], [], 0
    for p in parts:
        used = np.unique(p.faces)
        remap = np.full(len(p.vertices), -1, dtype=np.int64)
        remap[used] = np.arange(len(used)) + offset
        vertices.append(p.vertices[used])
        faces.append(remap[p.faces])
        offset += len(used)
    if not parts:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    return np.concatenate(vertices), np.concatenate(faces)


def load_mesh_vertices(mesh_path: str | Path) -> np.ndarray:
    """``[N, 3]`` vertices of :func:`load_mesh`."""
    return load_mesh(mesh_path)[0]


def pybullet_version() -> str:
    """``pybullet X.Y.Z`` (raises :class:`InerfError` if pybullet is missing)."""
    return _pybullet_data()[1]


def _rpy_matrix(rpy) -> np.ndarray:
    """URDF roll-pitch-yaw (fixed axes x, y, z): R = Rz(yaw) Ry(pitch) Rx(roll)."""
    r, p, y = rpy
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    Rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    Ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    Rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def _floats(text: str | None, default) -> list[float]:
    return [float(x) for x in text.split()] if text else list(default)


def _urdf_visuals(urdf: Path) -> list[tuple[Path, np.ndarray, tuple[float, float, float] | None]]:
    """``(mesh file, [4, 4] mesh -> link frame, URDF colour or None)`` for every mesh visual."""
    try:
        root = ET.parse(urdf).getroot()
    except (ET.ParseError, OSError) as exc:
        raise InerfError(f"{urdf}: cannot read the URDF ({exc})") from None
    links = root.findall("link")
    if len(links) != 1:
        raise InerfError(f"{urdf}: only single-link URDFs are supported (found {len(links)} links)")
    named_colors = {}
    for mat in root.findall("material"):
        c = mat.find("color")
        if c is not None and mat.get("name"):
            named_colors[mat.get("name")] = tuple(_floats(c.get("rgba"), (1, 1, 1, 1))[:3])
    visuals = []
    for vis in links[0].findall("visual"):
        mesh = vis.find("geometry/mesh")
        if mesh is None:
            continue  # primitive shapes (box, sphere) have no mesh file to reference
        origin = vis.find("origin")
        xyz = _floats(origin.get("xyz") if origin is not None else None, (0, 0, 0))
        rpy = _floats(origin.get("rpy") if origin is not None else None, (0, 0, 0))
        scale = _floats(mesh.get("scale"), (1, 1, 1))
        M = np.eye(4)
        M[:3, :3] = _rpy_matrix(rpy) @ np.diag(scale)  # URDF: scale the mesh, then place it
        M[:3, 3] = xyz
        color = None
        mat = vis.find("material")
        if mat is not None:
            c = mat.find("color")
            color = (
                tuple(_floats(c.get("rgba"), (1, 1, 1, 1))[:3])
                if c is not None
                else named_colors.get(mat.get("name"))
            )
        visuals.append(((urdf.parent / mesh.get("filename")).resolve(), M, color))
    if not visuals:
        raise InerfError(f"{urdf}: no mesh visual to render")
    return visuals


def _write_union_obj(parts: list[MeshPart], path: Path) -> None:
    """Geometry-only OBJ of all parts (full float precision), for ``meta.json``'s ``mesh_path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines, offset = [], 1
    for p in parts:
        lines.append("".join(f"v {x!r} {y!r} {z!r}\n" for x, y, z in p.vertices.tolist()))
        lines.append("".join(f"f {a} {b} {c}\n" for a, b, c in (p.faces + offset).tolist()))
        offset += len(p.vertices)
    # Write under a unique name and rename: workers preparing the same asset never see half a file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".obj")
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(lines))
    os.replace(tmp, path)


def _load_source(info: AssetInfo, cache: Path) -> tuple[list[MeshPart], Path, np.ndarray]:
    """The asset's parts in its mesh file's frame, that file, and the file -> upright (z-up) map."""
    upright = np.eye(4)
    if info.up == "y":
        upright[:3, :3] = Y_UP_TO_Z_UP
    if info.source == "sweethome3d":
        mesh_path = sweethome3d.extract_model(info.sh3d, cache)
        parts = parts_from_trimesh(_load_trimesh(mesh_path))
        if info.model_rotation is not None:
            rot = np.eye(4)
            rot[:3, :3] = info.model_rotation  # into Sweet Home 3D's frame first, then Y-up -> z-up
            upright = upright @ rot
        return parts, mesh_path, upright
    if info.path.suffix.lower() == ".urdf":
        visuals = _urdf_visuals(info.path)
        if len(visuals) == 1:  # one mesh: its file is the reference, the URDF placement goes in the map
            mesh_path, M, color = visuals[0]
            parts = parts_from_trimesh(_load_trimesh(mesh_path), default_color=color)
            return parts, mesh_path, upright @ M
        # Several visuals (the table's top and legs): their union, in the URDF frame, is written to the
        # cache and becomes the reference mesh.
        parts = []
        for mesh_path, M, color in visuals:
            parts += transform_parts(parts_from_trimesh(_load_trimesh(mesh_path), default_color=color), M)
        digest = hashlib.sha1(info.path.read_bytes()).hexdigest()[:12]
        union = cache / "urdf" / f"{info.path.stem}-{digest}.obj"
        if not union.is_file():
            _write_union_obj(parts, union)
        return parts, union, upright
    return parts_from_trimesh(_load_trimesh(info.path)), info.path, upright


def normalise_transform(vertices: np.ndarray, mode: str = "max_side", size: float = 2.0) -> np.ndarray:
    """``[4, 4]`` uniform scale + translation that centres the bounding box of ``vertices`` ``[N, 3]`` at
    the origin and makes its largest side (``max_side``) or its diagonal (``diagonal``, ShapeNet's
    normalisation, used for SRN-style categories) equal to ``size``."""
    if mode not in ("max_side", "diagonal"):
        raise ValueError(f"mode must be max_side or diagonal, got {mode!r}")
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    extent = hi - lo
    measure = float(extent.max()) if mode == "max_side" else float(np.linalg.norm(extent))
    if not np.isfinite(measure) or measure <= 0:
        raise InerfError("the mesh is degenerate (zero or non-finite extent)")
    s = size / measure
    T = np.eye(4)
    T[:3, :3] *= s
    T[:3, 3] = -s * (lo + hi) / 2
    return T


def prepare_asset(
    info: AssetInfo, normalise: str = "max_side", size: float = 2.0, cache: Path | None = None
) -> PreparedAsset:
    """Load ``info``, split it per material and place it in the world (see the module docstring).

    Args:
        normalise, size: see :func:`normalise_transform` (``max_side``, 2: a cube of side 2 at the origin).
        cache: folder for extracted/derived files (default :func:`cache_dir`).
    """
    cache = Path(cache) if cache is not None else cache_dir()
    parts, mesh_path, mesh_to_upright = _load_source(info, cache)
    if not parts:
        raise InerfError(f"{info.name}: the mesh has no faces")
    upright_vertices = parts_vertices(transform_parts(parts, mesh_to_upright))
    if not np.isfinite(upright_vertices).all():
        raise InerfError(f"{info.name}: the mesh has non-finite vertex coordinates")
    object_to_world = normalise_transform(upright_vertices, normalise, size) @ mesh_to_upright
    world_parts = transform_parts(parts, object_to_world)
    return PreparedAsset(
        info=info,
        mesh_path=Path(mesh_path),
        object_to_world=object_to_world,
        parts=world_parts,
        vertices=parts_vertices(world_parts),
    )


def export_parts(
    asset: PreparedAsset, folder: Path, double_sided: bool = True
) -> list[tuple[str, tuple[float, float, float] | None]]:
    """Write each world-frame part to ``folder/NNN/part.obj``; return ``(obj path, rgb or None)`` pairs
    for :meth:`inerf.synth.render.TinyRenderer.load` (None: textured, the texture gives the colour).

    ``double_sided``: draw both sides of every part that is not a closed surface (see
    :func:`~inerf.synth.meshes.write_part_obj`); False draws front faces only."""
    out = []
    for k, part in enumerate(asset.parts):
        path = write_part_obj(part, Path(folder) / f"{k:03d}", double_sided=None if double_sided else False)
        out.append((str(path), None if part.textured else tuple(part.color)))
    return out
