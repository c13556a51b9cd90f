"""Ray generation for arbitrary pixels, and samplers along rays."""

from inerf.rays.rays import Rays, rays_from_pixels, rays_for_image
from inerf.rays.samplers import stratified_samples, importance_samples, sample_pdf

__all__ = ["Rays", "rays_from_pixels", "rays_for_image", "stratified_samples", "importance_samples", "sample_pdf"]
