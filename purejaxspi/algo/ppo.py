"""PPO's update: its settings, its hyperparameters and the epochs x minibatches of clipped gradient steps.

The world model, where the algorithm has one, adds its own terms to the minibatch loss
(algo.world_model); everything else here is CleanRL's PPO.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from purejaxspi.algo import objectives, world_model
from purejaxspi.algo.networks import Agent, policy_value
from purejaxspi.settings import Hyperparameter, setting

if TYPE_CHECKING:
    from purejaxspi.algo.config import Config
    from purejaxspi.algo.train import RunState

TRUNCATION_RULES = ("bootstrap", "terminate")


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    num_steps: int = setting(128, "Rollout length per iteration.", bound="positive", title="steps")
    num_minibatches: int = setting(8, "Minibatches per epoch.", bound="positive", title="mb")
    update_epochs: int = setting(4, "Epochs per iteration.", bound="positive", title="epochs")
    anneal_lr: bool = setting(
        True,
        "Anneal the learning rate linearly to 0 over the run (--no-anneal-lr: constant).",
        title="anneal",
    )
    norm_adv: bool = setting(True, "Normalise the advantages per minibatch.")
    clip_value_loss: bool = setting(
        False,
        "Clip the value loss around the rollout's values by --clip-coef, as gymnax's published PPO does (the "
        "paper's scripts do not).",
        title="clip_V",
    )
    target_kl: float = setting(
        0.0,
        "Skip an iteration's remaining update epochs once an epoch ends with its last minibatch's approximate "
        "KL above this (CleanRL's rule; 0: never).",
        bound="nonnegative",
    )
    truncation: str = setting(
        "bootstrap",
        "At a time limit: bootstrap (GAE values the true final observation, as at any non-terminal step) or "
        "terminate (the bootstrap zeroed as at a termination: gymnax-blines' and the paper's scripts' rule). "
        "Either way the lambda-trace is cut there.",
        choices=TRUNCATION_RULES,
        title="trunc",
    )

    @property
    def early_stop(self) -> bool:
        """Whether the update carries the target-KL stop (static, so runs without one pay nothing)."""
        return self.target_kl > 0 and self.update_epochs > 1


# The defaults are the optimiser the paper's three scripts share: lr 2.5e-4, clip 0.1, entropy 0.01,
# value 0.5, gamma 0.99, lambda 0.95, grad-norm 0.5.
HYPERPARAMETERS = (
    Hyperparameter(
        "learning_rate",
        "Adam step size (annealed linearly to 0 over the run where anneal_lr is on).",
        2.5e-4,
        bound="positive",
        title="lr",
    ),
    Hyperparameter("clip_coef", "PPO clip epsilon.", 0.1, title="clip"),
    Hyperparameter("ent_coef", "Entropy bonus weight.", 0.01, title="ent"),
    Hyperparameter("vf_coef", "Value loss weight.", 0.5, title="vf"),
    Hyperparameter("gamma", "Discount factor.", 0.99, bound="unit"),
    Hyperparameter("gae_lambda", "GAE lambda.", 0.95, bound="unit", title="lambda"),
    Hyperparameter("max_grad_norm", "Global gradient-norm clip.", 0.5, bound="positive", title="grad_norm"),
)


class UpdateSetup(NamedTuple):
    """What the update reads besides the data: the run's config, the network, where the world model's
    loss enters (world_model.PLACEMENTS) and Adam's moment scaling (the learning rate, which may differ
    per run and anneal, multiplies its output)."""

    config: Config
    agent: Agent
    placement: str
    adam_moments: Any

    @property
    def ppo(self) -> PPOConfig:
        return self.config.ppo

    @property
    def world_model(self) -> world_model.WorldModelConfig | None:
        return self.config.world_model

    @property
    def minibatch_size(self) -> int:
        return self.config.batch_size // self.ppo.num_minibatches


def minibatch_loss(up: UpdateSetup, params, spectral, batch: dict, hp, key):
    """The minibatch's total loss, with (LossTerms, the refreshed spectral vectors) as aux."""
    obs, variables = batch["obs"], {"params": params, "spectral": spectral}
    wm_terms = None
    if up.world_model is None:
        logits, value = policy_value(up.agent, variables, obs)
    else:
        (logits, value, predictions), mutated = up.agent.apply(
            variables,
            obs,
            batch["action"],
            batch["next_obs"],
            key,
            method=Agent.with_world_model,
            mutable=["spectral"],
        )
        spectral = mutated.get("spectral", spectral)

        def sums(z):
            return up.agent.apply({"params": params}, z, batch["action"], method=Agent.world_model_sums)

        wm_terms = world_model.loss_terms(up.world_model, predictions, batch, hp, sums)
    inputs = objectives.PolicyInputs(
        log_probs=objectives.masked_log_softmax(logits, batch["action_mask"]),
        value=value,
        action=batch["action"],
        old_log_prob=batch["log_prob"],
        advantages=batch["advantages"],
        returns=batch["returns"],
        old_value=batch["value"] if up.ppo.clip_value_loss else None,
    )
    with jax.named_scope("losses"):
        terms = objectives.loss(inputs, hp, up.ppo.norm_adv, wm_terms, up.placement)
    return terms.total, (terms, spectral)


def learning_rate_at(up: UpdateSetup, iteration, hp):
    """The learning rate at `iteration`: annealed linearly to 0 over the run (`anneal_lr`) by the
    hyperparameters' `anneal_step`, or by the config's 1 / num_iterations where they carry none; the
    same float32 reciprocal either way, which is what XLA multiplies by for a division by a constant."""
    if not up.ppo.anneal_lr:
        return hp.learning_rate
    step = np.float32(1) / np.float32(up.config.num_iterations) if hp.anneal_step is None else hp.anneal_step
    return hp.learning_rate * (1.0 - iteration * step)


def update(up: UpdateSetup, state: RunState, batch: dict, hp):
    """update_epochs x num_minibatches gradient steps on the rollout's `batch` [batch_size, ...].

    Returns (state, terms [epochs, minibatches], the learning rate, the epochs applied)."""
    learning_rate = learning_rate_at(up, state.iteration, hp)

    def epoch(carry, _):
        state, stopped = carry
        key, perm_key = jax.random.split(state.key)
        perm = jax.random.permutation(perm_key, up.config.batch_size)
        minibatches = jax.tree.map(
            lambda x: x[perm].reshape((up.ppo.num_minibatches, up.minibatch_size) + x.shape[1:]), batch
        )
        step = functools.partial(gradient_step, up, hp=hp, learning_rate=learning_rate, stopped=stopped)
        state, terms = jax.lax.scan(step, state._replace(key=key), minibatches)
        applied = jnp.logical_not(stopped)
        # CleanRL's rule: stop once the epoch's last minibatch's approximate KL exceeds the target
        stopped = stopped | (terms.approx_kl[-1] > up.ppo.target_kl) if up.ppo.early_stop else stopped
        return (state, stopped), (terms, applied)

    (state, _), (terms, applied) = jax.lax.scan(epoch, (state, jnp.bool_(False)), None, up.ppo.update_epochs)
    return state, terms, learning_rate, jnp.sum(applied.astype(jnp.float32))


def gradient_step(up: UpdateSetup, state: RunState, minibatch: dict, hp, learning_rate, stopped=False):
    """One minibatch's loss gradient, clipped by its global norm, and Adam's step: (state, terms). Once the
    target KL has stopped the update (`stopped`), the parameters stay as they are."""
    key, sample_key = jax.random.split(state.key)
    grad_fn = jax.value_and_grad(minibatch_loss, argnums=1, has_aux=True)
    (_, (terms, spectral)), grads = grad_fn(up, state.params, state.spectral, minibatch, hp, sample_key)
    with jax.named_scope("optimizer"):
        grads = clip_by_global_norm(grads, hp.max_grad_norm)
        updates, adam_state = up.adam_moments.update(grads, state.adam_state)
        params = optax.apply_updates(state.params, jax.tree.map(lambda u: -learning_rate * u, updates))
    learned = (params, spectral, adam_state)
    if up.ppo.early_stop:
        before = (state.params, state.spectral, state.adam_state)
        learned = jax.tree.map(lambda new, old: jnp.where(stopped, old, new), learned, before)
    params, spectral, adam_state = learned
    return state._replace(params=params, spectral=spectral, adam_state=adam_state, key=key), terms


def clip_by_global_norm(grads, max_norm):
    norm = optax.tree.norm(grads)
    scale = jnp.minimum(1.0, max_norm / (norm + 1e-12))
    return jax.tree.map(lambda g: g * scale, grads)
