"""The world model, an optional component: a reward model R_bar(z, a) and a transition model
P_bar(z' | z, a) on the encoder's latent z, with their losses and metrics.

Deep SPI and DeepMDP differ only in where its loss enters the objective (`PLACEMENTS`): inside the
U-advantage, or beside the surrogate; PPO has none. The heads never take the action as input: they
predict for all actions at once and the taken action's slice is selected by a one-hot contraction.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from purejaxspi.algo import objectives
from purejaxspi.algo.conv import extract_patches
from purejaxspi.algo.lipschitz import (
    INIT_POWER_ITERATIONS,
    SPECTRAL_NORMS,
    LipschitzConv,
    LipschitzDense,
    group_sort,
    kernel_init,
    operator_power_iteration,
    reference_sigma,
    refreshed_sigma,
)
from purejaxspi.settings import Hyperparameter, setting

DENSITIES = ("deterministic", "normal", "mixture")
# Where each algorithm with a world model puts its loss: inside the U-advantage, or beside the surrogate.
PLACEMENTS = {"deepspi": "advantage", "deepmdp": "auxiliary"}


@dataclasses.dataclass(frozen=True)
class WorldModelConfig:
    density: str = setting(
        "deterministic",
        "Transition density: deterministic, normal or mixture (of --num-components diagonal Gaussians).",
        choices=DENSITIES,
    )
    num_components: int = setting(5, "Gaussians in the mixture transition density.", bound="positive")
    lipschitz: bool = setting(
        True,
        "The paper's Lipschitz world model (spectral normalisation + GroupSort); False: deep_mdp_ppo.py's plain "
        "networks with the gradient penalty.",
    )
    spectral_norm: str = setting(
        "exact",
        "How spectral normalisation estimates sigma: exact (each layer 1-Lipschitz as an operator, convolutions "
        "included) or reference (the paper's code: divides by about sigma^2 of the kernel matrix, so a layer's "
        "norm is about 1/sigma).",
        choices=SPECTRAL_NORMS,
        title="spectral",
    )

    @property
    def has_gradient_penalty(self) -> bool:
        """Whether the loss carries DeepMDP's gradient penalty: the plain world model only."""
        return not self.lipschitz

    @property
    def transition_reduction(self) -> str:
        """How L_P reduces over latent entries, as `deep_spi.py` and `deep_mdp_ppo.py` do: the mean for the
        deterministic head, the sum for the sampled heads."""
        return "mean" if self.density == "deterministic" else "sum"

    def check(self) -> None:
        from purejaxspi.errors import ConfigError

        if not self.lipschitz and self.density != "deterministic":
            raise ConfigError(
                f"the plain world model (lipschitz off, deep_mdp_ppo.py's networks) has the deterministic head "
                f"only, not {self.density!r}",
                setting="density",
            )


# The coefficients' defaults are none (each algorithm's preset sets its own); the gradient penalty's is
# the paper's scripts' default 0.01 (which `deep_spi.py` drops with its Lipschitz networks).
HYPERPARAMETERS = (
    Hyperparameter("reward_coef", "alpha_R: weight of the reward-model loss L_R.", 0.0, title="alpha_R"),
    Hyperparameter("transition_coef", "alpha_P: weight of the transition-model loss L_P.", 0.0, title="alpha_P"),
    Hyperparameter(
        "gradient_penalty",
        "lambda_GP: weight of DeepMDP's gradient penalty E||grad_z f||^2 on the plain (non-Lipschitz) world "
        "model's reward and transition networks; the Lipschitz world model is constrained by construction and "
        "takes none.",
        0.01,
        title="lambda_GP",
    ),
)


# World-model widths for flat latents: (reward MLP width, transition hidden width). Image latents
# take the paper's reward MLP (256, 256) and a transition network sized by the latent's channels.
WORLD_MODEL_WIDTH = {"vector": (64, 64), "minatar": (256, None), "atari": (256, None)}
# The plain (DeepMDP) world model's widths: `deep_mdp_ppo.py`'s 512-unit reward layer on image latents.
PLAIN_WORLD_MODEL_WIDTH = {"vector": (64, 64), "minatar": (512, None), "atari": (512, None)}
# The paper's transition network on a conv latent of C channels: 2C hidden channels, and a last
# layer split into C / CHANNELS_PER_GROUP feature groups (16 for the Nature CNN's 64), each with
# its own spectral normalisation.
CHANNELS_PER_GROUP = 4


class RewardModel(nn.Module):
    """R_bar(z, .): MLP on flattened z with GroupSort, one predicted reward per action -> [B, A]."""

    num_actions: int
    hidden: tuple[int, ...] = (256, 256)
    lipschitz: bool = True
    spectral_norm: str = "exact"

    @nn.compact
    def __call__(self, z):
        x = z.reshape(z.shape[0], -1)
        for width in self.hidden:
            x = LipschitzDense(width, spectral=self.lipschitz, gain=math.sqrt(2), spectral_norm=self.spectral_norm)(x)
            x = group_sort(x) if self.lipschitz else nn.relu(x)
        return LipschitzDense(self.num_actions, spectral=self.lipschitz, spectral_norm=self.spectral_norm)(x)


class TransitionParams(NamedTuple):
    """P_bar(. | z, a) for the taken action: component means/stds [B, K, *z] and logits [B, K]."""

    mean: jax.Array
    std: jax.Array
    logits: jax.Array


def select_action(x: jax.Array, action: jax.Array, num_actions: int) -> jax.Array:
    """Pick each sample's taken-action slice of an all-actions output [B, A, ...] by one-hot contraction."""
    one_hot = jax.nn.one_hot(action, num_actions, dtype=x.dtype)
    one_hot = one_hot.reshape(one_hot.shape + (1,) * (x.ndim - 2))
    return jnp.sum(one_hot * x, axis=1)


def gaussian_params(loc: jax.Array, raw_scale: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The paper's diagonal Gaussian: mean loc / 2 and std (softplus(raw) + 1e-6) / 2."""
    return 0.5 * loc, 0.5 * (jax.nn.softplus(raw_scale) + 1e-6)


class TransitionModel(nn.Module):
    """P_bar(z' | z, a): a density over the next latent, read at the taken action.

    Conv latents [H, W, C] (the paper's network): a 2x2 SAME convolution to 2C channels, GroupSort,
    then a 2x2 SAME convolution in C/4 feature groups that emits every action's parameters, read at
    the taken action. Flat latents: two dense layers, then one that emits every action's parameters.
    `density` is "deterministic" (one point), "normal" (one diagonal Gaussian) or "mixture" of
    `num_components` of them, whose weights come from a (spectrally normalised) dense layer on the
    hidden features. It equals the network as the paper writes it (`transition_as_written`).
    """

    num_actions: int
    density: str = "mixture"
    num_components: int = 5
    hidden: int = 64
    lipschitz: bool = True
    spectral_norm: str = "exact"
    conv: str = "patches"

    @nn.compact
    def __call__(self, z, action) -> TransitionParams:
        """The density at the taken action: component means and stds [B, K, *z], mixture logits [B, K]."""
        batch, latent_shape = z.shape[0], z.shape[1:]
        k = self.num_components if self.density == "mixture" else 1
        per_component = 1 if self.density == "deterministic" else 2  # (mean) or (mean, scale)
        act = group_sort if self.lipschitz else nn.relu
        norm: dict[str, Any] = dict(spectral=self.lipschitz, spectral_norm=self.spectral_norm)
        if z.ndim == 4:
            height, width, channels = latent_shape
            groups = max(channels // CHANNELS_PER_GROUP, 1)
            h = act(LipschitzConv(2 * channels, gain=math.sqrt(2), impl=self.conv, **norm)(z))
            # each group's features ordered (mean | scale, component, channel of the group)
            features = per_component * k * (channels // groups)
            out = GroupedActionConv(self.num_actions, groups, features, **norm)(h, action)  # [B, H, W, G, F]
            out = jnp.moveaxis(out.reshape(batch, height, width, groups, per_component, k, -1), 5, 1)
            parts = [out[..., i, :].reshape(batch, k, *latent_shape) for i in range(per_component)]
        else:
            h = z
            for _ in range(2):
                h = act(LipschitzDense(self.hidden, gain=math.sqrt(2), **norm)(h))
            out = LipschitzDense(self.num_actions * k * per_component * latent_shape[-1], **norm)(h)
            out = select_action(out.reshape(batch, self.num_actions, k, per_component, -1), action, self.num_actions)
            parts = [out[:, :, i] for i in range(per_component)]
        mean, std = gaussian_params(*parts) if per_component == 2 else (parts[0], jnp.zeros_like(parts[0]))
        if self.density == "mixture":
            logits = LipschitzDense(self.num_actions * k, **norm)(h.reshape(batch, -1))
            logits = select_action(logits.reshape(batch, self.num_actions, k), action, self.num_actions)
        else:
            logits = jnp.zeros((batch, 1), mean.dtype)
        return TransitionParams(mean, std, logits)

    def sample(self, z, action, key) -> jax.Array:
        """A reparameterised sample of z' [B, *z] (the mean for the deterministic density: no noise drawn)."""
        params = self(z, action)
        if self.density == "deterministic":
            return params.mean[:, 0]
        return sample_next_latent(params, key)


def taken_action_patches_matmul(patches: jax.Array, kernel: jax.Array, bias: jax.Array, action: jax.Array):
    """Grouped patches [B, H, W, G, P] times every action's kernels [G, P, A, F] (biases [G, A, F]), read at
    each sample's action: [B, H, W, G, F]. Equals computing all A actions and indexing the taken one;
    contracting the kernel with the one-hot action first costs 1/A of that, a measured share of Deep
    SPI's whole time on conv latents (benchmarks/world_model_choices.py)."""
    one_hot = jax.nn.one_hot(action, kernel.shape[2], dtype=patches.dtype)
    per_sample_kernel = jnp.einsum("ba,gpaf->bgpf", one_hot, kernel)
    per_sample_bias = jnp.einsum("ba,gaf->bgf", one_hot, bias)
    return jnp.einsum("bhwgp,bgpf->bhwgf", patches, per_sample_kernel) + per_sample_bias[:, None, None]


class GroupedActionConv(nn.Module):
    """A 2x2 SAME convolution in `groups` feature groups with `num_actions * features` outputs per group,
    read at each sample's action: [B, H, W, Cin] -> [B, H, W, G, F].

    Group g sees its own Cin/G input channels through its own [4 Cin/G, A F] matrix, spectrally
    normalised on its own when `spectral` (under "exact", by the norm of group g's whole A F-channel
    convolution as an operator, which bounds every action's slice by 1).
    """

    num_actions: int
    groups: int
    features: int
    spectral: bool = True
    spectral_norm: str = "exact"

    @nn.compact
    def __call__(self, h, action):
        batch, height, width, channels = h.shape
        group_channels = channels // self.groups
        patches = extract_patches(h, 2, 1, "SAME").reshape(batch, height, width, 4, self.groups, group_channels)
        patches = jnp.moveaxis(patches, 4, 3).reshape(batch, height, width, self.groups, -1)  # [B, H, W, G, P]
        dense = GroupedLipschitzKernels(
            self.groups, self.num_actions * self.features, self.spectral, self.spectral_norm, name="kernel"
        )
        kernel, bias = dense(patches.shape[-1], (height, width, group_channels))
        kernel = kernel.reshape(self.groups, -1, self.num_actions, self.features)
        bias = bias.reshape(self.groups, self.num_actions, self.features)
        return taken_action_patches_matmul(patches, kernel, bias, action)


class GroupedLipschitzKernels(nn.Module):
    """`groups` 2x2 SAME convolution kernels as patch matrices [4 Cin/G, out] with biases, each divided by its
    own spectral norm estimate: "exact" the norm of its convolution as an operator on [H, W, Cin/G]
    inputs, "reference" the paper's code's estimate for the matrix."""

    groups: int
    features: int
    spectral: bool = True
    spectral_norm: str = "exact"
    power_iterations: int = 1

    @nn.compact
    def __call__(self, in_features: int, input_shape: tuple[int, int, int]):
        init = kernel_init(self.spectral_norm if self.spectral else "exact", 1.0)
        kernel = self.param(
            "kernel",
            lambda key, shape: jax.vmap(lambda k: init(k, shape[1:]))(jax.random.split(key, shape[0])),
            (self.groups, in_features, self.features),
        )
        bias = self.param("bias", nn.initializers.zeros, (self.groups, self.features))
        if not self.spectral:
            return kernel, bias
        if self.spectral_norm == "reference":
            sigma = jax.vmap(reference_sigma)(kernel)
        else:

            def iterate(matrix, u, steps):
                def linear(x):
                    return extract_patches(x[None], 2, 1, "SAME")[0] @ matrix

                return operator_power_iteration(linear, u, steps)

            start = jnp.full((self.groups, *input_shape), math.prod(input_shape) ** -0.5, kernel.dtype)
            sigma = refreshed_sigma(
                self,
                lambda: jax.vmap(lambda m, u: iterate(m, u, INIT_POWER_ITERATIONS)[0])(kernel, start),
                lambda us: jax.vmap(lambda m, u: iterate(m, u, self.power_iterations))(kernel, us),
            )
        return kernel / sigma[:, None, None], bias


def transition_as_written(params: dict, z: jax.Array, action: jax.Array, model: TransitionModel) -> TransitionParams:
    """`model` (lipschitz off: ReLU, raw weights) computed as the paper writes P_bar: every action's
    parameters by `lax.conv` in feature groups (conv latents) or one dense layer (flat latents), then
    the taken action's indexed. TransitionModel equals it (tests/test_world_model_reference.py) while
    computing the taken action's last layer only (`taken_action_patches_matmul`)."""
    batch, latent_shape = z.shape[0], z.shape[1:]
    k = model.num_components if model.density == "mixture" else 1
    per_component = 1 if model.density == "deterministic" else 2
    taken = jnp.arange(batch), action
    if z.ndim == 4:
        height, width, channels = latent_shape
        groups = max(channels // CHANNELS_PER_GROUP, 1)

        def conv(x, kernel, groups=1):
            dims = ("NHWC", "HWIO", "NHWC")
            return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", None, None, dims, groups)

        first, last = params["LipschitzConv_0"], params["GroupedActionConv_0"]["kernel"]
        h = jax.nn.relu(conv(z, first["kernel"]) + first["bias"])
        hwio = jnp.concatenate([w.reshape(2, 2, channels * 2 // groups, -1) for w in last["kernel"]], axis=-1)
        every = conv(h, hwio, groups).reshape(batch, height, width, groups, -1) + last["bias"]  # [B, H, W, G, A F]
        every = jnp.moveaxis(every.reshape(batch, height, width, groups, model.num_actions, -1), 4, 1)[taken]
        # a group's features: (mean | scale, component, channel of the group)
        every = every.reshape(batch, height, width, groups, per_component, k, channels // groups)
        parts = [jnp.moveaxis(every[..., i, :, :], 4, 1).reshape(batch, k, *latent_shape) for i in range(per_component)]
    else:
        h = z
        for i in range(2):
            h = jax.nn.relu(h @ params[f"LipschitzDense_{i}"]["kernel"] + params[f"LipschitzDense_{i}"]["bias"])
        out = h @ params["LipschitzDense_2"]["kernel"] + params["LipschitzDense_2"]["bias"]
        out = out.reshape(batch, model.num_actions, k, per_component, -1)[taken]
        parts = [out[:, :, i] for i in range(per_component)]
    mean, std = gaussian_params(*parts) if per_component == 2 else (parts[0], jnp.zeros_like(parts[0]))
    logits = jnp.zeros((batch, 1), mean.dtype)
    if model.density == "mixture":
        dense = params[f"LipschitzDense_{0 if z.ndim == 4 else 3}"]
        logits = (h.reshape(batch, -1) @ dense["kernel"] + dense["bias"]).reshape(batch, model.num_actions, k)[taken]
    return TransitionParams(mean, std, logits)


class PlainRewardModel(nn.Module):
    """`deep_mdp_ppo.py`'s reward network: flattened z -> one hidden ReLU layer -> one reward per action
    [B, A], flax's default (LeCun normal) init. No Lipschitz constraint: DeepMDP regularises it with the
    gradient penalty instead."""

    num_actions: int
    hidden: int = 512

    @nn.compact
    def __call__(self, z):
        x = nn.relu(nn.Dense(self.hidden)(z.reshape(z.shape[0], -1)))
        return nn.Dense(self.num_actions)(x)


class PlainTransitionModel(nn.Module):
    """`deep_mdp_ppo.py`'s deterministic transition network, read at the taken action.

    Conv latents [H, W, C]: one 2x2 SAME convolution to C channels per action, then ReLU (the latent's
    own range), read at each sample's action (`taken_action_patches_matmul`). Flat latents: a hidden
    ReLU layer and a linear output per action. Returns TransitionParams with one component and zero std.
    """

    num_actions: int
    hidden: int = 64

    @nn.compact
    def __call__(self, z, action) -> TransitionParams:
        batch, latent_shape = z.shape[0], z.shape[1:]
        if z.ndim == 4:
            channels = latent_shape[-1]
            patches = extract_patches(z, 2, 1, "SAME")[:, :, :, None]  # [B, H, W, 1 group, 4C]
            kernel = self.param("kernel", nn.initializers.lecun_normal(), (4 * channels, self.num_actions * channels))
            bias = self.param("bias", nn.initializers.zeros, (self.num_actions * channels,))
            kernel, bias = kernel.reshape(1, 4 * channels, self.num_actions, channels), bias.reshape(1, -1, channels)
            mean = nn.relu(taken_action_patches_matmul(patches, kernel, bias, action)[:, :, :, 0])
        else:
            h = nn.relu(nn.Dense(self.hidden)(z))
            out = nn.Dense(self.num_actions * latent_shape[-1])(h)
            mean = select_action(out.reshape(batch, self.num_actions, latent_shape[-1]), action, self.num_actions)
        mean = mean[:, None]
        return TransitionParams(mean, jnp.zeros_like(mean), jnp.zeros((batch, 1), mean.dtype))


def clipped_normal(key: jax.Array, shape) -> jax.Array:
    """clip(N(0, 1), -1, 1) draws: the paper's transition noise (its mixture's `clip_epsilon` of 1)."""
    return jnp.clip(jax.random.normal(key, shape), -1.0, 1.0)


def sample_next_latent(params: TransitionParams, key: jax.Array) -> jax.Array:
    """A reparameterised sample of z' [B, *z] from the taken action's density [B, K, *z]: each component
    draws mean + std * clip(eps, -1, 1), and the sample is their weight-averaged draw."""
    with jax.named_scope("mixture_sample"):
        eps = clipped_normal(key, params.mean.shape)
        draws = params.mean + params.std * eps
        weights = jax.nn.softmax(params.logits, axis=-1)  # [B, K]
        return jnp.sum(weights.reshape(weights.shape + (1,) * (draws.ndim - 2)) * draws, axis=1)


def world_model_modules(config: WorldModelConfig, family: str, num_actions: int, encoder_width: int, conv: str):
    """The reward and transition networks of `config` for latents of `family`'s encoder."""
    if not config.lipschitz:
        reward_width, transition_width = PLAIN_WORLD_MODEL_WIDTH[family]
        return (
            PlainRewardModel(num_actions, reward_width),
            PlainTransitionModel(num_actions, transition_width or encoder_width),
        )
    reward_width, transition_width = WORLD_MODEL_WIDTH[family]
    reward = RewardModel(num_actions, (reward_width, reward_width), True, config.spectral_norm)
    transition = TransitionModel(
        num_actions,
        config.density,
        config.num_components,
        transition_width or encoder_width,
        True,
        config.spectral_norm,
        conv,
    )
    return reward, transition


class Predictions(NamedTuple):
    """The world model's outputs on a minibatch, read at the taken actions."""

    latent: jax.Array  # [B, *z], phi(s)
    reward_pred: jax.Array  # [B]
    next_latent_pred: jax.Array  # [B, *z], a sample of P_bar(. | z, a)
    next_latent: jax.Array  # [B, *z], phi(s') from the live encoder


def squared_slopes(sums: Callable, latent: jax.Array) -> jax.Array:
    """DeepMDP's E||grad_z R_bar||^2 + E||grad_z P_bar||^2 at the batch's (z, a), z stop-gradiented;
    `sums(z)` returns the batch sums of both networks' outputs (Agent.world_model_sums)."""
    z = jax.lax.stop_gradient(latent)
    reward_grads = jax.grad(lambda z: sums(z)[0])(z)
    transition_grads = jax.grad(lambda z: sums(z)[1])(z)
    return objectives.squared_slope(reward_grads) + objectives.squared_slope(transition_grads)


def loss_terms(
    config: WorldModelConfig, predictions: Predictions, batch: dict, hp: Any, sums: Callable
) -> objectives.WorldModelTerms:
    """The world model's per-sample loss alpha_R L_R + alpha_P L_P and, for the plain world model, DeepMDP's
    gradient penalty (its slopes taken through `sums`, computed only where it is used)."""
    penalty = None
    if config.has_gradient_penalty:
        with jax.named_scope("gradient_penalty"):
            penalty = squared_slopes(sums, predictions.latent)
    inputs = objectives.WorldModelInputs(
        reward_pred=predictions.reward_pred,
        reward=batch["reward"],
        next_latent_pred=predictions.next_latent_pred,
        next_latent=predictions.next_latent,
        transition_valid=batch["transition_valid"],
        gradient_penalty=penalty,
    )
    return objectives.world_model_terms(inputs, hp, config.transition_reduction)
