"""The Q-network: a torso (MLP for vectors, the shallow convolutional one for images) and
dueling heads (Wang et al. 2016): ``Q(x, a) = V(x) + A(x, a) - mean_a A(x, a)``."""

from __future__ import annotations

from torch import Tensor, nn

from herd.agents.impala.networks import MLPTorso, ShallowTorso


class QNetwork(nn.Module):
    """Observations ``[B, *obs_shape]`` -> action values ``[B, A]``."""

    def __init__(self, observation_shape: tuple[int, ...], num_actions: int, torso: str,
                 hidden_sizes: tuple[int, ...], dueling: bool) -> None:
        super().__init__()
        if torso == "mlp":
            body: nn.Module = MLPTorso(tuple(observation_shape), tuple(hidden_sizes[:-1]) or (hidden_sizes[0],))
            size = body.output_size  # type: ignore[assignment]
            head = hidden_sizes[-1]
        else:
            if len(observation_shape) != 3:
                raise ValueError(f"observation_shape must be [C, H, W] for the {torso} torso, got {observation_shape}")
            body = ShallowTorso(tuple(observation_shape))
            size, head = body.output_size, 512  # type: ignore[assignment]
        self.torso = body
        self.dueling = dueling
        self.advantage = nn.Sequential(nn.Linear(size, head), nn.ReLU(), nn.Linear(head, num_actions))
        if dueling:
            self.value = nn.Sequential(nn.Linear(size, head), nn.ReLU(), nn.Linear(head, 1))

    def forward(self, observation: Tensor) -> Tensor:
        features = self.torso(observation)
        advantage = self.advantage(features)
        if not self.dueling:
            return advantage
        return self.value(features) + advantage - advantage.mean(dim=-1, keepdim=True)


def make_q_network(config, observation_shape: tuple[int, ...], num_actions: int) -> QNetwork:
    """The agent's Q-network for this environment, as the config describes it."""
    return QNetwork(tuple(observation_shape), num_actions, config.torso, tuple(config.hidden_sizes), config.dueling)
