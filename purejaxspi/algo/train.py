"""make_train(config, env): one run's whole training program as pure, jittable functions.

One iteration reads top to bottom: `rollout -> advantages -> ppo.update`, and one
loop (`train_steps`) runs iterations in chunks. These functions take one run; `scale.mapping` maps them
over the run axis (seeds x hyperparameter settings) and `scale.sharding` over devices. Users who want
to `jax.vmap` or `jax.jit` them themselves on a pure-JAX env can take them as they are.
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
    """One run's static parts: the config, the env batch, the network and what the update reads."""

    config: Config
    env: BatchedEnv
    agent: Agent
    update_setup: ppo.UpdateSetup


def make_learner(config: Config, env: BatchedEnv) -> Learner:
    spec = env.spec
    agent = Agent(spec.family, spec.num_actions, config.network, config.world_model)
    placement = PLACEMENTS.get(config.algo, "none")
    return Learner(config, env, agent, ppo.UpdateSetup(config, agent, placement, optax.scale_by_adam(eps=1e-5)))


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
    adam_state = learner.update_setup.adam_moments.init(params)
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


def successor_values(learner: Learner, state: RunState, traj: Transition) -> jax.Array:
    """V(s') of each transition's true successor [T, N]. The rollout holds V of every next observation,
    which is the true successor except where an auto-reset env ended its episode: a terminal needs no
    V(s') (no bootstrap), and a truncation bootstraps from V of its final frame, computed for those alone."""
    agent, variables, spec = learner.agent, variables_of(state), learner.env.spec
    _, last = policy_value(agent, variables, state.obs)
    following = jnp.concatenate([traj.value[1:], last[None]])
    if spec.resets_late or learner.config.ppo.truncation == "terminate":
        return following
    ts = traj.timestep
    num_steps, num_envs = ts.reward.shape
    frames = ts.next_obs.reshape((num_steps * num_envs,) + ts.next_obs.shape[2:])
    if spec.time_limit is None:
        _, final = policy_value(agent, variables, frames)
    else:
        # at most one truncation per env in every `time_limit` steps
        most = num_envs * -(-num_steps // spec.time_limit)
        (index,) = jnp.nonzero(ts.truncated.reshape(-1), size=most, fill_value=0)
        _, values = policy_value(agent, variables, frames[index])
        final = jnp.zeros((num_steps * num_envs,), values.dtype).at[index].set(values)
    return jnp.where(ts.truncated, final.reshape(num_steps, num_envs), following)


def advantages(learner: Learner, state: RunState, traj: Transition, hp: HParams):
    """GAE with V(s') of each transition's true successor: (advantages, returns) [T, N]. A time limit
    bootstraps from it or, under the `terminate` rule, does not (PPOConfig.truncation)."""
    ts = traj.timestep
    # the learning episode's end cuts the trace (with episodic lives, Atari's life loss too)
    done = jnp.logical_or(ts.terminated, ts.truncated)
    no_bootstrap = done if learner.config.ppo.truncation == "terminate" else ts.terminated
    return objectives.gae(
        ts.reward,
        traj.value,
        successor_values(learner, state, traj),
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
    batch = flat_batch(learner, traj, adv, returns)
    state, terms, learning_rate, epochs = ppo.update(learner.update_setup, state, batch, hp)
    state = state._replace(iteration=state.iteration + 1)
    metrics = iteration_metrics(traj.timestep, terms, learning_rate, hp)
    return state, {**metrics, "update_epochs_run": epochs, **probe(learner, state)}


def train_steps(iterate: Callable, state, hp, count, capacity: int):
    """The one loop: `count` iterations of `iterate(state, hp) -> (state, metrics)`, one run's `iteration`
    or a grid's mapped over its runs (`scale.mapping`), `count` traced (at most `capacity`) so one
    executable serves every chunk length and the host sizes each chunk by time without a compile.
    Returns (state, metrics {name: [capacity]}, a grid's [R, capacity]), the rows from `count` on zeros.

    The loop runs outside the mapping over runs: a while loop inside a vmap cannot hold a host env's
    ordered callbacks (envpool's Python interface).

    The iteration is traced once: jit keeps the trace that reads the metrics' shapes and the loop's
    body calls it again with the same shapes."""
    iterate = jax.jit(iterate)
    shapes = jax.eval_shape(iterate, state, hp)[1]
    rows = jax.tree.map(lambda m: jnp.zeros((capacity,) + m.shape, m.dtype), shapes)

    def body(i, carry):
        state, rows = carry
        state, metrics = iterate(state, hp)
        return state, jax.tree.map(lambda r, m: r.at[i].set(m), rows, metrics)

    state, rows = jax.lax.fori_loop(0, count, body, (state, rows))
    return state, jax.tree.map(lambda r: jnp.moveaxis(r, 0, -1), rows)


def iteration_metrics(ts: Timestep, terms: objectives.LossTerms, learning_rate, hp: HParams) -> dict[str, jax.Array]:
    done = ts.episode_done.astype(jnp.float32)
    ratio_max = terms.ratio_max.max()
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
        "ratio_max": ratio_max,
        "spi_condition": objectives.spi_condition(ratio_max, hp.gamma),
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
    up = learner.update_setup
    minibatch = jax.tree.map(lambda x: x[: up.minibatch_size], flat_batch(learner, traj, adv, returns))
    return ppo.gradient_step(up, state, minibatch, hp, ppo.learning_rate_at(up, state.iteration, hp))[0]


class RunProgram(NamedTuple):
    """A training program as pure functions, not jitted: one run's from `make_train`; over a grid's run
    axis once mapped (`scale.mapping.map_runs`) and over devices once sharded (`scale.sharding.shard`),
    each step keeping these fields.

    init(key, hp) -> RunState
    iteration(state, hp) -> (state, metrics {name: scalar}): rollout, GAE, PPO's update
    steps(state, hp, count, capacity) -> (state, metrics {name: [capacity]}): `count` iterations in the
        one loop (`train_steps`), the rows from `count` on zeros; `count` may be traced
    train(key, hp) -> (state, metrics {name: [config.num_iterations]}): the whole run from its key
    pieces: one run's iteration pieces outside their loops, for counting its work (`analysis.work`)
    """

    config: Config
    agent: Agent
    init: Callable
    iteration: Callable
    steps: Callable
    pieces: IterationPieces

    def train(self, key, hp):
        count = jnp.int32(self.config.num_iterations)
        return self.steps(self.init(key, hp), hp, count, self.config.num_iterations)


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
    one_iteration = functools.partial(iteration, learner)
    return RunProgram(
        config,
        learner.agent,
        functools.partial(init_run, learner),
        one_iteration,
        functools.partial(train_steps, one_iteration),
        pieces,
    )
