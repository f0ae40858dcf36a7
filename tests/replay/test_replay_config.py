"""TableConfig validation and make_table."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from herd.interfaces import RateLimitTimeout
from replay_service.config import TableConfig, make_table


def one(i: int) -> dict[str, np.ndarray]:
    return {"x": np.full((2, 1), i, dtype=np.int64)}


def test_queue_preset_builds_an_impala_queue() -> None:
    config = TableConfig.queue("trajectories", 3)
    fields = (config.sampler, config.remover, config.max_size, config.max_times_sampled, config.rate_limiter)
    assert fields == ("fifo", "fifo", 3, 1, "queue")
    table = make_table(config, seed=0)
    for i in range(3):
        table.insert(one(i))
    with pytest.raises(RateLimitTimeout):
        table.insert(one(3), timeout=0)
    assert table.sample(3).data["x"][0].tolist() == [0, 1, 2]
    info = table.info()
    assert (info.name, info.rate_limiter, info.sampler, info.remover) == (
        "trajectories", "queue", "Fifo()", "Fifo()"
    )


def test_uniform_replay_preset_and_defaults() -> None:
    TableConfig()  # the defaults are valid
    config = TableConfig.uniform_replay("replay", max_size=10, min_size=2)
    table = make_table(config, seed=1)
    table.insert(one(0))
    with pytest.raises(RateLimitTimeout):
        table.sample(1, timeout=0)
    table.insert(one(1))
    assert len(table.sample(8).keys) == 8
    assert table.info().rate_limiter_state["min_size_to_sample"] == 2


def test_prioritized_table_is_reproducible_from_the_seed() -> None:
    config = TableConfig(
        name="p", sampler="prioritized", remover="min_heap", max_size=50, max_times_sampled=0,
        rate_limiter="sample_to_insert_ratio", min_size_to_sample=5, samples_per_insert=2.0,
        error_buffer=40.0, priority_exponent=0.9,
    )

    def draws(seed: int) -> list[int]:
        table = make_table(config, seed=seed)
        table.insert({"x": np.zeros((2, 20))}, priorities=np.linspace(0.1, 3.0, 20))
        return [int(k) for k in table.sample(30).keys]

    assert draws(3) == draws(3) != draws(4)
    assert make_table(config).info().sampler == "Prioritized(priority_exponent=0.9)"


@pytest.mark.parametrize(
    "change, field, hint",
    [
        ({"name": ""}, "name", ""),
        ({"sampler": "random"}, "sampler", "uniform"),
        ({"remover": "oldest"}, "remover", "fifo"),
        ({"max_size": 0}, "max_size", ">= 1"),
        ({"max_size": 2.5}, "max_size", "integer"),
        ({"max_times_sampled": -1}, "max_times_sampled", ">= 0"),
        ({"rate_limiter": "token_bucket"}, "rate_limiter", "sample_to_insert_ratio"),
        ({"rate_limiter": "min_size", "min_size_to_sample": 0}, "min_size_to_sample", ">= 1"),
        ({"sampler": "uniform"}, "sampler", "queue"),  # the queue limiter needs fifo
        ({"max_times_sampled": 0}, "max_times_sampled", "queue"),
        ({"rate_limiter": "sample_to_insert_ratio", "error_buffer": 0.5}, "error_buffer", "narrower"),
        ({"samples_per_insert": 0.0}, "samples_per_insert", "> 0"),
        ({"samples_per_insert": float("inf")}, "samples_per_insert", "finite"),
        ({"priority_exponent": -1.0}, "priority_exponent", ">= 0"),
    ],
)
def test_bad_configs_name_the_field_and_the_allowed_values(
    change: dict[str, Any], field: str, hint: str
) -> None:
    with pytest.raises(ValueError, match=field) as err:
        TableConfig(**change)
    assert str(err.value).startswith(field) and hint in str(err.value)


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        TableConfig().max_size = 5  # type: ignore[misc]
