"""Torsos for pixels: Atari screens [4, 84, 84] and MinAtar boards [C, 10, 10], picked by shape."""

from __future__ import annotations

import pytest
import torch

from herd import config as hc
from herd.agents.impala.config import ImpalaConfig
from herd.agents.impala.networks import MinAtarTorso, make_network, make_torso, pick_torso

ATARI = (4, 84, 84)
MINATAR = {"breakout": (4, 10, 10), "freeway": (7, 10, 10), "seaquest": (10, 10, 10)}


def pixels(shape: tuple[int, ...], n: int, high: int = 256) -> torch.Tensor:
    return torch.randint(0, high, (n, *shape), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


@pytest.mark.parametrize("kind", ["shallow", "deep"])
def test_screen_torsos_take_stacked_atari_frames(kind: str) -> None:
    torso, features = make_torso(kind, ATARI)
    out = torso(pixels(ATARI, 2))
    assert features == 256 and out.shape == (2, 256) and out.dtype == torch.float32
    with pytest.raises(TypeError, match="uint8"):
        torso(pixels(ATARI, 1).float())  # screens must stay uint8 up to the network


@pytest.mark.parametrize("shape", MINATAR.values(), ids=MINATAR.keys())
def test_minatar_torso_is_young_and_tian(shape: tuple[int, ...]) -> None:
    torso, features = make_torso("minatar", shape)
    assert isinstance(torso, MinAtarTorso) and features == 128
    conv = torso.convs[0]
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride) == (shape[0], 16, (3, 3), (1, 1))
    assert torso.fc.in_features == 16 * 8 * 8 and torso.fc.out_features == 128
    out = torso(pixels(shape, 3, high=2))
    assert out.shape == (3, 128) and (out >= 0).all()


def test_minatar_planes_are_not_rescaled() -> None:
    torso, _ = make_torso("minatar", (4, 10, 10))
    planes = pixels((4, 10, 10), 2, high=2)
    torch.testing.assert_close(torso(planes), torso(planes.float()))  # 0/1, used as they are


def test_pick_torso_by_shape() -> None:
    assert pick_torso((4,)) == "mlp"
    assert pick_torso((6, 8)) == "mlp"
    assert pick_torso((4, 10, 10)) == "minatar"
    assert pick_torso(ATARI) == "shallow"
    assert pick_torso(ATARI, gpu=True) == "deep"
    assert type(make_torso("auto", (10, 10, 10))[0]) is MinAtarTorso


def test_auto_network_for_each_kind_of_observation() -> None:
    for shape, obs, torso_size in (((4,), torch.randn(1, 2, 4), 64), (ATARI, pixels(ATARI, 2)[None], 256),
                                   ((4, 10, 10), pixels((4, 10, 10), 2, high=2)[None], 128)):
        net = make_network(shape, 3, "auto", use_lstm=True, lstm_size=16)
        assert net.core is not None and net.core.input_size == torso_size
        out, _ = net(obs, torch.zeros(1, 2, dtype=torch.bool), net.initial_state(2))
        assert out.policy_logits.shape == (1, 2, 3) and out.baseline.shape == (1, 2)


def test_screen_torso_on_a_board_names_the_one_that_fits() -> None:
    with pytest.raises(ValueError, match="too small for the shallow torso.*'minatar'"):
        make_torso("shallow", (4, 10, 10))
    with pytest.raises(ValueError, match=r"\[C, H, W\] for the minatar torso"):
        make_torso("minatar", (4,))
    with pytest.raises(ValueError, match="torso must be one of"):
        make_torso("transformer", ATARI)


def test_config_accepts_the_new_torsos() -> None:
    for kind in ("minatar", "auto"):
        assert hc.build(ImpalaConfig, {"torso": kind}, prefix="agent.").torso == kind
    with pytest.raises(hc.ConfigError, match="allowed values"):
        hc.build(ImpalaConfig, {"torso": "transformer"}, prefix="agent.")
