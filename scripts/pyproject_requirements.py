"""Print the requirements of pyproject.toml, one per line: the base dependencies plus those of the
extras named in the second argument (comma-separated). The Dockerfiles install third-party
dependencies from this list in a layer of their own, before the project's sources are copied, so
that a source change does not reinstall them.

    python pyproject_requirements.py pyproject.toml [asr,ocr]
"""

from __future__ import annotations

import sys

import tomllib


def requirements(pyproject: str, extras: list[str]) -> list[str]:
    with open(pyproject, "rb") as fh:
        project = tomllib.load(fh)["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in optional]
    if unknown:
        raise SystemExit(f"unknown extras {unknown}; pyproject.toml has {sorted(optional)}")
    return [*project["dependencies"], *(r for e in extras for r in optional[e])]


if __name__ == "__main__":
    extras = [e for e in (sys.argv[2] if len(sys.argv) > 2 else "").split(",") if e]
    print("\n".join(requirements(sys.argv[1], extras)))
