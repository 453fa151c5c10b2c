"""make_train(config, env): the whole training iteration as one pure, jittable function.

One iteration reads top to bottom: `rollout -> advantages -> update`. Iterations are scanned in
chunks, and the chunk is mapped once over the run axis (seeds x hyperparameter settings): by vmap, or
where that is slower (`resolve_run_mapping`), by lax.map; the host sees the program only between chunks.
With several devices `sharding.shard_trainer` runs these same functions on each device's slice of runs.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from purejaxspi import objectives
from purejaxspi.config import Config, HParams
from purejaxspi.envs.base import BatchedEnv, Timestep
from purejaxspi.networks import Agent


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


class Trainer(NamedTuple):
    """The pure functions of one training program (mapped over runs, not yet jitted).

    init(keys [R], hparams [R]) -> RunState [R]
    train_chunk(state [R], hparams [R], num_iterations) -> (state [R], metrics {name: [R, num_iterations]})
    train(keys [R], hparams [R]) -> (state [R], metrics {name: [R, config.num_iterations]})
    """

    config: Config
    agent: Agent
    init: Callable
    train_chunk: Callable
    train: Callable


def make_train(config: Config, env: BatchedEnv, run_mapping: str = "auto") -> Trainer:
    """The training program of `config` on `env`; `run_mapping` (RUN_MAPPINGS) only changes its speed."""
    spec = env.spec
    agent = Agent(
        family=spec.family,
        num_actions=spec.num_actions,
        world_model=config.world_model,
        density=config.density,
        num_components=config.num_components,
        lipschitz=config.lipschitz,
        spectral_norm=config.spectral_norm,
    )
    adam = optax.scale_by_adam(eps=1e-5)

    def policy(params, spectral, obs, action_mask):
        logits, value = agent.apply({"params": params, "spectral": spectral}, obs)
        return objectives.masked_log_softmax(logits, action_mask), value

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
            log_probs, value = policy(state.params, state.spectral, obs, action_mask)
            action = jax.random.categorical(action_key, log_probs)
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
    def minibatch_loss(params, spectral, batch, hp: HParams, key):
        obs, next_obs = batch["obs"], batch["next_obs"]
        variables = {"params": params, "spectral": spectral}
        if config.world_model:
            out, mutated = agent.apply(
                variables, obs, batch["action"], next_obs, key,
                method=Agent.with_world_model, mutable=["spectral"],
            )
            reward_pred, next_latent_pred, next_latent = out.reward_pred, out.next_latent_pred, out.next_latent
            logits, value = out.logits, out.value
            spectral = mutated["spectral"]
        else:
            logits, value = agent.apply(variables, obs)
            reward_pred, next_latent_pred = batch["reward"], jnp.zeros((obs.shape[0], 1))
            next_latent = next_latent_pred
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
        )
        terms = objectives.loss(config.algo, inputs, hp)
        return terms.total, (terms, spectral)

    def update(state: RunState, traj: Transition, adv, returns, hp: HParams):
        ts = traj.timestep
        batch = {
            "obs": traj.obs,
            "next_obs": ts.next_obs,
            "action": traj.action,
            "action_mask": traj.action_mask,
            "log_prob": traj.log_prob,
            "advantages": adv,
            "returns": returns,
            "reward": ts.reward,
            "transition_valid": ts.transition_valid,
        }
        batch = jax.tree.map(lambda x: x.reshape((config.batch_size,) + x.shape[2:]), batch)
        learning_rate = hp.learning_rate * (1.0 - state.iteration / config.num_iterations)
        grad_fn = jax.value_and_grad(minibatch_loss, has_aux=True)

        def sgd_step(carry, minibatch):
            params, spectral, adam_state, key = carry
            key, sample_key = jax.random.split(key)
            (_, (terms, spectral)), grads = grad_fn(params, spectral, minibatch, hp, sample_key)
            grads = _clip_by_global_norm(grads, hp.max_grad_norm)
            updates, adam_state = adam.update(grads, adam_state)
            params = optax.apply_updates(params, jax.tree.map(lambda u: -learning_rate * u, updates))
            return (params, spectral, adam_state, key), terms

        def epoch(carry, _):
            params, spectral, adam_state, key = carry
            key, perm_key = jax.random.split(key)
            perm = jax.random.permutation(perm_key, config.batch_size)
            minibatches = jax.tree.map(
                lambda x: x[perm].reshape((config.num_minibatches, config.minibatch_size) + x.shape[1:]), batch
            )
            return jax.lax.scan(sgd_step, (params, spectral, adam_state, key), minibatches)

        carry = (state.params, state.spectral, state.adam_state, state.key)
        (params, spectral, adam_state, key), terms = jax.lax.scan(epoch, carry, None, config.update_epochs)
        state = state._replace(params=params, spectral=spectral, adam_state=adam_state, key=key)
        return state, terms, learning_rate

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
        state, terms, learning_rate = update(state, traj, adv, returns, hp)
        state = state._replace(iteration=state.iteration + 1)
        return state, {**_iteration_metrics(traj.timestep, terms, learning_rate), **probe(state)}

    def train_chunk_run(state: RunState, hp: HParams, num_iterations: int):
        return jax.lax.scan(lambda s, _: iteration(s, hp), state, None, num_iterations)

    init = jax.vmap(init_run)
    mapping = resolve_run_mapping(run_mapping, env.spec.backend, env.spec.family)

    def train_chunk(states, hparams, num_iterations: int):
        return map_over_runs(lambda s, h: train_chunk_run(s, h, num_iterations), states, hparams, mapping)

    def train(keys, hparams):
        return train_chunk(init(keys, hparams), hparams, config.num_iterations)

    return Trainer(config, agent, init, train_chunk, train)


# How train_chunk maps one run's program over the run axis: "vmap" batches every op over runs;
# "map" runs them one after another inside the one program (lax.map); "chunked" vmaps groups of
# RUN_CHUNK runs, one group after another. All give the same results up to float rounding.
RUN_MAPPINGS = ("auto", "vmap", "map", "chunked")
RUN_CHUNK = 4


def resolve_run_mapping(run_mapping: str, env_backend: str, family: str, platform: str | None = None) -> str:
    """The concrete mapping for "auto": the one measured fastest for the platform and observation family.

    envpool (Atari) always takes "vmap": its custom_vmap rule steps one pool for the whole grid (or
    for a device's slice of it) and must see every run batched at once.
    """
    if run_mapping not in RUN_MAPPINGS:
        raise ValueError(f"unknown run mapping {run_mapping!r}; choose one of {', '.join(RUN_MAPPINGS)}")
    if env_backend == "envpool":
        if run_mapping not in ("auto", "vmap"):
            raise ValueError(f"Atari (envpool) runs need run mapping vmap, not {run_mapping!r}")
        return "vmap"
    if run_mapping != "auto":
        return run_mapping
    platform = platform or jax.default_backend()
    return AUTO_RUN_MAPPING.get((platform, family), "vmap")


# Measured on the 2-core CPU with 16 runs (benchmarks/README.md): vmap wins for the small MLPs of
# vector envs, but batching the conv trunk and world model over runs loses to sequential runs for
# image envs, where lax.map matches them. Accelerators batch runs best with plain vmap.
AUTO_RUN_MAPPING = {("cpu", "vector"): "vmap", ("cpu", "minatar"): "map"}


def map_over_runs(fn: Callable, states, hparams, mapping: str):
    """fn(state, hp) applied to every run of states [R], hparams [R] by `mapping` ("vmap", "map", "chunked")."""
    if mapping == "vmap":
        return jax.vmap(fn)(states, hparams)
    batch_size = RUN_CHUNK if mapping == "chunked" else None
    return jax.lax.map(lambda run: fn(*run), (states, hparams), batch_size=batch_size)


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
        "approx_kl": terms.approx_kl.mean(),
        "clip_fraction": terms.clip_fraction.mean(),
        "ratio_outside": terms.ratio_outside.mean(),
        "ratio_min": terms.ratio_min.min(),
        "ratio_max": terms.ratio_max.max(),
        "learning_rate": learning_rate,
        "total_loss": terms.total.mean(),
    }
