"""The agent: encoder phi(obs) -> z, policy/value heads on z, and the world model (R_bar, P_bar) on z.

Encoders by observation family: an MLP for vectors, a small conv trunk for MinAtar-sized images and
the Nature CNN for Atari. The world-model heads never take the action as input: they predict for all
actions at once and the taken action's slice is selected by a one-hot contraction.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from purejaxspi.lipschitz import LipschitzConv, LipschitzDense, group_sort
from purejaxspi.patches import conv2d, extract_patches

DENSITIES = ("deterministic", "normal", "mixture")
_LOG_STD_MIN, _LOG_STD_MAX = -5.0, 2.0


def _dense(features, gain):
    return nn.Dense(features, kernel_init=nn.initializers.orthogonal(gain), bias_init=nn.initializers.zeros)


class Conv(nn.Module):
    """VALID convolution as patches @ matrix (fast under vmap on CPU), orthogonal init."""

    features: int
    kernel_size: int
    stride: int = 1
    gain: float = math.sqrt(2)

    @nn.compact
    def __call__(self, x):
        shape = (self.kernel_size, self.kernel_size, x.shape[-1], self.features)
        kernel = self.param("kernel", nn.initializers.orthogonal(self.gain, column_axis=-1), shape)
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return conv2d(x, kernel, self.stride, "VALID") + bias


def _conv(features, kernel, stride):
    return Conv(features, kernel, stride)


class MLPEncoder(nn.Module):
    """Vector observations -> z [B, 64]."""

    width: int = 64

    @nn.compact
    def __call__(self, obs):
        x = obs.reshape(obs.shape[0], -1)
        x = nn.tanh(_dense(self.width, math.sqrt(2))(x))
        return nn.tanh(_dense(self.width, math.sqrt(2))(x))


class MinAtarEncoder(nn.Module):
    """MinAtar-sized images [B, H, W, C] -> z, the conv feature map [B, H-2, W-2, 16]."""

    channels: int = 16

    @nn.compact
    def __call__(self, obs):
        return nn.relu(_conv(self.channels, 3, 1)(obs))


class NatureCNNEncoder(nn.Module):
    """84x84x4 uint8 frames -> z, the 7x7x64 conv map of the Nature CNN (input scaled by 1/255)."""

    @nn.compact
    def __call__(self, obs):
        x = obs.astype(jnp.float32) / 255.0
        x = nn.relu(_conv(32, 8, 4)(x))
        x = nn.relu(_conv(64, 4, 2)(x))
        return nn.relu(_conv(64, 3, 1)(x))


ENCODERS = {"vector": MLPEncoder, "minatar": MinAtarEncoder, "atari": NatureCNNEncoder}
TORSO_WIDTH = {"vector": 64, "minatar": 256, "atari": 512}
# World-model widths: (reward MLP width, transition hidden width/channels). Small for vector envs,
# where the agent itself is tiny; the paper's sizes for image latents.
WORLD_MODEL_WIDTH = {"vector": (64, 64), "minatar": (256, 16), "atari": (256, 64)}


class RewardModel(nn.Module):
    """R_bar(z, .): MLP on flattened z with GroupSort, one predicted reward per action -> [B, A]."""

    num_actions: int
    hidden: tuple[int, ...] = (256, 256)
    lipschitz: bool = True

    @nn.compact
    def __call__(self, z):
        x = z.reshape(z.shape[0], -1)
        for width in self.hidden:
            x = LipschitzDense(width, spectral=self.lipschitz, gain=math.sqrt(2))(x)
            x = group_sort(x) if self.lipschitz else nn.relu(x)
        return LipschitzDense(self.num_actions, spectral=self.lipschitz)(x)


class TransitionParams(NamedTuple):
    """P_bar(. | z, a) for the taken action: component means/log-stds [B, K, *z] and logits [B, K]."""

    mean: jax.Array
    log_std: jax.Array
    logits: jax.Array


def select_action(x: jax.Array, action: jax.Array, num_actions: int) -> jax.Array:
    """Pick each sample's taken-action slice of an all-actions output [B, A, ...] by one-hot contraction."""
    one_hot = jax.nn.one_hot(action, num_actions, dtype=x.dtype)
    one_hot = one_hot.reshape(one_hot.shape + (1,) * (x.ndim - 2))
    return jnp.sum(one_hot * x, axis=1)


class TransitionModel(nn.Module):
    """P_bar(z' | z, .): a density over the next latent for every action, read at the taken action.

    Conv latents use two 2x2 SAME convolutions; flat latents two dense layers (GroupSort between).
    `density` is "deterministic" (one point), "normal" (one diagonal Gaussian) or "mixture" of
    `num_components` diagonal Gaussians, whose weights come from a dense layer on the hidden features.
    The last convolution emits all actions' outputs; its kernel is contracted with the one-hot
    action before it is applied, which gives exactly the taken action's slice at 1/A of the cost.
    """

    num_actions: int
    density: str = "mixture"
    num_components: int = 5
    hidden: int = 64
    lipschitz: bool = True

    @nn.compact
    def __call__(self, z, action) -> TransitionParams:
        batch, latent_shape = z.shape[0], z.shape[1:]
        k = self.num_components if self.density == "mixture" else 1
        per_component = 1 if self.density == "deterministic" else 2
        out_per_action = k * per_component
        act = group_sort if self.lipschitz else nn.relu
        one_hot = jax.nn.one_hot(action, self.num_actions, dtype=z.dtype)
        if z.ndim == 4:
            h = act(LipschitzConv(self.hidden, spectral=self.lipschitz, gain=math.sqrt(2))(z))
            channels = latent_shape[-1]
            out = ActionSlicedConv(self.num_actions, out_per_action * channels, self.lipschitz)(h, one_hot)
            # [B, H, W, K*P*C] -> [B, K, P, H, W, C]
            out = out.reshape(batch, *latent_shape[:2], k, per_component, channels)
            out = jnp.moveaxis(out, (1, 2), (3, 4))
        else:
            h = z
            for _ in range(2):
                h = act(LipschitzDense(self.hidden, spectral=self.lipschitz, gain=math.sqrt(2))(h))
            dims = latent_shape[-1]
            out = LipschitzDense(self.num_actions * out_per_action * dims, spectral=self.lipschitz)(h)
            out = select_action(out.reshape(batch, self.num_actions, k, per_component, dims), action, self.num_actions)
        mean = out[:, :, 0]
        if per_component == 2:
            log_std = jnp.clip(out[:, :, 1], _LOG_STD_MIN, _LOG_STD_MAX)
        else:
            log_std = jnp.full_like(mean, -jnp.inf)
        if self.density == "mixture":
            flat_h = h.reshape(batch, -1)
            logits = _dense(self.num_actions * k, 0.01)(flat_h).reshape(batch, self.num_actions, k)
            logits = select_action(logits, action, self.num_actions)
        else:
            logits = jnp.zeros((batch, 1), mean.dtype)
        return TransitionParams(mean, log_std, logits)


class ActionSlicedConv(nn.Module):
    """A 2x2 SAME convolution with `num_actions * features` outputs, evaluated only at each sample's action.

    Its weight is one [4*Cin, A*F] matrix on 2x2 patches (spectrally normalised as a whole when
    `spectral`); contracting it with the one-hot action first equals slicing the full output.
    """

    num_actions: int
    features: int
    spectral: bool = True

    @nn.compact
    def __call__(self, h, one_hot):
        patches = extract_patches(h, 2, 1, "SAME")
        dense = LipschitzDense(self.num_actions * self.features, spectral=self.spectral, name="kernel")
        kernel, bias = dense.weights(patches.shape[-1])
        kernel = kernel.reshape(-1, self.num_actions, self.features)
        bias = bias.reshape(self.num_actions, self.features)
        per_sample_kernel = jnp.einsum("ba,paf->bpf", one_hot, kernel)  # a matmul, also under vmap over runs
        per_sample_bias = one_hot @ bias
        return jnp.einsum("bhwp,bpo->bhwo", patches, per_sample_kernel) + per_sample_bias[:, None, None, :]


def _hash_uniform(seed: jax.Array, shape) -> jax.Array:
    """Uniform (0, 1) floats from a 32-bit integer hash of (seed, index).

    Threefry costs ~20 ns a number on a CPU; the world model needs K x |z| draws per sample, so the
    bulk noise comes from this counter hash, keyed by a few threefry bits (a pure function of key).
    """
    size = math.prod(shape)
    x = jax.lax.iota(jnp.uint32, size) * jnp.uint32(0x9E3779B9) + seed[0]
    x = (x ^ (x >> 16)) * jnp.uint32(0x7FEB352D)
    x = (x ^ (x >> 15)) * jnp.uint32(0x846CA68B)
    x = x ^ (x >> 16) ^ seed[1]
    x = (x ^ (x >> 16)) * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    return ((x >> 8).astype(jnp.float32) + 0.5).reshape(shape) * (1.0 / (1 << 24))


def fast_normal(key: jax.Array, shape) -> jax.Array:
    """Standard normal draws (Box-Muller on hashed uniforms), deterministic in `key`."""
    seeds = jax.random.bits(key, (4,), jnp.uint32)
    u1 = _hash_uniform(seeds[:2], shape)
    u2 = _hash_uniform(seeds[2:], shape)
    return jnp.sqrt(-2.0 * jnp.log(u1)) * jnp.cos(2.0 * jnp.pi * u2)


def sample_next_latent(params: TransitionParams, key: jax.Array) -> jax.Array:
    """A reparameterised sample of z' from the selected-action density [B, K, *z] -> [B, *z].

    Each component draws mean + std * clip(eps, -1, 1); the sample is the weight-averaged draw.
    """
    eps = jnp.clip(fast_normal(key, params.mean.shape), -1.0, 1.0)
    std = jnp.exp(params.log_std)
    draws = params.mean + std * eps
    weights = jax.nn.softmax(params.logits, axis=-1)
    weights = weights.reshape(weights.shape + (1,) * (draws.ndim - weights.ndim))
    return jnp.sum(weights * draws, axis=1)


class AgentOutputs(NamedTuple):
    logits: jax.Array  # [B, A]
    value: jax.Array  # [B]
    reward_pred: jax.Array  # [B], for the taken action
    next_latent_pred: jax.Array  # [B, *z], a sample of P_bar(. | z, a)
    next_latent: jax.Array  # [B, *z], phi(s') from the live encoder


class Agent(nn.Module):
    """Encoder + policy/value torso and heads, with an optional world model on the latent z."""

    family: str
    num_actions: int
    world_model: bool = True
    density: str = "mixture"
    num_components: int = 5
    lipschitz: bool = True

    def setup(self):
        self.encoder = ENCODERS[self.family]()
        self.torso = _dense(TORSO_WIDTH[self.family], math.sqrt(2))
        # Vector envs: the critic gets its own hidden layer on z, so the value loss (returns in the
        # hundreds on CartPole) does not swamp the policy's features in a tiny shared torso.
        self.critic_torso = _dense(TORSO_WIDTH[self.family], math.sqrt(2)) if self.family == "vector" else None
        self.actor = _dense(self.num_actions, 0.01)
        self.critic = _dense(1, 1.0)
        if self.world_model:
            reward_width, transition_width = WORLD_MODEL_WIDTH[self.family]
            self.reward_model = RewardModel(
                self.num_actions, (reward_width, reward_width), lipschitz=self.lipschitz
            )
            self.transition_model = TransitionModel(
                self.num_actions, self.density, self.num_components, transition_width, self.lipschitz
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

    def with_world_model(self, obs, action, next_obs, key) -> AgentOutputs:
        """Everything the losses need, encoding s and s' in one pass of the live encoder."""
        batch = obs.shape[0]
        z_both = self.encoder(jnp.concatenate([obs, next_obs], axis=0))
        z, z_next = z_both[:batch], z_both[batch:]
        logits, value = self._policy_value(z)
        if not self.world_model:
            empty = jnp.zeros((batch,), logits.dtype)
            return AgentOutputs(logits, value, empty, z_next, z_next)
        reward_pred = select_action(self.reward_model(z), action, self.num_actions)
        density = self.transition_model(z, action)
        if self.density == "deterministic":  # its only "sample" is the mean: skip drawing noise it multiplies by 0
            return AgentOutputs(logits, value, reward_pred, density.mean[:, 0], z_next)
        return AgentOutputs(logits, value, reward_pred, sample_next_latent(density, key), z_next)

    def init_all(self, obs, action, key):
        """Touch every submodule so `init` creates all parameters."""
        return self.with_world_model(obs, action, obs, key)
