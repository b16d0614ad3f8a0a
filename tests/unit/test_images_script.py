"""hack/images.sh: requirement lists, argument handling, the built archives and a trainer pod.

The unit tests are pure. The e2e tests build with the real builder (buildah here; a rebuild
with unchanged inputs is skipped, so they are quick on a warm cache), read the docker
archives that `hack/cluster.sh load-image` imports, and run the trainer image in the cluster.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from kube import wait_until
from kubernetes import client

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "hack" / "images"))
from requirements import requirements

CACHE = Path.home() / ".cache" / "arclight" / "images"


def _images(*args: str, timeout: float) -> list[str]:
    """Run hack/images.sh and return the tags it printed."""
    done = subprocess.run(
        ["bash", str(REPO / "hack" / "images.sh"), *args],
        check=False, capture_output=True, text=True, timeout=timeout, cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout.split()


def _archive(tag: str) -> tuple[dict, dict, set[str]]:
    """Manifest entry, image config and the file paths of all layers of a content-hash tag."""
    name, _, digest = tag.rpartition(":")
    with tarfile.open(CACHE / f"{name.rsplit('/', 1)[1]}-{digest}.tar") as archive:
        (manifest,) = json.load(archive.extractfile("manifest.json"))
        config = json.load(archive.extractfile(manifest["Config"]))["config"]
        paths: set[str] = set()
        for layer in manifest["Layers"]:
            with tarfile.open(fileobj=archive.extractfile(layer)) as files:
                paths.update(name.removeprefix("./") for name in files.getnames())
    return manifest, config, paths


@pytest.mark.unit
def test_requirements_lists_base_then_extras(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\ndependencies = ["kopf==1.45.2", "pyyaml>=6"]\n'
        '[project.optional-dependencies]\ntrainer = ["torch==2.13.0"]\ndev = ["pytest"]\n'
    )
    assert requirements(str(pyproject), []) == ["kopf==1.45.2", "pyyaml>=6"]
    assert requirements(str(pyproject), ["trainer"]) == ["kopf==1.45.2", "pyyaml>=6", "torch==2.13.0"]
    with pytest.raises(SystemExit, match="no extra 'gpu'"):
        requirements(str(pyproject), ["gpu"])


@pytest.mark.unit
def test_project_trainer_requirements_pin_torch_and_keep_torch_out_of_the_operator():
    operator = requirements(str(REPO / "pyproject.toml"), [])
    trainer = requirements(str(REPO / "pyproject.toml"), ["trainer"])
    assert not any(spec.startswith("torch") for spec in operator)
    assert "torch==2.13.0" in trainer and set(operator) < set(trainer)


@pytest.mark.unit
def test_images_sh_rejects_unknown_arguments():
    done = subprocess.run(
        ["bash", str(REPO / "hack" / "images.sh"), "everything"],
        check=False, capture_output=True, text=True, timeout=30, cwd=REPO,
    )
    assert done.returncode == 2 and "usage: hack/images.sh" in done.stderr


@pytest.mark.e2e
@pytest.mark.timeout(1800)
def test_archives_carry_both_tags_non_root_user_and_both_interpreters():
    tags = _images("all", "--no-load", timeout=1750)
    assert len(tags) == 4 and tags[1] == "docker.io/arclight/operator:dev"
    assert tags[3] == "docker.io/arclight/trainer:dev"
    operator_tag, trainer_tag = tags[0], tags[2]

    manifest, config, paths = _archive(operator_tag)
    assert set(manifest["RepoTags"]) == {operator_tag, "docker.io/arclight/operator:dev"}
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["kopf", "run", "-m", "controllers", "--all-namespaces"]
    assert "opt/venv/bin/kopf" in paths
    assert any(p.startswith("opt/venv/lib/python3.11/site-packages/controllers/") for p in paths)
    assert not any("site-packages/torch/" in p for p in paths)

    manifest, config, paths = _archive(trainer_tag)
    assert set(manifest["RepoTags"]) == {trainer_tag, "docker.io/arclight/trainer:dev"}
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["python3", "-m", "arclight_trainer"]
    assert config["Cmd"] == ["run", "--config", "/etc/arclight/config.json"]
    assert "ARCLIGHT_AGL_PYTHON=/opt/agl/bin/python" in config["Env"]
    assert {"opt/python3.12/bin/python3.12", "opt/agl/bin/python"} <= paths
    assert any(p.startswith("opt/agl/lib/python3.12/site-packages/agentlightning/") for p in paths)
    assert any(p.startswith("opt/venv/lib/python3.11/site-packages/torch/") for p in paths)
    assert not any(p.startswith("wheels/") for p in paths)
    # the bundled model is de-quantized at build time, not in every trainer pod
    assert "ARCLIGHT_MODEL_CACHE=/opt/models" in config["Env"]
    assert "opt/models/smollm2-135m-instruct/config.json" in paths

    assert _images("all", "--no-load", timeout=120)[0::2] == [operator_tag, trainer_tag]


@pytest.mark.e2e
def test_an_archive_containerd_already_holds_is_not_imported_again(cluster):
    [archive] = sorted(CACHE.glob("operator-*.tar"), key=lambda p: p.stat().st_mtime)[-1:]

    def load() -> str:
        done = subprocess.run(["bash", str(REPO / "hack" / "cluster.sh"), "load-image",
                               str(archive)], check=False, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr
        return done.stderr + done.stdout

    load()  # imported, or already there
    stamp = Path(cluster.kubeconfig).parent / "images" / f"{archive.name}.loaded"
    if not stamp.exists():
        pytest.skip("not hack/cluster.sh's local cluster (KUBECONFIG names another one)")
    assert "already in containerd, not imported again" in load()
    refs = dict(line.split() for line in stamp.read_text().splitlines())
    assert set(refs) == {f"docker.io/arclight/{archive.stem.replace('-', ':', 1)}",
                         "docker.io/arclight/operator:dev"}
    assert len(set(refs.values())) == 1 and next(iter(refs.values())).startswith("sha256:")
    stamp.unlink()  # what containerd holds is unknown again: imported
    assert "already in containerd" not in load() and stamp.exists()


@pytest.mark.e2e
@pytest.mark.timeout(1800)
def test_trainer_image_runs_torch_and_agentlightning_in_a_pod(cluster, namespace):
    tags = _images("trainer", timeout=1750)
    assert tags[1] == "docker.io/arclight/trainer:dev"
    core = client.CoreV1Api(cluster.api)
    script = (
        "import subprocess, torch; print('torch', torch.__version__, flush=True); "
        "subprocess.run(['/opt/agl/bin/python', '-c', 'import importlib.metadata as m, "
        "agentlightning; print(\"agentlightning\", m.version(\"agentlightning\"))'], check=True)"
    )
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="trainer-image"),
        spec=client.V1PodSpec(
            restart_policy="Never",
            security_context=client.V1PodSecurityContext(run_as_non_root=True),
            containers=[client.V1Container(
                name="trainer", image=tags[0], image_pull_policy="Never",
                command=["python3", "-c", script],
            )],
        ),
    )
    core.create_namespaced_pod(namespace, pod)

    def finished() -> str | None:
        phase = core.read_namespaced_pod("trainer-image", namespace).status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_until(finished, timeout=300, interval=2, what="trainer-image pod to finish")
    logs = core.read_namespaced_pod_log("trainer-image", namespace, container="trainer")
    assert phase == "Succeeded", logs
    assert "torch 2.13.0" in logs and "agentlightning 1.0.2" in logs
