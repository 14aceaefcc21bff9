"""Dockerfile, docker-compose.yml and the Kubernetes manifests, validated by parsing.

No Docker engine or cluster runs in CI, so these checks are what keeps the deployment
files honest: every SEGSVC_* name must be a real setting, ports and probes must point at
the ports the server listens on, secret and config references must resolve, and grace
periods must exceed the server's shutdown grace.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from segsvc.config import Settings
from segsvc.health import LIVENESS_SERVICE

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").rglob("*.yaml"))
SETTINGS = {f"SEGSVC_{name.upper()}" for name in Settings.model_fields}
GRPC_PORT = int(Settings.model_fields["grpc_addr"].default.rpartition(":")[2])
HTTP_PORT = int(Settings.model_fields["http_addr"].default.rpartition(":")[2])
DEFAULT_GRACE = float(Settings.model_fields["shutdown_grace"].default)
DEFAULT_DRAIN = float(Settings.model_fields["shutdown_drain"].default)


def documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in MANIFESTS:
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in documents() if d["kind"] == kind]


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in documents():
        if doc["kind"] in {"Deployment", "Job"}:
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def segsvc_containers() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(workload, pod spec, container) for every container running the segsvc image."""
    for name, spec in pod_specs():
        for container in spec.get("initContainers", []) + spec["containers"]:
            if str(container["image"]).startswith("segsvc"):
                yield name, spec, container


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def config_values() -> dict[str, str]:
    values: dict[str, str] = {}
    for doc in of_kind("ConfigMap"):
        values.update(doc["data"])
    return values


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(s|m)?", str(value))
    assert match, value
    return float(match[1]) * (60 if match[2] == "m" else 1)


def test_manifests_exist_for_both_modes() -> None:
    kinds = {d["kind"] for d in documents()}
    assert {"ConfigMap", "Secret", "Job", "Deployment", "Service"} <= kinds
    sidecar_pods = [spec for _, spec in pod_specs() if len(spec["containers"]) > 1]
    assert sidecar_pods, "no pod runs segsvc beside another container"


def test_every_segsvc_variable_is_a_real_setting() -> None:
    names: set[str] = set(config_values())
    for doc in of_kind("Secret"):
        names |= set(doc.get("stringData", {})) | set(doc.get("data", {}))
    for _, _, container in segsvc_containers():
        names |= {e["name"] for e in container.get("env", [])}
    names |= set(compose()["services"]["segsvc"]["environment"])
    dockerfile_env = re.findall(r"\b(SEGSVC_[A-Z_]+)=", (ROOT / "Dockerfile").read_text())
    names |= set(dockerfile_env)
    segsvc_names = {n for n in names if n.startswith("SEGSVC_")}
    assert segsvc_names, "no settings found at all"
    assert segsvc_names - SETTINGS == set()


def test_secret_and_config_references_resolve() -> None:
    secrets = {d["metadata"]["name"]: set(d.get("stringData", {})) for d in of_kind("Secret")}
    configs = {d["metadata"]["name"]: set(d["data"]) for d in of_kind("ConfigMap")}
    for workload, _, container in segsvc_containers():
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in configs, workload
            if "secretRef" in source:
                assert source["secretRef"]["name"] in secrets, workload
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in secrets[ref["name"]], (workload, ref)
            ref = env.get("valueFrom", {}).get("configMapKeyRef")
            if ref:
                assert ref["key"] in configs[ref["name"]], (workload, ref)


def test_servers_get_database_and_secret_and_listen_where_probed() -> None:
    served = [(w, s, c) for w, s, c in segsvc_containers() if c.get("args") == ["serve"]]
    assert len(served) >= 2  # the shared Deployment and the sidecar
    for workload, spec, container in served:
        env = {e["name"] for e in container.get("env", [])}
        assert {"SEGSVC_DATABASE_URL", "SEGSVC_JWT_SECRET"} <= env, workload
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert {GRPC_PORT, HTTP_PORT} <= set(ports.values()), workload
        grpc_addr = config_values().get(
            "SEGSVC_GRPC_ADDR", Settings.model_fields["grpc_addr"].default
        )
        assert grpc_addr.endswith(f":{GRPC_PORT}")
        assert not grpc_addr.startswith("127."), "kubelet probes dial the pod IP"
        for probe in ("readinessProbe", "startupProbe"):
            assert container[probe]["grpc"]["port"] == GRPC_PORT, (workload, probe)
        liveness = container["livenessProbe"]["grpc"]
        assert liveness == {"port": GRPC_PORT, "service": LIVENESS_SERVICE}, workload
        assert set(container["resources"]) == {"requests", "limits"}, workload
        grace = seconds(config_values().get("SEGSVC_SHUTDOWN_GRACE", str(DEFAULT_GRACE)))
        drain = seconds(config_values().get("SEGSVC_SHUTDOWN_DRAIN", str(DEFAULT_DRAIN)))
        assert spec["terminationGracePeriodSeconds"] > drain + grace, workload


def test_service_targets_container_ports() -> None:
    container_ports: dict[str | int, int] = {}
    for _, _, container in segsvc_containers():
        for port in container.get("ports", []):
            container_ports[port["name"]] = port["containerPort"]
            container_ports[port["containerPort"]] = port["containerPort"]
    for service in of_kind("Service"):
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in container_ports, port
        targets = {container_ports[p["targetPort"]] for p in service["spec"]["ports"]}
        assert targets == {GRPC_PORT, HTTP_PORT}


def test_migrations_run_as_job_and_init_container() -> None:
    commands = {
        workload: container.get("command")
        for workload, _, container in segsvc_containers()
        if container.get("command")
    }
    assert any(of_kind("Job")), "no migration Job"
    assert len(commands) >= 2
    assert all(command == ["segsvc", "migrate"] for command in commands.values())


def test_compose_stack() -> None:
    services = compose()["services"]
    postgres, segsvc = services["postgres"], services["segsvc"]
    assert segsvc["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert any(v.startswith("pgdata:") for v in postgres["volumes"])
    published = {int(p.split(":")[1]) for p in segsvc["ports"]}
    assert published == {GRPC_PORT, HTTP_PORT}
    env = segsvc["environment"]
    assert env["SEGSVC_DATABASE_URL"].startswith("postgresql://")
    assert "@postgres:5432/" in env["SEGSVC_DATABASE_URL"]
    assert seconds(segsvc["stop_grace_period"]) > seconds(env["SEGSVC_SHUTDOWN_GRACE"])


def dockerfile_final_stage() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages = re.split(r"^FROM ", text, flags=re.MULTILINE)
    return [line.strip() for line in stages[-1].splitlines() if line.strip()]


def instruction(lines: list[str], name: str) -> list[str]:
    return [line[len(name) + 1 :] for line in lines if line.startswith(name + " ")]


def test_dockerfile() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, flags=re.MULTILINE)) >= 2, "multi-stage"
    final = dockerfile_final_stage()
    user = instruction(final, "USER")
    assert user, "final stage must not run as root"
    assert user[-1].split(":")[0] not in {"root", "0"}
    assert instruction(final, "HEALTHCHECK")
    assert "/healthz" in instruction(final, "HEALTHCHECK")[0]
    exposed = {int(p) for line in instruction(final, "EXPOSE") for p in line.split()}
    assert exposed == {GRPC_PORT, HTTP_PORT}
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    (entrypoint,) = instruction(final, "ENTRYPOINT")
    assert json.loads(entrypoint) == ["segsvc"]
    assert "segsvc" in scripts
    (cmd,) = instruction(final, "CMD")
    assert json.loads(cmd) == ["serve"]
    assert not re.search(r"\[(dev|embedded)", text), "only runtime dependencies"
    # The package carries its migrations (segsvc/migrations links to migrations/): the
    # builder needs the link's target, and the image needs no directory setting.
    assert "COPY migrations ./migrations" in text.split("FROM", 2)[1]
    assert "SEGSVC_MIGRATIONS_DIR" not in text


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_manifests_parse(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs
    assert all({"apiVersion", "kind", "metadata"} <= set(d) for d in docs)
