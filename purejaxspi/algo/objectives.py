"""GAE and the PPO / DeepMDP / Deep SPI objectives, as pure functions of arrays (the paper's notation).

Deep SPI puts the world-model losses inside the clipped surrogate through the U-advantage
`U_i = A_i - (alpha_R L_R,i + alpha_P L_P,i)`; DeepMDP adds their mean outside the trust region;
PPO has no world model. Nothing is stop-gradiented: encoder, policy and world model move together.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


def gae(rewards, values, next_values, terminated, done, gamma, gae_lambda):
    """Generalised advantage estimation over a rollout [T, N] -> (advantages, returns) [T, N].

    `next_values` is V(s') of each transition's true successor, so truncated episodes bootstrap
    from their final observation; only `terminated` zeroes the bootstrap, and `done` (terminated or
    truncated) cuts the lambda-trace.
    """
    deltas = rewards + gamma * next_values * (1.0 - terminated) - values

    def backward(next_advantage, step):
        delta, done_t = step
        advantage = delta + gamma * gae_lambda * (1.0 - done_t) * next_advantage
        return advantage, advantage

    # unrolled: the loop's own cost dominates 128 steps of a few multiply-adds (purejaxrl unrolls 16 too)
    steps = (deltas, done.astype(deltas.dtype))
    _, advantages = jax.lax.scan(backward, jnp.zeros_like(deltas[0]), steps, reverse=True, unroll=16)
    return advantages, advantages + values


def smooth_l1(x, beta: float = 1.0):
    """Elementwise smooth-L1 (Huber with threshold beta): quadratic near 0, linear beyond."""
    abs_x = jnp.abs(x)
    return jnp.where(abs_x < beta, 0.5 * x**2 / beta, abs_x - 0.5 * beta)


def reward_loss(reward_pred, reward):
    """L_R,i = smooth_l1(R_bar(z_i, a_i) - r_i)  [B]."""
    return smooth_l1(reward_pred - reward)


def transition_loss(next_latent_pred, next_latent, valid, reduction: str = "sum"):
    """L_P,i = smooth_l1(sample of P_bar(.|z_i,a_i) - z'_i) reduced over latent entries, 0 where invalid  [B].

    `reduction` is "sum" or "mean": the paper's code takes the mean for the deterministic head and the
    sum for the sampled ones (`WorldModelConfig.transition_reduction`).
    """
    per_dim = smooth_l1(next_latent_pred - next_latent).reshape(next_latent.shape[0], -1)
    if reduction == "mean":
        return jnp.mean(per_dim, axis=-1) * valid
    if reduction != "sum":
        raise ValueError(f"unknown reduction {reduction!r}; choose sum or mean")
    return jnp.sum(per_dim, axis=-1) * valid


def squared_slope(input_grads):
    """E_i ||grad_x f(x_i)||^2 over a batch of per-sample input gradients [B, ...]: DeepMDP's gradient
    penalty on one network (the inputs stop-gradiented, so it moves only the network)."""
    return jnp.mean(jnp.sum(input_grads.reshape(input_grads.shape[0], -1) ** 2, axis=-1))


def normalize(advantages):
    """Minibatch-normalised advantages."""
    return (advantages - advantages.mean()) / (advantages.std() + 1e-8)


def u_advantage(advantages_norm, weighted_world_model_loss):
    """U_i = A_i - (alpha_R L_R,i + alpha_P L_P,i), the second term given per sample."""
    return advantages_norm - weighted_world_model_loss


def clipped_surrogate(advantage, rho, clip_coef):
    """mean_i max(-U_i rho_i, -U_i clip(rho_i, 1-eps, 1+eps)): PPO's pessimistic surrogate (to minimise)."""
    unclipped = -advantage * rho
    clipped = -advantage * jnp.clip(rho, 1.0 - clip_coef, 1.0 + clip_coef)
    return jnp.mean(jnp.maximum(unclipped, clipped))


def clip_binds(advantage, rho, clip_coef):
    """Where the clipped branch is the active one, so the sample contributes no policy gradient [B]."""
    return ((advantage > 0) & (rho > 1.0 + clip_coef)) | ((advantage < 0) & (rho < 1.0 - clip_coef))


def masked_log_softmax(logits, action_mask):
    masked = jnp.where(action_mask, logits, -1e9)
    return jax.nn.log_softmax(masked, axis=-1)


def entropy(log_probs):
    """Mean policy entropy over the batch."""
    return jnp.mean(-jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1))


class PolicyInputs(NamedTuple):
    """One minibatch of the policy's and value's outputs and the rollout's data, all [B] unless noted."""

    log_probs: jax.Array  # [B, A], current policy, illegal actions masked
    value: jax.Array
    action: jax.Array
    old_log_prob: jax.Array
    advantages: jax.Array
    returns: jax.Array
    old_value: jax.Array | None = None  # the rollout's V(s): read only when the value loss is clipped


class WorldModelInputs(NamedTuple):
    """One minibatch of the world model's predictions and their targets, all [B] unless noted."""

    reward_pred: jax.Array
    reward: jax.Array
    next_latent_pred: jax.Array  # [B, *z]
    next_latent: jax.Array  # [B, *z]
    transition_valid: jax.Array
    gradient_penalty: jax.Array | None = None  # scalar: the plain world model's squared slopes, else None


class WorldModelTerms(NamedTuple):
    weighted: jax.Array  # [B], alpha_R L_R,i + alpha_P L_P,i
    penalty: jax.Array | None  # scalar squared slopes of DeepMDP's gradient penalty, None without one
    metrics: dict[str, jax.Array]  # reward_loss, transition_loss (and gradient_penalty where there is one)


class LossTerms(NamedTuple):
    total: jax.Array
    policy_loss: jax.Array
    value_loss: jax.Array
    entropy: jax.Array
    approx_kl: jax.Array
    clip_fraction: jax.Array  # samples whose surrogate gradient the clip cuts
    ratio_outside: jax.Array  # samples with rho outside [2 - C, C], C = 1 + clip
    ratio_min: jax.Array
    ratio_max: jax.Array
    advantage_abs: jax.Array  # mean |A| of the (normalised) advantages the objective reads
    world_model: dict[str, jax.Array]  # the world model's metrics and world_model_share; empty without one


def spi_condition(ratio_max, gamma):
    """The paper's safe-policy-improvement condition on an update: every importance ratio
    pi_new(a|s) / pi_old(a|s) it took stays below 1 / gamma."""
    return ratio_max < 1.0 / gamma


def value_loss(value, returns, old_value=None, clip_coef=0.0):
    """0.5 E[(V - R)^2]; with `old_value`, PPO's clipped form 0.5 E[max((V - R)^2, (V_clip - R)^2)], V_clip
    the new value kept within clip_coef of the rollout's (gymnax-blines' and CleanRL's `clip_vloss`)."""
    squared = (value - returns) ** 2
    if old_value is not None:
        clipped = old_value + jnp.clip(value - old_value, -clip_coef, clip_coef)
        squared = jnp.maximum(squared, (clipped - returns) ** 2)
    return 0.5 * jnp.mean(squared)


def world_model_terms(x: WorldModelInputs, hp, transition_reduction: str = "sum") -> WorldModelTerms:
    """alpha_R L_R,i + alpha_P L_P,i per sample, the gradient penalty's slopes and the losses' means."""
    valid = x.transition_valid.astype(x.reward_pred.dtype)
    loss_r = reward_loss(x.reward_pred, x.reward)
    loss_p = transition_loss(x.next_latent_pred, x.next_latent, valid, transition_reduction)
    metrics = {"reward_loss": jnp.mean(loss_r), "transition_loss": jnp.sum(loss_p) / jnp.maximum(jnp.sum(valid), 1.0)}
    penalty = None
    if x.gradient_penalty is not None:
        penalty = metrics["gradient_penalty"] = jnp.asarray(x.gradient_penalty, loss_r.dtype)
    return WorldModelTerms(hp.reward_coef * loss_r + hp.transition_coef * loss_p, penalty, metrics)


def loss(
    x: PolicyInputs,
    hp,
    norm_adv: bool = True,
    world_model: WorldModelTerms | None = None,
    placement: str = "advantage",
) -> LossTerms:
    """PPO's total loss on one minibatch and its parts; the value loss is clipped (by hp.clip_coef) when
    `x.old_value` is given.

    With a world model, its weighted loss enters by `placement`: "advantage" subtracts it inside the
    clipped surrogate (Deep SPI's U), "auxiliary" adds its mean beside it (DeepMDP); its gradient
    penalty, where it has one, is added weighted by hp.gradient_penalty either way.
    """
    log_prob = jnp.take_along_axis(x.log_probs, x.action[:, None], axis=-1)[:, 0]
    log_rho = log_prob - x.old_log_prob
    rho = jnp.exp(log_rho)
    advantages = normalize(x.advantages) if norm_adv else x.advantages
    policy_advantage = advantages
    if world_model is not None and placement == "advantage":
        policy_advantage = u_advantage(advantages, world_model.weighted)
    policy_loss = clipped_surrogate(policy_advantage, rho, hp.clip_coef)
    v_loss = value_loss(x.value, x.returns, x.old_value, hp.clip_coef)
    ent = entropy(x.log_probs)
    total = policy_loss + hp.vf_coef * v_loss - hp.ent_coef * ent
    advantage_abs = jnp.mean(jnp.abs(advantages))
    metrics = {}
    if world_model is not None:
        if placement == "auxiliary":
            total = total + jnp.mean(world_model.weighted)
        if world_model.penalty is not None:
            total = total + hp.gradient_penalty * world_model.penalty
        share = jnp.mean(world_model.weighted) / (advantage_abs + 1e-8)
        metrics = {**world_model.metrics, "world_model_share": share}
    return LossTerms(
        total=total,
        policy_loss=policy_loss,
        value_loss=v_loss,
        entropy=ent,
        approx_kl=jnp.mean((rho - 1.0) - log_rho),
        clip_fraction=jnp.mean(clip_binds(policy_advantage, rho, hp.clip_coef).astype(rho.dtype)),
        ratio_outside=jnp.mean((jnp.abs(rho - 1.0) > hp.clip_coef).astype(rho.dtype)),
        ratio_min=jnp.min(rho),
        ratio_max=jnp.max(rho),
        advantage_abs=advantage_abs,
        world_model=metrics,
    )
