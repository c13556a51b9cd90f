"""Dataset generation from real 3D assets, with camera poses exact to the pixel (``inerf synth``).

Design note. Data flows one way::

    assets (find, load per material, place: object_to_world) -> meshes (parts -> OBJ for pybullet)
    trajectories (OpenCV c2w looking at the origin)           -> workers (processes) -> render (TinyRenderer)
    scene (NeRF-synthetic layout) / category (SRN layout)     -> meta.json, ATTRIBUTION.txt, preview
    verify (mesh vertices through the dataset's own cameras: the acceptance test)

* Poses are the internal convention (OpenCV c2w, pixel centres at +0.5) until they are written; the
  NeRF-synthetic files get OpenGL c2w through :func:`inerf.geometry.conventions.opencv_to_opengl_c2w`,
  SRN files keep OpenCV c2w (SRN's own convention).
* The renderer is pybullet's TinyRenderer with a projection matrix built from the intrinsics plus a
  measured half-pixel correction, supersampled k x k (odd k) for antialiasing; see :mod:`.render`.
* Every asset keeps its provenance (source package, file, creator, licence) and its exact map from the
  mesh file to the world, so a dataset can be checked against the geometry (:mod:`.verify`).
* Nothing existing is overwritten unless it is an earlier ``inerf synth`` dataset and ``--overwrite`` is
  given; datasets appear only when complete (:mod:`.output`).

Heavy imports (pybullet, trimesh, torch) happen inside functions, so ``import inerf.synth`` is cheap and
render workers start quickly.
"""

from inerf.synth.category import CategoryConfig, generate_category
from inerf.synth.scene import SceneConfig, generate_scene

__all__ = ["CategoryConfig", "SceneConfig", "generate_category", "generate_scene"]
