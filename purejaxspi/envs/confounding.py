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

import dataclasses

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

# The reference's grey levels (uint8) per cell type. The star shares the corridor's level and F shares
# G's, so nothing but the agent's position tells the two stars, or the goal and the trap, apart.
GREY = {"#": 50, ">": 100, "*": 100, "@": 180, "I": 120, "G": 220, "W": 200, "F": 220}
AGENT_GREY = 255  # the agent paints its whole cell, and is not drawn once the episode is done


@dataclasses.dataclass(frozen=True)
class Rendering:
    """How an env id draws the grid: `cell` pixels a cell, then optionally a nearest-neighbour resize.

    `marker` is the earlier look kept for ablations: other grey levels (a star brighter than the
    corridor) and the agent as one pixel inside a still visible cell, always drawn.
    """

    cell: int
    size: int | None
    family: str
    marker: bool = False

    @property
    def grey(self) -> dict[str, int]:
        return MARKER_GREY if self.marker else GREY


MARKER_GREY = {"#": 0, ">": 60, "I": 80, "@": 110, "*": 150, "W": 190, "G": 225, "F": 225}

# ConfoundingGrid-v0-84 is the reference's frame: the 5 x 8 grid resized to 84 x 84 (no stack), read
# by the Nature CNN, which divides by 255. ConfoundingGrid-v0 follows the same rules at 2 x 2 pixels a
# cell (10 x 16) for the MinAtar trunk, cheap enough for CPU experiments.
RENDER = {
    "ConfoundingGrid-v0": Rendering(cell=2, size=None, family="minatar"),
    "ConfoundingGrid-v0-84": Rendering(cell=1, size=84, family="atari"),
    "ConfoundingGrid-v0-marker": Rendering(cell=2, size=None, family="minatar", marker=True),
}
# Observations are grey / 255 for the MinAtar trunk; the Nature CNN divides by 255 itself.
OBS_SCALE = {"minatar": 1.0 / 255.0, "atari": 1.0}
CONFOUNDING_IDS = tuple(RENDER)


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
        P=P,
        R=R,
        terminal=terminal,
        start=index[(2, 0)],
        top_star=top_star,
        bottom_star=bottom_star,
        coords=np.asarray(coords, np.int32),
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


def background(n_path: int = N_PATH, grey: dict[str, int] = GREY) -> np.ndarray:
    """The grid's grey levels without the agent, one value a cell: [5, n_path + 3] uint8."""
    return np.array([[grey[ch] for ch in row] for row in layout(n_path)], np.uint8)


def render(coords, done, rendering: Rendering, n_path: int = N_PATH) -> jax.Array:
    """Observation [H, W, 1] (grey level x OBS_SCALE) with the agent at `coords` = (row, col).

    The agent's cell turns AGENT_GREY unless `done`; the grid is then blown up to `cell` pixels a
    cell and, with `size`, resized to size x size by nearest neighbour as the reference does.
    """
    unit = OBS_SCALE[rendering.family]
    levels = jnp.asarray(background(n_path, rendering.grey))
    row, col = jnp.asarray(coords, jnp.int32)
    if rendering.marker:  # one bright pixel in the cell's lower right, the cell's own grey around it
        img = jnp.kron(levels, jnp.ones((rendering.cell, rendering.cell), jnp.uint8))
        last = rendering.cell - 1 if rendering.cell > 1 else 0
        img = img.at[row * rendering.cell + last, col * rendering.cell + last].set(AGENT_GREY)
    else:
        img = jnp.where(done, levels, levels.at[row, col].set(AGENT_GREY))
        img = jnp.kron(img, jnp.ones((rendering.cell, rendering.cell), jnp.uint8))
    img = img.astype(jnp.float32)
    if rendering.size is not None:
        img = jax.image.resize(img, (rendering.size, rendering.size), method="nearest")
    return (img * unit)[..., None]


def observations(env_id: str = "ConfoundingGrid-v0", n_path: int = N_PATH) -> jax.Array:
    """The rendered observation of every state with the agent drawn, [S, H, W, 1], in `tables` order."""
    rendering = RENDER[env_id]
    return jax.vmap(lambda rc: render(rc, False, rendering, n_path))(jnp.asarray(cells(n_path)))


def make_probe(env_id: str, n_path: int = N_PATH):
    """The env's exact diagnostics of a network, computed inside the training program.

    init_value: V(I) of the network's policy on every state's observation, by exact policy
        evaluation on the tables (gamma 0.99), so it has no sampling noise.
    repr_dist: mean over latent entries of (phi(top star) - phi(bottom star))^2, the paper's measure
        of how far apart the encoder keeps the two look-alike star states; near 0 means it has merged
        them (and a Lipschitz reward model cannot then tell the bonus from the penalty).
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
            "repr_dist": jnp.mean(jnp.square(stars[0] - stars[1])),
        }

    return probe


def make(env_id: str, num_envs: int) -> BatchedEnv:
    """Batched ConfoundingGrid: state is (state index, step count); @'s split uses the step key.

    The successor frame of a step that terminates the episode has no agent (the reference's rule), so the
    terminal frames of G, F and W are all the bare grid. A time-limit truncation draws the agent where it
    stands: that is the state it was really in, and the frame GAE bootstraps V from (the value head
    never trains on agentless frames of non-terminal cells).
    """
    rendering = RENDER[env_id]
    t = tables()
    P = jnp.asarray(t["P"], jnp.float32)
    R = jnp.asarray(t["R"], jnp.float32)
    terminal = jnp.asarray(t["terminal"])
    coords = jnp.asarray(t["coords"])
    start = t["start"]
    obs_shape = tuple(render(coords[start], False, rendering).shape)
    spec = EnvSpec(env_id, "grid", rendering.family, obs_shape, NUM_ACTIONS, time_limit=TIME_LIMIT)
    all_legal = jnp.ones((NUM_ACTIONS,), bool)

    def reset_one(key):
        state = (jnp.int32(start), jnp.int32(0))
        return state, render(coords[start], False, rendering), all_legal

    def step_one(key, state, action):
        s, steps = state
        next_s = jax.random.choice(key, P.shape[0], p=P[s, action]).astype(jnp.int32)
        steps = steps + 1
        terminated, truncated = terminal[next_s], steps >= TIME_LIMIT
        obs = render(coords[next_s], terminated, rendering)
        return (next_s, steps), obs, all_legal, R[s, action], terminated, truncated

    return make_batched_env(spec, num_envs, reset_one, step_one, probe=make_probe(env_id))
