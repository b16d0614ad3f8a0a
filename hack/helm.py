"""Install, upgrade or uninstall the Arclight chart with Helm's own Go SDK (helm-python-sdk).

No `helm` binary is needed, which is what air-gapped installs and this project's CI use.

    python hack/helm.py install  [--namespace arclight-system] [--set key=value ...] [--wait SECONDS]
    python hack/helm.py uninstall [--namespace arclight-system]
    python hack/helm.py template [--set key=value ...]      # print the rendered manifests

`--release NAME` (default `arclight`) names the release; cluster-scoped objects of a release
other than `arclight` are prefixed `NAME-arclight`, so two releases can share a cluster.
Uninstall keeps the CRDs (and every TrainingRun, ModelDeployment, ...) unless the release was
installed with `crds.keep=false`; it prints what Helm kept.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import helm_python as helm

CHART = Path(__file__).resolve().parent.parent / "charts" / "arclight"
RELEASE = "arclight"


def parse_sets(pairs: list[str]) -> dict:
    """Merge `--set a.b=c` expressions into one values dict, the way `helm --set` does."""
    values: dict = {}
    for pair in pairs:
        _deep_merge(values, helm.parse_set_string(pair))
    return values


def _deep_merge(into: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


def install(config: helm.Config, namespace: str, values: dict, wait: int,
            release_name: str = RELEASE) -> None:
    """Install the release, or upgrade it when it already exists (idempotent)."""
    chart = helm.Chart.load(CHART)
    options = {"namespace": namespace, "timeout": wait, "wait": "watcher" if wait else None}
    if config.list(all_states=True, name_filter=f"^{release_name}$"):
        release = config.upgrade(chart, release_name, values, **options)
    else:
        release = config.install(chart, release_name, values, create_namespace=True, **options)
    print(f"release {release_name} in {namespace}: revision {release['revision']}, "
          f"status {release['status']}")


def uninstall(config: helm.Config, namespace: str, release_name: str = RELEASE) -> None:
    """Uninstall the release; Helm keeps objects annotated helm.sh/resource-policy=keep."""
    if not config.list(all_states=True, name_filter=f"^{release_name}$"):
        print(f"release {release_name} is not installed in {namespace}")
        return
    result = config.uninstall(release_name)
    print(f"release {release_name} uninstalled from {namespace}")
    info = (result or {}).get("info") if isinstance(result, dict) else None
    if info:
        print(info.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["install", "uninstall", "template"])
    parser.add_argument("--namespace", default="arclight-system")
    parser.add_argument("--release", default=RELEASE, help="release name (default: arclight)")
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--wait", type=int, default=300, help="seconds to wait for readiness (0: no wait)")
    args = parser.parse_args(argv)
    values = parse_sets(args.sets)

    if args.action == "template":
        chart = helm.Chart.load(CHART)
        for name, text in sorted(chart.render(values, name=args.release,
                                              namespace=args.namespace).items()):
            if text.strip():
                print(f"---\n# Source: {name}\n{text}")
        return 0

    config = helm.Config(kubeconfig_path=os.environ.get("KUBECONFIG"), namespace=args.namespace)
    if args.action == "install":
        install(config, args.namespace, values, args.wait, args.release)
    else:
        uninstall(config, args.namespace, args.release)
    return 0


if __name__ == "__main__":
    sys.exit(main())
