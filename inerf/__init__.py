"""inerf: camera pose estimation by inverting neural radiance fields, and pixelNeRF.

Data flow: geometry -> data -> rays -> fields -> render -> train / pose -> eval -> viz.
"""

__version__ = "0.1.0"
