"""ConfoundingGrid-v0: the exact tables reproduce the paper's values and the stepping env obeys them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import preset_values, run_steps

from purejaxspi.envs import check_env_id, env_ids_by_backend, family_of, make_env
from purejaxspi.envs import confounding as cg

T = cg.tables()
S = T["P"].shape[0]


def deterministic_policy(up_at=()):
    """RIGHT everywhere except UP at the given states."""
    pi = np.zeros((S, cg.NUM_ACTIONS))
    pi[:, cg.RIGHT] = 1.0
    for s in up_at:
        pi[s] = np.eye(cg.NUM_ACTIONS)[cg.UP]
    return pi


def start_value(pi):
    return float(cg.policy_value(T["P"], T["R"], T["terminal"], pi, cg.GAMMA)[T["start"]])


def test_layout_and_tables_shape():
    assert S == 16
    assert T["P"].shape == (16, 4, 16) and T["R"].shape == (16, 4)
    np.testing.assert_allclose(T["P"].sum(axis=2), 1.0, atol=1e-12)
    assert tuple(T["coords"][T["start"]]) == (2, 0)
    assert tuple(T["coords"][T["top_star"]]) == (1, 5)
    assert tuple(T["coords"][T["bottom_star"]]) == (3, 5)
    assert T["terminal"].sum() == 4  # G, F and both W cells


@pytest.mark.parametrize(
    "up_at, expected",
    [((), 4.8035), (("top_star", "bottom_star"), -1.0880), (("top_star",), 8.0103)],
)
def test_exact_values_match_the_paper(up_at, expected):
    pi = deterministic_policy([T[name] for name in up_at])
    assert start_value(pi) == pytest.approx(expected, abs=1e-3)


def test_policy_value_is_jittable():
    pi = deterministic_policy([T["top_star"]])
    v = jax.jit(cg.policy_value, static_argnums=4)(T["P"], T["R"], T["terminal"], pi, cg.GAMMA)
    assert float(v[T["start"]]) == pytest.approx(8.0103, abs=1e-3)


def test_registry():
    assert env_ids_by_backend()["grid"] == ("ConfoundingGrid-v0", "ConfoundingGrid-v0-84", "ConfoundingGrid-v0-marker")
    for env_id in cg.CONFOUNDING_IDS:
        assert check_env_id(env_id) == "grid"
        assert family_of(env_id) == make_env(env_id, 1).spec.family
    # compact frames take the MinAtar trunk, the paper's 84 x 84 frames the Nature CNN
    assert [family_of(i) for i in cg.CONFOUNDING_IDS] == ["minatar", "atari", "minatar"]


def step_from(env, s, a, key):
    """One batched step of every env from state `s` with action `a`."""
    n = env.num_envs
    state, _, _ = env.reset(jax.random.PRNGKey(0))
    env_state = (jnp.full((n,), s, jnp.int32), jnp.zeros((n,), jnp.int32))
    state = state._replace(env_state=env_state)
    return env.step(state, jnp.full((n,), a, jnp.int32), key)


def test_stepping_agrees_with_tables():
    env = make_env("ConfoundingGrid-v0", 512)
    step = jax.jit(step_from, static_argnums=0)
    obs_all = np.asarray(cg.observations())
    bare = np.asarray(cg.render((0, 0), True, cg.RENDER["ConfoundingGrid-v0"]))
    for s in range(S):
        if T["terminal"][s]:
            continue
        for a in range(cg.NUM_ACTIONS):
            _, ts = step(env, s, a, jax.random.PRNGKey(10 * s + a))
            # the true successor is identified by its rendered frame (one frame per state)
            support = set(np.flatnonzero(T["P"][s, a] > 0))
            nxt = np.asarray(ts.next_obs)
            if all(T["terminal"][t] for t in support):
                # a step that ends the episode shows the grid without the agent
                np.testing.assert_array_equal(nxt, np.broadcast_to(bare, nxt.shape))
                assert bool(ts.terminated.all())
                np.testing.assert_allclose(np.asarray(ts.reward), T["R"][s, a], rtol=1e-6)
                continue
            dist = np.abs(nxt[:, None] - obs_all[None]).max(axis=(2, 3, 4))
            idx = dist.argmin(axis=1)
            assert dist.min(axis=1).max() < 1e-6
            assert set(idx) == support  # with 512 samples both @ successors appear
            np.testing.assert_allclose(np.asarray(ts.reward), T["R"][s, a], rtol=1e-6)
            np.testing.assert_array_equal(np.asarray(ts.terminated), T["terminal"][idx])
            if len(support) == 2:  # the hazard's epsilon split
                top = (idx == top_successor(support)).mean()
                assert abs(top - (1 - cg.EPSILON)) < 0.06


def top_successor(support):
    """The top-corridor successor among the hazard's two."""
    return next(i for i in support if T["coords"][i][0] == 1)


def nearest_index(src: int, dst: int) -> np.ndarray:
    """Source row (or column) of each output pixel of a nearest-neighbour resize: floor((i + 1/2) src / dst)."""
    return np.floor((np.arange(dst) + 0.5) * src / dst).astype(int)


def frame_from_rules(state: int, size: int | None, cell: int = 1) -> np.ndarray:
    """The reference's frame of a state, computed from its rules in numpy: grey levels per cell type,
    the agent's whole cell at 255, `cell` pixels a cell, then a nearest resize to size x size."""
    levels = {"#": 50, ">": 100, "*": 100, "@": 180, "I": 120, "G": 220, "W": 200, "F": 220}
    grid = np.array([[levels[ch] for ch in row] for row in cg.layout()], np.float64)
    r, c = T["coords"][state]
    grid[r, c] = 255
    grid = np.kron(grid, np.ones((cell, cell)))
    if size is not None:
        grid = grid[nearest_index(grid.shape[0], size)][:, nearest_index(grid.shape[1], size)]
    return grid


@pytest.mark.parametrize(
    "env_id, size, cell, unit",
    [
        ("ConfoundingGrid-v0-84", 84, 1, 1.0),
        ("ConfoundingGrid-v0", None, 2, 1 / 255),
    ],
)
def test_frames_follow_the_reference_rules(env_id, size, cell, unit):
    obs = np.asarray(cg.observations(env_id))[..., 0]
    for s in range(S):
        np.testing.assert_allclose(obs[s], frame_from_rules(s, size, cell) * unit, rtol=1e-6)
    # the two star frames differ only in the agent's block: 255 where the agent is, 100 (the
    # corridor's and star's level) under the other star
    top, bottom = obs[T["top_star"]] / unit, obs[T["bottom_star"]] / unit
    differ = np.abs(top - bottom) > 1e-3
    assert differ.any()
    np.testing.assert_allclose(np.sort(np.unique(np.round(np.stack([top[differ], bottom[differ]])))), [100, 255])
    rows = np.flatnonzero(differ.any(axis=1))
    expected_rows = set(np.flatnonzero(np.isin(nearest_index(5 * cell, size or 5 * cell) // cell, [1, 3])))
    assert set(rows) == expected_rows


def test_marker_rendering_keeps_the_earlier_look():
    obs = np.asarray(cg.observations("ConfoundingGrid-v0-marker"))[..., 0] * 255
    top = obs[T["top_star"]]
    assert round(top[3, 11]) == 255 and round(top[2, 10]) == cg.MARKER_GREY["*"]  # one pixel in a visible cell
    assert cg.MARKER_GREY["*"] != cg.MARKER_GREY[">"]


def test_obs_shapes():
    assert make_env("ConfoundingGrid-v0", 2).spec.obs_shape == (10, 16, 1)
    assert make_env("ConfoundingGrid-v0-84", 2).spec.obs_shape == (84, 84, 1)
    assert cg.observations("ConfoundingGrid-v0-84").shape == (16, 84, 84, 1)
    # every observation has exactly one agent cell (2 x 2 pixels) and they are all distinct
    obs = np.asarray(cg.observations()).reshape(S, -1)
    assert (obs == 1.0).sum(axis=1).tolist() == [4] * S
    assert len({o.tobytes() for o in obs}) == S
    big = np.asarray(cg.observations("ConfoundingGrid-v0-84")).reshape(S, -1)
    assert np.all((big == 255.0).sum(axis=1) >= 1)  # upscaling keeps the agent visible; Nature CNN scale
    assert len({o.tobytes() for o in big}) == S


def test_time_limit_truncates():
    env = make_env("ConfoundingGrid-v0", 4)
    step = jax.jit(env.step)
    state, obs, _ = env.reset(jax.random.PRNGKey(0))
    left = jnp.full((4,), cg.LEFT, jnp.int32)  # self-loop at the start forever
    key = jax.random.PRNGKey(1)
    for t in range(cg.TIME_LIMIT):
        key, sub = jax.random.split(key)
        state, ts = step(state, left, sub)
        last = t == cg.TIME_LIMIT - 1
        assert bool(ts.truncated.all()) == last and not bool(ts.terminated.any())
    assert np.all(np.asarray(ts.episode_length) == cg.TIME_LIMIT)
    assert np.all(np.asarray(state.env_state[1]) == 0)  # auto-reset after truncation
    # the truncated step's successor is the frame the agent stands in (its cell painted), not the
    # agentless "done" frame: GAE bootstraps V from it
    start = cg.tables()["coords"][cg.tables()["start"]]
    expected = np.asarray(cg.render(start, False, cg.RENDER["ConfoundingGrid-v0"]))
    assert np.isclose(expected.max(), cg.AGENT_GREY * cg.OBS_SCALE["minatar"])  # the agent is drawn
    for frame in np.asarray(ts.next_obs):
        np.testing.assert_array_equal(frame, expected)


def test_make_env_jit_step_runs_an_episode():
    env = make_env("ConfoundingGrid-v0", 4)
    state, obs, mask = env.reset(jax.random.PRNGKey(0))
    assert obs.shape == (4, 10, 16, 1) and mask.shape == (4, 4) and bool(mask.all())
    step = jax.jit(env.step)
    right = jnp.full((4,), cg.RIGHT, jnp.int32)
    returns = []
    key = jax.random.PRNGKey(2)
    for _ in range(7):
        key, sub = jax.random.split(key)
        state, ts = step(state, right, sub)
        returns.append(ts)
    # always RIGHT: I, @, four corridor cells, star -> W on the seventh step with return 5
    assert bool(returns[-1].terminated.all())
    np.testing.assert_allclose(np.asarray(returns[-1].episode_return), 5.0)


def test_probe_scores_hand_policies_exactly():
    """The in-program probe: V(I) of a policy given as a function of observations, and star distance."""
    obs = np.asarray(cg.observations())
    up_at_top = deterministic_policy([T["top_star"]])
    lookup = {o.tobytes(): s for s, o in enumerate(obs)}
    by_obs = lambda batch: jnp.asarray([up_at_top[lookup[np.asarray(o).tobytes()]] for o in batch])  # noqa: E731
    identity = lambda batch: batch  # noqa: E731
    out = cg.make_probe("ConfoundingGrid-v0")(by_obs, identity)
    assert float(out["init_value"]) == pytest.approx(8.0103, abs=1e-3)
    top, bottom = obs[T["top_star"]], obs[T["bottom_star"]]
    assert float(out["repr_dist"]) == pytest.approx(np.mean((top - bottom) ** 2), rel=1e-6)


@pytest.mark.slow
def test_training_reports_the_exact_value_of_the_updated_network():
    from purejaxspi.algo.config import Config
    from purejaxspi.algo.networks import Agent
    from purejaxspi.scale.grid import grid_from_values
    from purejaxspi.scale.mapping import make_trainer

    config = Config.of(
        env_id="ConfoundingGrid-v0",
        algo="deepspi",
        num_envs=4,
        num_steps=16,
        num_minibatches=2,
        update_epochs=1,
        total_timesteps=128,
        density="deterministic",
    )
    trainer = make_trainer(config, make_env(config.env_id, config.env.num_envs))
    grid = grid_from_values(preset_values("minatar"), 3, 2)
    state = jax.jit(trainer.init)(grid.keys(), grid.hparams())
    state, metrics = run_steps(trainer, state, grid.hparams(), 2)
    obs = cg.observations()
    for run in range(2):
        variables = jax.tree.map(lambda x, run=run: x[run], {"params": state.params, "spectral": state.spectral})
        logits, _ = trainer.agent.apply(variables, obs)
        pi = np.asarray(jax.nn.softmax(logits), np.float64)
        # reference: the same linear system solved in float64 numpy
        P_pi = np.einsum("sa,sat->st", pi, T["P"]) * (1 - T["terminal"])[:, None]
        r_pi = (pi * T["R"]).sum(1) * (1 - T["terminal"])
        v = np.linalg.solve(np.eye(S) - cg.GAMMA * P_pi, r_pi)
        assert float(metrics["init_value"][run, -1]) == pytest.approx(v[T["start"]], rel=1e-4)
        z = np.asarray(
            trainer.agent.apply(variables, obs[jnp.array([T["top_star"], T["bottom_star"]])], method=Agent.encode)
        )
        assert float(metrics["repr_dist"][run, -1]) == pytest.approx(np.mean((z[0] - z[1]) ** 2), rel=1e-4)
    assert metrics["init_value"].shape == (2, 2)
