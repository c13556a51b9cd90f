"""Per-material parts, crease normals, closedness and the OBJ files written for pybullet."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from synth_helpers import cube

from inerf.synth.meshes import (
    MeshPart,
    closed_orientation,
    crease_normals,
    parts_from_trimesh,
    parts_vertices,
    transform_parts,
    write_part_obj,
)


def _face_normals(v, f):
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def test_cube_corners_keep_their_face_normal():
    """Faces of a cube meet at 90 degrees, beyond the crease angle: every corner is flat-shaded."""
    v, f = cube()
    normals = crease_normals(v, f)
    assert normals.shape == (12, 3, 3)
    assert np.allclose(normals, _face_normals(v, f)[:, None, :], atol=1e-12)


def test_sphere_is_smooth_across_texture_seams():
    """An icosphere with every vertex duplicated per face (as OBJ seams do): normals are still radial."""
    sphere = trimesh.creation.icosphere(subdivisions=2)
    v = sphere.vertices[sphere.faces].reshape(-1, 3)  # no shared vertices at all
    f = np.arange(len(v)).reshape(-1, 3)
    normals = crease_normals(v, f).reshape(-1, 3)
    radial = v / np.linalg.norm(v, axis=1, keepdims=True)
    assert (normals * radial).sum(axis=1).min() > 0.99


def test_closed_orientation():
    v, f = cube()
    assert closed_orientation(v, f) == 1
    assert closed_orientation(v, f[:, ::-1]) == -1
    assert closed_orientation(v, f[:-1]) == 0  # a hole
    flipped_one = f.copy()
    flipped_one[0] = flipped_one[0, ::-1]
    assert closed_orientation(v, flipped_one) == 0  # inconsistent winding


def test_mirror_transform_keeps_faces_outward():
    v, f = cube()
    mirror = np.diag([-1.0, 1.0, 1.0, 1.0])
    (part,) = transform_parts([MeshPart("c", v, f)], mirror)
    assert closed_orientation(part.vertices, part.faces) == 1


@pytest.mark.parametrize("closed", [True, False])
def test_obj_round_trip(tmp_path, closed):
    """trimesh reads back exactly our vertices; open parts get a reversed copy of every face."""
    v, f = cube(0.3)
    v = v + np.array([0.1234567891, -2.0, 1e-3])
    faces = f if closed else f[:-2]
    obj = write_part_obj(MeshPart("c", v, faces, (0.2, 0.4, 0.6)), tmp_path / "part")
    back = trimesh.load(obj, process=False, force="mesh")
    assert len(back.faces) == (len(faces) if closed else 2 * len(faces))
    # trimesh splits vertices by normal; the set of positions is what must survive.
    assert np.abs(np.unique(back.vertices, axis=0) - np.unique(v[np.unique(faces)], axis=0)).max() < 1e-8
    assert "Kd 0.200000 0.400000 0.600000" in (tmp_path / "part" / "part.mtl").read_text()


def test_textured_part_writes_texture_and_uvs(tmp_path):
    from PIL import Image

    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], float)
    f = np.array([[0, 1, 2], [0, 2, 3]])
    uv = v[:, :2].copy()
    image = Image.new("RGB", (4, 4), (255, 0, 0))
    obj = write_part_obj(MeshPart("t", v, f, uv=uv, texture=image), tmp_path / "t")
    assert (tmp_path / "t" / "texture.bmp").is_file()
    assert "map_Kd texture.bmp" in (tmp_path / "t" / "part.mtl").read_text()
    assert obj.read_text().count("\nvt ") == 4


def test_parts_from_a_multi_material_obj(tmp_path):
    """Two materials -> two parts with their own colours; a texture without UVs gives its mean colour."""
    from PIL import Image

    Image.new("RGB", (2, 2), (0, 0, 255)).save(tmp_path / "blue.png")
    (tmp_path / "m.mtl").write_text("newmtl red\nKd 1 0 0\n\nnewmtl tex\nKd 0.1 0.1 0.1\nmap_Kd blue.png\n")
    (tmp_path / "m.obj").write_text(
        "mtllib m.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nusemtl red\nf 1 2 3\nusemtl tex\nf 1 2 4\n"
    )
    parts = parts_from_trimesh(trimesh.load(tmp_path / "m.obj", process=False))
    colours = sorted(tuple(np.round(p.color, 3)) for p in parts)
    assert colours == [(0.0, 0.0, 1.0), (1.0, 0.0, 0.0)]
    assert not any(p.textured for p in parts)
    assert len(parts_vertices(parts)) == 6  # three per part (trimesh splits vertices per material)


def test_face_colours_become_parts():
    v, f = cube()
    mesh = trimesh.Trimesh(v, f, process=False)
    colours = np.zeros((12, 4), np.uint8)
    colours[:6] = [255, 0, 0, 255]
    colours[6:] = [0, 255, 0, 255]
    mesh.visual.face_colors = colours
    parts = parts_from_trimesh(mesh)
    assert len(parts) == 2 and sorted(len(p.faces) for p in parts) == [6, 6]
