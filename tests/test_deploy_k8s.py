"""Kubernetes manifests: every overlay renders, validates offline against the Kubernetes (and
Prometheus operator) schemas, and holds together: selectors, ports, probes, references,
hardening, settings the code understands, and the Redis ACL the headsets rely on. The relay's
layout: a StatefulSet of headset groups, each pod with the headsets' Redis beside it, exposed
on one address per pod, guarded against evictions and unasked restarts; the services behind
headless Services and scaled on their in-flight calls."""

from __future__ import annotations

import base64
import dataclasses
import importlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from relay.settings import RelaySettings, load_relay_settings
from solami.metrics import ServiceMetrics
from solami.registry import RELAY, SERVICES
from solami.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
CRD_SCHEMAS = K8S / "schemas"
OVERLAYS = sorted(
    p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists()
)
# Renders checked besides the overlays: the base with an external Redis instead of its own.
EXTRA_RENDERS = {
    "external-redis": (["base"], ["components/external-redis"]),
    "external-redis-network-policy": (
        ["base"],
        ["components/network-policy", "components/external-redis"],
    ),
}
RENDERS = [*OVERLAYS, *EXTRA_RENDERS]
# The oldest Kubernetes the manifests support (native gRPC probes, the preStop sleep action)
# and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
# The label the StatefulSet controller gives each of its pods: <name>-<ordinal>.
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
HEADSET_REDIS_PORT = 6379
# Variables of other programs in the settings ConfigMap (model libraries, caches).
THIRD_PARTY_VARIABLES = {
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "NUMBA_CACHE_DIR",
    "MPLCONFIGDIR",
    "VLLM_NO_USAGE_STATS",
    "DO_NOT_TRACK",
}
SHARED_VARIABLES = {"SOLAMI_REDIS_URL", "SOLAMI_RIG_DATA"}
URL_SAFE = re.compile(r"^[A-Za-z0-9._~-]+$")
# The weights volume (/models) as the README lays it out: one file per entry.
MODELS_LAYOUT = (
    "solami-llm/config.json",
    "solami-llm/model.safetensors",
    "whisper/large-v3.pt",
    "speechtokenizer/config.json",
    "speechtokenizer/SpeechTokenizer.pt",
    "soundstorm/SoundStorm.pt",
    "xtts/config.json",
    "xtts/model.pth",
    "xtts/vocab.json",
    "xtts/speakers_xtts.pth",
    "voices/Samantha.wav",
    "unitalker/unitalker.pt",
    "motion/body.pth",
    "motion/hand.pth",
    "motion/transform.pth",
    "motion/mean_std.npz",
    "rig/bone_data/Kvrc.json",
    "rig/retargetmap/Smplx2Kvrc.bmap",
)


# ---------------------------------------------------------------- rendering


def _kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl is not installed: the kustomize overlays cannot be rendered here")
    return path


def _kustomize(directory: Path) -> tuple[dict, ...]:
    result = subprocess.run(
        [_kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


@pytest.fixture(scope="module")
def renders(tmp_path_factory) -> dict[str, tuple[dict, ...]]:
    out = {name: _kustomize(K8S / "overlays" / name) for name in OVERLAYS}
    for name, (resources, components) in EXTRA_RENDERS.items():
        directory = tmp_path_factory.mktemp(name)
        up = os.path.relpath(K8S, directory)
        (directory / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "resources": [f"{up}/{r}" for r in resources],
                    "components": [f"{up}/{c}" for c in components],
                    "images": [
                        {"name": "solami-cpu", "newName": "solami/solami-cpu", "newTag": "0.1.0"},
                        {
                            "name": "solami-relay",
                            "newName": "solami/solami-relay",
                            "newTag": "0.1.0",
                        },
                    ],
                }
            )
        )
        out[name] = _kustomize(directory)
    return out


def _of_kind(objects: tuple[dict, ...], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def _named(objects: tuple[dict, ...], kind: str, name: str) -> dict:
    found = [o for o in _of_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def _pod_templates(objects: tuple[dict, ...]) -> Iterator[tuple[dict, dict, dict]]:
    """(workload, pod spec, pod labels) for every workload and bare Pod; a StatefulSet's pods
    one by one, each with the pod-name label its controller adds."""
    for obj in objects:
        if obj["kind"] == "StatefulSet":
            template = obj["spec"]["template"]
            labels = template["metadata"].get("labels", {})
            for ordinal in range(obj["spec"].get("replicas", 1)):
                pod = f"{obj['metadata']['name']}-{ordinal}"
                yield obj, template["spec"], {**labels, POD_NAME_LABEL: pod}
        elif obj["kind"] in WORKLOAD_KINDS:
            template = obj["spec"]["template"]
            yield obj, template["spec"], template["metadata"].get("labels", {})
        elif obj["kind"] == "Pod":
            yield obj, obj["spec"], obj["metadata"].get("labels", {})


def _containers(spec: dict) -> list[dict]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def _matches(selector: dict, labels: dict) -> bool:
    """A label selector (matchLabels/matchExpressions, or a Service's plain map) vs labels."""
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        return all(labels.get(k) == v for k, v in selector.items())
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, op, values = expression["key"], expression["operator"], expression.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def _pods_selected(objects: tuple[dict, ...], selector: dict) -> list[tuple[dict, dict, dict]]:
    return [t for t in _pod_templates(objects) if _matches(selector, t[2])]


def _declares_port(spec: dict, port: int | str) -> bool:
    for container in _containers(spec):
        for declared in container.get("ports", []):
            if port in (declared.get("name"), declared["containerPort"]):
                return True
    return False


def _settings(objects: tuple[dict, ...]) -> dict[str, str]:
    maps = [
        o
        for o in _of_kind(objects, "ConfigMap")
        if o["metadata"]["name"].startswith("solami-settings")
    ]
    assert len(maps) == 1
    return maps[0]["data"]


def _solami_containers(objects: tuple[dict, ...]) -> Iterator[tuple[dict, dict, dict]]:
    for workload, spec, _ in _pod_templates(objects):
        for container in spec["containers"]:
            if "/solami-" in container["image"]:
                yield workload, spec, container


def _probe_budget_s(probe: dict) -> int:
    return probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3)


# ---------------------------------------------------------------- schemas


@pytest.mark.parametrize("render", RENDERS)
def test_every_object_validates_offline(renders, render):
    objects = renders[render]
    assert objects
    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        group, _, version = obj["apiVersion"].rpartition("/")
        if group == "monitoring.coreos.com":
            schema_file = CRD_SCHEMAS / group / f"{kind.lower()}_{version}.json"
            assert schema_file.is_file(), f"no schema shipped for {kind} {obj['apiVersion']}"
            validator = jsonschema.Draft202012Validator(json.loads(schema_file.read_text()))
            errors = [
                f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(obj)
            ]
            assert not errors, f"{kind}/{name}: {errors}"
            continue
        for k8s_version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, k8s_version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(map(str, exc.path))
                pytest.fail(
                    f"{kind}/{name} is invalid for Kubernetes {k8s_version}: {path}: {exc.message}"
                )
            except kubernetes_validate.SchemaNotFoundError:
                pytest.fail(f"{kind} {obj['apiVersion']} is not a Kubernetes {k8s_version} kind")


def test_crd_schemas_reject_unknown_fields_and_bad_durations():
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "x"},
        "spec": {"selector": {}, "endpoints": [{"port": "metrics", "intervall": "5s"}]},
    }
    schema = json.loads((CRD_SCHEMAS / "monitoring.coreos.com/servicemonitor_v1.json").read_text())
    assert not jsonschema.Draft202012Validator(schema).is_valid(monitor)
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "x"},
        "spec": {
            "groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up", "for": "5 min"}]}]
        },
    }
    schema = json.loads((CRD_SCHEMAS / "monitoring.coreos.com/prometheusrule_v1.json").read_text())
    assert not jsonschema.Draft202012Validator(schema).is_valid(rule)
    rule["spec"]["groups"][0]["rules"][0]["for"] = "5m"
    assert jsonschema.Draft202012Validator(schema).is_valid(rule)


def test_models_loader_tool_validates_and_mounts_the_models_volume(renders):
    loader = yaml.safe_load((K8S / "tools" / "models-loader.yaml").read_text())
    for k8s_version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(loader, k8s_version, strict=True)
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for v in loader["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    }
    gpu_claims = {o["metadata"]["name"] for o in _of_kind(renders["gpu"], "PersistentVolumeClaim")}
    assert claims <= gpu_claims
    namespaces = {o["metadata"]["name"] for o in _of_kind(renders["gpu"], "Namespace")}
    assert loader["metadata"]["namespace"] in namespaces


# ---------------------------------------------------------------- cross-references


@pytest.mark.parametrize("render", RENDERS)
def test_services_select_pods_that_declare_their_ports(renders, render):
    objects = renders[render]
    for service in _of_kind(objects, "Service"):
        name = service["metadata"]["name"]
        pods = _pods_selected(objects, service["spec"]["selector"])
        assert pods, f"Service {name} selects no pods"
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for workload, spec, _ in pods:
                assert _declares_port(spec, target), (
                    f"Service {name} port {port['name']} targets {target!r}, which "
                    f"{workload['kind']}/{workload['metadata']['name']} does not declare"
                )


@pytest.mark.parametrize("render", RENDERS)
def test_probes_name_declared_ports_and_the_right_grpc_service(renders, render):
    for workload, spec, _ in _pod_templates(renders[render]):
        for container in spec["containers"]:
            where = f"{workload['metadata']['name']}/{container['name']}"
            for kind in PROBES:
                probe = container.get(kind)
                if workload["kind"] != "Pod":
                    assert probe is not None, f"{where} has no {kind}"
                if probe is None:
                    continue
                if "grpc" in probe:
                    assert _declares_port(spec, probe["grpc"]["port"]), f"{where} {kind}"
                    assert probe["grpc"]["service"] == SERVICES[container["name"]].full_name
                for action in ("httpGet", "tcpSocket"):
                    if action in probe:
                        assert _declares_port(spec, probe[action]["port"]), f"{where} {kind}"


@pytest.mark.parametrize("render", RENDERS)
def test_parts_listen_where_the_code_expects(renders, render):
    objects = renders[render]
    settings = _settings(objects)
    for name, info in SERVICES.items():
        deployment = _named(objects, "Deployment", name)
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["args"] == ["serve", name]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"grpc": info.port, "metrics": info.metrics_port}
        service_ports = {
            p["name"]: p["port"] for p in _named(objects, "Service", name)["spec"]["ports"]
        }
        assert service_ports == ports
        # The relay balances over the pods behind the headless Service.
        headless = _named(objects, "Service", f"{name}-headless")
        assert headless["spec"]["clusterIP"] == "None"
        assert headless["spec"]["selector"] == _named(objects, "Service", name)["spec"]["selector"]
        assert [(p["name"], p["port"]) for p in headless["spec"]["ports"]] == [("grpc", info.port)]
        assert settings[f"{info.env_prefix}ADDR"] == f"dns:///{name}-headless:{info.port}"
    relay = _named(objects, "StatefulSet", "relay")
    containers = {c["name"]: c for c in relay["spec"]["template"]["spec"]["containers"]}
    assert set(containers) == {"relay", "headset-redis"}
    container = containers["relay"]
    assert container["args"] == ["serve", "relay"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {
        "ws": RELAY.port,
        "http": RelaySettings().http_port,
        "metrics": RELAY.metrics_port,
    }
    redis_ports = {p["name"]: p["containerPort"] for p in containers["headset-redis"]["ports"]}
    assert redis_ports == {"headset-redis": HEADSET_REDIS_PORT}
    assert relay["spec"]["serviceName"] == "relay-headless"
    assert _named(objects, "Service", "relay-headless")["spec"]["clusterIP"] == "None"


@pytest.mark.parametrize("render", RENDERS)
def test_service_monitors_scrape_declared_ports_of_every_part(renders, render):
    objects = renders[render]
    monitors = _of_kind(objects, "ServiceMonitor")
    scraped = set()
    for monitor in monitors:
        selected = [
            s
            for s in _of_kind(objects, "Service")
            if _matches(monitor["spec"]["selector"], s["metadata"]["labels"])
        ]
        assert selected, f"ServiceMonitor {monitor['metadata']['name']} selects no Service"
        for endpoint in monitor["spec"]["endpoints"]:
            for service in selected:
                names = {p["name"] for p in service["spec"]["ports"]}
                assert endpoint["port"] in names, (
                    f"{service['metadata']['name']} has no port {endpoint['port']}"
                )
                scraped.add(service["metadata"]["name"])
    if monitors:
        assert scraped == {*SERVICES, RELAY.name}


@pytest.mark.parametrize("render", RENDERS)
def test_referenced_objects_exist(renders, render):
    objects = renders[render]
    config_maps = {o["metadata"]["name"]: o.get("data", {}) for o in _of_kind(objects, "ConfigMap")}
    secrets = {o["metadata"]["name"]: o.get("data", {}) for o in _of_kind(objects, "Secret")}
    claims = {o["metadata"]["name"] for o in _of_kind(objects, "PersistentVolumeClaim")}
    accounts = {o["metadata"]["name"] for o in _of_kind(objects, "ServiceAccount")}
    for workload, spec, _ in _pod_templates(objects):
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        if workload["kind"] != "Pod":
            assert spec["serviceAccountName"] in accounts, where
        templates = {
            t["metadata"]["name"] for t in workload.get("spec", {}).get("volumeClaimTemplates", [])
        }
        volumes = {v["name"] for v in spec.get("volumes", [])} | templates
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps, where
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets, where
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, where
        for container in _containers(spec):
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, f"{where} mounts undeclared volume {mount['name']}"
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps, where
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets, where
            for env in container.get("env", []):
                ref = env.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    key = ref["configMapKeyRef"]
                    assert key["key"] in config_maps[key["name"]], f"{where} {env['name']}"
                if "secretKeyRef" in ref:
                    key = ref["secretKeyRef"]
                    assert key["key"] in secrets[key["name"]], f"{where} {env['name']}"
    deployments = {o["metadata"]["name"]: o for o in _of_kind(objects, "Deployment")}
    for hpa in _of_kind(objects, "HorizontalPodAutoscaler"):
        target = deployments[hpa["spec"]["scaleTargetRef"]["name"]]
        # The autoscaler owns the count: re-applying must not reset it.
        assert "replicas" not in target["spec"], target["metadata"]["name"]


@pytest.mark.parametrize("render", RENDERS)
def test_network_policies_select_pods_and_their_ports(renders, render):
    objects = renders[render]
    for policy in _of_kind(objects, "NetworkPolicy"):
        name = policy["metadata"]["name"]
        targets = _pods_selected(objects, policy["spec"]["podSelector"])
        assert targets, f"NetworkPolicy {name} selects no pods"
        for rule in policy["spec"].get("ingress", []):
            for port in rule.get("ports", []):
                assert all(_declares_port(spec, port["port"]) for _, spec, _ in targets), (
                    name,
                    port,
                )
        for rule in policy["spec"].get("egress", []):
            peers = [
                p for p in rule.get("to", []) if "podSelector" in p and "namespaceSelector" not in p
            ]
            for peer in peers:
                pods = _pods_selected(objects, peer["podSelector"])
                assert pods, f"NetworkPolicy {name} allows egress to no pods"
                for port in rule.get("ports", []):
                    assert all(_declares_port(spec, port["port"]) for _, spec, _ in pods), (
                        name,
                        port,
                    )


# ---------------------------------------------------------------- hardening and sizing


@pytest.mark.parametrize("render", RENDERS)
def test_pods_are_hardened_and_sized(renders, render):
    for workload, spec, _ in _pod_templates(renders[render]):
        where = workload["metadata"]["name"]
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True, where
        assert pod_security["runAsUser"] != 0, where
        assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is False, where
        for container in _containers(spec):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"] == {"drop": ["ALL"]}, where
            resources = container["resources"]
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[bound]), f"{where} {bound}"
            image = container["image"]
            assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image
    for namespace in _of_kind(renders[render], "Namespace"):
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("render", RENDERS)
def test_solami_containers_get_writable_tmp_and_cache(renders, render):
    containers = list(_solami_containers(renders[render]))
    assert {c["name"] for _, _, c in containers} == {*SERVICES, RELAY.name}
    for _, spec, container in containers:
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/tmp", "/home/solami/.cache"} <= mounts, container["name"]
        emptydirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for mount in container["volumeMounts"]:
            if mount["mountPath"] in ("/tmp", "/home/solami/.cache"):
                assert mount["name"] in emptydirs


@pytest.mark.parametrize("render", RENDERS)
def test_relay_runs_its_own_image_without_torch(renders, render):
    for _, _, container in _solami_containers(renders[render]):
        image = container["image"].rsplit(":", 1)[0]
        if container["name"] == RELAY.name:
            assert image == "solami/solami-relay", image
        else:
            assert image != "solami/solami-relay", container["name"]


@pytest.mark.parametrize("render", RENDERS)
def test_startup_probes_cover_the_model_load(renders, render):
    for workload, spec, container in _solami_containers(renders[render]):
        if container["name"] == RELAY.name:
            continue
        budget = _probe_budget_s(container["startupProbe"])
        on_gpu = "nvidia.com/gpu" in container["resources"]["limits"]
        assert budget >= (900 if on_gpu else 300), f"{container['name']}: {budget} s"
        grace = spec["terminationGracePeriodSeconds"]
        assert grace > 10 + container["lifecycle"]["preStop"]["sleep"]["seconds"]
        deadline = workload["spec"]["progressDeadlineSeconds"]
        assert deadline >= budget, f"{container['name']} rollout deadline below its load budget"


# ---------------------------------------------------------------- settings


def _settings_class(part: str) -> type | None:
    module_name = "relay.settings" if part == RELAY.name else f"services.{part}.settings"
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    if part == RELAY.name:
        return RelaySettings
    classes = [
        value
        for value in vars(module).values()
        if dataclasses.is_dataclass(value) and value.__module__ == module_name
    ]
    return classes[0] if len(classes) == 1 else None


def _models_volume(root: Path) -> Path:
    for relative in MODELS_LAYOUT:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    return root


@pytest.mark.parametrize("render", RENDERS)
def test_settings_are_variables_the_code_reads(renders, render, tmp_path):
    data = _settings(renders[render])
    parts = {**SERVICES, RELAY.name: RELAY}
    checked = set()
    for key in data:
        if key in THIRD_PARTY_VARIABLES or key in SHARED_VARIABLES:
            continue
        part = next((p for p, info in parts.items() if key.startswith(info.env_prefix)), None)
        assert part is not None, f"{key} belongs to no part of the stack"
        if key == f"{parts[part].env_prefix}ADDR":
            continue
        cls = _settings_class(part)
        if cls is None:
            continue
        fields = {f"{parts[part].env_prefix}{f.name.upper()}" for f in dataclasses.fields(cls)}
        assert key in fields, f"{key} is not a setting of {cls.__name__}"
        checked.add(part)
    # Paths on the weights volume point into its documented layout, and every part accepts
    # its settings (types, choices, files) with that volume in place.
    volume = _models_volume(tmp_path / "models")
    environ = {}
    for key, value in data.items():
        if value.startswith("/models/"):
            assert (volume / value.removeprefix("/models/")).exists(), f"{key}={value}"
            value = str(volume / value.removeprefix("/models/"))
        environ[key] = value
    for part in checked - {RELAY.name}:
        load_settings(_settings_class(part), parts[part].env_prefix, environ)
    settings, _ = load_relay_settings(environ)
    if "SOLAMI_RIG_DATA" in data:
        assert settings.rig_data == volume / "rig"


def test_docs_describe_the_models_volume_layout():
    docs = (ROOT / "README.md").read_text()
    for relative in MODELS_LAYOUT:
        top, name = relative.split("/")[0], relative.rsplit("/", 1)[-1]
        assert re.search(rf"── {re.escape(top)}[/ ]", docs), top
        # Files the services open by name (the others above are examples of their kind).
        if top not in ("solami-llm", "voices", "rig"):
            assert name in docs, relative


@pytest.mark.parametrize("render", RENDERS)
def test_relay_redis_url_uses_the_secret_password(renders, render):
    objects = renders[render]
    relay = _named(objects, "StatefulSet", "relay")
    containers = {c["name"]: c for c in relay["spec"]["template"]["spec"]["containers"]}
    env = containers["relay"]["env"]
    names = [e["name"] for e in env]
    # The headsets' Redis beside the relay, as the relay's user of its ACL.
    assert names.index("REDIS_PASSWORD") < names.index("SOLAMI_RELAY_HEADSET_REDIS_URL")
    assert env[names.index("SOLAMI_RELAY_HEADSET_REDIS_URL")]["value"] == (
        f"redis://solami:$(REDIS_PASSWORD)@127.0.0.1:{HEADSET_REDIS_PORT}/0"
    )
    sidecar_env = {e["name"]: e for e in containers["headset-redis"]["env"]}
    password = env[names.index("REDIS_PASSWORD")]["valueFrom"]["secretKeyRef"]
    assert sidecar_env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == password
    assert sidecar_env["REDIS_CONF"]["value"] == "/etc/redis/headset-redis.conf"
    url = env[names.index("SOLAMI_REDIS_URL")]
    if "valueFrom" in url:
        secret = url["valueFrom"]["secretKeyRef"]
        value = base64.b64decode(_named(objects, "Secret", secret["name"])["data"][secret["key"]])
        assert value.decode().startswith("redis://")
        return
    # $(VAR) expands only variables defined earlier in the list.
    assert names.index("REDIS_PASSWORD") < names.index("SOLAMI_REDIS_URL")
    assert url["value"] == "redis://solami:$(REDIS_PASSWORD)@redis:6379/0"
    secret = env[names.index("REDIS_PASSWORD")]["valueFrom"]["secretKeyRef"]
    password = base64.b64decode(_named(objects, "Secret", secret["name"])["data"][secret["key"]])
    assert URL_SAFE.match(password.decode()), "the password must be URL-safe"
    redis_container = _named(objects, "StatefulSet", "redis")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert redis_container["env"][0]["valueFrom"]["secretKeyRef"] == secret


# ---------------------------------------------------------------- overlays


def _gpu_limit(container: dict) -> int:
    return int(container["resources"]["limits"].get("nvidia.com/gpu", 0))


def test_dev_overlay_is_cpu_only_with_one_replica_each(renders):
    objects = renders["dev"]
    for workload, spec, _ in _pod_templates(objects):
        assert workload["spec"]["replicas"] == 1
        for container in spec["containers"]:
            assert _gpu_limit(container) == 0
            assert "solami-gpu" not in container["image"]
    assert not _of_kind(objects, "HorizontalPodAutoscaler")
    assert not _of_kind(objects, "PersistentVolumeClaim")
    assert all(
        s["spec"].get("type", "ClusterIP") == "ClusterIP" for s in _of_kind(objects, "Service")
    )


def test_gpu_overlay_runs_vllm_on_a_gpu_with_weights_from_the_volume(renders):
    objects = renders["gpu"]
    llm = _named(objects, "Deployment", "llm")
    spec = llm["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert _gpu_limit(container) == 1
    assert container["image"].startswith("solami/solami-gpu:")
    assert container["command"][-1] == "/opt/vllm/bin/solami"
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchExpressions"][0]["key"] == "nvidia.com/gpu.present"
    assert any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
    models = next(v for v in spec["volumes"] if v["name"] == "models")
    assert models["persistentVolumeClaim"] == {"claimName": "solami-models", "readOnly": True}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "models")
    assert mount == {"name": "models", "mountPath": "/models", "readOnly": True}
    assert llm["spec"]["progressDeadlineSeconds"] >= 1800
    assert _probe_budget_s(container["startupProbe"]) >= 1800
    settings = _settings(objects)
    assert settings["SOLAMI_LLM_BACKEND"] == "vllm"
    assert settings["SOLAMI_LLM_MODEL"] == "/models/solami-llm"
    assert settings["SOLAMI_RIG_DATA"] == "/models/rig"
    for name in ("asr", "tts", "face"):
        (speech,) = _named(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        assert _gpu_limit(speech) == 1 and speech["image"].startswith("solami/solami-gpu:")
    on_gpu = {
        w["metadata"]["name"]
        for w, s, _ in _pod_templates(objects)
        if any(_gpu_limit(c) for c in s["containers"])
    }
    scaled = {
        h["spec"]["scaleTargetRef"]["name"] for h in _of_kind(objects, "HorizontalPodAutoscaler")
    }
    # Every service scales, the GPU ones included, on its in-flight calls.
    assert on_gpu and scaled == set(SERVICES)
    assert _of_kind(objects, "ServiceMonitor") and _of_kind(objects, "PrometheusRule")
    assert _of_kind(objects, "NetworkPolicy")


@pytest.mark.parametrize("render", ["gpu", "scale-out"])
def test_each_relay_pod_is_exposed_to_its_headsets_on_one_address(renders, render):
    objects = renders[render]
    relay = _named(objects, "StatefulSet", "relay")
    exposed = {}
    for service in _of_kind(objects, "Service"):
        if service["spec"].get("type") != "LoadBalancer":
            continue
        assert service["spec"]["externalTrafficPolicy"] == "Local"
        assert service["spec"]["publishNotReadyAddresses"] is True
        ranges = service["spec"]["loadBalancerSourceRanges"]
        assert ranges and "0.0.0.0/0" not in ranges
        # One pod; the WebSocket and the headsets' Redis on the same address.
        (pod,) = {
            labels[POD_NAME_LABEL]
            for _, _, labels in _pods_selected(objects, service["spec"]["selector"])
        }
        ports = {p["port"]: p["targetPort"] for p in service["spec"]["ports"]}
        assert ports == {RELAY.port: "ws", HEADSET_REDIS_PORT: "headset-redis"}
        assert pod not in exposed, f"two Services expose {pod}"
        exposed[pod] = service["metadata"]["name"]
    pods = [f"relay-{ordinal}" for ordinal in range(relay["spec"]["replicas"])]
    assert sorted(exposed) == pods


@pytest.mark.parametrize("render", RENDERS)
def test_relay_pods_leave_only_when_an_operator_says_so(renders, render):
    objects = renders[render]
    relay = _named(objects, "StatefulSet", "relay")
    assert relay["spec"]["updateStrategy"] == {"type": "OnDelete"}
    template = relay["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    (budget,) = [
        b
        for b in _of_kind(objects, "PodDisruptionBudget")
        if _matches(b["spec"]["selector"], template["metadata"]["labels"])
    ]
    assert budget["spec"]["maxUnavailable"] == 0
    assert all(d["metadata"]["name"] != "relay" for d in _of_kind(objects, "Deployment"))
    (container,) = [c for c in template["spec"]["containers"] if c["name"] == "relay"]
    # Readiness is /healthz (ready while only Redis is down); liveness asks the event loop.
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    scaled = {
        h["spec"]["scaleTargetRef"]["name"] for h in _of_kind(objects, "HorizontalPodAutoscaler")
    }
    assert "relay" not in scaled


@pytest.mark.parametrize("render", RENDERS)
def test_headless_services_are_not_scraped_twice(renders, render):
    objects = renders[render]
    for monitor in _of_kind(objects, "ServiceMonitor"):
        for service in _of_kind(objects, "Service"):
            if service["spec"].get("clusterIP") == "None":
                assert not _matches(monitor["spec"]["selector"], service["metadata"]["labels"])


@pytest.mark.parametrize("render", RENDERS)
def test_headsets_reach_only_their_ports_from_their_network(renders, render):
    objects = renders[render]
    policies = {p["metadata"]["name"]: p for p in _of_kind(objects, "NetworkPolicy")}
    if not policies:
        return
    for policy in policies.values():
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                assert peer.get("ipBlock", {}).get("cidr") != "0.0.0.0/0", policy["metadata"]
    headsets = policies["headsets"]
    (rule,) = headsets["spec"]["ingress"]
    assert all("ipBlock" in peer for peer in rule["from"])
    ports = {(p["port"], p.get("endPort")) for p in rule["ports"]}
    assert ports == {(RELAY.port, RELAY.port + 15), ("headset-redis", None)}
    # The shared Redis admits only relay pods.
    for rule in policies.get("redis", {"spec": {}})["spec"].get("ingress", []):
        assert all(peer.get("podSelector") for peer in rule["from"])


ADAPTER_VALUES = K8S / "components" / "autoscaling-inflight" / "prometheus-adapter-values.yaml"


@pytest.mark.parametrize("render", ["gpu", "scale-out"])
def test_autoscalers_read_the_in_flight_gauge_through_the_adapter(renders, render):
    (rule,) = yaml.safe_load(ADAPTER_VALUES.read_text())["rules"]["custom"]
    series = re.search(r'__name__=~"([^"]+)"', rule["seriesQuery"]).group(1)
    for hpa in _of_kind(renders[render], "HorizontalPodAutoscaler"):
        service = hpa["spec"]["scaleTargetRef"]["name"]
        (metric,) = hpa["spec"]["metrics"]
        assert metric["type"] == "Pods"
        name = metric["pods"]["metric"]["name"]
        # The gauge the runtime's interceptor keeps, by the name the adapter serves it under.
        gauge = ServiceMetrics(service).inflight_requests
        assert name == gauge._name
        assert re.fullmatch(series, name)
        assert (
            re.sub(rule["name"]["matches"], rule["name"]["as"].replace("${1}", r"\1"), name) == name
        )
        assert float(metric["pods"]["target"]["averageValue"]) > 0


def test_scale_out_overlay_runs_three_relay_pods_and_two_llm_replicas(renders):
    objects = renders["scale-out"]
    assert _named(objects, "StatefulSet", "relay")["spec"]["replicas"] == 3
    assert _named(objects, "HorizontalPodAutoscaler", "llm")["spec"]["minReplicas"] == 2
    relay_pods = [
        labels
        for _, _, labels in _pod_templates(objects)
        if labels.get("app.kubernetes.io/name") == "relay"
    ]
    assert len(relay_pods) == 3


def test_prometheus_rule_carries_the_alerts_of_the_rules_file():
    rule = yaml.safe_load((K8S / "components/monitoring/prometheusrule.yaml").read_text())
    rules_file = yaml.safe_load((ROOT / "deploy/prometheus/rules.yml").read_text())
    assert rule["spec"]["groups"] == rules_file["groups"]
