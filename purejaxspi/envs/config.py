"""The env's part of the config tree: which env, how many per run, and Atari's preprocessing."""

from __future__ import annotations

import dataclasses

from purejaxspi.settings import setting

ENVPOOL_INTERFACES = ("auto", "xla", "callback")


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    env_id: str = setting(
        "Breakout-MinAtar", "Environment id (`purejaxspi envs` lists them).", flag=""
    )  # make_config's argument, the --env flag
    num_envs: int = setting(64, "Envs per run.", bound="positive", title="envs")
    stochastic: bool = setting(
        False,
        "Atari: the stochastic ALE (sticky actions with probability 0.3, up to 60 no-op starts).",
        families=("atari",),
    )
    reward_clip: bool = setting(
        True,
        "Atari: learn from rewards clipped to [-1, 1] (scores are reported unclipped).",
        families=("atari",),
    )
    episodic_life: bool = setting(
        True,
        "Atari: a lost life ends the learning episode (the game's score still counts whole games).",
        families=("atari",),
    )

    envpool_interface: str = setting(
        "auto",
        "Atari: how the program steps envpool's pool: xla (envpool's XLA step inside the program), callback (its "
        "Python send/recv through one io_callback a step) or auto (xla on a CPU, where it is tested; callback "
        "elsewhere). Both give the same games.",
        choices=ENVPOOL_INTERFACES,
        families=("atari",),
        title="envpool",
    )

    def options(self) -> dict:
        """The backend options of `make_env` (what a backend other than Atari leaves at its defaults)."""
        return {
            "stochastic": self.stochastic,
            "reward_clip": self.reward_clip,
            "episodic_life": self.episodic_life,
            "interface": self.envpool_interface,
        }
