"""The paper's confounding gridworld (`ConfoundingGrid-v0`) as a pure-JAX backend with exact tables.

Why it exists: it separates policies that are greedy about what they *see* from policies that are
right about what they *get*. The two star cells render identically (apart from where the agent is
drawn), and the goal G above the top star shares its grey level with the trap F above the bottom
star. UP pays a large bonus at the top star and a larger penalty at the bottom one, so the only
optimal policy goes UP at the top star and RIGHT at the bottom star; an agent that blurs the two
stars together is confounded by the hazard's epsilon split.

Because the MDP is tiny (16 non-wall states), `tables` gives its exact transition and reward
arrays and `policy_value` evaluates any tabular policy exactly with one linear solve, which is
jittable so a training program can score the network's policy on `observations()` of all states.

Layout for n_path = 5 (0 up, 1 down, 2 left, 3 right; G, W and F are terminal):

    row0: # # # # # G # #
    row1: # > > > > * W #
    row2: I @ # # # F # #
    row3: # > > > > * W #
    row4: # # # # # # # #
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from purejaxspi.envs.base import BatchedEnv, EnvSpec, make_batched_env

UP, DOWN, LEFT, RIGHT = 0, 1, 2, 3
NUM_ACTIONS = 4
N_PATH = 5
EPSILON = 0.2
GAMMA = 0.99
TIME_LIMIT = 200

# Grey levels (uint8 values) per cell type. G and F share one on purpose; the agent is brightest.
GREY = {"#": 0, ">": 60, "I": 80, "@": 110, "*": 150, "W": 190, "G": 225, "F": 225}
AGENT_GREY = 255

# Env id -> (pixels per cell, final square size or None, observation family). The compact one
# (10 x 16 frames, 2 x 2 pixels a cell, MinAtar trunk) keeps CPU training cheap; the -84 one is the
# paper's 84 x 84 frame through the Nature CNN, whose grey levels stay 0..255 as Atari frames do.
RENDER = {"ConfoundingGrid-v0": (2, None, "minatar"), "ConfoundingGrid-v0-84": (3, 84, "atari")}
# Observations are grey / 255 for the MinAtar trunk; the Nature CNN divides by 255 itself.
OBS_SCALE = {"minatar": 1.0 / 255.0, "atari": 1.0}
CONFOUNDING_IDS = tuple(RENDER)

_MOVES = {UP: (-1, 0), DOWN: (1, 0), LEFT: (0, -1), RIGHT: (0, 1)}


def layout(n_path: int = N_PATH) -> tuple[str, ...]:
    """The grid as rows of characters; the corridors hold n_path - 1 `>` cells before the star."""
    width = n_path + 3
    corridor = "#" + ">" * (n_path - 1) + "*W#"
    rows = (
        "#" * n_path + "G##",
        corridor,
        "I@" + "#" * (n_path - 2) + "F##",
        corridor,
        "#" * width,
    )
    assert all(len(r) == width for r in rows)
    return rows


def cells(n_path: int = N_PATH) -> list[tuple[int, int]]:
    """Non-wall cells in row-major order; a cell's position in this list is its state index."""
    return [(r, c) for r, row in enumerate(layout(n_path)) for c, ch in enumerate(row) if ch != "#"]


def tables(n_path: int = N_PATH, epsilon: float = EPSILON, gamma: float = GAMMA) -> dict:
    """Exact MDP arrays: P[s, a, s'], expected reward R[s, a], terminal[s], and named states.

    Returns a dict with keys P, R, terminal, start, top_star, bottom_star, coords ([S, 2] row, col).
    The star bonus n/gamma^n and penalty -(2 - eps) n / (eps gamma^n) depend on gamma, as in the paper.
    """
    grid = layout(n_path)
    coords = cells(n_path)
    index = {rc: i for i, rc in enumerate(coords)}
    num_states = len(coords)
    P = np.zeros((num_states, NUM_ACTIONS, num_states))
    R = np.zeros((num_states, NUM_ACTIONS))
    terminal = np.zeros(num_states, bool)
    top_star, bottom_star = index[(1, n_path)], index[(3, n_path)]
    bonus = n_path / gamma**n_path
    penalty = -(2.0 - epsilon) * n_path / (epsilon * gamma**n_path)

    for s, (r, c) in enumerate(coords):
        kind = grid[r][c]
        terminal[s] = kind in "GWF"
        for a in range(NUM_ACTIONS):
            P[s, a, s] = 1.0  # self-loop unless a rule below applies
            right = index.get((r, c + 1))
            if kind == "@":
                P[s, a, s] = 0.0
                P[s, a, index[(1, 1)]] += 1.0 - epsilon
                P[s, a, index[(3, 1)]] += epsilon
            elif a == RIGHT and kind in "I>*":
                P[s, a] = np.eye(num_states)[right]
                R[s, a] = 0.0 if kind == "I" else 1.0
            elif a == UP and kind == "*":
                P[s, a] = np.eye(num_states)[index[(r - 1, c)]]
                R[s, a] = bonus if s == top_star else penalty
    return dict(
        P=P, R=R, terminal=terminal, start=index[(2, 0)], top_star=top_star,
        bottom_star=bottom_star, coords=np.asarray(coords, np.int32),
    )


def policy_value(P, R, terminal, pi, gamma: float = GAMMA) -> jax.Array:
    """Exact V^pi[s] from (I - gamma P_pi) V = r_pi; terminal states are absorbing with value 0.

    Pure jnp so it can run inside a jitted training step on the network's `pi[s, a]`.
    """
    live = 1.0 - jnp.asarray(terminal, jnp.float32)
    pi = jnp.asarray(pi, jnp.float32)
    P_pi = jnp.einsum("sa,sat->st", pi, jnp.asarray(P, jnp.float32)) * live[:, None]
    r_pi = jnp.sum(pi * jnp.asarray(R, jnp.float32), axis=1) * live
    return jnp.linalg.solve(jnp.eye(P_pi.shape[0]) - gamma * P_pi, r_pi)


def background(n_path: int = N_PATH, scale: int = 3) -> np.ndarray:
    """The grid without the agent: [5 * scale, (n_path + 3) * scale] uint8 grey levels."""
    levels = np.array([[GREY[ch] for ch in row] for row in layout(n_path)], np.uint8)
    return np.kron(levels, np.ones((scale, scale), np.uint8))


def _upscale_index(src: int, dst: int) -> np.ndarray:
    """Nearest-neighbour source index for each of `dst` output pixels."""
    return (np.arange(dst) * src) // dst


def render(coords, n_path: int = N_PATH, scale: int = 3, size: int | None = None, unit: float = 1 / 255) -> jax.Array:
    """Observation [H, W, 1] (grey level x `unit`) with the agent at `coords` = (row, col).

    The agent is the centre pixel of its cell (the lower right one of a 2 x 2 cell), so the cell's
    own grey stays visible around it;
    with `size`, the compact frame is nearest-neighbour upscaled to size x size (the paper's 84).
    """
    img = jnp.asarray(background(n_path, scale))
    centre = jnp.asarray(coords, jnp.int32) * scale + scale // 2
    img = img.at[centre[0], centre[1]].set(AGENT_GREY)
    if size is not None:
        rows = _upscale_index(img.shape[0], size)
        cols = _upscale_index(img.shape[1], size)
        img = img[rows][:, cols]
    return (img.astype(jnp.float32) * unit)[..., None]


def observations(env_id: str = "ConfoundingGrid-v0", n_path: int = N_PATH) -> jax.Array:
    """The rendered observation of every state, [S, H, W, 1], in `tables` state order."""
    scale, size, family = RENDER[env_id]
    return jax.vmap(lambda rc: render(rc, n_path, scale, size, OBS_SCALE[family]))(jnp.asarray(cells(n_path)))


def make_probe(env_id: str, n_path: int = N_PATH):
    """The env's exact diagnostics of a network, computed inside the training program.

    init_value: V(I) of the network's policy on every state's observation, by exact policy
        evaluation on the tables (gamma 0.99), so it has no sampling noise.
    repr_dist: squared Euclidean distance ||phi(top star) - phi(bottom star)||^2 between the
        encoder's latents of the two look-alike star states; near 0 means it has merged them (and a
        1-Lipschitz reward model cannot then tell the bonus from the penalty).
    """
    t = tables(n_path)
    obs = observations(env_id, n_path)
    P, R, terminal = (jnp.asarray(t[k], jnp.float32) for k in ("P", "R", "terminal"))
    start, top, bottom = t["start"], t["top_star"], t["bottom_star"]

    def probe(action_probs, encode):
        values = policy_value(P, R, terminal, action_probs(obs))
        stars = encode(obs[jnp.array([top, bottom])])
        return {
            "init_value": values[start],
            "repr_dist": jnp.sum(jnp.square(stars[0] - stars[1])),
        }

    return probe


def make(env_id: str, num_envs: int) -> BatchedEnv:
    """Batched ConfoundingGrid: state is (state index, step count); @'s split uses the step key."""
    scale, size, family = RENDER[env_id]
    unit = OBS_SCALE[family]
    t = tables()
    P = jnp.asarray(t["P"], jnp.float32)
    R = jnp.asarray(t["R"], jnp.float32)
    terminal = jnp.asarray(t["terminal"])
    coords = jnp.asarray(t["coords"])
    start = t["start"]
    obs_shape = tuple(render(coords[start], N_PATH, scale, size, unit).shape)
    spec = EnvSpec(env_id, "grid", family, obs_shape, NUM_ACTIONS)
    all_legal = jnp.ones((NUM_ACTIONS,), bool)

    def obs_of(s):
        return render(coords[s], N_PATH, scale, size, unit)

    def reset_one(key):
        state = (jnp.int32(start), jnp.int32(0))
        return state, obs_of(state[0]), all_legal

    def step_one(key, state, action):
        s, steps = state
        next_s = jax.random.choice(key, P.shape[0], p=P[s, action]).astype(jnp.int32)
        steps = steps + 1
        return (
            (next_s, steps), obs_of(next_s), all_legal, R[s, action],
            terminal[next_s], steps >= TIME_LIMIT,
        )

    return make_batched_env(spec, num_envs, reset_one, step_one, probe=make_probe(env_id))
