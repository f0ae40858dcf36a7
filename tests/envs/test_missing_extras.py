"""A missing optional package gives one line that says what to install, never a traceback."""

from __future__ import annotations

import sys

import gymnasium as gym
import pytest

from herd.cli import main
from herd.envs.registry import MissingDependency, env_spec, make_env, parse_env_name


BOX2D = ("Box2D",)  # and gymnasium's box2d envs re-imported, so that they find it missing


def hide(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Makes ``import m`` fail for each module; modules that imported them are imported anew."""
    for name in list(sys.modules):
        if any(name == m or name.startswith(m + ".") for m in modules) or name.startswith("gymnasium.envs.box2d"):
            monkeypatch.delitem(sys.modules, name)
    for m in modules:
        monkeypatch.setitem(sys.modules, m, None)


@pytest.mark.parametrize(
    "hidden, name, install",
    [
        (("ale_py",), "atari:Pong", "pip install 'herd[atari]'"),
        (("ale_py",), "gym:ALE/Pong-v5", "pip install 'herd[atari]'"),
        (("minatar",), "minatar:breakout", "pip install 'herd[minatar]'"),
    ],
)
def test_missing_extra_names_what_to_install(
    monkeypatch: pytest.MonkeyPatch, hidden: tuple[str, ...], name: str, install: str
) -> None:
    hide(monkeypatch, *hidden)
    for env_id in [k for k in gym.registry if k.startswith("ALE/")]:  # registered by an earlier import
        monkeypatch.delitem(gym.registry, env_id)
    with pytest.raises(MissingDependency) as e:
        parse_env_name(name)
    message = str(e.value)
    assert install in message and "\n" not in message
    assert isinstance(e.value, ImportError) and isinstance(e.value, ValueError)


def test_missing_box2d(monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, *BOX2D)
    with pytest.raises(MissingDependency, match=r"^gym:LunarLander-v3: Box2D is not installed.*gymnasium\[box2d\]"):
        make_env("gym:LunarLander-v3", seed=0)
    with pytest.raises(ValueError, match="Box2D"):
        env_spec("gym:LunarLander-v3")


@pytest.mark.parametrize(
    "hidden, env, fragment",
    [(("ale_py",), "atari:Pong", "herd[atari]"), (BOX2D, "gym:LunarLander-v3", "box2d")],
)
def test_cli_says_it_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], hidden: tuple[str, ...], env: str,
    fragment: str,
) -> None:
    hide(monkeypatch, *hidden)
    with pytest.raises(SystemExit) as e:
        main(["config", "--env", env])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("herd: error: config key 'env': ")
    assert fragment in err[-1] and "Traceback" not in "\n".join(err)
