"""Durability where users configure replay: run config keys -> the table `herd serve replay` / `herd up` builds."""

from __future__ import annotations

import pytest

from herd import config as hc
from herd.cli import _service_config, build_parser
from herd.run_config import load_run_config


def replay_config(overrides: dict, *flags: str):
    args = build_parser().parse_args(["serve", "replay", *flags])
    run, _ = load_run_config(None, None, overrides)
    return _service_config(args, run)


def test_durability_keys_reach_the_replay_table(tmp_path):
    config = replay_config({"replay": {"tables": {"trajectories": {"durability": "wal", "wal_fsync_interval_ms": 5}},
                                       "checkpoint_every_seconds": 30}}, "--checkpoint-dir", str(tmp_path))
    (table,) = config.tables
    assert (table.name, table.durability, table.wal_fsync_interval_ms) == ("trajectories", "wal", 5.0)
    assert (config.checkpoint_dir, config.checkpoint_every_seconds) == (str(tmp_path), 30.0)
    assert table.rate_limiter == "queue"  # still IMPALA's queue
    default = replay_config({}).tables[0]
    assert (default.durability, default.wal_fsync_interval_ms) == ("checkpoint", 10.0)
    none = {"replay": {"tables": {"trajectories": {"durability": "none"}}}}
    assert replay_config(none).tables[0].durability == "none"


def test_the_agent_names_its_tables_and_yaml_overrides_them():
    dqn = replay_config({"agent_name": "dqn", "replay": {"tables": {"priority_replay": {"max_size": 5000}}}})
    (table,) = dqn.tables
    assert (table.name, table.sampler, table.rate_limiter, table.max_size) == (
        "priority_replay", "prioritized", "sample_to_insert_ratio", 5000)
    assert table.samples_per_insert == 64.0 and table.priority_exponent == 0.6


def t(**fields):
    return {"replay": {"tables": {"trajectories": fields}}}


@pytest.mark.parametrize("overrides, flags, key", [
    (t(durability="disk"), (), "replay.tables.trajectories.durability"),
    ({**t(durability="wal")}, ("--checkpoint-dir", "d"), "replay.tables.trajectories.durability"),  # no periodic checkpoints
    ({"replay": {"tables": {"trajectories": {"durability": "wal"}}, "checkpoint_every_seconds": 10}}, (),
     "replay.tables.trajectories.durability"),  # no dir
    (t(wal_fsync_interval_ms=-1), (), "replay.tables.trajectories.wal_fsync_interval_ms"),
    ({"replay": {"checkpoint_every_seconds": 10}}, (), "replay.checkpoint_every_seconds"),  # no dir
    (t(durabilty="wal"), (), "replay.tables.trajectories.durabilty"),
    ({"replay": {"tables": {"replay": {"max_size": 3}}}}, (), "replay.tables.replay"),  # not IMPALA's table
])
def test_bad_durability_config_names_the_key(overrides, flags, key):
    with pytest.raises(hc.ConfigError, match=f"'{key}'"):
        replay_config(overrides, *flags)
