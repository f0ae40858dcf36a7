"""herd.telemetry.metrics: the metric sets of each service, on registries of their own."""

import numpy as np
import pytest

from herd.telemetry import metrics as hm


def _names():
    return {v for k, v in vars(hm).items() if k.isupper() and isinstance(v, str) and v.startswith("herd_")}


def test_every_declared_name_has_the_prefix_and_is_unique():
    declared = [v for k, v in vars(hm).items() if k.isupper() and isinstance(v, str) and k not in ("PREFIX",)]
    assert all(name.startswith(hm.PREFIX) for name in declared)
    assert len(declared) == len(set(declared))


def test_services_of_one_process_keep_separate_registries():
    a, b = hm.new_registry(), hm.new_registry()
    first, second = hm.ActorMetrics(a, "gym:CartPole-v1"), hm.ActorMetrics(b, "gym:CartPole-v1")
    hm.LearnerMetrics(a)  # different kinds share one registry fine
    first.record_unroll(80, [-10.0, 50.0], 20.0, 3)
    second.record_unroll(16, [], 0.0, 1)
    task = {"task": "gym:CartPole-v1"}
    assert a.get_sample_value(hm.ENV_STEPS, task) == 80
    assert b.get_sample_value(hm.ENV_STEPS, task) == 16
    assert a.get_sample_value(hm.EPISODES, task) == 2
    assert a.get_sample_value(hm.EPISODE_RETURN + "_sum", task) == 40.0
    assert a.get_sample_value(hm.EPISODE_RETURN + "_count", task) == 2
    assert a.get_sample_value(hm.EPISODE_RETURN_MEAN, task) == 20.0
    assert b.get_sample_value(hm.EPISODE_RETURN_MEAN, task) == 0.0  # no episode yet: untouched
    assert a.get_sample_value(hm.ACTOR_PARAM_VERSION) == 3
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        hm.ActorMetrics(a, "other")  # the same kind twice on one registry is a programming error


def test_learner_step_sets_losses_norm_lag_and_frame_rate():
    registry = hm.new_registry()
    m = hm.LearnerMetrics(registry, fps_window=0.0)
    step = {"total_loss": 1.5, "pg_loss": 0.5, "baseline_loss": 1.2, "entropy_loss": -0.2, "grad_norm": 3.0,
            "learning_rate": 1e-3, "batch_wait_seconds": 0.01, "policy_lag": 2.5, "rho_mean": 1.0}
    m.record_step(step, 160, 7, update_seconds=0.02)
    m.record_step(step, 160, 8, update_seconds=0.02)
    assert registry.get_sample_value(hm.LEARNER_STEPS) == 2
    assert registry.get_sample_value(hm.LEARNER_FRAMES) == 320
    for key, term in {"total_loss": "total", "pg_loss": "pg", "baseline_loss": "baseline",
                      "entropy_loss": "entropy"}.items():
        assert registry.get_sample_value(hm.LOSS, {"term": term}) == step[key]
    assert registry.get_sample_value(hm.LEARNER_METRIC, {"name": "rho_mean"}) == 1.0
    assert registry.get_sample_value(hm.LEARNER_METRIC, {"name": "grad_norm"}) is None  # has its own gauge
    assert registry.get_sample_value(hm.GRAD_NORM) == 3.0
    assert registry.get_sample_value(hm.LEARNER_POLICY_LAG) == 2.5
    assert registry.get_sample_value(hm.LEARNER_PARAM_VERSION) == 8
    assert registry.get_sample_value(hm.BATCH_WAIT_SECONDS + "_count") == 2
    assert registry.get_sample_value(hm.UPDATE_SECONDS + "_sum") == pytest.approx(0.04)
    assert registry.get_sample_value(hm.LEARNER_FPS) > 0


def test_replay_metrics_are_read_from_the_tables_when_scraped():
    from replay_service.table import queue

    table = queue("trajectories", 4)
    registry = hm.new_registry()
    hm.ReplayMetrics(registry, lambda: [table.info()])
    labels = {"table": "trajectories"}
    assert registry.get_sample_value(hm.REPLAY_ITEMS, labels) == 0
    item = {"observation": np.zeros((3, 2, 4), np.float32)}
    table.insert(item)
    table.sample(1)
    assert registry.get_sample_value(hm.REPLAY_INSERTS, labels) == 2  # counted by the table, read now
    assert registry.get_sample_value(hm.REPLAY_SAMPLES, labels) == 1
    assert registry.get_sample_value(hm.REPLAY_ITEMS, labels) == 1
    assert registry.get_sample_value(hm.REPLAY_MAX_ITEMS, labels) == 4
    for side in ("insert", "sample"):
        assert registry.get_sample_value(hm.REPLAY_BLOCKED_SECONDS, {**labels, "side": side}) >= 0


def test_params_metrics_report_versions_and_bytes_served():
    registry = hm.new_registry()
    m = hm.ParamServerMetrics(registry)
    assert registry.get_sample_value(hm.PARAMS_VERSION, {"name": "policy"}) is None
    m.watch(lambda: {"policy": 12})
    m.bytes_served.labels("policy").inc(100)
    assert registry.get_sample_value(hm.PARAMS_VERSION, {"name": "policy"}) == 12
    assert registry.get_sample_value(hm.PARAMS_BYTES_SERVED, {"name": "policy"}) == 100


def test_timed_policy_and_lag_meter_pass_everything_through():
    from actor_service.metered import LagMeter, TimedPolicy
    from herd.interfaces import Params

    class Policy:
        version = 4

        def initial_state(self, n):
            return ()

        def step(self, observation, first, state):
            return "out", state

        def load(self, version, weights):
            self.version = version

        extra = "kept"

    class Source:
        latest = 9

        def fetch(self, name, min_version=0):
            return Params(self.latest, {}) if self.latest >= min_version else None

    registry = hm.new_registry()
    m = hm.ActorMetrics(registry, "t")
    policy = TimedPolicy(Policy(), m)
    assert policy.step(None, None, ()) == ("out", ())
    policy.load(6, {})
    assert policy.version == 6 and policy.extra == "kept" and policy.initial_state(2) == ()
    assert registry.get_sample_value(hm.INFERENCE_SECONDS + "_count") == 1

    source = LagMeter(Source(), m)
    assert source.fetch("policy", 0).version == 9  # the first pull: no lag measured
    assert registry.get_sample_value(hm.ACTOR_POLICY_LAG) == 0
    source.fetch("policy", 7)  # acting with 6, the server has 9: 3 behind
    assert registry.get_sample_value(hm.ACTOR_POLICY_LAG) == 3
    assert source.fetch("policy", 10) is None  # current
    assert registry.get_sample_value(hm.ACTOR_POLICY_LAG) == 0


def test_metrics_port_option_and_flag(monkeypatch):
    from herd.cli import build_parser
    from herd.options import ServerOptions

    assert ServerOptions().metrics_port == 0
    assert ServerOptions(metrics_port=-1).metrics_address(None) == ""
    assert ServerOptions(host="0.0.0.0", advertise_host="replay").metrics_address(9400) == "replay:9400"
    with pytest.raises(ValueError, match="server.metrics_port"):
        ServerOptions(metrics_port=-2)
    monkeypatch.setenv("HERD_METRICS_PORT", "9400")
    assert build_parser().parse_args(["serve", "replay"]).metrics_port == "9400"
    assert build_parser().parse_args(["serve", "replay", "--metrics-port", "-1"]).metrics_port == "-1"


def test_a_bad_metrics_port_flag_is_a_clear_cli_error(capsys):
    from herd.cli import main

    with pytest.raises(SystemExit) as e:
        main(["serve", "replay", "--metrics-port", "70000"])
    assert e.value.code == 2
    assert "server.metrics_port" in capsys.readouterr().err
