"""The deployment files (Dockerfile, compose.yaml, deploy/) against the server they deploy:
valid Kubernetes objects, and only ports, probe paths and settings the server really has.
The image itself is built and run by scripts/test-container."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from facelens.api.app import create_app
from facelens.api.services import Services
from facelens.gallery.sqlite import SQLiteGallery
from facelens.settings import Settings

pytestmark = pytest.mark.integration  # starts processes (see docs/development.md's tiers)

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KSERVE = ROOT / "deploy" / "kserve" / "inferenceservice.yaml"
SETTINGS = {f"FACELENS_{name.upper()}" for name in Settings.model_fields}
DEFAULT_PORT = Settings.model_fields["port"].default


def rendered() -> list[dict[str, Any]]:
    """``kubectl kustomize deploy/k8s``: the objects Kubernetes would get."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise AssertionError(
            "kubectl is needed to render deploy/k8s: scripts/test installs Debian's "
            "kubernetes-client when run as root."
        )
    done = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, check=True
    )
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def containers(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for obj in objects:
        spec = obj.get("spec", {})
        pod = spec.get("template", {}).get("spec") or spec.get("predictor") or {}
        found += pod.get("containers", [])
    return found


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every GET path the server answers."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("deploy"))
    gallery = SQLiteGallery(settings.gallery_path)
    try:
        app = create_app(Services(settings, None, gallery, None, None, None))  # type: ignore[arg-type]
        return {
            path
            for path, item in app.openapi()["paths"].items()
            if "get" in item and "{" not in path
        }
    finally:
        gallery.close()


def test_the_kubernetes_objects_are_valid() -> None:
    for obj in rendered():
        kubernetes_validate.validate(obj, "1.31.0", strict=True)
    secret = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    kubernetes_validate.validate(secret, "1.31.0", strict=True)


def test_the_inference_service_uses_valid_containers_and_known_fields() -> None:
    service = yaml.safe_load(KSERVE.read_text())
    assert service["apiVersion"] == "serving.kserve.io/v1beta1"
    assert service["kind"] == "InferenceService"
    predictor = service["spec"]["predictor"]
    # The fields of KServe's PredictorSpec used here (ComponentExtensionSpec + PodSpec).
    assert set(predictor) <= {
        "minReplicas",
        "maxReplicas",
        "containers",
        "volumes",
        "securityContext",
        "serviceAccountName",
    }
    assert predictor["minReplicas"] == predictor["maxReplicas"] == 1
    # Its pod part is a core PodSpec: checked as one, with Kubernetes' own schema.
    pod_spec = {k: v for k, v in predictor.items() if k not in ("minReplicas", "maxReplicas")}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "facelens"}, "spec": pod_spec}
    kubernetes_validate.validate(pod, "1.31.0", strict=True)
    assert [c["name"] for c in predictor["containers"]] == ["kserve-container"]


def test_ports_probes_and_settings_are_the_servers(paths: set[str]) -> None:
    every = containers(rendered()) + containers([yaml.safe_load(KSERVE.read_text())])
    assert len(every) == 2
    for container in every:
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert set(env) <= SETTINGS, set(env) - SETTINGS
        port = int(env.get("FACELENS_PORT") or DEFAULT_PORT)
        assert [p["containerPort"] for p in container["ports"]] == [port]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if probe in container:
                get = container[probe]["httpGet"]
                assert get["path"] in paths, (probe, get["path"])
                assert get["port"] in (port, "http")
    service = next(o for o in rendered() if o["kind"] == "Service")
    assert service["spec"]["ports"][0]["port"] == DEFAULT_PORT


def test_the_image_and_compose_use_real_settings_and_paths(paths: set[str]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    named = set(re.findall(r"\bFACELENS_[A-Z_0-9]+", dockerfile))
    named |= set(compose["services"]["facelens"]["environment"])
    assert named <= SETTINGS, named - SETTINGS
    assert f"EXPOSE {DEFAULT_PORT}" in dockerfile
    for text in (dockerfile, " ".join(compose["services"]["facelens"]["healthcheck"]["test"])):
        probed = re.findall(rf"http://127\.0\.0\.1:{DEFAULT_PORT}(/\w+)", text)
        assert probed and set(probed) <= paths


def test_every_deployment_beyond_loopback_gets_a_key_or_does_not_start() -> None:
    """The server refuses to listen beyond loopback without a key: the manifests give it one
    from a Secret that must exist, and nothing deployed turns the refusal off."""
    for container in containers(rendered()) + containers([yaml.safe_load(KSERVE.read_text())]):
        env = {e["name"]: e for e in container["env"]}
        assert env["FACELENS_HOST"]["value"] == "0.0.0.0"
        secret = env["FACELENS_SERVER_API_KEYS"]["valueFrom"]["secretKeyRef"]
        assert (secret["name"], secret["key"]) == ("facelens-api-keys", "keys")
        assert secret.get("optional", False) is False, container["name"]
        assert "FACELENS_ALLOW_NO_KEYS" not in env
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["facelens"]
    assert "FACELENS_ALLOW_NO_KEYS" not in compose["environment"]
    assert "FACELENS_ALLOW_NO_KEYS" not in (ROOT / "Dockerfile").read_text()


SERVICE = ROOT / "deploy" / "systemd" / "facelens.service"


def systemd_analyze(*args: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("systemd-analyze")
    if found is None:
        raise AssertionError(
            "systemd-analyze is needed to check deploy/systemd/facelens.service: scripts/test "
            "installs Debian's 'systemd' package when run as root."
        )
    return subprocess.run([found, *args], capture_output=True, text=True, cwd=ROOT)


def unit_settings(text: str) -> dict[str, list[str]]:
    """Every ``Key=value`` of a unit file (keys may repeat), comments left out."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_the_systemd_unit_is_valid_and_hardened(tmp_path: Path) -> None:
    text = SERVICE.read_text()
    unit = unit_settings(text)
    # systemd-analyze also checks that ExecStart's program exists: the one installed here
    # stands in for /opt/facelens/bin/facelens, nothing else changes.
    installed = Path(sys.executable).with_name("facelens")
    (tmp_path / SERVICE.name).write_text(
        text.replace("ExecStart=/opt/facelens/bin/facelens ", f"ExecStart={installed} ")
    )
    verified = systemd_analyze("verify", str(tmp_path / SERVICE.name))
    assert verified.returncode == 0 and verified.stderr == "", verified.stderr
    # Runs 'facelens serve' at boot as its own user, on its own data directory.
    assert unit["ExecStart"] == ["/opt/facelens/bin/facelens serve"]
    assert unit["WantedBy"] == ["multi-user.target"]
    assert unit["User"] == ["facelens"] and unit["StateDirectory"] == ["facelens"]
    assert "FACELENS_DATA_DIR=/var/lib/facelens" in unit["Environment"]
    assert unit["Restart"] == ["on-failure"]
    for key, value in {
        "ProtectSystem": "strict",
        "ReadWritePaths": "/var/lib/facelens",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "UMask": "0077",
    }.items():
        assert unit[key] == [value], key
    assert "FACELENS_ALLOW_NO_KEYS" not in text
    exposure = systemd_analyze("security", "--offline=yes", str(SERVICE))
    level = re.search(
        r"Overall exposure level for facelens\.service: ([\d.]+) (\w+)", exposure.stdout
    )
    assert level is not None, exposure.stdout + exposure.stderr
    assert float(level.group(1)) <= 2.0 and level.group(2) == "OK", level.group(0)
