"""Pose candidates by image retrieval: ORB features of the target matched against reference views of the
scene whose depth is known, and a PnP-RANSAC pose from the matches.

A reference view is an image at a known camera (a training view, or a render of the field at a viewpoint of
the :class:`~inerf.pose.global_search.CameraPrior`) and the field's depth rendered at that camera. A
keypoint of the reference with depth ``z`` back-projects to the world point ``c2w (z K^-1 [u, v, 1])`` (for
``RenderConfig.distance == "z"``; along the unit ray for ``"metric"``), so every ORB match between the
target and a reference is a 2D-3D correspondence, and OpenCV's ``solvePnPRansac`` with the target's
intrinsics gives a pose of the target. The references are ranked by their count of matches that pass
Lowe's ratio test; the best ``top`` are solved, and each pose with enough RANSAC inliers is a candidate.

A retrieved pose is usually within a few degrees of the truth where the target shares texture with a
reference, and is simply missing where it does not (textureless targets, a view unlike every reference):
the candidates complement the viewpoint grid of :func:`~inerf.pose.global_search.candidate_poses`, they do
not replace it.

Pixel coordinates follow :mod:`inerf.geometry.conventions` (OpenCV axes, pixel centres at +0.5). OpenCV's
keypoint coordinates put the centre of the first pixel at 0, hence the half-pixel shifts below.

Example::

    refs = render_references(run.model, prior_viewpoints, target.camera, size=128)
    found = retrieve_poses(target, refs, RetrievalConfig())
    found.c2w          # [M, 4, 4] candidate poses (OpenCV c2w), best first
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from inerf.geometry.cameras import Cameras, unproject
from inerf.pose.problem import PoseTarget, frozen_fields
from inerf.render.model import Model

__all__ = [
    "ReferenceViews",
    "RetrievalConfig",
    "RetrievalResult",
    "back_project",
    "render_references",
    "retrieve_poses",
]


@dataclass
class RetrievalConfig:
    """Settings of retrieval seeding."""

    references: int = 64
    """Reference viewpoints rendered when the scene has no training views to match against."""
    size: int = 160
    """Long side, in pixels, of the reference renders and of the copy of the target that is matched."""
    features: int = 1000
    """ORB keypoints detected per image (at most)."""
    ratio: float = 0.8
    """Lowe's ratio: a match is kept when its Hamming distance is below this fraction of the second best."""
    top: int = 4
    """References (most ratio-test matches first) solved by PnP-RANSAC."""
    min_inliers: int = 12
    """RANSAC inliers a pose needs to become a candidate."""
    reprojection_px: float = 3.0
    """RANSAC inlier threshold, in pixels of the matched copy of the target."""
    margin_px: int = 2
    """Reference keypoints closer than this to the silhouette (pixels of the reference) are not used."""

    def __post_init__(self) -> None:
        for name in ("references", "size", "features", "top"):
            if getattr(self, name) < 1:
                raise ValueError(f"retrieval {name} must be >= 1, got {getattr(self, name)}")
        if self.min_inliers < 4:
            raise ValueError(
                f"retrieval min_inliers must be >= 4 (PnP needs 4 points), got {self.min_inliers}"
            )
        if not 0.0 < self.ratio <= 1.0:
            raise ValueError(f"retrieval ratio must be in (0, 1], got {self.ratio}")
        if not (math.isfinite(self.reprojection_px) and self.reprojection_px > 0):
            raise ValueError(f"retrieval reprojection_px must be finite and > 0, got {self.reprojection_px}")


@dataclass
class ReferenceViews:
    """Images of the scene at known cameras, with the field's depth there.

    Attributes:
        images: ``[R, H, W, 3]`` float RGB in [0, 1].
        depths: ``[R, H, W]`` depth in the units of ``distance`` (``z``: along the optical axis; ``metric``:
            along the unit ray); pixels with ``acc`` below 0.5 are not used.
        acc: ``[R, H, W]`` accumulated opacity of the depth render.
        cameras: ``R`` cameras of size ``H x W`` (OpenCV c2w, pixel centres at +0.5).
        distance: what ``depths`` measures, as :attr:`inerf.render.renderer.RenderConfig.distance`.
    """

    images: torch.Tensor
    depths: torch.Tensor
    acc: torch.Tensor
    cameras: Cameras
    distance: str = "z"

    def __len__(self) -> int:
        return self.images.shape[0]


def _scaled_camera(camera: Cameras, size: int) -> Cameras:
    """``camera`` scaled so its long side is at most ``size`` pixels (unchanged when already smaller)."""
    s = size / max(camera.height, camera.width)
    return camera.scaled(s) if s < 1.0 else camera


def render_references(
    model: Model, c2w: torch.Tensor, camera: Cameras, size: int, images: torch.Tensor | None = None
) -> ReferenceViews:
    """Reference views at the poses ``c2w`` ``[R, 4, 4]`` with the intrinsics of ``camera`` (one camera,
    scaled so its long side is ``size``): the field's colour (or ``images`` ``[R, h, w, 3]``, e.g. the
    training photos at these poses, area-resized to the render size) and its depth.
    """
    cam = _scaled_camera(camera[0:1] if len(camera) > 1 else camera, size).to(torch.device("cpu"))
    device = model.device
    c2w = torch.as_tensor(c2w, dtype=torch.float32).reshape(-1, 4, 4)
    rgbs, depths, accs = [], [], []
    with frozen_fields(model.coarse, model.fine), torch.no_grad():
        for pose in c2w:
            out = model.render_image(cam.with_c2w(pose).to(device))
            rgbs.append(out.rgb.cpu())
            depths.append(out.depth.cpu())
            accs.append(out.acc.cpu())
    rgb = torch.stack(rgbs)
    if images is not None:
        rgb = torch.nn.functional.interpolate(
            images.permute(0, 3, 1, 2).float(), size=(cam.height, cam.width), mode="area"
        ).permute(0, 2, 3, 1)
    cams = Cameras(
        c2w, cam.fx.expand(len(c2w)), cam.fy.expand(len(c2w)), cam.cx.expand(len(c2w)),
        cam.cy.expand(len(c2w)), cam.height, cam.width,
    )  # fmt: skip
    return ReferenceViews(rgb, torch.stack(depths), torch.stack(accs), cams, model.config.distance)


def back_project(uv: torch.Tensor, depth: torch.Tensor, camera: Cameras, index: int, distance: str = "z"):
    """World points ``[n, 3]`` (float64) of pixel positions ``uv`` ``[n, 2]`` (conventions' pixel coordinates:
    the first pixel's centre at (0.5, 0.5)) at ``depth`` ``[n]`` (``distance``: ``z`` or ``metric``, as
    :attr:`inerf.render.renderer.RenderConfig.distance`) in camera ``index`` of ``camera``."""
    fx, fy, cx, cy = (float(v[index]) for v in (camera.fx, camera.fy, camera.cx, camera.cy))
    uv, z = uv.double(), depth.double()
    if distance == "metric":  # distance along the unit ray -> z-depth
        z = z / torch.sqrt(((uv[:, 0] - cx) / fx) ** 2 + ((uv[:, 1] - cy) / fy) ** 2 + 1.0)
    return unproject(uv, z, camera.c2w[index].double().cpu(), fx, fy, cx, cy)


def _interior(acc: torch.Tensor, margin: int) -> torch.Tensor:
    """``[R, H, W]`` bool: opaque pixels (``acc > 0.5``) at least ``margin`` pixels from any transparent one
    (a square erosion)."""
    solid = (acc > 0.5).float()[:, None]
    if margin > 0:
        k = 2 * margin + 1
        solid = -torch.nn.functional.max_pool2d(-solid, k, stride=1, padding=margin)
    return solid[:, 0] > 0.5


def _gray_u8(image: torch.Tensor) -> np.ndarray:
    """``[H, W, 3]`` float RGB in [0, 1] -> ``[H, W]`` uint8 grey for OpenCV."""
    rgb = (image.detach().float().cpu().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).numpy()
    return np.ascontiguousarray(rgb @ np.array([0.299, 0.587, 0.114])).round().clip(0, 255).astype(np.uint8)


@dataclass
class RetrievalResult:
    """Poses found by :func:`retrieve_poses`.

    Attributes:
        c2w: ``[M, 4, 4]`` candidate poses (float64, OpenCV c2w), most inliers first (``M`` may be 0).
        inliers: ``[M]`` RANSAC inliers of each.
        reference: ``[M]`` the reference view each was solved from.
        matches: ``[R]`` ratio-test matches of every reference (its retrieval score).
    """

    c2w: torch.Tensor
    inliers: list[int]
    reference: list[int]
    matches: list[int]

    def to_json(self) -> dict:
        return {
            "poses": len(self.inliers),
            "inliers": self.inliers,
            "reference": self.reference,
            "best_matches": max(self.matches, default=0),
        }


def retrieve_poses(target: PoseTarget, refs: ReferenceViews, config: RetrievalConfig | None = None):
    """Candidate poses of ``target`` from ORB matches against ``refs`` and PnP-RANSAC (module docstring).

    Returns:
        :class:`RetrievalResult` (no poses where nothing matched well enough).
    """
    import cv2

    config = config or RetrievalConfig()
    # The target at about the references' scale: ORB is only partly scale invariant.
    from inerf.pose.global_search import low_resolution_target

    low = low_resolution_target(target, config.size)
    cam = low.camera.to(torch.device("cpu"))
    orb = cv2.ORB_create(nfeatures=config.features, edgeThreshold=15, patchSize=15, fastThreshold=10)
    kp_t, des_t = orb.detectAndCompute(_gray_u8(low.image), None)
    empty = RetrievalResult(torch.zeros(0, 4, 4, dtype=torch.float64), [], [], [0] * len(refs))
    if des_t is None or len(kp_t) < config.min_inliers:
        return empty
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    per_ref = []
    for r in range(len(refs)):
        kp_r, des_r = orb.detectAndCompute(_gray_u8(refs.images[r]), None)
        good = []
        if des_r is not None and len(kp_r) >= 2:
            for pair in matcher.knnMatch(des_t, des_r, k=2):
                if len(pair) == 2 and pair[0].distance < config.ratio * pair[1].distance:
                    good.append(pair[0])
        per_ref.append((kp_r, good))
    counts = [len(g) for _, g in per_ref]
    # Keypoints on the silhouette are no fixed 3D point (the outline slides over the surface as the view
    # turns), and their depth mixes surface and background: only keypoints well inside the opaque region
    # of the reference are used.
    interior = _interior(refs.acc, config.margin_px)
    K = np.array(
        [
            [float(cam.fx[0]), 0.0, float(cam.cx[0]) - 0.5],
            [0.0, float(cam.fy[0]), float(cam.cy[0]) - 0.5],
            [0, 0, 1],
        ]
    )
    poses, inliers, which = [], [], []
    for r in np.argsort(counts)[::-1][: config.top].tolist():
        kp_r, good = per_ref[r]
        if len(good) < config.min_inliers:
            continue
        # Keypoints -> conventions' pixel coordinates (+0.5); depth at the nearest pixel, opaque ones only.
        uv_r = torch.tensor([kp_r[m.trainIdx].pt for m in good], dtype=torch.float64) + 0.5
        uv_t = np.array([kp_t[m.queryIdx].pt for m in good], dtype=np.float64)
        col = uv_r[:, 0].floor().long().clamp(0, refs.images.shape[2] - 1)
        row = uv_r[:, 1].floor().long().clamp(0, refs.images.shape[1] - 1)
        solid = interior[r][row, col]
        if int(solid.sum()) < config.min_inliers:
            continue
        xyz = back_project(
            uv_r[solid], refs.depths[r, row[solid], col[solid]], refs.cameras, r, refs.distance
        )
        ok, rvec, tvec, inl = cv2.solvePnPRansac(
            xyz.numpy(),
            uv_t[solid.numpy()],
            K,
            None,
            reprojectionError=config.reprojection_px,
            iterationsCount=500,
            confidence=0.999,
            flags=cv2.SOLVEPNP_EPNP,
        )
        if not ok or inl is None or len(inl) < config.min_inliers:
            continue
        # Refine on the inliers (Levenberg-Marquardt on the reprojection error).
        rvec, tvec = cv2.solvePnPRefineLM(
            xyz.numpy()[inl[:, 0]], uv_t[solid.numpy()][inl[:, 0]], K, None, rvec, tvec
        )
        w2c = np.eye(4)
        w2c[:3, :3], _ = cv2.Rodrigues(rvec)
        w2c[:3, 3] = tvec[:, 0]
        poses.append(torch.from_numpy(np.linalg.inv(w2c)))
        inliers.append(len(inl))
        which.append(r)
    if not poses:
        return RetrievalResult(empty.c2w, [], [], counts)
    order = np.argsort(inliers)[::-1].tolist()
    return RetrievalResult(
        torch.stack([poses[i] for i in order]), [inliers[i] for i in order], [which[i] for i in order], counts
    )
