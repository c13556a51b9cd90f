"""pixelNeRF field: ResNet features of the source views + ResnetFC, loadable from the published checkpoints.

A field maps world points (and view directions) to colour and density; pixelNeRF's field additionally
needs :meth:`PixelNeRF.encode` of the source views first. It knows nothing about rays or images to render:
:meth:`PixelNeRF.field` is its :class:`~inerf.fields.base.RadianceField` view for the shared renderer
(:mod:`inerf.render`), and :mod:`inerf.pixelnerf.rendering` sets that renderer up as published.

Two entry points for the source views:

* :meth:`PixelNeRF.encode` keeps the **published call shape and conventions**: images in [-1, 1], c2w in
  OpenGL camera axes (x right, y up, looking along -z), intrinsics in pixelNeRF's pixel coordinates, where
  integer coordinates are pixel centres (so the default principal point (W / 2, H / 2) is the centre of
  pixel (W / 2, H / 2)).
* :meth:`PixelNeRF.encode_views` takes inerf's internal convention (images in [0, 1], :class:`Cameras` with
  OpenCV c2w and pixel centres at +0.5, see :mod:`inerf.geometry.conventions`) and converts once.

Internally every source view keeps its own world-to-camera matrix (OpenGL axes, because the published
weights see points in those axes) and its own fx, fy, cx, cy.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from inerf.errors import InerfError
from inerf.geometry.cameras import Cameras
from inerf.geometry.conventions import PIXEL_CENTER, opencv_to_opengl_c2w
from inerf.pixelnerf import fast_mlp
from inerf.pixelnerf.config import ModelConfig, PixelNeRFConfig, load_config
from inerf.pixelnerf.encoder import SpatialEncoder
from inerf.pixelnerf.resnetfc import ResnetFC, code_encoding

__all__ = ["PixelNeRF", "PixelNeRFField", "check_state_dict", "load_pixelnerf", "read_checkpoint"]


def _per_view(x: torch.Tensor, num_views: int) -> torch.Tensor:
    """``x [SB, ...]`` repeated for each source view, object-major: ``[SB * num_views, ...]`` (what
    ``repeat_interleave(num_views, 0)`` gives, as a broadcast and one copy: no repeats tensor, so nothing a CUDA
    graph cannot capture)."""
    if num_views == 1:
        return x
    return x[:, None].expand(x.shape[0], num_views, *x.shape[1:]).reshape(-1, *x.shape[1:])


def _rotate(R: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``R @ v`` for rotations ``R [..., 3, 3]`` and vectors ``v [..., 3]`` (broadcast), as products and a sum:
    ``torch.matmul`` on ``[..., 3, 1]`` columns runs one cuBLAS matrix-vector call per batch (10 of them took
    0.5 ms of a 6 ms pose step on an H200), this is one elementwise pass."""
    return (R * v[..., None, :]).sum(-1)


def _intrinsics_per_view(
    value, num_objects: int, num_views: int, default: tuple[float, float], name: str, device, dtype
) -> torch.Tensor:
    """Expand a focal length or principal point to ``[SB * NS, 2]`` (x, y) per source view.

    Accepted (``SB`` objects, ``NS`` views each): None (default), a scalar (x = y, shared), ``[SB]`` (x = y
    per object, published), ``[SB * NS]`` (x = y per view), ``[2]`` ((x, y) shared), ``[1 | SB | SB * NS, 2]``
    ((x, y) shared, per object or per view). A 1-D tensor whose length matches several readings is read in
    that order (per object first, as published); pass ``[1, 2]`` to give a shared (x, y) unambiguously.
    """
    n = num_objects * num_views
    if value is None:
        return torch.tensor(default, device=device, dtype=dtype).expand(n, 2).clone()
    t = torch.as_tensor(value, dtype=dtype, device=device)
    if t.ndim == 0:
        return t.expand(n, 2).clone()
    if t.ndim == 1:
        if t.shape[0] == num_objects:  # per object, x = y
            return t[:, None].repeat_interleave(num_views, 0).expand(n, 2).clone()
        if t.shape[0] == n:  # per view, x = y
            return t[:, None].expand(n, 2).clone()
        if t.shape[0] == 2:  # shared (x, y)
            return t[None].expand(n, 2).clone()
    if t.ndim == 2 and t.shape[1] == 2:
        if t.shape[0] == 1:
            return t.expand(n, 2).clone()
        if t.shape[0] == num_objects:
            return t.repeat_interleave(num_views, 0)
        if t.shape[0] == n:
            return t.clone()
    raise InerfError(
        f"{name}: expected a scalar, [{num_objects}], [{n}], [2] or [{num_objects}, 2] values for "
        f"{num_objects} object(s) x {num_views} view(s), got shape {tuple(t.shape)}"
    )


class PixelNeRF(nn.Module):
    """pixelNeRF with the published module names (``encoder``, ``code``, ``mlp_coarse``, ``mlp_fine``).

    Usage::

        model = load_pixelnerf("checkpoints/srn_car/pixel_nerf_latest", "srn")
        model.encode(images, c2w_gl, focal=131.25)          # source views, published conventions
        out = model(xyz, coarse=True, viewdirs=dirs)        # [SB, B, 4]: r, g, b, sigma
        rgb, sigma = model.field(coarse=False)(xyz, dirs)   # the RadianceField view (any renderer)

    The encoder state (features, cameras) lives in plain attributes, not in the ``state_dict``.
    """

    def __init__(self, config: ModelConfig | PixelNeRFConfig | None = None):
        super().__init__()
        self.full_config = config if isinstance(config, PixelNeRFConfig) else None
        cfg = (
            config.model
            if isinstance(config, PixelNeRFConfig)
            else config
            if config is not None
            else ModelConfig()
        )
        self.config = cfg
        self.encoder = SpatialEncoder(cfg.encoder)
        d_in = 3 if cfg.use_xyz else 1
        if cfg.use_viewdirs and cfg.use_code_viewdirs:
            d_in += 3
        self.code = code_encoding(d_in, cfg.code) if cfg.use_code else None
        if self.code is not None:
            d_in = self.code.out_dim
        if cfg.use_viewdirs and not cfg.use_code_viewdirs:
            d_in += 3
        d_latent = self.encoder.latent_size
        self.mlp_coarse = ResnetFC(d_in, d_latent, cfg.d_out, cfg.mlp_coarse)
        self.mlp_fine = (
            ResnetFC(d_in, d_latent, cfg.d_out, cfg.mlp_fine) if cfg.mlp_fine is not None else None
        )
        self.mlp_dtype: torch.dtype | None = None
        """Run the ResnetFC under autocast to this dtype (``torch.bfloat16``: the pose solve's fast path on
        CUDA); None keeps float32 (the published arithmetic)."""
        self._frozen_cache: dict = {}
        self._lookup_maps: dict = {}
        self.encoder_dtype: torch.dtype | None = None
        """Run the ResNet encoder under autocast to this dtype (``torch.bfloat16``: training on CUDA); the
        features are returned to float32, so the lookup and everything after it keep float32."""
        self._clear()

    def _clear(self) -> None:
        self.num_objects = 0
        self.num_views = 0
        self.latent: torch.Tensor | None = None  # [SB * NS, C, H_l, W_l]
        self.w2c_gl: torch.Tensor | None = None  # [SB * NS, 3, 4] world -> OpenGL camera
        self.focal: torch.Tensor | None = None  # [SB * NS, 2] (fx, fy), pixels
        self.principal: torch.Tensor | None = None  # [SB * NS, 2] (cx, cy), pixelNeRF pixel coordinates
        self.image_size: tuple[int, int] | None = None  # (W, H)

    # ------------------------------------------------------------------------------------------------
    # Source views
    # ------------------------------------------------------------------------------------------------
    def encode(self, images: torch.Tensor, c2w: torch.Tensor, focal, c=None) -> None:
        """Encode source views (published call shape and conventions).

        Args:
            images: ``[SB, NS, 3, H, W]`` (SB objects, NS views each), or ``[NS, 3, H, W]`` for one
                object; RGB in **[-1, 1]**.
            c2w: ``[SB, NS, 4, 4]`` or ``[NS, 4, 4]`` camera-to-world in **OpenGL** camera axes (x right,
                y up, looking along -z).
            focal: focal length(s) in pixels: scalar, ``[SB]``, ``[SB * NS]``, ``[2]`` = (fx, fy) or
                ``[SB, 2]`` (see :func:`_intrinsics_per_view`).
            c: principal point(s) in pixelNeRF pixel coordinates (integer = pixel centre), same shapes as
                ``focal``; None = (W / 2, H / 2).
        """
        if images.ndim == 4:
            images, c2w = images[None], c2w.reshape(1, -1, *c2w.shape[-2:])
        if images.ndim != 5 or images.shape[2] != 3:
            raise InerfError(
                f"encode: images must be [SB, NS, 3, H, W] or [NS, 3, H, W], got {tuple(images.shape)}"
            )
        SB, NS, _, H, W = images.shape
        if c2w.shape[:2] != (SB, NS) or c2w.shape[-2:] not in ((4, 4), (3, 4)):
            raise InerfError(
                f"encode: c2w must be [{SB}, {NS}, 4, 4] to match the images, got {tuple(c2w.shape)}"
            )
        dev, dt = images.device, images.dtype
        if focal is None:
            raise InerfError("encode: focal is required")
        fxfy = _intrinsics_per_view(focal, SB, NS, (0.0, 0.0), "focal", dev, dt)
        # Default principal point (W / 2, H / 2) in pixelNeRF's coordinates (integer = pixel centre).
        cxcy = _intrinsics_per_view(c, SB, NS, (W / 2, H / 2), "c", dev, dt)
        c2w = c2w.reshape(SB * NS, *c2w.shape[-2:]).to(device=dev, dtype=dt)
        self._encode(images.reshape(SB * NS, 3, H, W), c2w, fxfy, cxcy, SB, NS)

    def encode_views(self, images: torch.Tensor, cameras: Cameras, num_objects: int = 1) -> None:
        """Encode source views given in inerf's internal convention.

        Args:
            images: ``[SB * NS, H, W, 3]`` (object-major) or ``[SB, NS, H, W, 3]``, RGB in **[0, 1]** (the
                package's image layout, e.g. :attr:`inerf.data.srn.ObjectViews.images`).
            cameras: ``SB * NS`` cameras (OpenCV c2w, pixel centres at +0.5), per-view fx, fy, cx, cy.
            num_objects: SB when ``images`` is 4-D.
        """
        num_views = None
        if images.ndim == 5:
            # An empty batch of objects (a process of a data-parallel step with none) keeps its view count.
            num_objects, num_views = images.shape[:2]
            images = images.reshape(-1, *images.shape[2:])
        if images.ndim != 4 or images.shape[-1] != 3:
            raise InerfError(f"encode_views: images must be [N, H, W, 3], got {tuple(images.shape)}")
        n, H, W, _ = images.shape
        if len(cameras) != n or (cameras.height, cameras.width) != (H, W):
            raise InerfError(
                f"encode_views: {len(cameras)} camera(s) of {cameras.width}x{cameras.height} for "
                f"{n} image(s) of {W}x{H}"
            )
        if num_views is None and (num_objects < 1 or n % num_objects):
            raise InerfError(f"encode_views: {n} views cannot be split into {num_objects} objects")
        cams = cameras.to(images.device)
        c2w_gl = opencv_to_opengl_c2w(cams.c2w.to(images.dtype))  # the published weights see OpenGL axes
        fxfy = torch.stack([cams.fx, cams.fy], -1).to(images.dtype)
        # inerf puts pixel centres at +0.5, pixelNeRF at integers: shift the principal point by half a pixel.
        cxcy = torch.stack([cams.cx, cams.cy], -1).to(images.dtype) - PIXEL_CENTER
        # [0, 1] -> [-1, 1]: the published encoder was trained on (x - 0.5) / 0.5, not ImageNet statistics.
        self._encode(
            images.permute(0, 3, 1, 2) * 2.0 - 1.0,
            c2w_gl,
            fxfy,
            cxcy,
            num_objects,
            num_views if num_views is not None else n // num_objects,
        )

    def _encode(self, images, c2w_gl, fxfy, cxcy, num_objects, num_views) -> None:
        """``images [SB*NS, 3, H, W]`` in [-1, 1], ``c2w_gl [SB*NS, 3|4, 4]``, ``fxfy, cxcy [SB*NS, 2]``."""
        H, W = images.shape[-2:]
        if min(H, W) < 4:
            raise InerfError(f"encode: images of {W}x{H} are too small for the ResNet encoder")
        R_c2w, t_c2w = c2w_gl[:, :3, :3], c2w_gl[:, :3, 3:]
        R_w2c = R_c2w.transpose(1, 2)  # rigid inverse: R^T, -R^T t
        self.w2c_gl = torch.cat([R_w2c, -R_w2c @ t_c2w], dim=2)
        self.focal, self.principal = fxfy, cxcy
        self.num_objects, self.num_views, self.image_size = num_objects, num_views, (W, H)
        if self.encoder_dtype is not None:
            with torch.autocast(images.device.type, dtype=self.encoder_dtype, cache_enabled=False):
                latent = self.encoder(images)
            self.latent = latent.float()
        else:
            self.latent = self.encoder(images)
        if self.config.stop_encoder_grad:
            self.latent = self.latent.detach()

    def _project(self, xyz_cam: torch.Tensor) -> torch.Tensor:
        """``xyz_cam [SB*NS, B, 3]`` (OpenGL camera axes) -> ``uv [SB*NS, B, 2]`` (pixelNeRF pixels)."""
        # The OpenGL camera looks along -z, so the depth in front of it is -z; image u follows camera x and
        # image v grows downward, i.e. against the OpenGL camera's y axis (pixelNeRF folds this sign into fy).
        depth = -xyz_cam[..., 2]
        fx, fy = self.focal[:, None, 0], self.focal[:, None, 1]
        cx, cy = self.principal[:, None, 0], self.principal[:, None, 1]
        u = xyz_cam[..., 0] / depth * fx + cx
        v = -(xyz_cam[..., 1] / depth) * fy + cy
        return torch.stack([u, v], dim=-1)

    def source_pixels(self, xyz: torch.Tensor) -> torch.Tensor:
        """Where world points ``xyz [SB, B, 3]`` land in each encoded source view: ``[SB, NS, B, 2]`` (u, v)
        in pixelNeRF pixel coordinates (integer = pixel centre; add 0.5 for inerf's). For inspection."""
        if self.w2c_gl is None:
            raise InerfError("pixelNeRF: call encode() first")
        x = _per_view(xyz, self.num_views)
        x_cam = _rotate(self.w2c_gl[:, None, :3, :3], x) + self.w2c_gl[:, None, :3, 3]
        return self._project(x_cam).reshape(self.num_objects, self.num_views, -1, 2)

    # ------------------------------------------------------------------------------------------------
    # Field
    # ------------------------------------------------------------------------------------------------
    def field(self, coarse: bool = True) -> PixelNeRFField:
        """The :class:`~inerf.fields.base.RadianceField` view of the coarse (or fine) network, for the shared
        renderer: ``(xyz [SB, N, 3], viewdirs [SB, N, 3]) -> (rgb [SB, N, 3], sigma [SB, N])``."""
        return PixelNeRFField(self, coarse)

    def forward(
        self, xyz: torch.Tensor, coarse: bool = True, viewdirs: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Colour and density at world points, conditioned on the encoded source views.

        Args:
            xyz: ``[SB, B, 3]`` world points (SB = number of encoded objects).
            coarse: use ``mlp_coarse`` (else ``mlp_fine``, or ``mlp_coarse`` if the model has none).
            viewdirs: ``[SB, B, 3]`` unit world ray directions (required when the model uses view directions).
        Returns:
            ``[SB, B, 4]``: (r, g, b) after a sigmoid, sigma after a ReLU.
        """
        if self.latent is None:
            raise InerfError("pixelNeRF: call encode() with the source views before evaluating points")
        SB, NS, cfg = self.num_objects, self.num_views, self.config
        if xyz.ndim != 3 or xyz.shape[0] != SB or xyz.shape[-1] != 3:
            raise InerfError(
                f"pixelNeRF: xyz must be [{SB}, B, 3] for {SB} encoded object(s), got {tuple(xyz.shape)}"
            )
        B = xyz.shape[1]
        # Rows (object, view, point): every object's points once per source view.
        xyz = _per_view(xyz, NS)  # [SB*NS, B, 3]
        R, t = self.w2c_gl[:, None, :3, :3], self.w2c_gl[:, None, :3, 3]
        xyz_rot = _rotate(R, xyz)  # rotated only: the published position input
        xyz_cam = xyz_rot + t

        if cfg.use_xyz:
            # normalize_z: the point relative to the *world origin*, expressed in the camera's axes.
            feat = xyz_rot if cfg.normalize_z else xyz_cam
        else:
            # OpenGL camera looks along -z: depth in front of the camera is -z.
            feat = -(xyz_rot if cfg.normalize_z else xyz_cam)[..., 2:3]
        feat = feat.reshape(-1, feat.shape[-1])
        dirs = None
        if cfg.use_viewdirs:
            if viewdirs is None:
                raise InerfError("pixelNeRF: this model needs viewdirs")
            if viewdirs.shape != (SB, B, 3):
                raise InerfError(f"pixelNeRF: viewdirs must be [{SB}, {B}, 3], got {tuple(viewdirs.shape)}")
            dirs = _rotate(R, _per_view(viewdirs, NS)).reshape(-1, 3)
            if cfg.use_code_viewdirs:
                feat = torch.cat([feat, dirs], dim=-1)
        if self.code is not None:
            feat = self.code(feat)
        if dirs is not None and not cfg.use_code_viewdirs:
            feat = torch.cat([feat, dirs], dim=-1)

        uv = self._project(xyz_cam)
        mlp = self.mlp_coarse if coarse or self.mlp_fine is None else self.mlp_fine
        if mlp.config.combine_layer >= mlp.config.n_blocks and NS > 1:
            raise InerfError("pixelNeRF: this network never combines source views; encode a single view")
        enc = self.encoder.config
        if self.mlp_dtype is not None and fast_mlp.supports(mlp, NS):
            # Fast path with frozen weights: the restructured network of inerf.pixelnerf.fast_mlp, fed by
            # its one-kernel feature lookup where the GPU has it.
            if fast_mlp.lookup_supported(self.latent, enc.index_interp, enc.index_padding):
                (W, H), (H_l, W_l) = self.image_size, self.latent.shape[-2:]
                net = self._frozen(mlp)
                folded = fast_mlp.FOLD_LATENT and net.n_z > 0
                lookup = (self._lookup_map(net if folded else None), (W_l / W, H_l / H), folded)
                raw = fast_mlp.frozen_resnetfc(net, uv.reshape(-1, 2), feat, NS, B, lookup)
            else:
                latent = self.encoder.index(self.latent, uv, self.image_size).reshape(
                    -1, self.latent.shape[1]
                )
                raw = fast_mlp.frozen_resnetfc(self._frozen(mlp), latent, feat, NS, B)
            raw = raw.reshape(SB, B, raw.shape[-1])
            return torch.cat([torch.sigmoid(raw[..., :3]), torch.relu(raw[..., 3:])], dim=-1)
        # No culling behind the camera or outside the image, as published (border features there).
        latent = self.encoder.index(self.latent, uv, self.image_size)  # [SB*NS, B, C]
        rows = torch.cat([latent.reshape(-1, latent.shape[-1]), feat], dim=-1)
        if self.mlp_dtype is not None:
            # Fast path: the ResnetFC's matrix products on bf16 tensor cores (fp32 accumulation); the point
            # projection, encodings and feature lookup above stay in fp32, where pose gradients are made.
            # No autocast weight cache: a CUDA graph may capture this, and cached casts would live outside it.
            with torch.autocast(rows.device.type, dtype=self.mlp_dtype, cache_enabled=False):
                raw = mlp(rows, NS, B)
            raw = raw.float().reshape(SB, B, raw.shape[-1])
        else:
            raw = mlp(rows, NS, B)
            raw = raw.reshape(SB, B, raw.shape[-1])  # sizes spelt out: SB may be 0 (an empty shard)
        return torch.cat([torch.sigmoid(raw[..., :3]), torch.relu(raw[..., 3:])], dim=-1)

    def _lookup_map(self, net: fast_mlp.FrozenResnetFC | None) -> torch.Tensor:
        """The fast lookup's channels-last map ``[V, H_l, W_l, channels]`` in ``mlp_dtype``: the encoded
        features, or with ``net`` their :meth:`~inerf.pixelnerf.fast_mlp.FrozenResnetFC.fold_map` (cached per
        encode and network)."""
        key = (
            id(self.latent),
            self.latent._version,
            self.mlp_dtype,
            id(net),
            None if net is None else net.version,
        )
        cached = self._lookup_maps.get(key)
        if cached is None:
            latent_cl = self.latent.detach().permute(0, 2, 3, 1)
            if net is None:
                cached = latent_cl.to(self.mlp_dtype).contiguous()
            else:
                cached = net.fold_map(latent_cl.contiguous())
            if len(self._lookup_maps) >= 4:  # one encode's coarse and fine maps, and a spare
                self._lookup_maps.clear()
            # The latent is held with its map so that its id cannot be reused while the entry lives.
            self._lookup_maps[key] = cached = (cached, self.latent)
        return cached[0]

    def _frozen(self, mlp: ResnetFC) -> fast_mlp.FrozenResnetFC:
        """``mlp``'s weights packed for :mod:`inerf.pixelnerf.fast_mlp` (cached; rebuilt after a change)."""
        key = (id(mlp), self.mlp_dtype, self.latent.device)
        packed = self._frozen_cache.get(key)
        if packed is None or packed.stale(mlp):
            packed = fast_mlp.FrozenResnetFC(mlp, self.mlp_dtype, self.latent.device)
            self._frozen_cache[key] = packed
        return packed


class PixelNeRFField(nn.Module):
    """A :class:`~inerf.fields.base.RadianceField` view of an **encoded** :class:`PixelNeRF`, with its coarse
    or fine network: ``(xyz [SB, N, 3], viewdirs [SB, N, 3]) -> (rgb [SB, N, 3], sigma [SB, N])``, the
    leading axis being the encoded objects (as many as :meth:`PixelNeRF.encode` received). With one encoded
    object the axis may be left out: ``[N, 3] -> [N, 3], [N]``.
    """

    def __init__(self, model: PixelNeRF, coarse: bool = True):
        super().__init__()
        self.model, self.coarse = model, coarse

    @property
    def mlp_dtype(self) -> torch.dtype | None:
        """The encoded model's :attr:`PixelNeRF.mlp_dtype` (set by fast paths through the field)."""
        return self.model.mlp_dtype

    @mlp_dtype.setter
    def mlp_dtype(self, value: torch.dtype | None) -> None:
        self.model.mlp_dtype = value

    def forward(
        self, xyz: torch.Tensor, viewdirs: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        single = xyz.ndim == 2
        if single:
            xyz, viewdirs = xyz[None], None if viewdirs is None else viewdirs[None]
        out = self.model(xyz, coarse=self.coarse, viewdirs=viewdirs)
        if single:
            out = out[0]
        return out[..., :3], out[..., 3]


# ----------------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------------
def read_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict[str, torch.Tensor]:
    """Read a published ``pixel_nerf_latest`` (a bare ``state_dict`` written by ``torch.save``), or the same
    ``state_dict`` as a ``.safetensors`` file (inerf's shipped models, possibly float16: the model's
    ``load_state_dict`` converts to its own dtype).

    Only ``torch.load(..., weights_only=True)`` or safetensors are used: no code from the file runs.

    Raises:
        InerfError: missing, truncated or foreign file, or content that is not a dict of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise InerfError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device=str(map_location))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for a bad header
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            raise InerfError(f"cannot read checkpoint {path} (not a safetensors file): {first}") from None
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file: all user errors
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise InerfError(
            f"cannot read checkpoint {path} (truncated or not a PyTorch state_dict): {first}"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # some re-saved copies wrap the bare dict
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InerfError(f"checkpoint {path} is not a state_dict of tensors (got {type(state).__name__})")
    return state


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], what: str = "checkpoint") -> None:
    """Raise a one-line :class:`InerfError` naming missing / unexpected keys and shape mismatches."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: file {list(state[k].shape)} vs model {list(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]

    def listing(keys, label):
        if not keys:
            return None
        more = f", ... (+{len(keys) - 4})" if len(keys) > 4 else ""
        return f"{len(keys)} {label} ({', '.join(keys[:4])}{more})"

    parts = [
        p
        for p in (
            listing(missing, "missing keys"),
            listing(unexpected, "unexpected keys"),
            listing(shapes, "shape mismatches"),
        )
        if p
    ]
    if parts:
        raise InerfError(f"{what} does not match the model config: " + "; ".join(parts))


def load_pixelnerf(
    checkpoint_path: str | os.PathLike,
    config: str | os.PathLike | PixelNeRFConfig = "srn",
    device: str | torch.device = "cpu",
) -> PixelNeRF:
    """Build the pixelNeRF of ``config`` and load a published checkpoint strictly.

    Args:
        checkpoint_path: ``checkpoints/<name>/pixel_nerf_latest`` (a bare state_dict, 278 entries for the
            published models).
        config: a config name (``srn``, ``sn64``, ``sn64_unseen``, ``dtu``, ``srn_car``, ...), a path to a
            pixelNeRF ``.conf``, or a :class:`PixelNeRFConfig`.
        device: where the model lives.
    Returns:
        The model in **eval mode** (BatchNorm uses the stored running statistics) with frozen weights
        (``requires_grad=False``; call ``requires_grad_(True)`` and ``train()`` to fine-tune). Its resolved
        configuration is ``model.full_config`` (renderer settings included).
    Raises:
        InerfError: unreadable file, or keys / shapes that do not match the config (listed).
    """
    cfg = load_config(config)
    model = PixelNeRF(cfg)
    state = read_checkpoint(checkpoint_path, map_location="cpu")
    check_state_dict(model, state, f"checkpoint {checkpoint_path} (config {cfg.name!r})")
    model.load_state_dict(state, strict=True)
    return model.to(device).eval().requires_grad_(False)
