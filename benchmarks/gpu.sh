#!/usr/bin/env bash
# The GPU campaign: everything a GPU changes, measured in one time-boxed command (at most 9 minutes of
# wall time on one GPU, `uv sync --extra cuda` included). Every stage runs under its own time limit and
# writes its JSON as soon as it finishes; a failed or timed-out stage is recorded with its last lines
# and the campaign goes on. At the end OUT/report.md holds every table (ready for benchmarks/README.md)
# with the card, driver, CUDA and package versions.
#
#   bash benchmarks/gpu.sh               # on a CUDA machine, from the repository root
#   bash benchmarks/gpu.sh --dry-run     # every stage on the CPU at tiny sizes: same code paths, same outputs
#   OUT=DIR bash benchmarks/gpu.sh       # where it writes (default benchmarks/results/gpu, or a temp dir dry)
#   SYNC=0 bash benchmarks/gpu.sh        # use the environment as it is (no `uv sync --extra cuda`)
#   bash benchmarks/gpu.sh --wheelhouse DIR   # an offline node: pip installs DIR (scripts/wheelhouse.sh)
#                                        # beside PYTHON's own jax (default python3); no uv, no index
#
# Stages, most valuable first: 0 setup and `purejaxspi info`; a. a 2-run CartPole train; b. bench
# (CartPole ppo/deepspi at 1, 16, 256 runs; Breakout-MinAtar ppo/deepspi on the conv trunk with the
# paper's mixture head at 1, 16, 64 runs, convolutions as lax and as patches; Breakout-v5 ppo/deepspi at 1 and 16 runs of their
# presets); c. learning in a fixed wall budget (Breakout-MinAtar, 16 seeds, ppo and deepspi, --time-limit);
# d. the paper's 84 x 84 gridworld (ppo, deepmdp, deepspi, 8 seeds, 65,536 steps, time-boxed);
# e. the memory guard (a grid too large, refused with the device's figures, exit 2).
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
WHEELHOUSE=""
while (( $# )); do
  case $1 in
    --dry-run) DRY=1 ;;
    --wheelhouse) WHEELHOUSE=${2:?--wheelhouse needs a folder (scripts/wheelhouse.sh makes it)}; shift ;;
    *) echo "gpu.sh: unknown argument $1 (--dry-run, --wheelhouse DIR)" >&2; exit 2 ;;
  esac
  shift
done
if [[ $DRY == 1 ]]; then OUT=${OUT:-$(mktemp -d)/gpu-dry-run}; else OUT=${OUT:-benchmarks/results/gpu}; fi
mkdir -p "$OUT"
# a compilation cache of the campaign's own, so the cached stage measures this machine's compiles
export PUREJAXSPI_COMPILATION_CACHE=${PUREJAXSPI_COMPILATION_CACHE:-$OUT/jax-cache}
: > "$OUT/stages.jsonl"
export PYTHONUNBUFFERED=1
if [[ -n $WHEELHOUSE ]]; then
  # an offline node: the wheelhouse's packages into OUT/site, beside the node's own jax (PYTHON's)
  PYTHON=${PYTHON:-python3}
  SITE="$OUT/site"
  export PYTHONPATH="$SITE/lib/python$($PYTHON -c 'import sys; print("%d.%d" % sys.version_info[:2])')/site-packages${PYTHONPATH:+:$PYTHONPATH}"
  RUN="$PYTHON -m"
  PY="$PYTHON"
else
  command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
  RUN="uv run --no-sync"
  PY="uv run --no-sync python"
fi

# stage NAME SECONDS COMMAND...: run under a time limit, log to OUT/NAME.log, record the outcome
stage() {
  local name=$1 limit=$2
  shift 2
  local began=$SECONDS
  echo "== $name (limit ${limit}s)"
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local code=$?
  local status=ok
  if [[ $code == 124 || $code == 137 ]]; then status=timeout; elif [[ $code != 0 ]]; then status=failed; fi
  python3 - "$OUT" "$name" "$status" "$code" "$((SECONDS - began))" <<'PY'
import json, pathlib, sys
out, name, status, code, seconds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
log = pathlib.Path(out, f"{name}.log")
tail = log.read_text(errors="replace").splitlines()[-8:] if log.exists() else []
with open(pathlib.Path(out, "stages.jsonl"), "a") as f:
    f.write(json.dumps({"stage": name, "status": status, "exit_code": code, "seconds": seconds,
                        "tail": tail if status != "ok" else []}) + "\n")
PY
  echo "   $status in $((SECONDS - began))s"
}

# ---- sizes: the campaign's, or tiny ones for the dry run (the same commands and outputs) -------------
if [[ $DRY == 1 ]]; then
  SETUP="uv sync --quiet"; T_SETUP=600
  CART_RUNS="1 2"; MINATAR_RUNS="1"; ATARI_RUNS="1"; BENCH="--iterations 1 --repeats 1 --no-model-flops"
  ATARI_SHAPE="--num-envs 4 --num-steps 4"; MINATAR_SHAPE="--num-envs 8 --num-steps 4"; CART_SHAPE="--num-envs 4 --num-steps 8"
  LEARN="--num-seeds 2 --num-envs 4 --num-steps 4 --total-timesteps 6400 --time-limit 1"
  GRID_ENV=ConfoundingGrid-v0; GRID="--num-seeds 1 --num-envs 8 --num-steps 4 --total-timesteps 64 --density deterministic"
  SMOKE="--total-timesteps 512 --num-envs 4 --num-steps 16"
  T_INFO=120; T_SMOKE=120; T_BENCH=300; T_LEARN=180; T_GRID=120; T_GUARD=120
  ATARI_CONV="--conv auto"  # lax and patches are tested equal; the dry run compiles one of them
else
  SETUP="uv sync --quiet --extra cuda"; T_SETUP=90
  CART_RUNS="1 16 256"; MINATAR_RUNS="1 16 64"; ATARI_RUNS="1 16"; BENCH="--iterations 3 --repeats 3"
  ATARI_SHAPE=""; MINATAR_SHAPE=""; CART_SHAPE=""; ATARI_CONV="--conv lax patches"
  LEARN="--num-seeds 16 --total-timesteps 10000000 --time-limit 40"
  GRID_ENV=ConfoundingGrid-v0-84; GRID="--num-seeds 8 --total-timesteps 65536 --time-limit 15"
  SMOKE="--total-timesteps 20480"
  T_INFO=20; T_SMOKE=30; T_BENCH=55; T_LEARN=50; T_GRID=20; T_GUARD=25  # with setup: 520 s, under 9 minutes
fi

# ---- 0. setup and the machine ----------------------------------------------------------------------
if [[ -n $WHEELHOUSE ]]; then
  # --no-deps: the wheelhouse is the training path's packages, not every one its dependencies declare
  SETUP="$PYTHON -m pip install --quiet --no-index --no-deps --prefix $SITE $(echo "$WHEELHOUSE"/*.whl)"
fi
if [[ ${SYNC:-1} == 1 || -n $WHEELHOUSE ]]; then stage setup "$T_SETUP" $SETUP; fi
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  nvidia-smi 2>/dev/null | grep -o "CUDA Version: [0-9.]*" || true; } > "$OUT/card.txt"
stage info "$T_INFO" bash -c "$RUN purejaxspi info --json > '$OUT/info.json'"

# ---- a. a 2-run CartPole train: any install or CUDA problem shows in seconds ------------------------
stage smoke "$T_SMOKE" $RUN purejaxspi train --compilation-cache True --env CartPole-v1 --num-seeds 2 $SMOKE --out "$OUT/runs/smoke" --overwrite --quiet
# the same program again, loaded from the persistent compilation cache: the stage's seconds show the saving
stage smoke-cached "$T_SMOKE" $RUN purejaxspi train --env CartPole-v1 --num-seeds 2 $SMOKE --compilation-cache True \
  --out "$OUT/runs/smoke-cached" --overwrite --quiet

# ---- b. throughput ---------------------------------------------------------------------------------
stage bench-cartpole "$T_BENCH" $RUN purejaxspi bench --env CartPole-v1 --algo ppo deepspi --num-runs $CART_RUNS \
  $CART_SHAPE $BENCH --no-env-only --quiet --json "$OUT/bench-cartpole.json"
stage bench-minatar "$T_BENCH" $RUN purejaxspi bench --env Breakout-MinAtar --algo ppo deepspi --density mixture \
  --encoder conv --num-runs $MINATAR_RUNS $MINATAR_SHAPE --conv lax patches $BENCH --no-env-only --quiet --json "$OUT/bench-minatar.json"
stage bench-atari "$T_BENCH" $RUN purejaxspi bench --env Breakout-v5 --algo ppo deepspi --num-runs $ATARI_RUNS \
  $ATARI_SHAPE $ATARI_CONV $BENCH --no-env-only --quiet --json "$OUT/bench-atari.json"

# ---- c. learning within a wall budget ----------------------------------------------------------------
for algo in ppo deepspi; do
  stage "learn-$algo" "$T_LEARN" $RUN purejaxspi train --env Breakout-MinAtar --algo "$algo" --density mixture $LEARN \
    --out "$OUT/runs/learn-$algo" --overwrite --quiet
done

# ---- d. the paper's gridworld ------------------------------------------------------------------------
for algo in ppo deepmdp deepspi; do
  stage "grid-$algo" "$T_GRID" $RUN purejaxspi train --env "$GRID_ENV" --algo "$algo" $GRID \
    --out "$OUT/runs/grid-$algo" --overwrite --quiet
done

# ---- e. the memory guard: refused with the device's own figures, exit 2 -------------------------------
stage guard "$T_GUARD" bash -c "$RUN purejaxspi train --env CartPole-v1 --budget preset --num-seeds 100000 --num-envs 1024 \
  --out '$OUT/runs/guard' --quiet 2> '$OUT/guard.txt'; test \$? -eq 2"

$PY benchmarks/gpu_report.py "$OUT" --dry-run-flag "$DRY"
echo "report: $OUT/report.md"
