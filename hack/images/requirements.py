"""Print the project's requirement specifiers from pyproject.toml, one a line.

Usage: python requirements.py PYPROJECT [EXTRA ...]
The base `dependencies` always; the named optional-dependency extras after them.
"""

import sys
import tomllib


def requirements(pyproject_path: str, extras: list[str]) -> list[str]:
    """Return the base dependencies plus those of each extra, in declaration order."""
    with open(pyproject_path, "rb") as f:
        project = tomllib.load(f)["project"]
    specs = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise SystemExit(f"requirements: no extra {extra!r} in {pyproject_path}")
        specs.extend(optional[extra])
    return specs


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    print("\n".join(requirements(sys.argv[1], sys.argv[2:])))
