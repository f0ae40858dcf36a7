"""Made-up sampled batches for the agents' updaters (tests and benchmarks): random uint8 frames,
read-only like batches decoded off the wire, in the layouts the agents' adders write."""

from __future__ import annotations

import numpy as np

from herd import types as ht
from herd.envs.registry import EnvInfo
from herd.interfaces import SampledBatch


def _read_only(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)  # as herd.wire.replay_codec decodes them
    return array


def impala_batch(info: EnvInfo, unroll: int, batch: int, seed: int = 0, lstm_size: int = 0) -> SampledBatch:
    """``batch`` unrolls of ``unroll + 1`` steps (IMPALA's ``SequenceAdder`` items), one episode
    end in column 1 when the unroll is long enough; core states when ``lstm_size``."""
    rng = np.random.default_rng(seed)
    steps = unroll + 1
    step_type = np.full((steps, batch), ht.MID, np.uint8)
    step_type[0] = ht.FIRST
    if steps > 3 and batch > 1:
        step_type[2, 1], step_type[3, 1] = ht.LAST, ht.FIRST
    data = {
        ht.OBSERVATION: rng.integers(0, 255, (steps, batch, *info.observation_shape), dtype=np.uint8),
        ht.STEP_TYPE: step_type,
        ht.REWARD: rng.normal(size=(steps, batch)).astype(np.float32),
        ht.DISCOUNT: np.ones((steps, batch), np.float32),
        ht.ACTION: rng.integers(0, info.num_actions, (steps, batch)),
        ht.BEHAVIOUR_LOGITS: rng.normal(size=(steps, batch, info.num_actions)).astype(np.float32),
        ht.PARAM_VERSION: np.zeros((1, batch), np.int64),
    }
    for i in range(2 if lstm_size else 0):  # (h, c)
        data[f"{ht.CORE_STATE_PREFIX}{i}"] = rng.normal(size=(1, batch, lstm_size)).astype(np.float32)
    return SampledBatch(np.arange(batch, dtype=np.uint64), np.full(batch, 1 / batch),
                        {k: _read_only(v) for k, v in data.items()}, batch)


def dqn_batch(info: EnvInfo, batch: int, seed: int = 0) -> SampledBatch:
    """``batch`` n-step transitions (``NStepTransitionAdder`` items) with sampling probabilities."""
    rng = np.random.default_rng(seed)
    data = {
        ht.OBSERVATION: rng.integers(0, 255, (2, batch, *info.observation_shape), dtype=np.uint8),
        ht.ACTION: rng.integers(0, info.num_actions, (1, batch)),
        ht.REWARD: rng.normal(size=(1, batch)).astype(np.float32),
        ht.DISCOUNT: np.full((1, batch), 0.9, np.float32),
    }
    return SampledBatch(np.arange(batch, dtype=np.uint64), rng.random(batch) / batch,
                        {k: _read_only(v) for k, v in data.items()}, 10 * batch)
