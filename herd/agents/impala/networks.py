"""IMPALA networks: a torso, an optional LSTM core, and policy and baseline heads.

Where this sits: the actor's policy calls :meth:`ImpalaNetwork.forward` with
``T = 1`` to act (behaviour logits are recorded in the trajectory), and the
learner calls it over a whole ``[T + 1, B]`` batch to get target logits and
values for :func:`herd.losses.impala_loss`. Both build the network with
:func:`make_network`, so the published weights fit either side.

Torsos (Espeholt et al. 2018, arXiv 1802.01561, Fig. 3):

* ``mlp``: flattens a vector observation, float32, ReLU layers of ``hidden_sizes``;
* ``shallow``: conv 16 8x8/4, conv 32 4x4/2, fc 256 (ReLU) on uint8 ``[C, H, W]``;
* ``deep``: the IMPALA ResNet, three sections of [conv 3x3, max-pool 3x3/2, two
  residual blocks] with 16, 32, 32 channels, then fc 256, on uint8 ``[C, H, W]``;
* ``minatar``: Young & Tian 2019's network for MinAtar's 10x10 boards: conv 16 3x3/1,
  fc 128 (ReLU), on binary uint8 planes ``[C, H, W]`` (0 or 1, used as they are);
* ``auto``: the one that fits the observation shape (:func:`pick_torso`).

Pixels are divided by 255 inside the ``shallow`` and ``deep`` torsos, so actors ship uint8
frames. :func:`make_torso` builds any of them for other agents' networks too.

Initialisation: orthogonal weights with gain √2 for ReLU layers, zero biases,
gain 0.01 for the policy head (the initial policy is near-uniform, so early
importance weights are close to 1 and entropy starts near its maximum), gain 1
for the baseline head; the LSTM keeps PyTorch's default initialisation.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

Tensor = torch.Tensor
CoreState = tuple[Tensor, ...]
TORSOS = ("mlp", "shallow", "deep", "minatar", "auto")


class NetOutput(NamedTuple):
    """What the network computes for each step, time-major."""

    policy_logits: Tensor  # [T, B, A]
    baseline: Tensor  # [T, B]


class MLPTorso(nn.Module):
    """Vector observations ``[N, *obs_shape]`` -> features ``[N, hidden_sizes[-1]]``."""

    def __init__(self, observation_shape: tuple[int, ...], hidden_sizes: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        size = math.prod(observation_shape)
        for h in hidden_sizes:
            layers += [nn.Linear(size, h), nn.ReLU()]
            size = h
        self.layers = nn.Sequential(*layers)
        self.output_size = size

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x.flatten(start_dim=1).float())


class ShallowTorso(nn.Module):
    """The paper's shallow Atari torso: uint8 ``[N, C, H, W]`` -> ``[N, 256]``."""

    def __init__(self, observation_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(observation_shape[0], 16, kernel_size=8, stride=4),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=4, stride=2),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.fc = nn.Linear(_flat_size(self.convs, observation_shape), 256)
        self.output_size = 256

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.fc(self.convs(_pixels(x))))


class ResidualBlock(nn.Module):
    """``x + conv(relu(conv(relu(x))))``, 3x3 convolutions keeping the channel count."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv1(F.relu(self.conv0(F.relu(x))))


class DeepTorso(nn.Module):
    """The paper's deep (ResNet) Atari torso: uint8 ``[N, C, H, W]`` -> ``[N, 256]``."""

    def __init__(self, observation_shape: tuple[int, ...], channels: tuple[int, ...] = (16, 32, 32)) -> None:
        super().__init__()
        sections: list[nn.Module] = []
        in_channels = observation_shape[0]
        for out_channels in channels:
            sections += [
                nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
                nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
                ResidualBlock(out_channels),
                ResidualBlock(out_channels),
            ]
            in_channels = out_channels
        self.sections = nn.Sequential(*sections, nn.ReLU(), nn.Flatten())
        self.fc = nn.Linear(_flat_size(self.sections, observation_shape), 256)
        self.output_size = 256

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.fc(self.sections(_pixels(x))))


class MinAtarTorso(nn.Module):
    """Young & Tian's MinAtar torso: binary uint8 ``[N, C, H, W]`` -> ``[N, 128]``.

    One 16-filter 3x3 convolution (stride 1, no padding: 10x10 -> 8x8), then a 128-unit layer.
    """

    def __init__(self, observation_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(observation_shape[0], 16, kernel_size=3, stride=1), nn.ReLU(), nn.Flatten()
        )
        self.fc = nn.Linear(_flat_size(self.convs, observation_shape), 128)
        self.output_size = 128

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.fc(self.convs(x.float())))  # planes are 0/1 already: no /255


# Images smaller than this on a side are boards (MinAtar's 10x10), not screens.
SMALL_IMAGE = 32


def pick_torso(observation_shape: tuple[int, ...], gpu: bool = False) -> str:
    """The torso that fits ``observation_shape``: ``mlp`` for vectors, ``minatar`` for small
    boards (under 32 pixels a side), and for screens ``shallow``, or ``deep`` with ``gpu``.

    On a 2-core CPU an update of a ``[21, 32, 4, 84, 84]`` batch takes 6.2 s with the deep
    torso and 0.26 s with the shallow one (1 thread), hence shallow unless a GPU trains. Decide ``gpu`` once, where the
    run is configured: actors and learner must build the same network.
    """
    if len(observation_shape) != 3:
        return "mlp"
    if min(observation_shape[1:]) < SMALL_IMAGE:
        return "minatar"
    return "deep" if gpu else "shallow"


def make_torso(
    kind: str, observation_shape: tuple[int, ...], hidden_sizes: tuple[int, ...] = (64, 64)
) -> tuple[nn.Module, int]:
    """Builds torso ``kind`` (one of :data:`TORSOS`) for ``observation_shape``: ``(module, features)``.

    The module maps ``[N, *observation_shape]`` to ``[N, features]``; ``hidden_sizes`` is
    used by ``mlp`` only; ``auto`` is :func:`pick_torso` without a GPU.
    """
    observation_shape = tuple(observation_shape)
    if not observation_shape or any(not isinstance(d, int) or d < 1 for d in observation_shape):
        raise ValueError(f"observation_shape must be positive ints, got {observation_shape}")
    if kind not in TORSOS:
        raise ValueError(f"torso must be one of {TORSOS}, got {kind!r}")
    if kind == "auto":
        kind = pick_torso(observation_shape)
    if kind == "mlp":
        if any(not isinstance(h, int) or h < 1 for h in hidden_sizes):
            raise ValueError(f"hidden_sizes must be positive ints, got {hidden_sizes}")
        mlp = MLPTorso(observation_shape, tuple(hidden_sizes))
        return mlp, mlp.output_size
    if len(observation_shape) != 3:
        raise ValueError(f"observation_shape must be [C, H, W] for the {kind} torso, got {observation_shape}")
    image_torsos = {"shallow": ShallowTorso, "deep": DeepTorso, "minatar": MinAtarTorso}
    try:
        body = image_torsos[kind](observation_shape)
    except RuntimeError as e:  # the convolutions do not fit the image
        fits = pick_torso(observation_shape)
        raise ValueError(
            f"observation_shape {observation_shape} is too small for the {kind} torso (try {fits!r})"
        ) from e
    return body, body.output_size


class ImpalaNetwork(nn.Module):
    """Torso -> optional LSTM core -> policy logits and baseline, over ``[T, B, ...]``."""

    def __init__(self, torso: nn.Module, torso_size: int, num_actions: int, lstm_size: int | None) -> None:
        super().__init__()
        self.torso = torso
        self.num_actions = num_actions
        self.core = nn.LSTM(torso_size, lstm_size) if lstm_size is not None else None
        core_size = lstm_size if lstm_size is not None else torso_size
        self.policy = nn.Linear(core_size, num_actions)
        self.baseline = nn.Linear(core_size, 1)
        _init_weights(self)

    def initial_state(self, batch_size: int) -> CoreState:
        """Zero LSTM state ``(h, c)``, each ``[B, H]``; ``()`` without an LSTM.

        Row ``b`` belongs to environment ``b``; a trajectory item stores its row
        as ``core_state/i`` ``[1, H]``, so a batch holds ``[1, B, H]`` and the
        learner passes ``batch["core_state/i"][0]``.
        """
        if self.core is None:
            return ()
        zeros = torch.zeros(batch_size, self.core.hidden_size)
        return (zeros, zeros.clone())

    def forward(self, observation: Tensor, first: Tensor, core_state: CoreState) -> tuple[NetOutput, CoreState]:
        """``observation`` ``[T, B, *obs]``, ``first`` bool ``[T, B]`` (True at episode starts).

        ``core_state`` is the state before step 0; it is zeroed for column ``b``
        before any step ``t`` with ``first[t, b]``. Returns the outputs and the
        state after step ``T - 1``.
        """
        if first.dtype != torch.bool:
            raise ValueError(f"first must be bool, got {first.dtype}")
        if observation.dim() < 2 or first.shape != observation.shape[:2]:
            raise ValueError(
                f"first must be [T, B] = {tuple(observation.shape[:2])}, got shape {tuple(first.shape)}"
            )
        T, B = first.shape
        features = self.torso(observation.reshape(T * B, *observation.shape[2:]))  # merge time and batch
        features = features.view(T, B, -1)  # split them again
        if self.core is not None:
            features, core_state = self._unroll_core(features, first, core_state)
        logits = self.policy(features)
        baseline = self.baseline(features).squeeze(-1)
        return NetOutput(policy_logits=logits, baseline=baseline), core_state

    def _unroll_core(self, x: Tensor, first: Tensor, state: CoreState) -> tuple[Tensor, CoreState]:
        """Runs the LSTM over ``[T, B, F]``, one ``nn.LSTM`` call per stretch without resets."""
        assert self.core is not None
        expected = (x.shape[1], self.core.hidden_size)
        if len(state) != 2 or any(s.shape != expected for s in state):
            shapes = [tuple(s.shape) for s in state]
            raise ValueError(f"core_state must be (h, c), each [B, H] = {expected}, got {shapes}")
        h, c = state[0].unsqueeze(0), state[1].unsqueeze(0)  # [B, H] -> nn.LSTM's [layers=1, B, H]
        resets = first.any(dim=1).nonzero().flatten().tolist()
        bounds = sorted({0, *resets}) + [x.shape[0]]
        outputs = []
        for start, stop in zip(bounds[:-1], bounds[1:]):
            keep = (~first[start]).to(x.dtype).view(1, -1, 1)  # zero the state of columns starting anew
            out, (h, c) = self.core(x[start:stop], (h * keep, c * keep))
            outputs.append(out)
        return torch.cat(outputs, dim=0), (h.squeeze(0), c.squeeze(0))


def make_network(
    observation_shape: tuple[int, ...],
    num_actions: int,
    torso: str,
    hidden_sizes: tuple[int, ...] = (64, 64),
    use_lstm: bool = False,
    lstm_size: int = 256,
) -> ImpalaNetwork:
    """Builds the network the actor and learner share (``hidden_sizes`` is used by ``mlp`` only)."""
    if not isinstance(num_actions, int) or num_actions < 1:
        raise ValueError(f"num_actions must be an int >= 1, got {num_actions!r}")
    if use_lstm and (not isinstance(lstm_size, int) or lstm_size < 1):
        raise ValueError(f"lstm_size must be an int >= 1, got {lstm_size!r}")
    body, size = make_torso(torso, observation_shape, hidden_sizes)
    return ImpalaNetwork(body, size, num_actions, lstm_size if use_lstm else None)


def _pixels(x: Tensor) -> Tensor:
    if x.dtype != torch.uint8:
        raise TypeError(f"image torsos take uint8 pixels, got {x.dtype}")
    return x.float() / 255.0


def _flat_size(module: nn.Module, observation_shape: tuple[int, ...]) -> int:
    with torch.no_grad():
        return int(module(torch.zeros(1, *observation_shape)).shape[1])


def _init_weights(net: ImpalaNetwork) -> None:
    for m in net.torso.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.orthogonal_(m.weight, gain=math.sqrt(2.0))
            nn.init.zeros_(m.bias)
    nn.init.orthogonal_(net.policy.weight, gain=0.01)
    nn.init.zeros_(net.policy.bias)
    nn.init.orthogonal_(net.baseline.weight, gain=1.0)
    nn.init.zeros_(net.baseline.bias)
