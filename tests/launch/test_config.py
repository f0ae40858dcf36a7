"""Config resolution: defaults < file < flags < overrides, and errors that name the key."""

import pytest

from herd import config as hc
from herd.agents.impala.config import ImpalaConfig
from herd.envs.registry import EnvInfo
from herd.run_config import load_run_config

VECTOR = EnvInfo(observation_shape=(4,), observation_dtype="float32", num_actions=2, task="t")
IMAGE = EnvInfo(observation_shape=(4, 84, 84), observation_dtype="uint8", num_actions=6, task="t")


def test_precedence_file_flags_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 1000\nseed: 5\nagent:\n  learning_rate: 0.5\n  batch_size: 4\n")
    overrides = hc.parse_overrides(["seed=7", "agent.batch_size=8"])
    run, _ = load_run_config(str(path), {"steps": 2000, "seed": None}, overrides, info=VECTOR)
    assert run.steps == 2000  # flag beats file
    assert run.seed == 7  # override beats file
    assert run.agent.learning_rate == 0.5
    assert run.agent.batch_size == 8


def test_auto_preset_by_observation_rank():
    run, _ = load_run_config(info=VECTOR)
    assert run.agent.torso == "mlp"
    assert run.agent == ImpalaConfig.classic_control()
    run, _ = load_run_config(info=IMAGE)
    assert run.agent.torso == "shallow" and run.agent.reward_clip == 1.0  # learner_device auto, no GPU here
    run, _ = load_run_config(overrides={"agent_preset": "paper"}, info=VECTOR)
    assert run.agent == ImpalaConfig()


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["agent.learning_rat=1"], "agent.learning_rat"),
        (["stepz=1"], "stepz"),
        (["agent.optimizer=sgd"], "allowed values"),
        (["agent.batch_size=0"], "agent.batch_size"),
        (["agent.batch_size=abc"], "agent.batch_size"),
        (["agent.discount=2"], "agent.discount"),
        (["actors=0"], "actors"),
        (["agent_preset=nope"], "agent_preset"),
        (["noequals"], "key=value"),
    ],
)
def test_errors_name_the_key(overrides, fragment):
    with pytest.raises(hc.ConfigError, match=fragment.replace(".", r"\.")):
        load_run_config(overrides=hc.parse_overrides(overrides), info=VECTOR)


def test_unknown_key_lists_allowed_keys():
    with pytest.raises(hc.ConfigError) as e:
        load_run_config(overrides={"agent": {"lr": 1}}, info=VECTOR)
    assert "learning_rate" in str(e.value)


def test_env_variables_nest():
    assert hc.env_overrides({"HERD_AGENT__BATCH_SIZE": "8", "OTHER": "x"}) == {"agent": {"batch_size": 8}}


def test_tuple_fields_from_strings():
    run, _ = load_run_config(overrides=hc.parse_overrides(["agent.hidden_sizes=[32,32]"]), info=VECTOR)
    assert run.agent.hidden_sizes == (32, 32)


@pytest.mark.parametrize(
    "learner_device, shape, torso",
    [("cpu", (4, 84, 84), "shallow"), ("cuda", (4, 84, 84), "deep"), ("cuda:1", (4, 84, 84), "deep"),
     ("cpu", (4, 10, 10), "minatar"), ("cuda", (4, 10, 10), "minatar")],
)
def test_atari_preset_picks_the_torso_for_the_learner_device_and_says_why(learner_device, shape, torso):
    info = EnvInfo(observation_shape=shape, observation_dtype="uint8", num_actions=6, task="t")
    notes: list[str] = []
    run, _ = load_run_config(overrides={"learner_device": learner_device}, info=info, notes=notes)
    assert run.agent.torso == torso
    assert notes == [notes[0]] and notes[0].startswith(f"agent.torso: auto -> {torso} (")
    # Named by the setting, not this machine: services reading the same config build the same network.
    assert learner_device in notes[0]


def test_an_explicit_torso_is_kept():
    notes: list[str] = []
    run, _ = load_run_config(overrides={"agent": {"torso": "deep"}}, info=IMAGE, notes=notes)
    assert run.agent.torso == "deep" and notes == []
