"""Pixel-sampling strategies for iNeRF (paper §IV-B): which target pixels are rendered at each step.

Every strategy is only a choice of pixel indices; the solver renders rays through exactly those pixels.
A :class:`PixelSampler` is built once per target image (keypoint detection, masks) and then draws a
fresh selection every step:

* ``random``            uniform over the image, without replacement;
* ``interest_points``   keypoints of the target (OpenCV SIFT or ORB); when there are fewer keypoints
                        than rays, all keypoints plus random other pixels (as the public iNeRF code);
* ``interest_region``   the keypoint mask dilated ``I`` times with a ``k x k`` square (paper: 5x5, I = 3),
                        sampled uniformly; only pixels inside it, so fewer rays when it is small;
* ``center``            uniform inside the central box (``center_fraction`` of each side);
* ``patch``             one ``s x s`` square at a random position, ``s = floor(sqrt(n_rays))``;
* ``mask``              uniform over the foreground (alpha > 0.5), optionally grown by ``mask_dilate`` px.

Randomness is *counter-based*: the selection for (seed, step) is a pure function of those integers,
computed with a 32-bit integer hash on the device. So a selection does not depend on how many problems
are solved together (a batch of ``G`` seeds gives, row by row, what ``G`` single solves give), it is the
same on CPU and GPU, and no generator state has to be carried or synchronised. Sampling ``k`` of ``M``
candidates without replacement = taking the ``k`` smallest hash keys; the hash is a bijection of 32-bit
integers, so keys never tie and the choice is unique.
"""

from __future__ import annotations

import numpy as np
import torch

from inerf.errors import InerfError
from inerf.pose.config import PoseConfig, SamplingConfig

__all__ = [
    "PixelSampler",
    "detect_keypoints",
    "flat_to_uv",
    "hash_keys",
    "hash_keys_steps",
    "interest_region_mask",
    "mix32",
]

_MASK32 = 0xFFFFFFFF
# Constants of Chris Wellons' "lowbias32" integer hash (hash-prospector); both multipliers are odd, so
# every stage (xor-shift, multiply mod 2^32) is invertible and the hash is a bijection of [0, 2^32).
_M1, _M2 = 0x7FEB352D, 0x846CA68B
# Distinct salts so that the streams used for different purposes (primary pick, top-up pick, patch
# corner) are unrelated even for the same seed and step.
_SALT_PICK, _SALT_FILL, _SALT_PATCH = 0x9E3779B9, 0x85EBCA6B, 0xC2B2AE35


def _mulmod32(x: torch.Tensor, c: int) -> torch.Tensor:
    """``x * c mod 2^32`` for int64 ``x`` in [0, 2^32): split x in 16-bit halves so no product overflows
    int64 (x * c itself can reach 2^64)."""
    lo, hi = x & 0xFFFF, x >> 16
    return (lo * c + (((hi * c) & 0xFFFF) << 16)) & _MASK32


def mix32(x: torch.Tensor) -> torch.Tensor:
    """Bijective 32-bit integer hash of int64 values in [0, 2^32), elementwise (any shape, any device)."""
    x = x ^ (x >> 16)
    x = _mulmod32(x, _M1)
    x = x ^ (x >> 15)
    x = _mulmod32(x, _M2)
    return x ^ (x >> 16)


def hash_keys(seeds: torch.Tensor, step: int, counters: torch.Tensor, salt: int = _SALT_PICK) -> torch.Tensor:
    """Pseudo-random 32-bit keys ``[G, M]`` for ``G`` seeds ``[G]`` at ``step`` and counters ``[M]``.

    For a fixed (seed, step) the map counter -> key is a bijection, so distinct counters get distinct keys.
    """
    steps = torch.full((1,), int(step), dtype=torch.int64, device=seeds.device)
    return hash_keys_steps(seeds, steps, counters, salt)[:, 0]


def hash_keys_steps(
    seeds: torch.Tensor, steps: torch.Tensor, counters: torch.Tensor, salt: int = _SALT_PICK
) -> torch.Tensor:
    """:func:`hash_keys` of ``B`` steps at once: keys ``[G, B, M]`` for seeds ``[G]``, steps ``[B]`` (int64)
    and counters ``[M]`` (the same elementwise arithmetic, so each ``[:, b]`` equals ``hash_keys`` at
    ``steps[b]``)."""
    seeds = seeds.to(torch.int64) & _MASK32
    h = mix32(
        mix32(seeds ^ salt)[:, None] ^ (steps & _MASK32)[None, :]
    )  # [G, B]: one stream per (seed, step)
    h2 = mix32(h ^ _SALT_FILL)
    return mix32(mix32(counters.to(torch.int64) ^ h[..., None]) ^ h2[..., None])


def _choose(
    candidates: torch.Tensor, k: int, seeds: torch.Tensor, steps: torch.Tensor, salt: int
) -> torch.Tensor:
    """``k`` of the ``M`` candidate pixel indices ``[M]`` per seed and step, without replacement:
    ``[G, B, k]`` for seeds ``[G]`` and steps ``[B]``."""
    keys = hash_keys_steps(seeds, steps, torch.arange(candidates.numel(), device=candidates.device), salt)
    pick = torch.topk(keys, k, dim=-1, largest=False, sorted=False).indices
    return candidates[pick]


def flat_to_uv(flat: torch.Tensor, width: int) -> torch.Tensor:
    """Flat row-major pixel indices ``[...]`` -> integer pixel coordinates ``[..., 2]`` (column, row)."""
    return torch.stack([flat % width, torch.div(flat, width, rounding_mode="floor")], dim=-1)


def _to_uint8_gray(image) -> np.ndarray:
    img = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    img = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if img.ndim == 3:
        import cv2

        img = cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2GRAY)
    return img


def detect_keypoints(image, detector: str = "sift", max_keypoints: int = 0) -> np.ndarray:
    """Keypoints of an image as unique integer pixel indices ``[P, 2]`` (column, row), strongest first.

    Args:
        image: ``[H, W, 3]`` RGB in [0, 1] (tensor or array; already composited on the background).
        detector: ``"sift"`` or ``"orb"``.
        max_keypoints: keep at most this many of the strongest responses (0 = all).
    """
    import cv2

    gray = _to_uint8_gray(image)
    if detector == "sift":
        det = cv2.SIFT_create(nfeatures=max(int(max_keypoints), 0))
    elif detector == "orb":
        # ORB needs a positive budget; 0 ("all") becomes one that no image of ours reaches.
        det = cv2.ORB_create(nfeatures=int(max_keypoints) if max_keypoints > 0 else 100_000)
    else:
        raise ValueError(f"unknown detector {detector!r}")
    kps = sorted(det.detect(gray, None), key=lambda kp: -kp.response)
    if max_keypoints > 0:
        kps = kps[:max_keypoints]
    h, w = gray.shape
    if not kps:
        return np.zeros((0, 2), dtype=np.int64)
    # OpenCV puts pixel centres at integer coordinates, so rounding gives the pixel that holds the point.
    pts = np.array([kp.pt for kp in kps], dtype=np.float64)
    ij = np.floor(pts + 0.5).astype(np.int64)
    ij[:, 0] = ij[:, 0].clip(0, w - 1)
    ij[:, 1] = ij[:, 1].clip(0, h - 1)
    _, first = np.unique(ij[:, 1] * w + ij[:, 0], return_index=True)
    return ij[np.sort(first)]  # unique pixels, still strongest first


def interest_region_mask(
    image,
    detector: str = "sift",
    kernel: int = 5,
    iterations: int = 3,
    max_keypoints: int = 0,
    keypoints: np.ndarray | None = None,
) -> np.ndarray:
    """Boolean ``[H, W]`` mask: keypoint pixels dilated ``iterations`` times by a ``kernel`` square."""
    import cv2

    h, w = np.asarray(image.shape[:2])
    kp = detect_keypoints(image, detector, max_keypoints) if keypoints is None else keypoints
    mask = np.zeros((h, w), dtype=np.uint8)
    mask[kp[:, 1], kp[:, 0]] = 1
    if iterations > 0 and kernel > 1:
        mask = cv2.dilate(mask, np.ones((kernel, kernel), np.uint8), iterations=iterations)
    return mask.astype(bool)


def _center_support(height: int, width: int, fraction: float) -> np.ndarray:
    """Flat indices of the centred box covering ``fraction`` of each side (at least one pixel)."""
    bh, bw = max(1, round(height * fraction)), max(1, round(width * fraction))
    r0, c0 = (height - bh) // 2, (width - bw) // 2  # rows/cols [lo, lo + size)
    rows, cols = np.meshgrid(np.arange(r0, r0 + bh), np.arange(c0, c0 + bw), indexing="ij")
    return (rows * width + cols).reshape(-1)


def _mask_support(alpha, dilate: int) -> np.ndarray:
    """Flat indices of the foreground (alpha > 0.5), grown by ``dilate`` pixels (a square of side
    ``2 dilate + 1``)."""
    if alpha is None:
        raise InerfError(
            "mask sampling needs a foreground alpha: give an RGBA target image or a dataset view with alpha"
        )
    a = alpha.detach().cpu().numpy() if isinstance(alpha, torch.Tensor) else np.asarray(alpha)
    fg = a > 0.5
    if dilate > 0 and fg.any():
        import cv2

        side = 2 * dilate + 1
        fg = cv2.dilate(fg.astype(np.uint8), np.ones((side, side), np.uint8)).astype(bool)
    support = np.flatnonzero(fg.reshape(-1))
    if support.size == 0:
        raise InerfError("mask sampling: the target's alpha has no foreground pixel (alpha > 0.5)")
    return support


def _interest_region_support(image, config: SamplingConfig, keypoints: np.ndarray) -> np.ndarray:
    """Flat indices of the keypoints dilated by the config's kernel and iterations."""
    mask = interest_region_mask(
        image, config.detector, config.dilate_kernel, config.dilate_iterations, keypoints=keypoints
    )
    support = np.flatnonzero(mask.reshape(-1))
    if support.size == 0:
        raise InerfError(
            f"interest_region sampling: the {config.detector.upper()} detector found no "
            "keypoints in the target image; use another --sampling strategy"
        )
    return support


class PixelSampler:
    """Draws the pixels rendered at each step for one target image.

    Args:
        height, width: target image size.
        n_rays: rays requested per step.
        config: the strategy and its parameters.
        image: ``[H, W, 3]`` target (needed by the interest strategies).
        alpha: ``[H, W]`` foreground coverage (needed by ``mask``).
        device: where the indices live (the solver's device).

    Attributes:
        n: pixels per selection (``n_rays``, or fewer when the strategy's support is smaller: all pixels of a
            small interest region, ``s * s`` for a patch). Constant over steps.
        candidates: ``[M]`` flat indices of the support (None for ``patch``).
        keypoints: ``[P, 2]`` (column, row) for the interest strategies, else None.
    """

    def __init__(
        self,
        height: int,
        width: int,
        n_rays: int,
        config: SamplingConfig,
        image=None,
        alpha=None,
        device=None,
    ):
        self.height, self.width, self.config = int(height), int(width), config
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.keypoints: np.ndarray | None = None
        self.candidates: torch.Tensor | None = None
        self.fill: torch.Tensor | None = None  # top-up support for interest_points
        if config.strategy in ("interest_points", "interest_region"):
            if image is None:
                raise ValueError(f"{config.strategy} sampling needs the target image")
            self.keypoints = detect_keypoints(image, config.detector, config.max_keypoints)
        if config.strategy == "patch":
            self.side = max(1, min(int(np.sqrt(n_rays)), self.height, self.width))
            self.n = self.side * self.side
            return
        support = self._support(image, alpha)
        if config.strategy == "interest_points" and support.size < n_rays:
            rest = np.ones(self.height * self.width, dtype=bool)
            rest[support] = False
            self.fill = torch.as_tensor(np.flatnonzero(rest), device=self.device)
        self.candidates = torch.as_tensor(np.asarray(support, dtype=np.int64), device=self.device)
        m = self.candidates.numel()
        self.n = n_rays if self.fill is not None else min(n_rays, m)

    @classmethod
    def for_target(cls, target, config: PoseConfig, device=None) -> PixelSampler:
        """The sampler of a solve of ``target`` (a :class:`inerf.pose.problem.PoseTarget`: its size, image and
        alpha) with ``config`` (``n_rays`` pixels a step, chosen by ``config.sampling``): the solver's own, and
        the one whose support ``inerf estimate`` draws in ``sampling.png``. Indices live on ``device``."""
        return cls(
            target.height,
            target.width,
            config.n_rays,
            config.sampling,
            image=target.image,
            alpha=target.alpha,
            device=device,
        )

    def _support(self, image, alpha) -> np.ndarray:
        """Flat indices of the pixels the strategy draws from (all but ``patch``)."""
        config, strategy = self.config, self.config.strategy
        if strategy == "random":
            return np.arange(self.height * self.width)
        if strategy == "interest_points":
            return self.keypoints[:, 1] * self.width + self.keypoints[:, 0]
        if strategy == "interest_region":
            return _interest_region_support(image, config, self.keypoints)
        if strategy == "center":
            return _center_support(self.height, self.width, config.center_fraction)
        if strategy == "mask":
            return _mask_support(alpha, config.mask_dilate)
        raise ValueError(f"unknown sampling strategy {strategy!r}")

    def support_mask(self) -> torch.Tensor:
        """Boolean ``[H, W]`` of the pixels a selection can contain (all pixels for ``patch``; for
        ``interest_points`` with top-up, the keypoints only)."""
        mask = torch.zeros(self.height * self.width, dtype=torch.bool, device=self.device)
        if self.candidates is None:
            mask[:] = True
        else:
            mask[self.candidates] = True
        return mask.reshape(self.height, self.width)

    BLOCK_ELEMENTS = 1 << 22
    """Hash keys drawn at once (int64): selections are computed for a block of consecutive steps at a time,
    ``max(1, BLOCK_ELEMENTS // (G * M))`` steps, and served from it."""
    MAX_BLOCK = 32
    """At most this many steps per block."""

    def sample(self, seeds: torch.Tensor | int, step: int) -> torch.Tensor:
        """Flat row-major pixel indices ``[G, n]`` for ``G`` seeds (an int gives ``G = 1``) at ``step``.

        A solve asks for steps 0, 1, 2, ... with the same seeds: the selections of a block of consecutive
        steps are drawn in one batch of device ops (each equal to drawing its step alone) and the later
        steps of the block are served from it, so a step launches one slice instead of ~120 small kernels.
        The block is kept while ``seeds`` is the same tensor, unmodified (or the same int)."""
        key = seeds if isinstance(seeds, int) else (id(seeds), seeds._version)
        block = getattr(self, "_block", None)
        same = block is not None and block[0] == key and (isinstance(seeds, int) or block[1] is seeds)
        if same and block[2] <= step < block[3]:
            return block[4][step - block[2]]
        seeds_t = torch.as_tensor(seeds, dtype=torch.int64, device=self.device).reshape(-1)
        M = self.height * self.width if self.candidates is None else self.candidates.numel()
        size = max(1, min(self.MAX_BLOCK, self.BLOCK_ELEMENTS // max(1, seeds_t.numel() * M)))
        out = self.sample_steps(seeds_t, torch.arange(step, step + size, device=self.device))
        self._block = (key, seeds, step, step + size, out)
        return out[0]

    def sample_steps(self, seeds: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """Selections ``[B, G, n]`` of seeds ``[G]`` at steps ``[B]`` (int64), each ``[b]`` what
        :meth:`sample` gives at ``steps[b]``."""
        seeds = seeds.to(device=self.device, dtype=torch.int64).reshape(-1)
        G, B = seeds.numel(), steps.numel()
        if self.candidates is None:  # patch: one random corner per seed
            span = torch.tensor([self.height - self.side + 1, self.width - self.side + 1], device=self.device)
            keys = hash_keys_steps(seeds, steps, torch.arange(2, device=self.device), _SALT_PATCH)
            corner = (keys % span).transpose(0, 1)  # [B, G, 2]
            off = torch.arange(self.side, device=self.device)
            rows = corner[..., 0, None, None] + off[:, None]
            cols = corner[..., 1, None, None] + off[None, :]
            return (rows * self.width + cols).reshape(B, G, -1)
        m = self.candidates.numel()
        if m >= self.n:
            if m == self.n:  # the whole support: no randomness needed
                return self.candidates.expand(B, G, m)
            return _choose(self.candidates, self.n, seeds, steps, _SALT_PICK).transpose(0, 1)
        # interest_points with fewer keypoints than rays: every keypoint plus random other pixels.
        top_up = _choose(self.fill, self.n - m, seeds, steps, _SALT_FILL).transpose(0, 1)
        return torch.cat([self.candidates.expand(B, G, m), top_up], dim=-1)
