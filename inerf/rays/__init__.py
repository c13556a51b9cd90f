"""Ray generation for arbitrary pixels, and samplers along rays (NeRF's and pixelNeRF's)."""

from inerf.rays.rays import Rays, rays_for_image, rays_from_pixels
from inerf.rays.samplers import (
    NeRFSampler,
    PixelNeRFSampler,
    importance_samples,
    sample_pdf,
    stratified_samples,
)

__all__ = [
    "NeRFSampler",
    "PixelNeRFSampler",
    "Rays",
    "importance_samples",
    "rays_for_image",
    "rays_from_pixels",
    "sample_pdf",
    "stratified_samples",
]
