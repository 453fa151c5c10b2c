"""make_train(config, env): one run's whole training program as pure, jittable functions.

One iteration reads top to bottom: `rollout -> advantages -> update`. Iterations are scanned in
chunks. These functions take one run; `scale.mapping` maps them over the run axis (seeds x
hyperparameter settings) and `scale.sharding` over devices. Users who want to `jax.vmap` or `jax.jit`
them themselves on a pure-JAX env can take them as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from purejaxspi.algo import objectives
from purejaxspi.algo.config import Config, HParams
from purejaxspi.algo.conv import resolve_conv
from purejaxspi.algo.networks import Agent
from purejaxspi.envs.base import BatchedEnv, Timestep


class RunState(NamedTuple):
    """Everything one run carries from iteration to iteration."""

    params: Any
    spectral: Any  # power-iteration vectors of the spectrally normalised layers
    adam_state: Any
    env_state: Any
    obs: jax.Array  # [N, *obs]
    action_mask: jax.Array  # [N, A]
    key: jax.Array
    iteration: jax.Array


class Transition(NamedTuple):
    """One rollout step for all envs; stacked by the scan to [T, N, ...]."""

    obs: jax.Array
    action_mask: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    timestep: Timestep


def act(agent: Agent, variables, obs, action_mask, key, greedy: bool = False):
    """The acting step, shared by training, evaluation and videos: the masked policy at `obs` [N, *obs],
    an action per env (sampled, or its argmax when `greedy`), and the value. Returns (action, log_probs, value)."""
    logits, value = agent.apply(variables, obs)
    log_probs = objectives.masked_log_softmax(logits, action_mask)
    action = jnp.argmax(log_probs, axis=-1) if greedy else jax.random.categorical(key, log_probs)
    return action, log_probs, value


class IterationPieces(NamedTuple):
    """One iteration's pieces outside their loops, and how many times an iteration runs each.

    XLA's cost analysis counts the body of a scanned loop once, so the work of an iteration is read
    piece by piece: sum over pieces of count x cost(piece) (`analysis.work`).

    rollout(state) -> (state, traj)             the whole rollout, for the shapes of its trajectory
    act(state) -> (action, log_probs, value)    one acting step of the run's envs (no env step)
    advantages(state, traj, hp) -> (adv, returns)  V(s') of the rollout and GAE
    gradient_step(state, traj, adv, returns, hp) -> state   one minibatch's gradient and Adam step
    """

    rollout: Callable
    act: Callable
    advantages: Callable
    gradient_step: Callable
    counts: Mapping[str, int]  # {"act": num_steps, "advantages": 1, "gradient_step": epochs x minibatches}


class RunProgram(NamedTuple):
    """The pure functions of one run's training program (not mapped over runs, not jitted).

    init(key, hp) -> RunState
    train_chunk(state, hp, num_iterations) -> (state, metrics {name: [num_iterations]})
    train(key, hp) -> (state, metrics {name: [config.num_iterations]})
    pieces: the iteration's pieces, for counting its work
    """

    config: Config
    agent: Agent
    init: Callable
    train_chunk: Callable
    train: Callable
    pieces: IterationPieces | None = None


def make_train(config: Config, env: BatchedEnv) -> RunProgram:
    """One run's training program of `config` on `env` (a batch of `config.num_envs` envs)."""
    spec = env.spec
    agent = Agent(
        family=spec.family,
        num_actions=spec.num_actions,
        world_model=config.world_model,
        density=config.density,
        num_components=config.num_components,
        lipschitz=config.lipschitz,
        spectral_norm=config.spectral_norm,
        torso_width=config.torso_width,
        encoder_width=config.encoder_width,
        encoder_kind=config.encoder,
        conv=resolve_conv(config.conv),
    )
    adam = optax.scale_by_adam(eps=1e-5)

    def init_run(key, hp: HParams) -> RunState:
        del hp
        net_key, env_key, sample_key, run_key = jax.random.split(key, 4)
        env_state, obs, action_mask = env.reset(env_key)
        dummy_action = jnp.zeros((obs.shape[0],), jnp.int32)
        variables = agent.init(net_key, obs, dummy_action, sample_key, method=Agent.init_all)
        params, spectral = variables["params"], variables.get("spectral", {})
        return RunState(params, spectral, adam.init(params), env_state, obs, action_mask, run_key, jnp.int32(0))

    # ---- rollout: num_steps env steps of the current policy --------------------------------------
    def rollout(state: RunState):
        def env_step(carry, _):
            env_state, obs, action_mask, key = carry
            key, action_key, step_key = jax.random.split(key, 3)
            variables = {"params": state.params, "spectral": state.spectral}
            action, log_probs, value = act(agent, variables, obs, action_mask, action_key)
            log_prob = jnp.take_along_axis(log_probs, action[:, None], axis=-1)[:, 0]
            env_state, timestep = env.step(env_state, action, step_key)
            transition = Transition(obs, action_mask, action, log_prob, value, timestep)
            return (env_state, timestep.obs, timestep.action_mask, key), transition

        carry = (state.env_state, state.obs, state.action_mask, state.key)
        (env_state, obs, action_mask, key), traj = jax.lax.scan(env_step, carry, None, config.num_steps)
        return state._replace(env_state=env_state, obs=obs, action_mask=action_mask, key=key), traj

    # ---- advantages: GAE with V(s') of the true successor ------------------------------------------
    def advantages(state: RunState, traj: Transition, hp: HParams):
        ts = traj.timestep
        flat_next = ts.next_obs.reshape((-1,) + ts.next_obs.shape[2:])
        _, next_values = agent.apply({"params": state.params, "spectral": state.spectral}, flat_next)
        next_values = next_values.reshape(ts.reward.shape)
        return objectives.gae(
            ts.reward,
            traj.value,
            next_values,
            ts.terminated.astype(jnp.float32),
            # the learning episode's end cuts the trace (with episodic lives, Atari's life loss too)
            jnp.logical_or(ts.terminated, ts.truncated).astype(jnp.float32),
            hp.gamma,
            hp.gae_lambda,
        )

    # ---- update: update_epochs x num_minibatches gradient steps ------------------------------------
    def gradient_penalty(params, latent, action):
        """DeepMDP's E||grad_z R_bar||^2 + E||grad_z P_bar||^2 at the batch's (z, a), z stop-gradiented."""
        z = jax.lax.stop_gradient(latent)
        sums = lambda z: agent.apply({"params": params}, z, action, method=Agent.world_model_sums)  # noqa: E731
        reward_grads = jax.grad(lambda z: sums(z)[0])(z)
        transition_grads = jax.grad(lambda z: sums(z)[1])(z)
        return objectives.squared_slope(reward_grads) + objectives.squared_slope(transition_grads)

    def minibatch_loss(params, spectral, batch, hp: HParams, key):
        obs, next_obs = batch["obs"], batch["next_obs"]
        variables = {"params": params, "spectral": spectral}
        if config.world_model:
            out, mutated = agent.apply(
                variables,
                obs,
                batch["action"],
                next_obs,
                key,
                method=Agent.with_world_model,
                mutable=["spectral"],
            )
            reward_pred, next_latent_pred, next_latent = out.reward_pred, out.next_latent_pred, out.next_latent
            logits, value = out.logits, out.value
            spectral = mutated.get("spectral", spectral)
            penalty = 0.0
            if config.gradient_penalty:
                with jax.named_scope("gradient_penalty"):
                    penalty = gradient_penalty(params, out.latent, batch["action"])
        else:
            logits, value = agent.apply(variables, obs)
            reward_pred, next_latent_pred = batch["reward"], jnp.zeros((obs.shape[0], 1))
            next_latent = next_latent_pred
            penalty = 0.0
        inputs = objectives.LossInputs(
            log_probs=objectives.masked_log_softmax(logits, batch["action_mask"]),
            value=value,
            reward_pred=reward_pred,
            next_latent_pred=next_latent_pred,
            next_latent=next_latent,
            action=batch["action"],
            old_log_prob=batch["log_prob"],
            advantages=batch["advantages"],
            returns=batch["returns"],
            reward=batch["reward"],
            transition_valid=batch["transition_valid"],
            gradient_penalty=penalty,
            old_value=batch["value"] if config.clip_value_loss else None,
        )
        with jax.named_scope("losses"):
            terms = objectives.loss(config.algo, inputs, hp, config.transition_reduction, config.norm_adv)
        return terms.total, (terms, spectral)

    grad_fn = jax.value_and_grad(minibatch_loss, has_aux=True)

    def gradient_step(params, spectral, adam_state, minibatch, hp: HParams, key, learning_rate):
        """One minibatch's loss gradient, clipped, and Adam's step: (params, spectral, adam_state, terms)."""
        (_, (terms, new_spectral)), grads = grad_fn(params, spectral, minibatch, hp, key)
        with jax.named_scope("optimizer"):
            grads = _clip_by_global_norm(grads, hp.max_grad_norm)
            updates, new_adam = adam.update(grads, adam_state)
            new_params = optax.apply_updates(params, jax.tree.map(lambda u: -learning_rate * u, updates))
        return new_params, new_spectral, new_adam, terms

    def flat_batch(traj: Transition, adv, returns):
        """The rollout as one batch of samples [batch_size, ...], the update's input."""
        ts = traj.timestep
        batch = {
            "obs": traj.obs,
            "next_obs": ts.next_obs,
            "action": traj.action,
            "action_mask": traj.action_mask,
            "log_prob": traj.log_prob,
            "advantages": adv,
            "returns": returns,
            **({"value": traj.value} if config.clip_value_loss else {}),  # the clipped value loss's anchor
            "reward": ts.reward,
            "transition_valid": ts.transition_valid,
        }
        return jax.tree.map(lambda x: x.reshape((config.batch_size,) + x.shape[2:]), batch)

    def learning_rate_at(state: RunState, hp: HParams):
        if config.anneal_lr:
            return hp.learning_rate * (1.0 - state.iteration / config.num_iterations)
        return hp.learning_rate

    def update(state: RunState, traj: Transition, adv, returns, hp: HParams):
        batch = flat_batch(traj, adv, returns)
        learning_rate = learning_rate_at(state, hp)

        def sgd_step(carry, minibatch):
            params, spectral, adam_state, key, stopped = carry
            key, sample_key = jax.random.split(key)
            new_params, new_spectral, new_adam, terms = gradient_step(
                params, spectral, adam_state, minibatch, hp, sample_key, learning_rate
            )
            if config.early_stop:  # after the target KL was passed, the remaining steps leave everything as it is
                keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(stopped, o, n), new, old)  # noqa: E731
                new_params, new_spectral, new_adam = (
                    keep(new_params, params),
                    keep(new_spectral, spectral),
                    keep(new_adam, adam_state),
                )
            return (new_params, new_spectral, new_adam, key, stopped), terms

        def epoch(carry, _):
            params, spectral, adam_state, key, stopped = carry
            key, perm_key = jax.random.split(key)
            perm = jax.random.permutation(perm_key, config.batch_size)
            minibatches = jax.tree.map(
                lambda x: x[perm].reshape((config.num_minibatches, config.minibatch_size) + x.shape[1:]), batch
            )
            carry, terms = jax.lax.scan(sgd_step, (params, spectral, adam_state, key, stopped), minibatches)
            applied = jnp.logical_not(stopped)
            # CleanRL's rule: stop once the epoch's last minibatch's approximate KL exceeds the target
            stopped = stopped | (terms.approx_kl[-1] > config.target_kl) if config.early_stop else stopped
            return carry[:4] + (stopped,), (terms, applied)

        carry = (state.params, state.spectral, state.adam_state, state.key, jnp.bool_(False))
        (params, spectral, adam_state, key, _), (terms, applied) = jax.lax.scan(
            epoch, carry, None, config.update_epochs
        )
        state = state._replace(params=params, spectral=spectral, adam_state=adam_state, key=key)
        return state, terms, learning_rate, jnp.sum(applied.astype(jnp.float32))

    # ---- probe: exact diagnostics of the updated network, for envs with a known model ---------------
    def probe(state: RunState) -> dict[str, jax.Array]:
        if env.probe is None:
            return {}
        variables = {"params": state.params, "spectral": state.spectral}
        action_probs = lambda obs: jax.nn.softmax(agent.apply(variables, obs)[0])  # noqa: E731
        encode = lambda obs: agent.apply(variables, obs, method=Agent.encode)  # noqa: E731
        return env.probe(action_probs, encode)

    # ---- one iteration -----------------------------------------------------------------------------
    def iteration(state: RunState, hp: HParams):
        state, traj = rollout(state)
        adv, returns = advantages(state, traj, hp)
        state, terms, learning_rate, epochs = update(state, traj, adv, returns, hp)
        state = state._replace(iteration=state.iteration + 1)
        return state, {
            **_iteration_metrics(traj.timestep, terms, learning_rate),
            "update_epochs_run": epochs,
            **probe(state),
        }

    def train_chunk(state: RunState, hp: HParams, num_iterations: int):
        return jax.lax.scan(lambda s, _: iteration(s, hp), state, None, num_iterations)

    def train(key, hp: HParams):
        return train_chunk(init_run(key, hp), hp, config.num_iterations)

    # ---- the iteration's pieces outside their loops, for counting work ----------------------------
    def act_piece(state: RunState):
        variables = {"params": state.params, "spectral": state.spectral}
        return act(agent, variables, state.obs, state.action_mask, state.key)

    def gradient_step_piece(state: RunState, traj: Transition, adv, returns, hp: HParams):
        minibatch = jax.tree.map(lambda x: x[: config.minibatch_size], flat_batch(traj, adv, returns))
        params, spectral, adam_state, _ = gradient_step(
            state.params, state.spectral, state.adam_state, minibatch, hp, state.key, learning_rate_at(state, hp)
        )
        return state._replace(params=params, spectral=spectral, adam_state=adam_state)

    pieces = IterationPieces(
        rollout,
        act_piece,
        advantages,
        gradient_step_piece,
        {"act": config.num_steps, "advantages": 1, "gradient_step": config.update_epochs * config.num_minibatches},
    )
    return RunProgram(config, agent, init_run, train_chunk, train, pieces)


def _clip_by_global_norm(grads, max_norm):
    norm = optax.tree.norm(grads)
    scale = jnp.minimum(1.0, max_norm / (norm + 1e-12))
    return jax.tree.map(lambda g: g * scale, grads)


def _iteration_metrics(ts: Timestep, terms: objectives.LossTerms, learning_rate) -> dict[str, jax.Array]:
    done = ts.episode_done.astype(jnp.float32)
    return {
        "episode_return_sum": jnp.sum(ts.episode_return * done),
        "episode_length_sum": jnp.sum(ts.episode_length * done),
        "episode_count": jnp.sum(done),
        "policy_loss": terms.policy_loss.mean(),
        "value_loss": terms.value_loss.mean(),
        "entropy": terms.entropy.mean(),
        "reward_loss": terms.reward_loss.mean(),
        "transition_loss": terms.transition_loss.mean(),
        "gradient_penalty": terms.gradient_penalty.mean(),
        "approx_kl": terms.approx_kl.mean(),
        "clip_fraction": terms.clip_fraction.mean(),
        "ratio_outside": terms.ratio_outside.mean(),
        "ratio_min": terms.ratio_min.min(),
        "ratio_max": terms.ratio_max.max(),
        "advantage_abs": terms.advantage_abs.mean(),
        "world_model_share": terms.world_model_share.mean(),
        "learning_rate": learning_rate,
        "total_loss": terms.total.mean(),
    }
