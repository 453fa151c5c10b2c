"""make_train(config, env): one run's whole training program as pure, jittable functions.

One iteration reads top to bottom: `rollout -> advantages -> learn` (PPO's update, algo.ppo).
Iterations are scanned in chunks. These functions take one run; `scale.mapping` maps them over the
run axis (seeds x hyperparameter settings) and `scale.sharding` over devices. Users who want to
`jax.vmap` or `jax.jit` them themselves on a pure-JAX env can take them as they are.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from purejaxspi.algo import objectives, ppo
from purejaxspi.algo.config import Config, HParams
from purejaxspi.algo.networks import Agent, policy_value
from purejaxspi.algo.world_model import PLACEMENTS
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


class Learner(NamedTuple):
    """One run's static parts: the config, the env batch, the network and the update."""

    config: Config
    env: BatchedEnv
    agent: Agent
    updater: ppo.Updater


def make_learner(config: Config, env: BatchedEnv) -> Learner:
    spec = env.spec
    agent = Agent(spec.family, spec.num_actions, config.network, config.world_model)
    updater = ppo.Updater(
        config.ppo,
        config.world_model,
        PLACEMENTS.get(config.algo, "advantage"),
        agent,
        optax.scale_by_adam(eps=1e-5),
        config.batch_size,
        config.num_iterations,
    )
    return Learner(config, env, agent, updater)


def variables_of(state: RunState) -> dict:
    return {"params": state.params, "spectral": state.spectral}


def act(agent: Agent, variables, obs, action_mask, key, greedy: bool = False):
    """The acting step, shared by training, evaluation and videos: the masked policy at `obs` [N, *obs],
    an action per env (sampled, or its argmax when `greedy`), and the value. Returns (action, log_probs, value)."""
    logits, value = policy_value(agent, variables, obs)
    log_probs = objectives.masked_log_softmax(logits, action_mask)
    action = jnp.argmax(log_probs, axis=-1) if greedy else jax.random.categorical(key, log_probs)
    return action, log_probs, value


def init_run(learner: Learner, key, hp: HParams) -> RunState:
    del hp
    net_key, env_key, sample_key, run_key = jax.random.split(key, 4)
    env_state, obs, action_mask = learner.env.reset(env_key)
    dummy_action = jnp.zeros((obs.shape[0],), jnp.int32)
    variables = learner.agent.init(net_key, obs, dummy_action, sample_key, method=Agent.init_all)
    params, spectral = variables["params"], variables.get("spectral", {})
    adam_state = learner.updater.adam.init(params)
    return RunState(params, spectral, adam_state, env_state, obs, action_mask, run_key, jnp.int32(0))


def rollout(learner: Learner, state: RunState) -> tuple[RunState, Transition]:
    """num_steps env steps of the current policy: the trajectory [T, N, ...]."""

    def env_step(carry, _):
        env_state, obs, action_mask, key = carry
        key, action_key, step_key = jax.random.split(key, 3)
        action, log_probs, value = act(learner.agent, variables_of(state), obs, action_mask, action_key)
        log_prob = jnp.take_along_axis(log_probs, action[:, None], axis=-1)[:, 0]
        env_state, timestep = learner.env.step(env_state, action, step_key)
        transition = Transition(obs, action_mask, action, log_prob, value, timestep)
        return (env_state, timestep.obs, timestep.action_mask, key), transition

    carry = (state.env_state, state.obs, state.action_mask, state.key)
    (env_state, obs, action_mask, key), traj = jax.lax.scan(env_step, carry, None, learner.config.ppo.num_steps)
    return state._replace(env_state=env_state, obs=obs, action_mask=action_mask, key=key), traj


def advantages(learner: Learner, state: RunState, traj: Transition, hp: HParams):
    """GAE with V(s') of each transition's true successor: (advantages, returns) [T, N]. A time limit
    bootstraps from it or, under the `terminate` rule, does not (PPOConfig.truncation)."""
    ts = traj.timestep
    flat_next = ts.next_obs.reshape((-1,) + ts.next_obs.shape[2:])
    _, next_values = policy_value(learner.agent, variables_of(state), flat_next)
    next_values = next_values.reshape(ts.reward.shape)
    # the learning episode's end cuts the trace (with episodic lives, Atari's life loss too)
    done = jnp.logical_or(ts.terminated, ts.truncated)
    no_bootstrap = done if learner.config.ppo.truncation == "terminate" else ts.terminated
    return objectives.gae(
        ts.reward,
        traj.value,
        next_values,
        no_bootstrap.astype(jnp.float32),
        done.astype(jnp.float32),
        hp.gamma,
        hp.gae_lambda,
    )


def flat_batch(learner: Learner, traj: Transition, adv, returns) -> dict:
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
        **({"value": traj.value} if learner.config.ppo.clip_value_loss else {}),  # the clipped value's anchor
        "reward": ts.reward,
        "transition_valid": ts.transition_valid,
    }
    return jax.tree.map(lambda x: x.reshape((learner.config.batch_size,) + x.shape[2:]), batch)


def learn(learner: Learner, state: RunState, traj: Transition, adv, returns, hp: HParams):
    """PPO's update on the rollout: (state, terms [epochs, minibatches], learning rate, epochs applied)."""
    up = learner.updater
    learning_rate = ppo.learning_rate_at(up, state.iteration, hp)
    batch = flat_batch(learner, traj, adv, returns)
    params, spectral, adam_state, key, terms, epochs = ppo.update(
        up, state.params, state.spectral, state.adam_state, state.key, batch, hp, learning_rate
    )
    state = state._replace(params=params, spectral=spectral, adam_state=adam_state, key=key)
    return state, terms, learning_rate, epochs


def probe(learner: Learner, state: RunState) -> dict[str, jax.Array]:
    """Exact diagnostics of the updated network, for envs with a known model."""
    if learner.env.probe is None:
        return {}
    variables, agent = variables_of(state), learner.agent

    def action_probs(obs):
        return jax.nn.softmax(policy_value(agent, variables, obs)[0])

    def encode(obs):
        return agent.apply(variables, obs, method=Agent.encode)

    return learner.env.probe(action_probs, encode)


def iteration(learner: Learner, state: RunState, hp: HParams):
    """One iteration: the rollout, its advantages, the update; returns (state, metrics {name: scalar})."""
    state, traj = rollout(learner, state)
    adv, returns = advantages(learner, state, traj, hp)
    state, terms, learning_rate, epochs = learn(learner, state, traj, adv, returns, hp)
    state = state._replace(iteration=state.iteration + 1)
    metrics = iteration_metrics(traj.timestep, terms, learning_rate)
    return state, {**metrics, "update_epochs_run": epochs, **probe(learner, state)}


def train_chunk(learner: Learner, state: RunState, hp: HParams, num_iterations: int):
    return jax.lax.scan(lambda s, _: iteration(learner, s, hp), state, None, num_iterations)


def train_steps(learner: Learner, state: RunState, hp: HParams, count, capacity: int):
    """`count` iterations (a traced integer, at most `capacity`): one executable for every chunk length,
    so the host sizes each chunk by time without a compile. Returns (state, metrics {name: [capacity]}),
    whose rows from `count` on are zeros."""
    shapes = jax.eval_shape(lambda s: iteration(learner, s, hp)[1], state)
    rows = jax.tree.map(lambda m: jnp.zeros((capacity,) + m.shape, m.dtype), shapes)

    def body(i, carry):
        state, rows = carry
        state, metrics = iteration(learner, state, hp)
        return state, jax.tree.map(lambda r, m: r.at[i].set(m), rows, metrics)

    return jax.lax.fori_loop(0, count, body, (state, rows))


def train(learner: Learner, key, hp: HParams):
    return train_chunk(learner, init_run(learner, key, hp), hp, learner.config.num_iterations)


def iteration_metrics(ts: Timestep, terms: objectives.LossTerms, learning_rate) -> dict[str, jax.Array]:
    done = ts.episode_done.astype(jnp.float32)
    return {
        "episode_return_sum": jnp.sum(ts.episode_return * done),
        "episode_length_sum": jnp.sum(ts.episode_length * done),
        "episode_count": jnp.sum(done),
        "policy_loss": terms.policy_loss.mean(),
        "value_loss": terms.value_loss.mean(),
        "entropy": terms.entropy.mean(),
        **{name: value.mean() for name, value in terms.world_model.items()},
        "approx_kl": terms.approx_kl.mean(),
        "clip_fraction": terms.clip_fraction.mean(),
        "ratio_outside": terms.ratio_outside.mean(),
        "ratio_min": terms.ratio_min.min(),
        "ratio_max": terms.ratio_max.max(),
        "advantage_abs": terms.advantage_abs.mean(),
        "learning_rate": learning_rate,
        "total_loss": terms.total.mean(),
    }


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


def act_piece(learner: Learner, state: RunState):
    return act(learner.agent, variables_of(state), state.obs, state.action_mask, state.key)


def gradient_step_piece(learner: Learner, state: RunState, traj: Transition, adv, returns, hp: HParams):
    up = learner.updater
    minibatch = jax.tree.map(lambda x: x[: up.minibatch_size], flat_batch(learner, traj, adv, returns))
    learning_rate = ppo.learning_rate_at(up, state.iteration, hp)
    params, spectral, adam_state, _ = ppo.gradient_step(
        up, state.params, state.spectral, state.adam_state, minibatch, hp, state.key, learning_rate
    )
    return state._replace(params=params, spectral=spectral, adam_state=adam_state)


class RunProgram(NamedTuple):
    """The pure functions of one run's training program (not mapped over runs, not jitted).

    init(key, hp) -> RunState
    train_chunk(state, hp, num_iterations) -> (state, metrics {name: [num_iterations]})
    train_steps(state, hp, count, capacity) -> (state, metrics {name: [capacity]}), `count` traced
    train(key, hp) -> (state, metrics {name: [config.num_iterations]})
    pieces: the iteration's pieces, for counting its work
    """

    config: Config
    agent: Agent
    init: Callable
    train_chunk: Callable
    train_steps: Callable
    train: Callable
    pieces: IterationPieces


def make_train(config: Config, env: BatchedEnv) -> RunProgram:
    """One run's training program of `config` on `env` (a batch of `config.env.num_envs` envs)."""
    learner = make_learner(config, env)
    ppo_config = config.ppo
    counts = {
        "act": ppo_config.num_steps,
        "advantages": 1,
        "gradient_step": ppo_config.update_epochs * ppo_config.num_minibatches,
    }
    pieces = IterationPieces(
        functools.partial(rollout, learner),
        functools.partial(act_piece, learner),
        functools.partial(advantages, learner),
        functools.partial(gradient_step_piece, learner),
        counts,
    )
    return RunProgram(
        config,
        learner.agent,
        functools.partial(init_run, learner),
        functools.partial(train_chunk, learner),
        functools.partial(train_steps, learner),
        functools.partial(train, learner),
        pieces,
    )
