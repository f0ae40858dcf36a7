"""The Helm chart deploy/helm/herd: linted and rendered by Helm's Go SDK (helm-python-sdk),
every rendered manifest validated against the Kubernetes schemas (kubernetes-validate,
strict, offline), and its services compared with what ``herd up`` runs."""

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from herd import config as hc
from herd.cli import DEFAULT_CONTAINER_PORT
from herd.run_config import load_run_config
from herd.testing.deploy import dir_volumes, normalise, parse_serve, unknown_herd_variables, up_services

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "herd"
# Custom resources whose schemas kubernetes-validate does not have.
CRD_KINDS = {"ServiceMonitor"}
# The oldest and newest Kubernetes versions the validator bundles that the chart supports.
KUBE_VERSIONS = ("1.25.0", "1.37.0")
COMPONENTS = {"params", "replay", "learner", "actor"}

SCENARIOS = {
    "default": {},
    "50-actors": {"actor": {"replicas": 50}},
    "tls-token-monitor": {
        "tls": {"enabled": True, "existingSecret": "herd-tls", "clientAuth": True},
        "token": {"enabled": True, "existingSecret": "herd-token"},
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
    },
    "external-redis": {
        "redis": {"enabled": False, "external": {"url": "rediss://redis.example.com:6380/2"},
                  "auth": {"existingSecret": "redis-creds", "existingSecretKey": "password"}},
    },
    "gpu-learner": yaml.safe_load((CHART / "values-gpu.yaml").read_text()),  # the GPU values the docs name
    "no-auth-no-persistence": {"redis": {"auth": {"enabled": False}, "persistence": {"enabled": False}},
                               "metrics": {"podAnnotations": False}},
}


@pytest.fixture(scope="module")
def chart():
    import helm_python  # helm-python-sdk (dev extra); a missing tool fails the test

    loaded = helm_python.Chart.load(str(CHART))
    yield loaded
    loaded.close()


def render(chart, values, name="herd", namespace="rl") -> list[dict]:
    out = chart.render(values, name=name, namespace=namespace, is_install=True)
    docs = []
    for path, text in sorted(out.items()):
        if not path.endswith(".txt"):
            docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def find(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert found, f"no {kind} {name or ''}"
    return found


def workloads(docs) -> dict[str, dict]:
    """component -> StatefulSet or Deployment of the Herd services."""
    out = {}
    for d in docs:
        if d["kind"] in ("StatefulSet", "Deployment"):
            component = d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
            if component in COMPONENTS:
                out[component] = d
    assert set(out) == COMPONENTS
    return out


def container_env(container) -> dict[str, str]:
    return {e["name"]: e.get("value", "<from the cluster>") for e in container.get("env", [])}


def _kubernetes_validate() -> str:
    path = os.path.join(os.path.dirname(sys.executable), "kubernetes-validate")
    assert os.access(path, os.X_OK), "kubernetes-validate is missing: `make setup` installs it (dev extra)"
    return path


def test_lint_is_clean_in_strict_mode():
    import helm_python

    report = helm_python.lint(str(CHART), strict=True)
    assert report["total_charts_linted"] == 1
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # 2 warning, 3 error
    assert not problems and not report["errors"], problems or report["errors"]


def test_lint_reports_a_broken_template(tmp_path):
    import shutil

    import helm_python

    copy = tmp_path / "herd"
    shutil.copytree(CHART, copy)
    (copy / "templates" / "broken.yaml").write_text("{{ if .Values.actor }}\nkind: ConfigMap\n")
    report = helm_python.lint(str(copy), strict=True)
    assert any(m["severity"] == 3 for m in report["messages"])


def test_every_rendered_manifest_validates_strictly(chart, tmp_path):
    files, crds, seen = [], {}, set()
    for scenario, values in SCENARIOS.items():
        docs = render(chart, values)
        crds[scenario] = sorted(d["kind"] for d in docs if d["kind"] in CRD_KINDS)
        for i, doc in enumerate(d for d in docs if d["kind"] not in CRD_KINDS):
            text = yaml.safe_dump(doc)
            if text not in seen:  # the same manifest from several scenarios: validate once
                seen.add(text)
                path = tmp_path / f"{scenario}-{i:02d}-{doc['kind'].lower()}.yaml"
                path.write_text(text)
                files.append(str(path))
    # Only the ServiceMonitor escapes validation, and only where it is switched on.
    assert crds == {s: (["ServiceMonitor"] if s == "tls-token-monitor" else []) for s in SCENARIOS}
    for version in KUBE_VERSIONS:
        out = subprocess.run([_kubernetes_validate(), "--strict", "--quiet", "-k", version, *files],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_kubernetes_validate_rejects_a_bad_manifest(chart, tmp_path):
    deployment = find(render(chart, {}), "Deployment")[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["unknownField"] = True  # strict: no extra fields
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(deployment))
    out = subprocess.run([_kubernetes_validate(), "--strict", "-k", KUBE_VERSIONS[0], str(path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "unknownField" in out.stdout + out.stderr


def test_actor_replicas_scale_the_deployment_and_the_run_config(chart):
    docs = render(chart, SCENARIOS["50-actors"])
    actor = find(docs, "Deployment", "herd-actor")[0]
    assert actor["spec"]["replicas"] == 50
    run = yaml.safe_load(find(docs, "ConfigMap", "herd-run-config")[0]["data"]["run.yaml"])
    assert run["actors"] == 50  # sizes the replay queue
    assert find(render(chart, {}), "Deployment", "herd-actor")[0]["spec"]["replicas"] == 2


def test_chart_runs_what_herd_up_runs(chart, tmp_path):
    """Same services, commands and settings as ``herd up`` for the chart's run config."""
    docs = render(chart, {})
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(find(docs, "ConfigMap", "herd-run-config")[0]["data"]["run.yaml"])
    run, _ = load_run_config(str(run_yaml))
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    by_component = workloads(docs)
    roles: dict[str, str] = {}
    for plan, up_parsed in up_services(run, str(tmp_path / "run")):
        workload = by_component[plan.kind]
        pod = workload["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = container_env(container)
        assert not unknown_herd_variables(env), unknown_herd_variables(env)
        assert "command" not in container  # the image's entrypoint: herd
        parsed = parse_serve(container["args"], env)
        assert parsed["host"] == "0.0.0.0" and parsed["port"] == str(DEFAULT_CONTAINER_PORT)
        for peer in ("replay", "params"):
            host, port = parsed[f"{peer}_address"].split(":")
            service = services[host]  # a Service of the chart that selects the peer's pods
            assert service["spec"]["selector"]["app.kubernetes.io/component"] == peer
            assert int(port) in {p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc"}
        assert parsed["redis_url"] == "redis://:$(REDIS_PASSWORD)@herd-redis:6379/0"
        if plan.kind == "actor":
            assert parsed["actor_index"] == "auto" and workload["kind"] == "Deployment"
        else:
            assert workload["kind"] == "StatefulSet" and workload["spec"]["replicas"] == 1
            assert services[parsed["advertise_host"]]["spec"]["selector"]["app.kubernetes.io/component"] == plan.kind
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        config_volume = next(v for v in pod["volumes"] if v["name"] == mounts[os.path.dirname(parsed["config"])])
        assert config_volume["configMap"]["name"] == "herd-run-config"
        assert os.path.basename(parsed["config"]) == "run.yaml"
        claims = {c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])}
        for role, volume in dir_volumes(parsed, plan, mounts).items():
            assert volume in claims, f"{plan.kind}: {role} is not on a PersistentVolumeClaim"
            roles[role] = f"{plan.kind}/{volume}"
        assert normalise(parsed, plan) == normalise(up_parsed, plan), plan.kind
    assert sorted(roles) == ["checkpoints", "params", "replay"]


def test_probes_security_and_scheduling(chart):
    docs = render(chart, SCENARIOS["gpu-learner"])
    for component, workload in workloads(docs).items():
        pod = workload["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert pod["automountServiceAccountToken"] is False
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"] == {"port": DEFAULT_CONTAINER_PORT}, (component, probe)
        assert container["resources"]["requests"]
        assert container["image"] == "herd:cu128"
    learner = workloads(docs)["learner"]["spec"]["template"]["spec"]
    assert learner["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert learner["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert learner["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert "tolerations" not in workloads(docs)["actor"]["spec"]["template"]["spec"]
    redis_pod = find(docs, "StatefulSet", "herd-redis")[0]["spec"]["template"]["spec"]
    assert redis_pod["securityContext"]["runAsNonRoot"] is True


def test_gpu_values_put_the_learner_on_a_gpu(chart, tmp_path):
    """values-gpu.yaml: the learner requests a GPU and its run config says device cuda; actors neither."""
    from herd import devices

    docs = render(chart, SCENARIOS["gpu-learner"])
    pods = {c: w["spec"]["template"]["spec"] for c, w in workloads(docs).items()}
    assert pods["learner"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    for component in ("params", "replay", "actor"):
        assert "nvidia.com/gpu" not in pods[component]["containers"][0]["resources"].get("limits", {}), component
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(find(docs, "ConfigMap", "herd-run-config")[0]["data"]["run.yaml"])
    run, _ = load_run_config(str(run_yaml), need_env=False)
    assert (run.learner_device, run.actor_device) == ("cuda", "cpu")
    gpu_node = devices.Visible("2.13.0+cu128", "12.8", cuda_count=1, mps=False)
    assert devices.run_devices(run, gpu_node) == {"learner": "cuda:0", "actors": "cpu"}
    # In a pod without the GPU the learner stops at start, saying why.
    no_gpu = devices.Visible("2.13.0+cu128", "12.8", cuda_count=0, mps=False)
    with pytest.raises(hc.ConfigError, match=r"'learner_device'.*'cuda' is not available.*nvidia.com/gpu"):
        devices.run_devices(run, no_gpu)
    # The chart's defaults leave the learner on auto, which takes a GPU where the pod has one.
    default_run = yaml.safe_load(find(render(chart, {}), "ConfigMap", "herd-run-config")[0]["data"]["run.yaml"])
    assert "learner_device" not in default_run


def test_tls_and_token_come_from_secrets(chart):
    docs = render(chart, SCENARIOS["tls-token-monitor"])
    for component, workload in workloads(docs).items():
        pod = workload["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = container_env(container)
        secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
        assert secrets == {"tls": "herd-tls", "token": "herd-token"}
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        for var, volume in (("HERD_TLS_CERT", "tls"), ("HERD_TLS_KEY", "tls"), ("HERD_TLS_CA", "tls"),
                            ("HERD_TOKEN_FILE", "token")):
            assert os.path.dirname(env[var]) == mounts[volume], var
        assert env["HERD_TLS_CLIENT_AUTH"] == "true"
        # Kubernetes' gRPC probes speak no TLS: TCP probes instead.
        assert container["readinessProbe"] == {"tcpSocket": {"port": "grpc"}, "periodSeconds": 10}
    default = workloads(render(chart, {}))["learner"]["spec"]["template"]["spec"]["containers"][0]
    assert not any(k.startswith(("HERD_TLS", "HERD_TOKEN")) for k in container_env(default))


def test_service_monitor_selects_the_metrics_services(chart):
    docs = render(chart, SCENARIOS["tls-token-monitor"])
    (monitor,) = find(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    selector = monitor["spec"]["selector"]["matchLabels"]
    selected = [d for d in docs if d["kind"] == "Service"
                and all(d["metadata"]["labels"].get(k) == v for k, v in selector.items())]
    assert {s["spec"]["selector"]["app.kubernetes.io/component"] for s in selected} == COMPONENTS
    assert len(selected) == 4  # not the headless twins: each target scraped once
    port = monitor["spec"]["endpoints"][0]["port"]
    assert all(any(p["name"] == port and p["port"] == 9400 for p in s["spec"]["ports"]) for s in selected)


def test_redis_in_chart_or_external_with_the_password_from_a_secret(chart):
    docs = render(chart, {"redis": {"auth": {"password": "p4ss"}}})
    (secret,) = find(docs, "Secret")
    assert base64.b64decode(secret["data"]["redis-password"]).decode() == "p4ss"
    redis = find(docs, "StatefulSet", "herd-redis")[0]
    assert "p4ss" not in yaml.safe_dump(redis)
    assert redis["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    generated = find(render(chart, {}), "Secret")[0]["data"]["redis-password"]
    assert len(base64.b64decode(generated)) == 32

    docs = render(chart, SCENARIOS["external-redis"])
    assert not [d for d in docs if d["kind"] == "Secret" or d["metadata"]["name"] == "herd-redis"]
    for workload in workloads(docs).values():
        container = workload["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "redis-creds", "key": "password"}
        assert env["HERD_REDIS_URL"]["value"] == "rediss://:$(REDIS_PASSWORD)@redis.example.com:6380/2"
        names = [e["name"] for e in container["env"]]
        assert names.index("REDIS_PASSWORD") < names.index("HERD_REDIS_URL")  # $(VAR) expands only from earlier vars

    docs = render(chart, SCENARIOS["no-auth-no-persistence"])
    assert not find_all(docs, "Secret")
    assert container_env(workloads(docs)["learner"]["spec"]["template"]["spec"]["containers"][0])[
        "HERD_REDIS_URL"] == "redis://herd-redis:6379/0"
    assert "volumeClaimTemplates" not in find(docs, "StatefulSet", "herd-redis")[0]["spec"]


def find_all(docs, kind):
    return [d for d in docs if d["kind"] == kind]


@pytest.mark.parametrize("values, message", [
    ({"redis": {"enabled": False}}, "redis.external.url is required"),
    ({"redis": {"enabled": False, "external": {"url": "redis://user:pw@host:6379/0"}}}, "without credentials"),
    ({"tls": {"enabled": True}}, "tls.existingSecret is required"),
    ({"token": {"enabled": True}}, "token.existingSecret is required"),
    # values.schema.json
    ({"actor": {"replicas": "many"}}, "/actor/replicas"),
    ({"actors": {"replicas": 3}}, "'actors' not allowed"),
    ({"redis": {"auth": {"password": "p@ss/word"}}}, "/redis/auth/password"),
])
def test_bad_values_fail_with_a_message(chart, values, message):
    import helm_python

    with pytest.raises(helm_python.HelmError, match=message):
        chart.render(values, name="herd", namespace="rl", is_install=True)


def test_names_follow_the_release(chart):
    docs = render(chart, {}, name="exp1", namespace="team")
    names = {d["metadata"]["name"] for d in docs}
    assert {"exp1-herd-params", "exp1-herd-replay", "exp1-herd-learner", "exp1-herd-actor"} <= names
    learner = workloads(docs)["learner"]["spec"]["template"]["spec"]["containers"][0]
    env = container_env(learner)
    assert env["HERD_REPLAY_ADDRESS"] == f"exp1-herd-replay:{DEFAULT_CONTAINER_PORT}"
    assert env["HERD_RUN_ID"] == "exp1"
