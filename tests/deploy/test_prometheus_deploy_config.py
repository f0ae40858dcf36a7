"""deploy/prometheus: the docker-compose config and the recording rules, checked by the real promtool."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from herd.launch.prometheus import JOBS, local_config
from herd.telemetry import metrics as hm

ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROM_DIR / "rules").glob("*.yml"))

def _promtool(*args, cwd=None):
    # No skip when promtool is missing: `make setup` installs it (Debian's prometheus package).
    assert shutil.which("promtool"), "promtool not on PATH: run `make setup` as root (installs prometheus)"
    out = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60, cwd=cwd)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_compose_config_is_valid_and_finds_its_rules():
    out = _promtool("check", "config", str(PROM_DIR / "prometheus.yml"))
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in out


def test_compose_config_scrapes_every_service_by_dns_on_9400():
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for job in JOBS.values():  # the compose service names herd up also uses as job names
        sd = jobs[job]["dns_sd_configs"]
        assert sd == [{"names": [job], "type": "A", "port": 9400, "refresh_interval": "10s"}]


def test_recording_rules_are_valid_and_compute_what_they_claim():
    assert RULE_FILES
    _promtool("check", "rules", *map(str, RULE_FILES))
    _promtool("test", "rules", str(PROM_DIR / "tests" / "throughput_test.yml"))


def test_rules_use_only_declared_metric_names():
    declared = {v for k, v in vars(hm).items() if k.isupper() and isinstance(v, str)}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                used = set(re.findall(r"\bherd_[a-z_]+", rule["expr"]))
                assert used <= declared, (path.name, rule["record"], used - declared)


def test_herd_up_config_is_valid(tmp_path):
    (tmp_path / "targets").mkdir()
    config = local_config(str(tmp_path / "targets"), [str(PROM_DIR / "rules" / "*.yml")], interval=1.0)
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    _promtool("check", "config", str(path))
