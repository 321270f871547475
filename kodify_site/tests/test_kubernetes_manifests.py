"""The Kubernetes manifests (docker/k8s/): valid and wired together.

Every manifest is validated offline, in strict mode (no unknown field anywhere), against the
schemas kubernetes-validate ships for Kubernetes 1.30 and for 1.25, the oldest it has
(the guide asks for Kubernetes 1.24+). The rest parses the YAML and checks what an operator
relies on: the gateway's init container migrates with the gateway's own image, probes read
/health, the model server gets its GPU, shared memory and offline weights and stays inside
the cluster, beat runs once, config.yml loads with Kodify's own loader, and every Secret,
ConfigMap, volume claim and Service port a workload names exists.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from django.conf import settings
from kubernetes_validate import utils as kubernetes_validate

from gateway.config_file import load_config
from kodify_site import __version__
from kodify_site.management.commands.run_model_server import load_launcher

pytestmark = pytest.mark.smoke

K8S_DIR = Path(settings.BASE_DIR) / "docker" / "k8s"
KUSTOMIZATION = K8S_DIR / "kustomization.yaml"
NAMESPACE = "kodify"
KUBERNETES_VERSIONS = ("1.25.0", "1.30.0")
PLACEHOLDER = "CHANGE-ME"
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
KODIFY_IMAGE = "kodify/kodify"
MODEL_SERVER_IMAGE = "kodify/kodify-model-server"
MIGRATE_COMMAND = ["python", "manage.py", "kodify_migrate"]
# Read by the gateway's command line (uvicorn --workers), not by Kodify's settings.
ENV_OUTSIDE_SETTINGS = {"WORKERS"}
# What the model-server image's launcher (and vLLM, Hugging Face) read.
MODEL_SERVER_ENV = {
    "MODEL",
    "SERVED_MODEL_NAME",
    "MAX_MODEL_LEN",
    "GPUUTIL",
    "DTYPE",
    "EAGER",
    "SCHEDULING_POLICY",
    "ADDITIONAL_ARGS",
    "VLLM_API_KEY",
    "HOST",
    "PORT",
    "PYTORCH_CUDA_ALLOC_CONF",
    "VLLM_WORKER_MULTIPROC_METHOD",
    "VLLM_USE_V1",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "VLLM_NO_USAGE_STATS",
    "DO_NOT_TRACK",
}

Obj = dict[str, Any]


# -- reading the manifests ------------------------------------------------------------------


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S_DIR.glob("*.yaml") if p != KUSTOMIZATION)


def read_documents(path: Path) -> list[Obj]:
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def kustomization() -> Obj:
    data = yaml.safe_load(KUSTOMIZATION.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def all_objects() -> list[Obj]:
    return [doc for path in manifest_files() for doc in read_documents(path)]


def find_all(kind: str) -> list[Obj]:
    return [obj for obj in all_objects() if obj["kind"] == kind]


def find(kind: str, name: str) -> Obj:
    matches = [obj for obj in find_all(kind) if obj["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name!r}, found {len(matches)}"
    return matches[0]


def workloads() -> list[Obj]:
    return [obj for obj in all_objects() if obj["kind"] in WORKLOAD_KINDS]


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: Obj) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def containers(workload: Obj, *, init: bool = False) -> list[Obj]:
    spec = pod_spec(workload)
    found: list[Obj] = spec.get("initContainers", []) if init else spec["containers"]
    return found


def container(workload: Obj, name: str) -> Obj:
    matches = [
        c for c in containers(workload) + containers(workload, init=True) if c["name"] == name
    ]
    assert len(matches) == 1, f"{workload['metadata']['name']}: no single container {name!r}"
    return matches[0]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def config_map_data(name: str) -> dict[str, str]:
    data: dict[str, str] = find("ConfigMap", name).get("data", {})
    return data


def secret_data(name: str) -> dict[str, str]:
    data: dict[str, str] = find("Secret", name).get("stringData", {})
    return data


def container_env(c: Obj) -> dict[str, str]:
    """The variables a container gets, as the manifests' ConfigMaps and Secrets give them."""
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_map_data(source["configMapRef"]["name"]))
        if "secretRef" in source:
            env.update(secret_data(source["secretRef"]["name"]))
    for item in c.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"]
        if "configMapKeyRef" in ref:
            key_ref = ref["configMapKeyRef"]
            env[item["name"]] = config_map_data(key_ref["name"])[key_ref["key"]]
        elif "secretKeyRef" in ref:
            key_ref = ref["secretKeyRef"]
            env[item["name"]] = secret_data(key_ref["name"])[key_ref["key"]]
    return env


def option(command: list[str], name: str) -> str:
    """The value of ``--name=value`` (or ``--name value``) in a command line."""
    for i, arg in enumerate(command):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name:
            return command[i + 1]
    raise AssertionError(f"{name} not in {command}")


def gateway() -> Obj:
    return find("Deployment", "kodify-gateway")


def vllm() -> Obj:
    return find("Deployment", "kodify-vllm")


def kodify_workloads() -> list[Obj]:
    """The workloads that run the Kodify image: gateway, Celery worker, Celery beat."""
    found = [w for w in workloads() if any(c["image"] == KODIFY_IMAGE for c in containers(w))]
    assert {w["metadata"]["name"] for w in found} == {
        "kodify-gateway",
        "kodify-worker",
        "kodify-beat",
    }
    return found


def port_number(c: Obj, port: int | str) -> int:
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in c.get("ports", []) if "name" in p}
    assert port in named, f"container {c['name']} has no port named {port!r}"
    number: int = named[port]
    return number


def memory_bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "": 1}
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti|)", str(quantity))
    assert match, f"unexpected quantity {quantity!r}"
    return int(match[1]) * units[match[2]]


# -- the files and kustomize ----------------------------------------------------------------


def test_kustomization_lists_every_manifest_and_sets_the_namespace() -> None:
    data = kustomization()
    listed = data["resources"]
    assert len(listed) == len(set(listed)), "a file is listed twice"
    assert sorted(listed) == [p.name for p in manifest_files()]
    assert data["namespace"] == NAMESPACE
    assert find("Namespace", NAMESPACE)
    for obj in all_objects():
        assert obj["metadata"].get("namespace", NAMESPACE) == NAMESPACE, obj["metadata"]


def test_readme_explains_the_install() -> None:
    readme = (K8S_DIR / "README.md").read_text(encoding="utf-8")
    for needed in ("kubectl apply -k docker/k8s", "kodify_migrate", "nvidia.com/gpu", PLACEHOLDER):
        assert needed in readme


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.name)
def test_manifest_validates_strictly(path: Path, version: str) -> None:
    documents = read_documents(path)
    assert documents, f"{path.name} holds no object"
    for obj in documents:
        where = f"{path.name}: {obj.get('kind')} {obj.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            at = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{where} is not valid for Kubernetes {version}: {at}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"{where}: {exc.message}")


def test_every_image_is_set_in_one_place() -> None:
    """Manifests name images without a tag; kustomization.yaml's ``images`` sets registry
    and tag for all of them (an operator's Artifactory), Kodify's at this release."""
    images = {entry["name"]: entry for entry in kustomization()["images"]}
    used = {c["image"] for w in workloads() for c in containers(w) + containers(w, init=True)}
    assert used == set(images)
    for name in used:
        assert ":" not in name and "@" not in name, f"{name}: the tag belongs in kustomization"
        assert images[name].get("newTag"), f"{name} has no tag in kustomization.yaml"
    assert images[KODIFY_IMAGE]["newTag"] == __version__
    assert images[MODEL_SERVER_IMAGE]["newTag"] == __version__


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl (kustomize)")
def test_kustomize_build_is_valid() -> None:
    """What `kubectl apply -k` would send: namespaced, tagged images, valid for 1.30."""
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S_DIR)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert len(rendered) == len(all_objects())
    tags = {
        e["name"]: f"{e.get('newName', e['name'])}:{e['newTag']}" for e in kustomization()["images"]
    }
    for obj in rendered:
        kubernetes_validate.validate(obj, KUBERNETES_VERSIONS[-1], strict=True)
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == NAMESPACE
        if obj["kind"] in WORKLOAD_KINDS:
            for c in containers(obj) + containers(obj, init=True):
                assert c["image"] in tags.values(), c["image"]


# -- the gateway ----------------------------------------------------------------------------


def test_gateway_init_container_migrates_with_the_gateway_image() -> None:
    for workload in kodify_workloads():
        name = workload["metadata"]["name"]
        main = containers(workload)[0]
        migrate = [
            c for c in containers(workload, init=True) if "kodify_migrate" in c.get("args", [])
        ]
        assert len(migrate) == 1, f"{name}: no init container runs kodify_migrate"
        init = migrate[0]
        # `args` alone: the image's entrypoint (tini, the writable-folder check) still runs.
        assert init["args"] == MIGRATE_COMMAND and "command" not in init
        assert init["image"] == main["image"] == KODIFY_IMAGE
        # The same settings (DB_URL, LOGS and LOGS_DB_*): main and journal databases alike.
        assert init["envFrom"] == main["envFrom"]
        env = container_env(init)
        assert env["DB_URL"].startswith("postgresql://")
        for variable in ("LOGS", "LOGS_DB_HOST", "LOGS_DB_NAME", "LOGS_DB_PASSWORD"):
            assert variable in env


def test_gateway_probes_read_health() -> None:
    c = container(gateway(), "gateway")
    served_port = int(option(c["args"], "--port"))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] == "/health", probe
        assert port_number(c, get["port"]) == served_port, probe


def test_gateway_runs_uvicorn_with_the_workers_setting() -> None:
    c = container(gateway(), "gateway")
    command = c["args"]
    assert "command" not in c, "keep the image's entrypoint"
    assert command[:3] == ["python", "-m", "kodify_site.serve"]  # uvicorn, production's flags
    assert option(command, "--workers") == "$(WORKERS)"
    assert int(container_env(c)["WORKERS"]) >= 2


def test_gateway_scales_and_shuts_down_gracefully() -> None:
    deployment = gateway()
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0

    c = container(deployment, "gateway")
    pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain = int(option(c["args"], "--timeout-graceful-shutdown"))
    upstream_first_byte = float(
        settings.ENV_VARIABLES["KODIFY_UPSTREAM_FIRST_BYTE_TIMEOUT"].default
    )
    assert drain >= upstream_first_byte, "a slow answer in flight is cut at shutdown"
    assert pod_spec(deployment)["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + drain

    labels = pod_labels(deployment)
    hpa = find("HorizontalPodAutoscaler", "kodify-gateway")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "kodify-gateway",
    }
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert "cpu" in c["resources"]["requests"], "CPU utilisation is relative to the request"

    pdbs = [
        p
        for p in find_all("PodDisruptionBudget")
        if selects(p["spec"]["selector"]["matchLabels"], labels)
    ]
    assert len(pdbs) == 1
    assert pdbs[0]["spec"]["minAvailable"] >= 1


def test_kodify_pods_run_as_non_root_on_a_read_only_root() -> None:
    for workload in kodify_workloads():
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["enableServiceLinks"] is False, name
        volumes = {v["name"]: v for v in spec["volumes"]}
        for c in containers(workload) + containers(workload, init=True):
            security = c["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert security["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert c["resources"]["limits"]["memory"], (name, c["name"])
        c = containers(workload)[0]
        env = container_env(c)
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        for folder in (env["KODIFY_DATA_DIR"], env["KODIFY_METRICS_DIR"], "/tmp"):
            covering = [p for p in mounts if folder == p or folder.startswith(p.rstrip("/") + "/")]
            assert covering, f"{name}: {folder} is on the read-only root filesystem"
            assert "emptyDir" in volumes[mounts[covering[0]]], (name, folder)
        metrics_mount = next(p for p in mounts if env["KODIFY_METRICS_DIR"].startswith(p))
        assert volumes[mounts[metrics_mount]]["emptyDir"]["medium"] == "Memory", name


# -- Celery ---------------------------------------------------------------------------------


def test_beat_runs_exactly_once() -> None:
    beat = find("Deployment", "kodify-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    assert container(beat, "beat")["args"][:5] == [
        "python",
        "-m",
        "celery",
        "--app=kodify_site",
        "beat",
    ]
    assert not [
        h
        for h in find_all("HorizontalPodAutoscaler")
        if h["spec"]["scaleTargetRef"]["name"] == "kodify-beat"
    ]


def test_worker_runs_celery() -> None:
    worker = find("Deployment", "kodify-worker")
    assert container(worker, "worker")["args"][:5] == [
        "python",
        "-m",
        "celery",
        "--app=kodify_site",
        "worker",
    ]


# -- the model server -----------------------------------------------------------------------


def test_vllm_gets_its_gpu_shared_memory_and_offline_weights() -> None:
    deployment = vllm()
    spec = pod_spec(deployment)
    c = container(deployment, "vllm")
    assert c["image"] == MODEL_SERVER_IMAGE
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}, "the new pod needs the GPU"

    resources = c["resources"]
    gpus = int(resources["limits"]["nvidia.com/gpu"])
    assert gpus >= 1
    assert int(resources["requests"].get("nvidia.com/gpu", gpus)) == gpus

    env = container_env(c)
    args = env.get("ADDITIONAL_ARGS", "")
    parallel = 1
    for flag in ("--tensor-parallel-size", "--pipeline-parallel-size"):
        match = re.search(rf"{flag}[\s=]+(\d+)", args)
        parallel *= int(match[1]) if match else 1
    assert parallel == gpus, "ADDITIONAL_ARGS' parallel sizes must use the GPUs requested"

    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    shm = volumes[mounts["/dev/shm"]["name"]]["emptyDir"]
    assert shm["medium"] == "Memory"
    assert memory_bytes(shm["sizeLimit"]) >= 10 * 2**30
    assert memory_bytes(resources["limits"]["memory"]) > memory_bytes(shm["sizeLimit"])

    models = mounts["/models"]
    assert models["readOnly"] is True
    source = volumes[models["name"]]
    if "persistentVolumeClaim" in source:
        assert find("PersistentVolumeClaim", source["persistentVolumeClaim"]["claimName"])
    else:
        assert "hostPath" in source
    assert env["MODEL"].startswith("/models/")

    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["VLLM_API_KEY"] == secret_data("kodify-secrets")["VLLM_API_KEY"]
    # The device plugin says which GPUs this pod got; a value here would override it.
    assert "NVIDIA_VISIBLE_DEVICES" not in env
    unknown = set(env) - MODEL_SERVER_ENV
    assert not unknown, f"the model server does not read {sorted(unknown)}"
    assert spec["enableServiceLinks"] is False, "a Service named vllm would set VLLM_PORT"


def test_the_launcher_accepts_the_model_server_settings() -> None:
    """The model-server image's entrypoint builds vLLM's command line from this pod's
    environment without a warning, serving on the probed port under config.yml's name."""
    model_server = load_launcher()
    c = container(vllm(), "vllm")
    env = container_env(c)
    plan = model_server.build_plan(env, check_model=False)
    assert plan.warnings == []
    assert env["MODEL"] in plan.argv
    assert option(plan.argv, "--port") == str(port_number(c, "http"))
    tabby = yaml.safe_load(config_map_data("kodify-config")["config.yml"])["tabby"]
    assert option(plan.argv, "--served-model-name") == tabby["model_name"]
    assert "--api-key" not in plan.argv, "the key stays in the environment"


def test_vllm_probes_read_health_with_time_to_load_the_model() -> None:
    c = container(vllm(), "vllm")
    served_port = int(container_env(c)["PORT"])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] == "/health", probe
        assert port_number(c, get["port"]) == served_port, probe
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 15 * 60


def test_vllm_is_never_exposed_outside_the_cluster() -> None:
    labels = pod_labels(vllm())
    services = [s for s in find_all("Service") if selects(s["spec"].get("selector", {}), labels)]
    assert [s["metadata"]["name"] for s in services] == ["kodify-vllm"]
    assert services[0]["spec"]["type"] == "ClusterIP"
    for service in find_all("Service"):
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP", service["metadata"]["name"]

    backends = [
        path["backend"]["service"]["name"]
        for ingress in find_all("Ingress")
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]
    assert backends and set(backends) == {"kodify-gateway"}

    policies = [
        p
        for p in find_all("NetworkPolicy")
        if selects(p["spec"]["podSelector"]["matchLabels"], labels)
    ]
    assert len(policies) == 1 and policies[0]["spec"]["policyTypes"] == ["Ingress"]


# -- configuration --------------------------------------------------------------------------


def test_config_yml_loads_with_kodifys_loader_and_points_at_the_model_server(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.yml"
    path.write_text(config_map_data("kodify-config")["config.yml"], encoding="utf-8")
    config = load_config(path, ())
    assert config.upstreams

    served = container_env(container(vllm(), "vllm"))
    assert config.tabby_model_name == served["SERVED_MODEL_NAME"]

    vllm_labels = pod_labels(vllm())
    for upstream in config.upstreams:
        url = urlsplit(upstream.url)
        service = find("Service", str(url.hostname))
        assert selects(service["spec"]["selector"], vllm_labels), upstream.url
        assert url.port in [p["port"] for p in service["spec"]["ports"]], upstream.url

    for workload in kodify_workloads():
        for c in containers(workload) + containers(workload, init=True):
            if c["name"] == "check-secrets":
                continue
            where = container_env(c)["KODIFY_CONFIG"]
            mount = next(m for m in c["volumeMounts"] if m["mountPath"] == where)
            volume = next(v for v in pod_spec(workload)["volumes"] if v["name"] == mount["name"])
            assert volume["configMap"]["name"] == "kodify-config"
            assert mount["subPath"] == "config.yml" and mount["readOnly"] is True


def test_env_names_are_kodify_settings_and_secrets_stay_secret() -> None:
    variables = settings.ENV_VARIABLES
    known = set(variables) | {a for v in variables.values() for a in v.aliases}
    config_env = config_map_data("kodify-env")
    secret_env = secret_data("kodify-secrets")
    unknown = (set(config_env) | set(secret_env)) - known - ENV_OUTSIDE_SETTINGS
    assert not unknown, f"Kodify reads no such variable: {sorted(unknown)}"
    secret_kinds = {
        name for name, v in variables.items() if v.kind == "secret" or v.kind.endswith("(secret)")
    }
    in_plain_sight = set(config_env) & secret_kinds
    assert not in_plain_sight, f"secrets in a ConfigMap: {sorted(in_plain_sight)}"
    assert not set(config_env) & set(secret_env)


def test_secrets_are_marked_placeholders_and_agree() -> None:
    for secret in find_all("Secret"):
        assert "data" not in secret, "stringData keeps the placeholders readable"
        for key, value in secret["stringData"].items():
            parts = urlsplit(value)
            if parts.scheme and parts.netloc:
                # A URL: only its password is secret (the bundled Redis has none).
                assert parts.password is None or PLACEHOLDER in parts.password, key
            else:
                assert value.startswith(PLACEHOLDER), f"{key} is not a marked placeholder"

    kodify = secret_data("kodify-secrets")
    env = config_map_data("kodify-env")
    postgres_password = secret_data("kodify-postgres")["POSTGRES_PASSWORD"]
    db = urlsplit(kodify["DB_URL"])
    postgres = find("StatefulSet", "kodify-postgres")
    postgres_env = container_env(container(postgres, "postgres"))
    assert db.password == postgres_password == kodify["LOGS_DB_PASSWORD"]
    assert db.username == postgres_env["POSTGRES_USER"] == env["LOGS_DB_USERNAME"]
    assert db.path.lstrip("/") == postgres_env["POSTGRES_DB"]
    assert db.hostname == env["LOGS_DB_HOST"] == postgres["spec"]["serviceName"]
    assert db.port == int(env["LOGS_DB_PORT"]) == 5432
    redis = urlsplit(kodify["REDIS_URL"])
    assert redis.hostname == find("StatefulSet", "kodify-redis")["spec"]["serviceName"]


def check_secrets_runs(c: Obj, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = list(c["command"])
    if command[0] == "python":
        command[0] = sys.executable
    return subprocess.run(
        command,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("name", ["kodify-gateway", "kodify-vllm", "kodify-postgres"])
def test_placeholders_stop_the_start(name: str) -> None:
    """The first init container refuses the placeholders, and passes real values."""
    workload = next(w for w in workloads() if w["metadata"]["name"] == name)
    first = containers(workload, init=True)[0]
    assert first["name"] == "check-secrets"
    assert first["image"] == containers(workload)[0]["image"]
    if first["command"][0] == "sh" and shutil.which("sh") is None:
        pytest.skip("needs sh")
    env = container_env(first)
    refused = check_secrets_runs(first, env)
    assert refused.returncode != 0
    assert PLACEHOLDER in refused.stderr and "README" in refused.stderr

    replaced = {k: v.replace(PLACEHOLDER, "s3cr3t") for k, v in env.items()}
    accepted = check_secrets_runs(first, replaced)
    assert accepted.returncode == 0, accepted.stderr


def test_everything_a_workload_names_exists() -> None:
    names = {(obj["kind"], obj["metadata"]["name"]) for obj in all_objects()}
    for workload in workloads():
        where = workload["metadata"]["name"]
        spec = pod_spec(workload)
        claims = {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
        volume_names = {v["name"] for v in spec.get("volumes", [])} | claims
        for c in containers(workload) + containers(workload, init=True):
            container_env(c)  # raises KeyError for a missing ConfigMap/Secret key
            for source in c.get("envFrom", []):
                for kind, ref in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    if ref in source:
                        assert (kind, source[ref]["name"]) in names, (where, source)
            for mount in c.get("volumeMounts", []):
                assert mount["name"] in volume_names, (where, mount)
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                data = config_map_data(volume["configMap"]["name"])
                for item in volume["configMap"].get("items", []):
                    assert item["key"] in data, (where, item)
            if "secret" in volume:
                assert ("Secret", volume["secret"]["secretName"]) in names, (where, volume)
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                assert ("PersistentVolumeClaim", claim) in names, (where, volume)
        selector = workload["spec"]["selector"]["matchLabels"]
        assert selects(selector, pod_labels(workload)), f"{where}: selector misses its pods"
        if workload["kind"] == "StatefulSet":
            assert ("Service", workload["spec"]["serviceName"]) in names, where


def services_and_their_pods() -> Iterator[tuple[Obj, Obj]]:
    for service in find_all("Service"):
        selected = [w for w in workloads() if selects(service["spec"]["selector"], pod_labels(w))]
        assert len(selected) == 1, f"Service {service['metadata']['name']} selects {len(selected)}"
        yield service, selected[0]


def test_every_service_reaches_a_port_its_pods_open() -> None:
    for service, workload in services_and_their_pods():
        main = containers(workload)[0]
        for port in service["spec"]["ports"]:
            assert port_number(main, port["targetPort"]), service["metadata"]["name"]


def test_ingress_suits_long_streams() -> None:
    ingress = find("Ingress", "kodify-gateway")
    notes = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert notes[prefix + "proxy-buffering"] == "off"
    assert notes[prefix + "proxy-request-buffering"] == "off"
    first_byte = float(settings.ENV_VARIABLES["KODIFY_UPSTREAM_FIRST_BYTE_TIMEOUT"].default)
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(notes[prefix + timeout]) >= first_byte, timeout
    service = find("Service", "kodify-gateway")
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    hosts = set()
    for rule in ingress["spec"]["rules"]:
        hosts.add(rule["host"])
        for path in rule["http"]["paths"]:
            assert path["backend"]["service"]["port"]["name"] in service_ports
    origins = config_map_data("kodify-env")["KODIFY_CSRF_TRUSTED_ORIGINS"].split(",")
    assert {urlsplit(o).hostname for o in origins} == hosts
