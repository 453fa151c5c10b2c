#!/usr/bin/env bash
# The paper-scale Atari recipe: for every game, PPO, DeepMDP and Deep SPI, 10M agent steps per run
# (40M frames), 16 seeds trained together in one program per game and algorithm. Each algorithm runs
# its own script's preset, as the paper ran it (`uv run purejaxspi presets`): Deep SPI `deep_spi.py`'s
# (128 x 8, mixture head, the paper's spectral estimate), DeepMDP `deep_mdp_ppo.py`'s (64 x 16, plain
# world model, gradient penalty), PPO CleanRL's (8 x 128). EXTRA="--settings deepspi" runs all three
# under Deep SPI's settings instead, EXTRA="--spectral-norm exact" Deep SPI with our exact normalisation.
# Meant for a GPU machine (`uv sync --extra cuda`); envpool steps the emulators on the CPU cores.
#
#   scripts/atari_suite.sh                       # the 57 games of the human-normalised table
#   GAMES="Breakout-v5 Pong-v5" scripts/atari_suite.sh
#   ALGOS=deepspi SEEDS=4 STEPS=2000000 OUT=runs/atari-small scripts/atari_suite.sh
#   EXTRA="--stochastic" scripts/atari_suite.sh  # the stochastic ALE (sticky actions 0.3, 60 no-ops)
#
# A finished (game, algo) pair is skipped and an interrupted one resumes from its newest checkpoint,
# so the script can simply be re-run.
# Collect the results with: uv run python scripts/atari_table.py "$OUT"
set -euo pipefail
cd "$(dirname "$0")/.."

SCORES=purejaxspi/data/atari_human_random_scores.csv
GAMES=${GAMES:-$(tail -n +2 "$SCORES" | cut -d, -f1 | tr '\n' ' ')}
ALGOS=${ALGOS:-"ppo deepmdp deepspi"}
SEEDS=${SEEDS:-16}
STEPS=${STEPS:-10000000}
OUT=${OUT:-runs/atari}
EXTRA=${EXTRA:-}

for game in $GAMES; do
  for algo in $ALGOS; do
    dir="$OUT/$game-$algo"
    if [[ -f "$dir/summary.json" ]]; then
      echo "skip $dir (done)"
      continue
    fi
    if [[ -f "$dir/config.json" ]]; then
      echo "== $game $algo: resuming $dir"
      uv run purejaxspi train --resume "$dir" --quiet
      continue
    fi
    echo "== $game $algo: $SEEDS seeds x $STEPS steps -> $dir"
    # shellcheck disable=SC2086
    uv run purejaxspi train --env "$game" --algo "$algo" --num-seeds "$SEEDS" \
      --total-timesteps "$STEPS" --out "$dir" --quiet $EXTRA
  done
done
uv run python scripts/atari_table.py "$OUT"
