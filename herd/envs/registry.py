"""Environments by name: the one place a config string becomes a ``dm_env.Environment``.

Data flow: the run config names the task (``env: gym:CartPole-v1``); actors call
:func:`make_env` (or ``batched.make_batched_env``) with it, and the learner calls
:func:`env_spec` to size its network without stepping anything.

Names are ``<scheme>:<target>``:

* ``gym:<id>`` — any registered Gymnasium id (``gym:CartPole-v1``, ``gym:ALE/Pong-v5``, or
  ``gym:module:Id-v0`` to import ``module`` first); ``kwargs`` go to ``gymnasium.make``.
* ``dmenv:package.module:factory`` — imports the module and calls ``factory(**kwargs)``
  (plus ``seed=seed`` when the factory takes a ``seed`` argument); it must return a
  ``dm_env.Environment``.
* ``atari:<Game>[-v5][-full]`` — an Atari game through ale-py (``herd/envs/atari.py``:
  the IMPALA paper's preprocessing by default, ``-v5`` for ALE's v5 settings, ``-full``
  for all 18 actions); needs ``pip install 'herd[atari]'``.
* ``minatar:<game>[-full]`` — a MinAtar game (``herd/envs/minatar.py``: breakout, asterix,
  freeway, seaquest, space_invaders); needs ``pip install 'herd[minatar]'``.
* ``fake:<preset>`` — the deterministic test env of ``herd/testing/fake_env.py``.

Actions are discrete (``DiscreteArray``) or bounded float arrays (``BoundedArray``, e.g.
``gym:Pendulum-v1``); which an agent accepts is its spec's business (``herd.agents.registry``).

A name whose package is missing (ale-py, minatar, Box2D for ``gym:LunarLander-v3``, ...)
raises a one-line ``ValueError`` or ``ImportError`` that says what to install.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
from typing import Any

import dm_env
import numpy as np
from dm_env import specs

from herd.envs.wrappers import SinglePrecision

SCHEMES = ("gym", "atari", "minatar", "dmenv", "fake")


class MissingDependency(ImportError, ValueError):
    """An optional package an environment needs is not installed; the message says what to install.

    Both an ``ImportError`` and a ``ValueError``, so callers that turn bad config values
    into one-line errors (``herd: error: ...``) catch it either way.
    """


@dataclasses.dataclass(frozen=True)
class EnvName:
    """A parsed environment name: ``scheme`` (one of :data:`SCHEMES`) and ``target``."""

    scheme: str
    target: str


@dataclasses.dataclass(frozen=True)
class ActionSpec:
    """What an action is: ``num_values`` choices (discrete, shape ``()``), or a bounded float
    array of ``shape`` in ``[minimum, maximum]`` (continuous; ``num_values == 0``)."""

    shape: tuple[int, ...] = ()
    dtype: np.dtype = np.dtype(np.int64)
    num_values: int = 0
    minimum: tuple[float, ...] = ()
    maximum: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        object.__setattr__(self, "dtype", np.dtype(self.dtype))
        object.__setattr__(self, "minimum", tuple(float(x) for x in np.ravel(self.minimum)))
        object.__setattr__(self, "maximum", tuple(float(x) for x in np.ravel(self.maximum)))
        if self.num_values < 0:
            raise ValueError(f"num_values must be >= 0, got {self.num_values}")
        if self.discrete and (self.shape != () or self.dtype.kind not in "iu"):
            raise ValueError(f"a discrete action is an integer scalar, got {self.dtype} {self.shape}")
        if not self.discrete and self.dtype.kind != "f":
            raise ValueError(f"a continuous action is a float array, got {self.dtype}")

    @property
    def discrete(self) -> bool:
        return self.num_values > 0

    @property
    def kind(self) -> str:
        """``discrete`` or ``continuous``: what an agent's spec says it supports."""
        return "discrete" if self.discrete else "continuous"

    @classmethod
    def discrete_actions(cls, num_values: int) -> "ActionSpec":
        return cls((), np.int64, num_values)


@dataclasses.dataclass(frozen=True)
class EnvInfo:
    """What the agent needs to know about a task to build its network.

    ``num_actions`` is the number of discrete actions (0 for continuous actions); ``action``
    is the full action spec, derived from ``num_actions`` when not given.
    """

    observation_shape: tuple[int, ...]
    observation_dtype: np.dtype
    num_actions: int = 0
    task: str = ""  # the environment name it was read from
    action: ActionSpec | None = None
    frames_per_step: int = 1  # emulator frames per agent step (Atari's action repeat: 4)

    def __post_init__(self) -> None:
        # Normalized so that EnvInfo((4,), "float32", ...) == EnvInfo([4], np.float32, ...).
        object.__setattr__(self, "observation_shape", tuple(self.observation_shape))
        object.__setattr__(self, "observation_dtype", np.dtype(self.observation_dtype))
        if self.action is None:
            if self.num_actions < 1:
                raise ValueError(f"num_actions must be >= 1, got {self.num_actions}")
            object.__setattr__(self, "action", ActionSpec.discrete_actions(self.num_actions))
        elif self.action.num_values != self.num_actions:
            raise ValueError(f"num_actions {self.num_actions} disagrees with the action spec {self.action}")

        if self.frames_per_step < 1:
            raise ValueError(f"frames_per_step must be >= 1, got {self.frames_per_step}")

    @property
    def action_spec(self) -> ActionSpec:
        assert self.action is not None  # set in __post_init__
        return self.action


def _allowed() -> str:
    return ", ".join(f"'{s}:'" for s in SCHEMES)


def _check_gym_id(gym_id: str) -> None:
    """Raises ``ValueError`` (with close matches) unless ``gym_id`` is registered."""
    import gymnasium as gym

    env_id = gym_id
    if ":" in gym_id:  # "module:Id-v0", as gymnasium.make accepts: import module to register
        module, env_id = gym_id.split(":", 1)
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ValueError(f"gym id {gym_id!r}: cannot import module {module!r}: {e}") from e
    if env_id not in gym.registry and env_id.startswith("ALE/"):
        try:  # ale-py registers its ALE/ ids when imported
            importlib.import_module("ale_py")
        except ImportError:
            raise MissingDependency(
                f"gym id {env_id!r} needs ale-py: pip install 'herd[atari]' "
                f"(or use the atari: scheme, e.g. 'atari:Pong')"
            ) from None
    if env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry.keys()), n=5, cutoff=0.6)
    hint = f"; close matches: {', '.join(close)}" if close else ""
    raise ValueError(f"unknown Gymnasium id {env_id!r}{hint}")


def parse_env_name(name: str) -> EnvName:
    """Parses and validates ``<scheme>:<target>`` (gym ids and fake presets are checked)."""
    scheme, sep, target = name.partition(":")
    if not sep:
        raise ValueError(
            f"environment name {name!r} has no scheme; expected one of {_allowed()} "
            f"(e.g. 'gym:CartPole-v1')"
        )
    if scheme not in SCHEMES:
        raise ValueError(
            f"unknown environment scheme {scheme!r} in {name!r}; allowed schemes: {_allowed()}"
        )
    if not target:
        raise ValueError(f"environment name {name!r} has an empty target after {scheme!r}:")
    if scheme == "gym":
        _check_gym_id(target)
    elif scheme == "atari":
        from herd.envs.atari import parse_atari_target

        parse_atari_target(target)
    elif scheme == "minatar":
        from herd.envs.minatar import parse_minatar_target

        parse_minatar_target(target)
    elif scheme == "dmenv":
        module, sep, factory = target.rpartition(":")
        if not sep or not module or not factory.isidentifier():
            raise ValueError(
                f"dmenv name {name!r} must look like 'dmenv:package.module:factory'"
            )
    else:
        from herd.testing.fake_env import FAKE_ENVS

        if target not in FAKE_ENVS:
            raise ValueError(f"unknown fake env {target!r}; known: {sorted(FAKE_ENVS)}")
    return EnvName(scheme, target)


def _accepts_seed(factory: Any) -> bool:
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "seed" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def make_raw_env(name: str, seed: int, **kwargs: Any) -> dm_env.Environment:
    """Builds the environment ``name`` seeded with ``seed``, without wrappers."""
    parsed = parse_env_name(name)
    if parsed.scheme == "gym":
        import gymnasium as gym

        from herd.envs.gym_adapter import GymEnv

        try:
            return GymEnv(gym.make(parsed.target, **kwargs), seed=seed)
        except gym.error.DependencyNotInstalled as e:  # e.g. Box2D for LunarLander
            raise MissingDependency(f"{name}: {' '.join(str(e).split())}") from None
        except ModuleNotFoundError as e:  # an entry point's module imports a missing package
            raise MissingDependency(f"{name} needs the Python package of module {e.name!r}: {e}") from None
    if parsed.scheme == "atari":
        from herd.envs.atari import AtariEnv

        return AtariEnv(parsed.target, seed, **kwargs)
    if parsed.scheme == "minatar":
        from herd.envs.minatar import MinAtarEnv

        return MinAtarEnv(parsed.target, seed, **kwargs)
    if parsed.scheme == "fake":
        from herd.testing.fake_env import make_fake_env

        return make_fake_env(parsed.target, seed, **kwargs)
    module_name, _, factory_name = parsed.target.rpartition(":")
    module = importlib.import_module(module_name)
    factory = getattr(module, factory_name, None)
    if factory is None or not callable(factory):
        raise ValueError(f"{name!r}: module {module_name!r} has no callable {factory_name!r}")
    env = factory(seed=seed, **kwargs) if _accepts_seed(factory) else factory(**kwargs)
    if not isinstance(env, dm_env.Environment):
        raise TypeError(
            f"{name!r}: factory returned {type(env).__name__}, not a dm_env.Environment"
        )
    return env


def make_env(name: str, seed: int, **kwargs: Any) -> dm_env.Environment:
    """Builds the environment ``name`` seeded with ``seed``, cast to single precision."""
    return SinglePrecision(make_raw_env(name, seed, **kwargs))


def info_from_specs(
    name: str, observation_spec: Any, action_spec: Any, frames_per_step: int = 1
) -> EnvInfo:
    """:class:`EnvInfo` from ``dm_env`` specs: discrete, or bounded continuous, actions."""
    if not isinstance(observation_spec, specs.Array):
        raise ValueError(f"{name!r}: only single-array observations are supported")
    if isinstance(action_spec, specs.DiscreteArray):
        action = ActionSpec.discrete_actions(int(action_spec.num_values))
    elif isinstance(action_spec, specs.BoundedArray) and np.dtype(action_spec.dtype).kind == "f":
        shape = tuple(action_spec.shape)
        action = ActionSpec(shape, action_spec.dtype, 0,
                            np.broadcast_to(action_spec.minimum, shape), np.broadcast_to(action_spec.maximum, shape))
    else:
        raise ValueError(
            f"{name!r}: actions must be discrete or a bounded float array, got action spec {action_spec!r}"
        )
    return EnvInfo(
        observation_shape=tuple(observation_spec.shape),
        observation_dtype=np.dtype(observation_spec.dtype),
        num_actions=action.num_values,
        task=name,
        action=action,
        frames_per_step=frames_per_step,
    )


def env_spec(name: str, **kwargs: Any) -> EnvInfo:
    """Builds one environment (seed 0) to read its shapes; the environment is closed after.

    ``frames_per_step`` comes from the environment's attribute of that name (1 without one).
    """
    env = make_env(name, seed=0, **kwargs)
    try:
        frames = int(getattr(env, "frames_per_step", 1))
        return info_from_specs(name, env.observation_spec(), env.action_spec(), frames)
    finally:
        env.close()
