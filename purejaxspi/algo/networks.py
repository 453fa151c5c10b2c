"""The agent: encoder phi(obs) -> z, policy/value heads on z, and the optional world model on z.

Encoders by observation family: an MLP for vectors, a small conv trunk for MinAtar-sized images and
the Nature CNN for Atari; MinAtar-sized images may take an MLP on the flattened frame instead (the
encoder gymnax's published PPO uses), its output then being the latent. The world model's networks
are algo.world_model's.
"""

from __future__ import annotations

import dataclasses
import math
from typing import cast

import flax.linen as nn
import jax
import jax.numpy as jnp

from purejaxspi.algo.conv import CONV_IMPLS, conv2d, resolve_conv
from purejaxspi.algo.world_model import (
    PlainTransitionModel,
    Predictions,
    WorldModelConfig,
    select_action,
    world_model_modules,
)
from purejaxspi.errors import ConfigError
from purejaxspi.settings import setting


def _dense(features, gain):
    return nn.Dense(features, kernel_init=nn.initializers.orthogonal(gain), bias_init=nn.initializers.zeros)


class Conv(nn.Module):
    """VALID convolution (patches @ matrix or lax.conv, `impl`), orthogonal init."""

    features: int
    kernel_size: int
    stride: int = 1
    gain: float = math.sqrt(2)
    impl: str = "patches"

    @nn.compact
    def __call__(self, x):
        shape = (self.kernel_size, self.kernel_size, x.shape[-1], self.features)
        kernel = self.param("kernel", nn.initializers.orthogonal(self.gain, column_axis=-1), shape)
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return conv2d(x, kernel, self.stride, "VALID", self.impl) + bias


class MLPEncoder(nn.Module):
    """Vector observations -> z [B, width]: two tanh layers."""

    width: int = 64

    @nn.compact
    def __call__(self, obs):
        x = obs.reshape(obs.shape[0], -1)
        x = nn.tanh(_dense(self.width, math.sqrt(2))(x))
        return nn.tanh(_dense(self.width, math.sqrt(2))(x))


class FlatFrameEncoder(nn.Module):
    """MinAtar-sized images [B, H, W, C] -> z [B, width]: one ReLU layer on the flattened frame.

    With the ReLU torso above it, the policy and value see gymnax-blines' MinAtar network, two
    256-unit ReLU layers on the flattened frame (there split into separate actor and critic MLPs,
    here shared, so that the world model has one latent).
    """

    width: int = 256

    @nn.compact
    def __call__(self, obs):
        x = obs.reshape(obs.shape[0], -1).astype(jnp.float32)
        return nn.relu(_dense(self.width, math.sqrt(2))(x))


class MinAtarEncoder(nn.Module):
    """MinAtar-sized images [B, H, W, C] -> z, the conv feature map [B, H-2, W-2, 16]."""

    channels: int = 16
    conv: str = "patches"

    @nn.compact
    def __call__(self, obs):
        return nn.relu(Conv(self.channels, 3, 1, impl=self.conv)(obs))


class NatureCNNEncoder(nn.Module):
    """84x84x4 uint8 frames -> z, the 7x7x64 conv map of the Nature CNN (input scaled by 1/255)."""

    conv: str = "patches"

    @nn.compact
    def __call__(self, obs):
        x = obs.astype(jnp.float32) / 255.0
        x = nn.relu(Conv(32, 8, 4, impl=self.conv)(x))
        x = nn.relu(Conv(64, 4, 2, impl=self.conv)(x))
        return nn.relu(Conv(64, 3, 1, impl=self.conv)(x))


# The encoder choices per observation family, the family's default first: "mlp" on vectors, "conv"
# (the small trunk) or "mlp" (FlatFrameEncoder) on MinAtar-sized images, "nature" on Atari.
ENCODERS = {"vector": ("mlp",), "minatar": ("conv", "mlp"), "atari": ("nature",)}
ENCODER_CHOICES = ("auto", "mlp", "conv", "nature")
# The networks' widths per observation family (torso, encoder); the Nature CNN's encoder is fixed.
NETWORK_WIDTHS = {"vector": (64, 64), "minatar": (256, 16), "atari": (512, 64)}
# The encoder width of a MinAtar frame's MLP (gymnax-blines' 256 units).
FLAT_FRAME_WIDTH = 256


def encoder_of(family: str, encoder: str = "auto") -> str:
    """The encoder an "auto" choice stands for in `family` (its default), else `encoder` itself."""
    return ENCODERS[family][0] if encoder == "auto" else encoder


def default_encoder_width(family: str, encoder: str = "auto") -> int:
    """The encoder's width when none is given: the family's, or 256 units for a MinAtar frame's MLP."""
    if family == "minatar" and encoder_of(family, encoder) == "mlp":
        return FLAT_FRAME_WIDTH
    return NETWORK_WIDTHS[family][1]


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    encoder: str = setting(
        "auto",
        "The encoder: auto (the preset's: an MLP on vectors, the frame MLP on MinAtar, the small conv trunk on the "
        "gridworld's compact frames, the Nature CNN on Atari), or on MinAtar-sized images conv or mlp (one ReLU "
        "layer on the flattened frame, gymnax's PPO network with the torso).",
        choices=ENCODER_CHOICES,
    )
    encoder_width: int = setting(
        16,
        "Encoder width: MLP units (vector envs, 64), conv channels (MinAtar, 16) or a MinAtar frame MLP's units "
        "(256); the Nature CNN's is fixed.",
        bound="positive",
    )
    torso_width: int = setting(256, "Units of the policy/value torso.", bound="positive")
    conv: str = setting(
        "auto",
        "Convolutions as lax (cuDNN on a GPU) or patches (patches @ matrix); auto: the platform's measured choice "
        "(`purejaxspi info` shows it).",
        choices=CONV_IMPLS,
    )

    def check(self, family: str, env_id: str = "") -> None:
        """Refuse an encoder or width the env's observations cannot take."""
        if self.encoder != "auto" and self.encoder not in ENCODERS[family]:
            raise ConfigError(
                f"encoder {self.encoder!r} does not apply to {env_id or family} ({family} observations); "
                f"choose auto or {', '.join(ENCODERS[family])}",
                setting="encoder",
            )
        if encoder_of(family, self.encoder) == "conv" and self.encoder_width % 4:
            raise ConfigError(
                f"encoder_width must be a multiple of 4 (the transition network's feature groups), "
                f"got {self.encoder_width}",
                setting="encoder_width",
            )
        if family == "atari" and self.encoder_width != NETWORK_WIDTHS[family][1]:
            raise ConfigError(
                f"encoder_width: the Nature CNN's is fixed ({NETWORK_WIDTHS[family][1]} channels)",
                setting="encoder_width",
            )


def policy_value(agent: Agent, variables, obs) -> tuple[jax.Array, jax.Array]:
    """`agent`'s policy logits [B, A] and value [B] at `obs` [B, *obs]."""
    return cast(tuple[jax.Array, jax.Array], agent.apply(variables, obs))


def network_for(family: str, encoder: str = "auto", **overrides) -> NetworkConfig:
    """The network of `family` with `encoder`: the family's widths (the frame MLP's 256 units on MinAtar)
    where `overrides` give none."""
    widths = {"torso_width": NETWORK_WIDTHS[family][0], "encoder_width": default_encoder_width(family, encoder)}
    return NetworkConfig(encoder=encoder, **{**widths, **overrides})


class Agent(nn.Module):
    """Encoder + policy/value torso and heads, with an optional world model on the latent z."""

    family: str
    num_actions: int
    network: NetworkConfig | None = None  # None: the family's (network_for)
    world_model: WorldModelConfig | None = None

    def setup(self):
        network = self.network or network_for(self.family)
        encoder, conv = encoder_of(self.family, network.encoder), resolve_conv(network.conv)
        if encoder == "nature":
            self.encoder = NatureCNNEncoder(conv)
        elif encoder == "conv":
            self.encoder = MinAtarEncoder(network.encoder_width, conv)
        elif self.family == "minatar":
            self.encoder = FlatFrameEncoder(network.encoder_width)
        else:
            self.encoder = MLPEncoder(network.encoder_width)
        self.torso = _dense(network.torso_width, math.sqrt(2))
        # Vector envs: the critic gets its own hidden layer on z, so the value loss (returns in the
        # hundreds on CartPole) does not swamp the policy's features in a tiny shared torso.
        self.critic_torso = _dense(network.torso_width, math.sqrt(2)) if self.family == "vector" else None
        self.actor = _dense(self.num_actions, 0.01)
        self.critic = _dense(1, 1.0)
        if self.world_model is not None:
            self.reward_model, self.transition_model = world_model_modules(
                self.world_model, self.family, self.num_actions, network.encoder_width, conv
            )

    def _policy_value(self, z):
        flat = z.reshape(z.shape[0], -1)
        if self.critic_torso is not None:
            return self.actor(nn.tanh(self.torso(flat))), self.critic(nn.tanh(self.critic_torso(flat)))[:, 0]
        h = nn.relu(self.torso(flat))
        return self.actor(h), self.critic(h)[:, 0]

    def __call__(self, obs):
        """Policy logits [B, A] and value [B] for observations [B, *obs]."""
        return self._policy_value(self.encoder(obs))

    def encode(self, obs):
        """The latent z [B, *z] that the policy, value and world model share."""
        return self.encoder(obs)

    def with_world_model(self, obs, action, next_obs, key):
        """(logits, value, the world model's Predictions): what the losses need, encoding s and s' in
        one pass of the live encoder."""
        batch = obs.shape[0]
        z_both = self.encoder(jnp.concatenate([obs, next_obs], axis=0))
        z, z_next = z_both[:batch], z_both[batch:]
        logits, value = self._policy_value(z)
        reward_pred = select_action(self.reward_model(z), action, self.num_actions)
        if isinstance(self.transition_model, PlainTransitionModel):
            next_latent_pred = self.transition_model(z, action).mean[:, 0]
        else:
            next_latent_pred = self.transition_model.sample(z, action, key)
        return logits, value, Predictions(z, reward_pred, next_latent_pred, z_next)

    def world_model_sums(self, z, action):
        """The batch sums of R_bar(z_i, a_i) and of every entry of the (deterministic) P_bar(z_i, a_i):
        their gradients w.r.t. z are each sample's input gradients, which DeepMDP's penalty reads."""
        reward = select_action(self.reward_model(z), action, self.num_actions)
        return jnp.sum(reward), jnp.sum(self.transition_model(z, action).mean)

    def init_all(self, obs, action, key):
        """Touch every submodule so `init` creates all parameters."""
        if self.world_model is None:
            return self(obs)
        return self.with_world_model(obs, action, obs, key)
