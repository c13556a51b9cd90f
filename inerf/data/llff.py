"""LLFF forward-facing scenes (Mildenhall et al. 2019): ``poses_bounds.npy`` + ``images*/``.

Layout::

    ROOT/poses_bounds.npy   float [N, 17]: per image a 3x5 matrix, row-major, then (near, far)
    ROOT/images/            full-resolution images (sorted by name = row order of poses_bounds)
    ROOT/images_4/ ...      optional pre-downsampled copies (factor 4, 8, ...)

Each 3x5 matrix is ``[R | t | hwf]``: ``[R | t]`` is camera-to-world with the camera axes in LLFF's
order (columns = the world directions of the camera's **down, right, backwards** axes), and
``hwf = (height, width, focal)`` in pixels of the full-resolution images. The principal point is the
image centre (LLFF's ``imgs2poses`` assumes it), which with COLMAP's pixel-centre-at-+0.5 convention is
exactly our ``cx = W / 2``.

Scale (our choice, the same as NeRF's ``load_llff_data(bd_factor=0.75)``): positions and bounds are
multiplied by ``1 / (0.75 * min(near bounds))`` so the closest scene point is at depth ~1.33; the factor
is computed over **all** images, so every split shares one world frame. We do not recentre the poses
(NeRF's ``recenter_poses``): it only matters for NDC rays, which we do not use, and keeping COLMAP's
world axes makes poses comparable with other tools. Ray bounds are NeRF's non-NDC ones:
``near = 0.9 * min(near bounds)``, ``far = max(far bounds)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from inerf.data.common import (
    SplitImages,
    check_load_args,
    check_near_far,
    first_views,
    image_folder,
    pinhole_cameras,
)
from inerf.data.image_io import IMAGE_EXTENSIONS, one_line, parse_background, read_image
from inerf.data.views import SceneTransform, ViewSet
from inerf.errors import InerfError
from inerf.geometry.conventions import check_rigid

__all__ = ["LLFF_SPLITS", "is_llff", "llff_split_indices", "llff_to_opencv_c2w", "load_llff"]

LLFF_SPLITS = ("train", "val", "test", "all")


def is_llff(root: str | Path) -> bool:
    """Whether ``root`` looks like an LLFF scene (has ``poses_bounds.npy``)."""
    return (Path(root) / "poses_bounds.npy").is_file()


def llff_to_opencv_c2w(c2w_llff: torch.Tensor) -> torch.Tensor:
    """LLFF c2w (camera axes [down, right, backwards]) -> internal OpenCV c2w ([right, down, forward]).

    LLFF stores the rotation columns in the order COLMAP-to-LLFF conversion left them ("drb"); the
    OpenCV frame takes LLFF's 2nd column as x (right), its 1st as y (down) and the negated 3rd as z
    (forward). Both frames are right-handed (down x right = backwards), so the result is a rotation.

    Args:
        c2w_llff: ``[..., 3 or 4, 4]`` camera-to-world with LLFF camera axes (translation = camera centre).
    Returns:
        Same shape, camera-to-world with OpenCV camera axes; the camera centre is unchanged.
    """
    out = c2w_llff.clone()
    out[..., :3, 0] = c2w_llff[..., :3, 1]
    out[..., :3, 1] = c2w_llff[..., :3, 0]
    out[..., :3, 2] = -c2w_llff[..., :3, 2]
    return out


def llff_split_indices(n: int, split: str, llffhold: int = 8) -> list[int]:
    """Image indices of a split: every ``llffhold``-th image (0, 8, 16, ...) is held out for testing, as
    in NeRF. ``val`` is the same as ``test`` (LLFF has no separate validation set); ``all`` is everything.
    ``llffhold <= 0`` holds nothing out."""
    if split == "all" or (llffhold <= 0 and split == "train"):
        return list(range(n))
    if llffhold <= 0:
        return []
    held = [i for i in range(n) if i % llffhold == 0]
    return held if split in ("test", "val") else [i for i in range(n) if i % llffhold != 0]


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def load_llff(
    root: str | Path,
    split: str = "train",
    *,
    scale: float = 1.0,
    llffhold: int = 8,
    bd_factor: float | None = 0.75,
    near: float | None = None,
    far: float | None = None,
    background="black",
    max_views: int | None = None,
) -> ViewSet:
    """Load one split of an LLFF scene.

    Args:
        root: the scene folder.
        split: ``train`` (all but every ``llffhold``-th image), ``test`` / ``val`` (every
            ``llffhold``-th image, starting with the first) or ``all``.
        scale: image scale relative to the full-resolution images (1/8 reads ``images_8`` if present).
        llffhold: hold-out period (NeRF uses 8); 0 holds out nothing.
        bd_factor: rescale the scene so the smallest near bound becomes ``1 / bd_factor``; None keeps
            COLMAP's units.
        near, far: override the ray bounds (in the rescaled units).
        background: colour recorded in the ViewSet for renderers (LLFF images have no alpha; NeRF
            renders forward-facing scenes on black).
        max_views: keep only the first ``max_views`` views of the split.
    Returns:
        A :class:`ViewSet` (OpenCV axes, c2w) with ``alphas=None``.
    """
    root = check_load_args(root, split, LLFF_SPLITS, scale, "an LLFF scene")
    bg = parse_background(background) or (0.0, 0.0, 0.0)
    source = root / "poses_bounds.npy"
    if not source.is_file():
        raise InerfError(f"{source}: file not found (an LLFF scene needs poses_bounds.npy)")
    try:
        arr = np.load(source, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - ValueError (pickled / corrupt), OSError, EOFError...
        raise InerfError(f"{source}: unreadable ({one_line(exc)})") from None
    if arr.ndim != 2 or arr.shape[1] != 17 or arr.shape[0] == 0 or not np.issubdtype(arr.dtype, np.number):
        raise InerfError(
            f"{source}: expected a numeric N x 17 array (3x5 [R|t|hwf] + near, far per image), "
            f"got shape {arr.shape}"
        )
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(1))[0])
        raise InerfError(f"{source}: row {bad} contains NaN or infinite values")
    mats = arr[:, :15].reshape(-1, 3, 5)
    bounds = arr[:, 15:17]
    hwf = mats[:, :, 4]
    if (hwf <= 0).any() or (bounds <= 0).any() or (bounds[:, 0] >= bounds[:, 1]).any():
        raise InerfError(
            f"{source}: heights, widths, focal lengths and bounds must be positive, with near < far"
        )
    c2w_llff = torch.from_numpy(mats[:, :, :4])
    check_rigid(c2w_llff, name=f"{source}: poses")

    # One scale for the whole scene (all images, whatever the split) so splits share a world frame.
    sc = 1.0 if bd_factor is None else 1.0 / (bounds.min() * bd_factor)
    c2w_llff = c2w_llff.clone()
    c2w_llff[:, :, 3] *= sc
    bounds = bounds * sc

    # LLFF ships images_4/, images_8/: copies resized with a proper filter.
    folder, residual_scale = image_folder(root, "images", scale)
    files = _image_files(folder)
    if len(files) != len(arr):
        raise InerfError(f"{folder}: found {len(files)} images but {source.name} has {len(arr)} poses")

    idx = first_views(llff_split_indices(len(arr), split, llffhold), max_views)
    if not idx:
        raise InerfError(f"{root}: split {split!r} is empty (llffhold={llffhold}, {len(arr)} images)")

    stack = SplitImages(bg)
    for i in idx:
        img = read_image(files[i])[..., :3]  # LLFF photos have no meaningful alpha
        stack.check_size(files[i], img, residual_scale)
        stack.add(img, files[i].relative_to(root).as_posix())

    H, W = stack.out_size
    h_ref, w_ref, f_ref = (torch.from_numpy(hwf[idx, k]) for k in range(3))
    # hwf refers to the full-resolution images; rescale to the images we actually return.
    fx, fy = f_ref * W / w_ref, f_ref * H / h_ref
    c2w = llff_to_opencv_c2w(c2w_llff[idx])  # the one axis conversion for this format
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=c2w.dtype).expand(len(idx), 1, 4)
    intrinsics = torch.stack([fx, fy, torch.full_like(fx, W / 2), torch.full_like(fx, H / 2)], -1)
    n = float(near) if near is not None else 0.9 * float(bounds.min())
    f = float(far) if far is not None else float(bounds.max())
    n, f = check_near_far(root, n, f)
    return ViewSet(
        **stack.view_fields(root),
        cameras=pinhole_cameras(torch.cat([c2w, bottom], 1), intrinsics, H, W),
        near=n,
        far=f,
        root=str(root),
        split=split,
        # Only the bd_factor rescale moved the world; LLFF's axis reordering is a camera-axis change.
        transform=SceneTransform(scale=sc, original=f"COLMAP world of the LLFF scene {root.name}"),
    )
