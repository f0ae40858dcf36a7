"""Durability where users configure replay: run config keys -> the table `herd serve replay` / `herd up` builds."""

from __future__ import annotations

import pytest

from herd import config as hc
from herd.cli import _service_config, build_parser
from herd.launch.run_config import load_run_config


def replay_config(overrides: dict, *flags: str):
    args = build_parser().parse_args(["serve", "replay", *flags])
    run, _ = load_run_config(None, None, overrides)
    return _service_config(args, run)


def test_durability_keys_reach_the_replay_table(tmp_path):
    config = replay_config({"replay_durability": "wal", "replay_wal_fsync_interval_ms": 5,
                            "replay_checkpoint_every_seconds": 30}, "--checkpoint-dir", str(tmp_path))
    (table,) = config.tables
    assert (table.name, table.durability, table.wal_fsync_interval_ms) == ("trajectories", "wal", 5.0)
    assert (config.checkpoint_dir, config.checkpoint_every_seconds) == (str(tmp_path), 30.0)
    assert table.rate_limiter == "queue"  # still IMPALA's queue
    default = replay_config({}).tables[0]
    assert (default.durability, default.wal_fsync_interval_ms) == ("checkpoint", 10.0)
    assert replay_config({"replay_durability": "none"}).tables[0].durability == "none"


@pytest.mark.parametrize("overrides, flags, key", [
    ({"replay_durability": "disk"}, (), "replay_durability"),
    ({"replay_durability": "wal"}, ("--checkpoint-dir", "d"), "replay_durability"),  # no periodic checkpoints
    ({"replay_durability": "wal", "replay_checkpoint_every_seconds": 10}, (), "replay_durability"),  # no dir
    ({"replay_wal_fsync_interval_ms": -1}, (), "replay_wal_fsync_interval_ms"),
    ({"replay_checkpoint_every_seconds": 10}, (), "replay_checkpoint_every_seconds"),  # no dir
    ({"replay_durabilty": "wal"}, (), "replay_durabilty"),
])
def test_bad_durability_config_names_the_key(overrides, flags, key):
    with pytest.raises(hc.ConfigError, match=f"'{key}'"):
        replay_config(overrides, *flags)
