#!/usr/bin/env python3
"""Copy the generated CRDs (crds/*.yaml) into the Helm chart (charts/arclight/files/crds/).

``--check`` changes nothing and exits 1, naming the files, when the chart's copies differ.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE = ROOT / "crds"
TARGET = ROOT / "charts" / "arclight" / "files" / "crds"


def differences() -> list[str]:
    """Names of CRD files missing, stale or extra in the chart."""
    wanted = {p.name: p.read_text() for p in sorted(SOURCE.glob("*.yaml"))}
    present = {p.name: p.read_text() for p in sorted(TARGET.glob("*.yaml"))}
    return sorted(name for name in set(wanted) | set(present)
                  if wanted.get(name) != present.get(name))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report differences")
    args = parser.parse_args()
    if not list(SOURCE.glob("*.yaml")):
        print(f"no CRDs in {SOURCE}; run hack/gen-crds.py first", file=sys.stderr)
        return 1
    stale = differences()
    if args.check:
        if stale:
            print("chart CRDs differ from crds/: " + ", ".join(stale)
                  + "; run hack/sync-chart-crds.py", file=sys.stderr)
            return 1
        return 0
    TARGET.mkdir(parents=True, exist_ok=True)
    for name in stale:
        source = SOURCE / name
        if source.exists():
            (TARGET / name).write_text(source.read_text())
        else:
            (TARGET / name).unlink()
        print(f"synced {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
