"""The deployment files (Dockerfile, compose.yaml, deploy/) against the server they deploy:
valid Kubernetes objects, and only ports, probe paths and settings the server really has;
the variants on a shared PostgreSQL gallery (compose's 'shared' profile, deploy/k8s-shared,
the scaled InferenceService) wired to the database Secret, with no password committed.
The image itself is built and run by scripts/test-container."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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
K8S_SHARED = ROOT / "deploy" / "k8s-shared"  # an overlay of K8S: three replicas on PostgreSQL
POSTGRES = K8S_SHARED / "postgres"  # the example PostgreSQL it may run on
KSERVE = ROOT / "deploy" / "kserve" / "inferenceservice.yaml"
KSERVE_SHARED = ROOT / "deploy" / "kserve" / "inferenceservice-shared.yaml"
# Where the shared gallery's URL comes from: the Secret CloudNativePG makes for a Cluster
# named facelens-db, or one made in its shape (deploy/k8s-shared/database-secret.example.yaml).
DATABASE_SECRET = ("facelens-db-app", "uri")
SETTINGS = {f"FACELENS_{name.upper()}" for name in Settings.model_fields}
DEFAULT_PORT = Settings.model_fields["port"].default


def rendered(folder: Path = K8S) -> list[dict[str, Any]]:
    """``kubectl kustomize FOLDER``: the objects Kubernetes would get."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise AssertionError(
            "kubectl is needed to render deploy/k8s: scripts/test installs Debian's "
            "kubernetes-client when run as root."
        )
    done = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, check=True
    )
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, (kind, [o["kind"] for o in objects])
    return found[0]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels only, as ours are) picks pods with ``labels``."""
    assert set(selector) == {"matchLabels"}, selector
    wanted = selector["matchLabels"]
    return bool(wanted) and wanted.items() <= labels.items()


def inference_services() -> list[dict[str, Any]]:
    return [yaml.safe_load(path.read_text()) for path in (KSERVE, KSERVE_SHARED)]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def compose_servers() -> dict[str, dict[str, Any]]:
    """The services of compose.yaml that run facelens (the single one and the replicas)."""
    return {
        name: service
        for name, service in compose()["services"].items()
        if service["image"].startswith("facelens:")
    }


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


@pytest.mark.parametrize(
    ("folder", "examples"),
    [
        (K8S, ["secret.example.yaml"]),
        (K8S_SHARED, ["database-secret.example.yaml"]),
        (POSTGRES, []),
    ],
    ids=["k8s", "k8s-shared", "postgres"],
)
def test_the_kubernetes_objects_are_valid(folder: Path, examples: list[str]) -> None:
    """Each kustomization renders, and what it renders (and the example Secrets it does not
    apply) passes Kubernetes' own schemas."""
    objects = rendered(folder)
    assert objects
    for obj in objects:
        kubernetes_validate.validate(obj, "1.31.0", strict=True)
    for name in examples:
        secret = yaml.safe_load((folder / name).read_text())
        kubernetes_validate.validate(secret, "1.31.0", strict=True)


SCALING = ("minReplicas", "maxReplicas", "scaleMetric", "scaleTarget")


@pytest.mark.parametrize(
    ("path", "replicas"), [(KSERVE, (1, 1)), (KSERVE_SHARED, (2, 4))], ids=["single", "shared"]
)
def test_the_inference_service_uses_valid_containers_and_known_fields(
    path: Path, replicas: tuple[int, int]
) -> None:
    service = yaml.safe_load(path.read_text())
    assert service["apiVersion"] == "serving.kserve.io/v1beta1"
    assert service["kind"] == "InferenceService"
    predictor = service["spec"]["predictor"]
    # The fields of KServe's PredictorSpec used here (ComponentExtensionSpec + PodSpec).
    assert set(predictor) <= {
        *SCALING,
        "containers",
        "volumes",
        "securityContext",
        "serviceAccountName",
    }
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == replicas
    if "scaleMetric" in predictor:  # RawDeployment's HPA scales on cpu or memory only
        assert predictor["scaleMetric"] in ("cpu", "memory")
        assert 0 < predictor["scaleTarget"] <= 100
    # Its pod part is a core PodSpec: checked as one, with Kubernetes' own schema.
    pod_spec = {k: v for k, v in predictor.items() if k not in SCALING}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "facelens"}, "spec": pod_spec}
    kubernetes_validate.validate(pod, "1.31.0", strict=True)
    assert [c["name"] for c in predictor["containers"]] == ["kserve-container"]


def test_ports_probes_and_settings_are_the_servers(paths: set[str]) -> None:
    every = containers(rendered() + rendered(K8S_SHARED) + inference_services())
    assert len(every) == 4
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
    for objects in (rendered(), rendered(K8S_SHARED)):
        assert one(objects, "Service")["spec"]["ports"][0]["port"] == DEFAULT_PORT


def test_the_image_and_compose_use_real_settings_and_paths(paths: set[str]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    servers = compose_servers()
    assert set(servers) == {"facelens", "facelens-1", "facelens-2"}
    named = set(re.findall(r"\bFACELENS_[A-Z_0-9]+", dockerfile))
    for server in servers.values():
        named |= set(server["environment"])
    assert named <= SETTINGS, named - SETTINGS
    assert f"EXPOSE {DEFAULT_PORT}" in dockerfile
    checks = [" ".join(s["healthcheck"]["test"]) for s in servers.values()]
    for text in (dockerfile, *checks):
        probed = re.findall(rf"http://127\.0\.0\.1:{DEFAULT_PORT}(/\w+)", text)
        assert probed and set(probed) <= paths
    for server in servers.values():
        assert [p.split(":")[-1] for p in server["ports"]] == [str(DEFAULT_PORT)]


def test_every_deployment_beyond_loopback_gets_a_key_or_does_not_start() -> None:
    """The server refuses to listen beyond loopback without a key: the manifests give it one
    from a Secret that must exist, and nothing deployed turns the refusal off."""
    for container in containers(rendered() + rendered(K8S_SHARED) + inference_services()):
        env = env_of(container)
        assert env["FACELENS_HOST"]["value"] == "0.0.0.0"
        secret = env["FACELENS_SERVER_API_KEYS"]["valueFrom"]["secretKeyRef"]
        assert (secret["name"], secret["key"]) == ("facelens-api-keys", "keys")
        assert secret.get("optional", False) is False, container["name"]
        assert "FACELENS_ALLOW_NO_KEYS" not in env
    for name, server in compose_servers().items():
        assert "FACELENS_ALLOW_NO_KEYS" not in server["environment"], name
    assert "FACELENS_ALLOW_NO_KEYS" not in (ROOT / "Dockerfile").read_text()


def test_the_single_server_manifests_stay_one_replica_on_its_volume() -> None:
    """deploy/k8s, which deploy/k8s-shared builds on, keeps its SQLite gallery: one pod,
    replaced rather than rolled, on its volume claim, with no database."""
    objects = rendered()
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    claim = one(objects, "PersistentVolumeClaim")["metadata"]["name"]
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == claim
    for container in containers(objects) + containers([yaml.safe_load(KSERVE.read_text())]):
        assert "FACELENS_DATABASE_URL" not in env_of(container)


def test_the_shared_manifests_run_three_replicas_on_the_database_secret() -> None:
    objects = rendered(K8S_SHARED)
    assert sorted(o["kind"] for o in objects) == ["Deployment", "PodDisruptionBudget", "Service"]
    deployment = one(objects, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"]["type"] == "RollingUpdate"
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert selects(spec["selector"], labels)
    [container] = pod["containers"]
    url = env_of(container)["FACELENS_DATABASE_URL"]
    assert "value" not in url
    ref = url["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == DATABASE_SECRET
    assert ref.get("optional", False) is False
    # Readiness on /readyz, which stays 200 while the database is out of reach (the pods
    # go on recognising); liveness on /healthz.
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # Each pod its own data directory (an emptyDir), no volume shared by the replicas.
    data_dir = env_of(container)["FACELENS_DATA_DIR"]["value"]
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == data_dir]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(volumes[mount["name"]]) == {"name", "emptyDir"}
    assert not any("persistentVolumeClaim" in v for v in volumes.values())
    # The budget and the Service pick these pods, and the budget lets a drain go on.
    budget = one(objects, "PodDisruptionBudget")["spec"]
    assert selects(budget["selector"], labels)
    allowed = (
        spec["replicas"] - budget["minAvailable"]
        if "minAvailable" in budget
        else budget["maxUnavailable"]
    )
    assert 1 <= allowed < spec["replicas"], budget
    service = one(objects, "Service")["spec"]
    assert service["selector"].items() <= labels.items()


def test_the_scaled_inference_service_shares_the_database_and_keeps_its_own_data() -> None:
    predictor = yaml.safe_load(KSERVE_SHARED.read_text())["spec"]["predictor"]
    assert 1 < predictor["minReplicas"] < predictor["maxReplicas"]
    [container] = predictor["containers"]
    url = env_of(container)["FACELENS_DATABASE_URL"]
    assert "value" not in url
    ref = url["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == DATABASE_SECRET
    data_dir = env_of(container)["FACELENS_DATA_DIR"]["value"]
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == data_dir]
    volumes = {v["name"]: v for v in predictor["volumes"]}
    assert set(volumes[mount["name"]]) == {"name", "emptyDir"}


def test_the_example_postgres_is_what_the_example_secret_names() -> None:
    """The StatefulSet, its headless Service, and the example Secret's URL agree: host, port,
    user, database and password all lead to that PostgreSQL."""
    objects = rendered(POSTGRES)
    assert sorted(o["kind"] for o in objects) == ["Service", "StatefulSet"]
    statefulset, service = one(objects, "StatefulSet"), one(objects, "Service")
    spec = statefulset["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert selects(spec["selector"], labels)
    assert service["spec"]["clusterIP"] == "None"
    assert spec["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["selector"].items() <= labels.items()
    [container] = spec["template"]["spec"]["containers"]
    env = env_of(container)
    # Its data on a claim of its own, per pod of the set.
    [claim] = spec["volumeClaimTemplates"]
    mounted = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["PGDATA"]["value"].startswith(mounted[claim["metadata"]["name"]] + "/")
    assert "pg_isready" in container["readinessProbe"]["exec"]["command"]
    ref = env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    secret = yaml.safe_load((K8S_SHARED / "database-secret.example.yaml").read_text())
    assert (secret["metadata"]["name"], ref["name"]) == (DATABASE_SECRET[0],) * 2
    url = urlsplit(secret["stringData"][DATABASE_SECRET[1]])
    [port] = service["spec"]["ports"]
    assert (url.scheme, url.hostname, url.port) == (
        "postgresql",
        service["metadata"]["name"],
        port["port"],
    )
    assert url.username == env["POSTGRES_USER"]["value"]
    assert url.path == "/" + env["POSTGRES_DB"]["value"]
    assert url.password == secret["stringData"][ref["key"]]


def test_compose_runs_the_replicas_in_a_profile_on_one_healthy_postgres() -> None:
    """Plain 'docker compose up' starts the single server alone; the 'shared' profile holds
    PostgreSQL and two servers, each with its own data volume, started once it is healthy,
    with the database's URL from an env file of the operator's (kept out of git)."""
    services = compose()["services"]
    assert [n for n, s in services.items() if not s.get("profiles")] == ["facelens"]
    shared = {n: s for n, s in services.items() if "shared" in s.get("profiles", [])}
    assert set(shared) == {"postgres", "facelens-1", "facelens-2"}
    postgres = shared.pop("postgres")
    assert postgres["image"].startswith("postgres:")
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert "ports" not in postgres  # reached by the servers only
    data_volumes = {services["facelens"]["volumes"][0]}
    published = {services["facelens"]["ports"][0].split(":")[0]}
    for name, server in shared.items():
        assert server["depends_on"]["postgres"]["condition"] == "service_healthy", name
        assert "FACELENS_DATABASE_URL" not in server["environment"]
        files = {f["path"]: f["required"] for f in server["env_file"]}
        assert files == {"facelens.env": True, "database.env": True}, name
        [volume] = server["volumes"]
        assert volume.endswith(":/data") and volume not in data_volumes, name
        data_volumes.add(volume)
        [port] = server["ports"]
        assert port.split(":")[0] not in published, name
        published.add(port.split(":")[0])
    assert set(postgres["env_file"][0].values()) == {"database.env", True}
    assert set(compose()["volumes"]) == {v.split(":")[0] for v in data_volumes} | {
        postgres["volumes"][0].split(":")[0]
    }
    # The env files hold keys and the database's password: git ignores them.
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "facelens.env", "database.env"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert ignored.stdout.split() == ["facelens.env", "database.env"], ignored.stderr


# A password in a connection URL, and what may stand there in committed files: a shell
# variable, a <placeholder> in prose, or an example's placeholder.
URL_PASSWORD = re.compile(r"\bpostgres(?:ql)?://[^\s:@/]+:([^\s@]*)@")
PLACEHOLDER = re.compile(r"\$\{?\w+\}?|<[a-z ]+>|replace-with-[a-z-]+")


def passwords(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """Every (name, value) of a YAML document that holds a password: a key or an env entry
    named so, with a literal value."""
    if isinstance(value, dict):
        name = str(value.get("name", ""))
        if "password" in name.lower() and "value" in value:
            yield name, str(value["value"])
        for k, v in value.items():
            yield from passwords(v, str(k))
    elif isinstance(value, list):
        for item in value:
            yield from passwords(item, key)
    elif "password" in key.lower() and isinstance(value, str | int):
        yield key, str(value)


def committed_deployment_files() -> list[Path]:
    return [ROOT / "compose.yaml", *sorted(p for p in (ROOT / "deploy").rglob("*") if p.is_file())]


def test_no_password_is_committed_but_the_marked_examples_placeholders() -> None:
    found = 0
    for path in committed_deployment_files():
        text = path.read_text()
        example = path.name.endswith(".example.yaml")
        literal = [(f"URL in {path.name}", p) for p in URL_PASSWORD.findall(text)]
        if path.suffix == ".yaml":
            literal += [(n, v) for d in yaml.safe_load_all(text) for n, v in passwords(d)]
        for name, value in literal:
            found += 1
            assert PLACEHOLDER.fullmatch(value), (path, name, value)
            if value.startswith("replace-with-"):
                assert example and "EXAMPLE" in text, (path, name)
    assert found  # the examples' placeholders, and the shell variables of the how-tos


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
