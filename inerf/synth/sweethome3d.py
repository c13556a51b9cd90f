"""The Sweet Home 3D furniture library (Debian package ``sweethome3d-furniture``) as a source of assets.

Each ``*.sh3f`` file is a zip archive: a ``PluginFurnitureCatalog.properties`` (Java properties, Latin-1)
listing models as ``name#i``, ``category#i``, ``tags#i``, ``model#i`` (the OBJ inside the archive),
``creator#i`` and optionally ``modelRotation#i``; a catalog-wide ``license``; the models' folders (OBJ,
MTL, textures, sometimes a per-model licence file). 820 models in five catalogs, licensed CC0 or
CC-BY 3.0 (attribution required; :func:`attribution` writes it).

Models are **Y-up** with their front towards +z (Sweet Home 3D's convention); ``modelRotation`` (a 3x3
matrix written row by row) turns a model that was authored differently into that frame and is applied
to column vectors, v' = R v, before anything else.

A model is named by its *key*, the folder path inside the archive (``blendswap-cc-0/oakChair``); its
last component (``oakChair``) or its display name (``Oak chair``) work too when they are unique.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inerf.errors import InerfError

__all__ = [
    "INSTALL_HINT",
    "SH3DModel",
    "attribution",
    "extract_model",
    "find_model",
    "load_catalogs",
    "models_in_category",
    "sweethome3d_dir",
]

DEFAULT_DIR = "/usr/share/sweethome3d/furniture"
ENV_DIR = "INERF_SWEETHOME3D_DIR"
INSTALL_HINT = (
    "Sweet Home 3D models are not installed: run `apt-get install sweethome3d-furniture` "
    f"(or set {ENV_DIR} to a folder of .sh3f files)"
)

# Catalog licence strings -> (short name, URL).
_LICENCES = [
    ("public domain", "CC0 1.0", "https://creativecommons.org/publicdomain/zero/1.0/"),
    ("attribution 3.0 united states", "CC BY 3.0 US", "https://creativecommons.org/licenses/by/3.0/us/"),
    ("attribution 3.0", "CC BY 3.0", "https://creativecommons.org/licenses/by/3.0/"),
]


@dataclass(frozen=True)
class SH3DModel:
    """One furniture model of a Sweet Home 3D catalog.

    Attributes:
        archive: the ``.sh3f`` file.
        member: path of the model's OBJ inside the archive (no leading slash).
        name: display name (``Oak chair``).
        category: the catalog's room category (``Living room``, ``Vehicles``, ...).
        tags: the catalog's tags.
        creator: the model's creator.
        catalog: the catalog's name; ``catalog_licence`` its licence text, ``catalog_version`` its version.
        model_rotation: ``[3, 3]`` rotation into Sweet Home 3D's frame (row-major), or None.
        size_cm: catalog width, depth, height in centimetres.
    """

    archive: Path
    member: str
    name: str
    category: str
    tags: tuple[str, ...]
    creator: str
    catalog: str
    catalog_licence: str
    catalog_version: str
    model_rotation: tuple[float, ...] | None
    size_cm: tuple[float, float, float]

    @property
    def key(self) -> str:
        """The model's folder inside the archive, e.g. ``blendswap-cc-0/oakChair``."""
        return self.member.rsplit("/", 1)[0]

    @property
    def licence(self) -> tuple[str, str | None]:
        """(short licence name, URL) from the catalog's licence text."""
        low = self.catalog_licence.lower()
        for needle, short, url in _LICENCES:
            if needle in low:
                return short, url
        return self.catalog_licence or "see LICENSE.TXT in the catalog", None

    def rotation_matrix(self) -> np.ndarray:
        """``[3, 3]`` model rotation (identity when the catalog gives none)."""
        if self.model_rotation is None:
            return np.eye(3)
        return np.asarray(self.model_rotation, dtype=np.float64).reshape(3, 3)


def sweethome3d_dir() -> Path:
    """The folder of ``.sh3f`` catalogs; raises :class:`InerfError` with the install hint if absent."""
    folder = Path(os.environ.get(ENV_DIR, DEFAULT_DIR))
    if not folder.is_dir() or not any(folder.glob("*.sh3f")):
        raise InerfError(INSTALL_HINT)
    return folder


_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _unescape(text: str) -> str:
    def sub(m: re.Match) -> str:
        s = m.group(1)
        if s[0] == "u":
            return chr(int(s[1:], 16))
        return _ESCAPES.get(s, s)

    return re.sub(r"\\(u[0-9a-fA-F]{4}|.)", sub, text)


def parse_properties(text: str) -> dict[str, str]:
    """Parse a Java ``.properties`` document (comments, ``=``/``:``/space separators, line continuations,
    ``\\uXXXX`` escapes)."""
    out: dict[str, str] = {}
    logical = []
    pending = ""
    for raw in text.splitlines():
        line = raw.lstrip()
        if not pending and (not line or line[0] in "#!"):
            continue
        # An odd number of trailing backslashes continues the line.
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            pending += line[:-1]
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending)
    for line in logical:
        m = re.match(r"((?:\\.|[^=:\s\\])*)\s*[=:\s]\s*(.*)$", line)
        if m:
            out[_unescape(m.group(1))] = _unescape(m.group(2).rstrip())
        else:
            out[_unescape(line)] = ""
    return out


def _float_tuple(text: str | None) -> tuple[float, ...] | None:
    if not text:
        return None
    return tuple(float(x) for x in text.split())


def _indexed(props: dict[str, str], index: int, key: str, default: str | None = "") -> str | None:
    """The value of ``key#index`` (the catalog's per-model keys)."""
    return props.get(f"{key}#{index}", default)


@functools.lru_cache(maxsize=4)
def _load_catalogs_cached(folder: str) -> tuple[SH3DModel, ...]:
    models: list[SH3DModel] = []
    for archive in sorted(Path(folder).glob("*.sh3f")):
        try:
            with zipfile.ZipFile(archive) as zf:
                props = parse_properties(zf.read("PluginFurnitureCatalog.properties").decode("latin-1"))
        except (zipfile.BadZipFile, KeyError, OSError) as exc:
            raise InerfError(f"{archive}: not a readable Sweet Home 3D catalog ({exc})") from None
        indices = sorted({int(k.split("#", 1)[1]) for k in props if k.startswith("model#")})
        for i in indices:
            get = functools.partial(_indexed, props, i)
            size = tuple(float(get(k, "0") or 0) for k in ("width", "depth", "height"))
            rotation = _float_tuple(get("modelRotation", None))
            models.append(
                SH3DModel(
                    archive=archive,
                    member=get("model").lstrip("/"),
                    name=get("name"),
                    category=get("category"),
                    tags=tuple(t.strip() for t in get("tags").split(",") if t.strip()),
                    creator=get("creator") or props.get("provider", ""),
                    catalog=props.get("name", archive.stem),
                    catalog_licence=props.get("license", ""),
                    catalog_version=props.get("version", ""),
                    model_rotation=rotation if rotation and len(rotation) == 9 else None,
                    size_cm=size,
                )
            )
    return tuple(models)


def load_catalogs() -> list[SH3DModel]:
    """Every model of every installed catalog, in catalog-file then catalog order."""
    return list(_load_catalogs_cached(str(sweethome3d_dir())))


def find_model(query: str) -> SH3DModel:
    """The model named ``query``: a key (``blendswap-cc-0/oakChair``), a unique folder name
    (``oakChair``) or a unique display name (``Oak chair``); case-insensitive."""
    models = load_catalogs()
    q = query.strip().lower()
    for rule in (
        lambda m: m.key.lower() == q,
        lambda m: m.key.rsplit("/", 1)[-1].lower() == q,
        lambda m: m.name.lower() == q,
    ):
        hits = [m for m in models if rule(m)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            shown = ", ".join(m.key for m in hits[:6]) + (", ..." if len(hits) > 6 else "")
            raise InerfError(
                f"Sweet Home 3D model {query!r} is ambiguous ({len(hits)} models); use one of: {shown}"
            )
    close = difflib.get_close_matches(q, [m.key.rsplit("/", 1)[-1].lower() for m in models], n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise InerfError(
        f"unknown asset {query!r}: not a pybullet_data asset, a file, or a Sweet Home 3D model{hint}"
    )


def _head_word(text: str) -> str:
    """The word that names what a catalog label is: ``Chair with cushion`` -> ``chair``,
    ``Coffee table`` -> ``table``, ``Table fan`` -> ``fan``."""
    text = re.split(r"\s+(?:with|on|for|of|and)\s+", text.strip().lower())[0]
    words = re.findall(r"[a-z0-9]+", text)
    return words[-1] if words else ""


def _matches_category(model: SH3DModel, category: str) -> bool:
    c = category.strip().lower()
    if model.category.lower() == c:  # the catalog's own room category ("Vehicles", "Kitchen")
        return True
    # The name matches if its head word is the category or a compound ending in it (armchair ->
    # chair); a tag only if it is the category itself (tags hold adjectives such as "Portable").
    head = _head_word(model.name)
    if head in (c, c + "s") or (len(c) >= 3 and head.endswith(c)):
        return True
    return any(t.strip().lower() in (c, c + "s") for t in model.tags)


def models_in_category(category: str) -> list[SH3DModel]:
    """Models whose name or a tag names the category (``chair`` takes chairs, armchairs and stools tagged
    chair; ``car`` takes cars, not card games; ``table`` takes coffee tables, not table fans), or whose
    catalog room category equals it. Sorted by key. Raises :class:`InerfError` if none matches."""
    hits = sorted((m for m in load_catalogs() if _matches_category(m, category)), key=lambda m: m.key)
    if not hits:
        raise InerfError(
            f"no Sweet Home 3D model in category {category!r} (try chair, table, car, sofa, "
            "bed, lamp, or a room such as 'Vehicles')"
        )
    return hits


def extract_model(model: SH3DModel, cache: Path) -> Path:
    """Extract the model's folder (OBJ, MTL, textures, licence file) into ``cache`` once; return the
    path of the extracted OBJ. Extraction goes to a temporary folder that is renamed when complete, so
    concurrent workers never see half a model."""
    target = Path(cache) / "sweethome3d" / model.archive.stem / model.key
    obj = target / model.member.rsplit("/", 1)[1]
    if obj.is_file():
        return obj
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = model.key + "/"
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".extract-"))
    try:
        with zipfile.ZipFile(model.archive) as zf:
            for info in zf.infolist():
                if not info.filename.startswith(prefix) or info.is_dir():
                    continue
                rel = info.filename[len(prefix) :]
                if ".." in Path(rel).parts:  # never write outside the target folder
                    continue
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first
            if not obj.is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if not obj.is_file():
        raise InerfError(f"{model.archive}: {model.member} is missing from the archive")
    return obj


def attribution(model: SH3DModel) -> str:
    """The credit line the licence asks for (given for CC0 models too, as a courtesy)."""
    short, url = model.licence
    where = f"{url}" if url else "see the catalog's LICENSE.TXT"
    return (
        f'"{model.name}" ({model.key}) by {model.creator}, from the Sweet Home 3D furniture catalog '
        f'"{model.catalog}" {model.catalog_version} (Debian package sweethome3d-furniture), licensed '
        f"under {short} ({where}); catalog licence: {model.catalog_licence}. Changes: re-oriented "
        "(z up), rescaled and centred, rendered with pybullet's TinyRenderer by inerf synth."
    )
