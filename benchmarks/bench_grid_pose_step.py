"""Time one iNeRF pose step through the grid field: forward and backward of 1024 rays w.r.t. the camera.

A pose step is: twist ``xi [6]`` -> ``c2w = exp(xi) c2w0`` -> rays through 1024 pixels -> ``render_rays``
(single pass, ``S`` samples per ray in [2, 6]) -> photometric MSE -> ``backward`` to ``xi``. The field's
parameters are frozen (as the pose solver freezes them), so the backward pass computes gradients with
respect to the sample positions only.

The field is either a trained checkpoint (``--weights`` + ``--config``) or, by default, a synthetic
"box chair" with the geometry of the shared Blender chair scene: six boxes (seat, back, four legs) in its
bounding box [-0.42, 0.42] x [-0.52, 0.52] x [-1, 1], written directly into the density factors (a box
is one rank-one term of the VM decomposition), then occupancy, shrink and upsampling to the final voxel
count exactly as training does; appearance factors keep their random initialisation. The camera sits where
the chair's test cameras do (radius 4.5, 30 degrees elevation, 400x400, f = 555.6 px).

Two pixel selections: ``object`` (1024 pixels on the object's silhouette, what iNeRF's interest-region
sampling mostly picks) and ``uniform`` (1024 pixels anywhere in the image).

    .venv/bin/python benchmarks/bench_grid_pose_step.py            # prints the median of 20 steps
    .venv/bin/python benchmarks/bench_grid_pose_step.py --samples 64 128 --dense
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time

import torch

from inerf.fields.grid import GridConfig, GridField
from inerf.geometry.cameras import look_at
from inerf.geometry.se3 import se3_exp
from inerf.rays.rays import rays_from_pixels
from inerf.render.renderer import RenderConfig, render_rays

H = W = 400
FOCAL = 0.5 * W / math.tan(0.5 * 0.6911112070083618)  # the chair scene's camera_angle_x
NEAR, FAR = 2.0, 6.0
CHAIR_BOXES = (  # (x0, y0, z0, x1, y1, z1); the seat faces -y, as in the shared scene
    (-0.42, -0.52, -0.12, 0.42, 0.52, 0.0),  # seat
    (-0.42, 0.40, 0.0, 0.42, 0.52, 1.0),  # back
    (-0.42, -0.52, -1.0, -0.32, -0.42, -0.12),  # legs
    (0.32, -0.52, -1.0, 0.42, -0.42, -0.12),
    (-0.42, 0.42, -1.0, -0.32, 0.52, -0.12),
    (0.32, 0.42, -1.0, 0.42, 0.52, -0.12),
)


@torch.no_grad()
def box_chair_field(config: GridConfig | None = None, gain: float = 20.0) -> GridField:
    """A :class:`GridField` whose density is a union of :data:`CHAIR_BOXES`, trained-field sized.

    Box ``j`` is density component ``j`` of the (x, y) plane times the z line: ``gain`` inside, 0 outside,
    so ``sigma = density_scale * softplus(gain + shift)`` (~250 per unit) in the boxes and ~1e-3 elsewhere.
    """
    field = GridField(config or GridConfig())
    cd = field.config.density_components
    assert len(CHAIR_BOXES) <= cd, "need one density component per box"
    for plane, line in zip(field.planes, field.lines):
        plane[:, :cd] = 0.0
        line[:, :cd] = 0.0

    def vertices(d: int, n: int) -> torch.Tensor:
        return torch.linspace(field.aabb[0, d].item(), field.aabb[1, d].item(), n)

    rx, ry, rz = field.resolution
    x, y, z = vertices(0, rx), vertices(1, ry), vertices(2, rz)
    for j, (x0, y0, z0, x1, y1, z1) in enumerate(CHAIR_BOXES):
        inside_xy = ((y >= y0) & (y <= y1)).float()[:, None] * ((x >= x0) & (x <= x1)).float()[None, :]
        field.planes[0][0, j] = gain * inside_xy  # plane (x, y): [R_y, R_x]
        field.lines[0][0, j, :, 0] = ((z >= z0) & (z <= z1)).float()
    field.update_occupancy()
    field.shrink()
    field.upsample(field.config.n_voxels_final)
    field.update_occupancy()
    return field


def load_field(weights: str, config: str) -> GridField:
    from safetensors.torch import load_file

    with open(config) as f:
        cfg = json.load(f)
    field = GridField(GridConfig(**cfg.get("field", cfg)))
    field.load_state_dict(load_file(weights))  # adopts the checkpoint's grid shapes; float16 is upcast
    return field


def pose_step_times(
    field, c2w0: torch.Tensor, uv: torch.Tensor, target: torch.Tensor, render: RenderConfig, repeats: int
) -> list[float]:
    times = []
    for _ in range(repeats + 3):  # 3 warm-up steps (allocator, first-call dispatch)
        t0 = time.perf_counter()
        xi = torch.zeros(6, requires_grad=True)
        out = render_rays(field, _rays(uv, se3_exp(xi) @ c2w0), render)
        loss = (out.rgb - target).pow(2).mean()
        loss.backward()
        assert torch.isfinite(xi.grad).all()
        times.append(time.perf_counter() - t0)
    return times[3:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, nargs="+", default=[64, 128], help="samples per ray (single pass)")
    ap.add_argument("--rays", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--dense", action="store_true", help="also time the field without empty-space skipping")
    ap.add_argument("--weights", help="trained GridField state dict (.safetensors)")
    ap.add_argument("--config", help="JSON with the GridConfig (or a run config whose 'field' key holds it)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    field = load_field(args.weights, args.config) if args.weights else box_chair_field()
    field.eval().requires_grad_(False)
    elev, azim = math.radians(30.0), math.radians(-60.0)
    eye = 4.5 * torch.tensor(
        [math.cos(elev) * math.cos(azim), math.cos(elev) * math.sin(azim), math.sin(elev)]
    )
    c2w0 = look_at(eye, torch.zeros(3))

    # Silhouette from a coarse render of the whole image: pixels the object covers.
    j, i = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    all_uv = torch.stack([i, j], -1).reshape(-1, 2)
    full = RenderConfig(n_coarse=128, n_fine=0, near=NEAR, far=FAR)
    with torch.no_grad():
        acc = torch.cat(
            [render_rays(field, _rays(all_uv[s : s + 8192], c2w0), full).acc for s in range(0, H * W, 8192)]
        )
    on_object = all_uv[acc > 0.5]
    g = torch.Generator().manual_seed(0)
    selections = {
        "object": on_object[torch.randperm(len(on_object), generator=g)[: args.rays]],
        "uniform": all_uv[torch.randperm(H * W, generator=g)[: args.rays]],
    }

    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; field {field.resolution} vertices, "
        f"{sum(p.numel() for p in field.parameters()) / 1e6:.2f} M params, occupancy "
        f"{field.occupancy.resolution} cells, {100 * field.occupancy.fraction():.1f}% occupied; "
        f"object covers {100 * len(on_object) / (H * W):.1f}% of the image"
    )
    variants = [("skip", field)]
    if args.dense:
        variants.append(("dense", lambda x, d: field(x, d, skip_empty=False)))
    for s in args.samples:
        render = RenderConfig(n_coarse=s, n_fine=0, near=NEAR, far=FAR)
        for name, uv in selections.items():
            # Target: the image 0.5 degrees / 0.01 units away, so the loss has a real gradient.
            with torch.no_grad():
                c2w_t = se3_exp(torch.tensor([0.01, 0.0, 0.0, 0.0, 0.0, 0.0087])) @ c2w0
                target = render_rays(field, _rays(uv, c2w_t), render).rgb
                xyz_frac = _occupied_fraction(field, uv, c2w0, render)
            for vname, fld in variants:
                ts = pose_step_times(fld, c2w0, uv, target, render, args.repeats)
                print(
                    f"pose step  S={s:4d}  pixels={name:8s} field={vname:5s} occupied samples "
                    f"{100 * xyz_frac:5.1f}%   median {1e3 * statistics.median(ts):6.1f} ms   "
                    f"min {1e3 * min(ts):6.1f} ms   (n={len(ts)})"
                )


def _rays(uv: torch.Tensor, c2w: torch.Tensor):
    return rays_from_pixels(uv, c2w, FOCAL, FOCAL, W / 2, H / 2)  # centred principal point, as the scene


def _occupied_fraction(field: GridField, uv, c2w, render: RenderConfig) -> float:
    """Fraction of the (unjittered) samples of these rays that fall in occupied cells."""
    rays = _rays(uv, c2w)
    t = torch.linspace(render.near, render.far, render.n_coarse)
    pts = rays.origins[:, None] + rays.directions[:, None] * t[:, None]
    return field.occupied(pts.reshape(-1, 3)).float().mean().item()


if __name__ == "__main__":
    main()
