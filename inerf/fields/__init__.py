"""Radiance fields: ``field(xyz [N, 3], viewdirs [N, 3]) -> (rgb [N, 3], sigma [N])``."""

from inerf.fields.base import RadianceField
from inerf.fields.encoding import PositionalEncoding
from inerf.fields.grid import GridConfig, GridField
from inerf.fields.nerf import NeRFConfig, NeRFField

__all__ = ["GridConfig", "GridField", "NeRFConfig", "NeRFField", "PositionalEncoding", "RadianceField"]
