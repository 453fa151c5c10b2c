#!/usr/bin/env bash
# The GPU campaign: everything a GPU changes, measured in one time-boxed command (at most 9.5 minutes of
# wall time on one GPU, setup included). Every stage runs under its own time limit and writes its JSON
# as soon as it finishes; a failed, aborted or timed-out stage is recorded with its last lines and the
# campaign goes on. At the end OUT/report.md holds every table (ready for benchmarks/README.md) with the
# card, driver, CUDA and package versions.
#
#   bash benchmarks/gpu.sh               # on a CUDA machine, from the repository root
#   bash benchmarks/gpu.sh --dry-run     # every stage on the CPU at tiny sizes: same code paths, same outputs
#   bash benchmarks/gpu.sh --only minatar     # the named stages alone (comma-separated; info always runs)
#   bash benchmarks/gpu.sh --purejaxrl DIR    # adds the peer row: purejaxrl's PPO (a checkout) on this GPU
#   bash benchmarks/gpu.sh --wheelhouse DIR   # an offline node: pip installs DIR or DIR.tar.xz (both made by
#                                        # scripts/wheelhouse.sh) beside PYTHON's own jax (default python3);
#                                        # no uv, no index
#   OUT=DIR bash benchmarks/gpu.sh       # where it writes (default benchmarks/results/gpu, or a temp dir dry)
#   SYNC=0 bash benchmarks/gpu.sh        # use the environment as it is (no `uv sync --extra cuda`)
#   SITE=DIR bash benchmarks/gpu.sh --wheelhouse ...   # where the wheelhouse installs (default OUT/site)
#
# Stages, most valuable first: setup and `purejaxspi info`; smoke: a 2-run CartPole train, then again from
# the compilation cache; atari-xla and atari-callback: Breakout-v5 PPO and Deep SPI at 1 and 16 runs with
# envpool's XLA step inside the program, then through the Python callback, each in its own process so an
# abort of one leaves the other (with the pool's threads, its frames' host-to-device traffic and the
# env-only ceiling); bench-minatar: the paper's mixture head against PPO on Breakout-MinAtar's conv trunk,
# convolutions as lax and as patches, at 1, 16 and 64 runs; purejaxrl (with --purejaxrl): the peer row;
# guard: a grid too large, refused with the device's figures (exit 2); minatar: the real-budget
# benchmark (PPO, DeepMDP, Deep SPI, 16 seeds x 10M steps a game) for the time left, each finished
# (game, algorithm) appended to OUT/minatar/minatar_10000000.runs.jsonl, which starts from the one in
# benchmarks/results/ so that each session continues the last; table it anywhere with
# `benchmarks/minatar.py --budget 10000000 --table-only`.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
WHEELHOUSE=""
PUREJAXRL=""
ONLY=""
while (( $# )); do
  case $1 in
    --dry-run) DRY=1 ;;
    --wheelhouse) WHEELHOUSE=${2:?--wheelhouse needs a folder or its .tar.xz (scripts/wheelhouse.sh makes both)}; shift ;;
    --purejaxrl) PUREJAXRL=${2:?--purejaxrl needs a checkout of github.com/luchris429/purejaxrl}; shift ;;
    --only) ONLY=${2:?--only needs stage names, comma-separated}; shift ;;
    *) echo "gpu.sh: unknown argument $1 (--dry-run, --wheelhouse DIR, --purejaxrl DIR, --only STAGES)" >&2; exit 2 ;;
  esac
  shift
done
if [[ -n $WHEELHOUSE && ! -d $WHEELHOUSE && ! ( -f $WHEELHOUSE && $WHEELHOUSE == *.tar.xz ) ]]; then
  echo "gpu.sh: --wheelhouse $WHEELHOUSE is neither a folder of wheels nor a .tar.xz of them (scripts/wheelhouse.sh)" >&2
  exit 2
fi
if [[ -n $PUREJAXRL && ! -f $PUREJAXRL/purejaxrl/ppo.py ]]; then
  echo "gpu.sh: --purejaxrl $PUREJAXRL has no purejaxrl/ppo.py (a checkout of github.com/luchris429/purejaxrl)" >&2
  exit 2
fi
if [[ $DRY == 1 ]]; then OUT=${OUT:-$(mktemp -d)/gpu-dry-run}; else OUT=${OUT:-benchmarks/results/gpu}; fi
mkdir -p "$OUT"
# a compilation cache of the campaign's own, so the cached stage measures this machine's compiles
export PUREJAXSPI_COMPILATION_CACHE=${PUREJAXSPI_COMPILATION_CACHE:-$OUT/jax-cache}
: > "$OUT/stages.jsonl"
export PYTHONUNBUFFERED=1
if [[ -n $WHEELHOUSE ]]; then
  # an offline node: the wheelhouse's packages into OUT/site, beside the node's own jax (PYTHON's)
  PYTHON=${PYTHON:-python3}
  SITE=${SITE:-$OUT/site}  # the installed packages (about 340 MB): elsewhere than OUT where OUT is shipped back
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
  if [[ -n $ONLY && ! ,$ONLY, == *,$name,* && $name != setup && $name != info ]]; then return; fi
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
  SETUP="uv sync --quiet"; T_SETUP=600; TOTAL=100000
  MINATAR_RUNS="1 2"; ATARI_RUNS="1"; BENCH="--iterations 1 --repeats 1 --no-model-flops"
  ATARI_SHAPE="--num-envs 4 --num-steps 4"; MINATAR_SHAPE="--num-envs 8 --num-steps 4"
  SMOKE="--total-timesteps 512 --num-envs 4 --num-steps 16"
  MINATAR="--games Breakout-MinAtar --budget 8192 --num-seeds 2 --eval-episodes 2 --eval-max-steps 200 --random-steps 500"
  PEER="--repeats 1 --total-timesteps 2048"
  T_INFO=120; T_SMOKE=120; T_ATARI=300; T_BENCH=300; T_PEER=300; T_GUARD=120; T_MINATAR=600
  ATARI_CONV="--conv auto"  # lax and patches are tested equal; the dry run compiles one of them
else
  SETUP="uv sync --quiet --extra cuda"; T_SETUP=90; TOTAL=570
  MINATAR_RUNS="1 16 64"; ATARI_RUNS="1 16"; BENCH="--iterations 3 --repeats 3"
  ATARI_SHAPE=""; MINATAR_SHAPE=""; ATARI_CONV="--conv auto"
  SMOKE="--total-timesteps 20480"
  MINATAR="--budget 10000000 --num-seeds 16"
  PEER="--repeats 3"
  # at most 400 s before the MinAtar benchmark (445 with the peer row), which takes what is left of TOTAL
  T_INFO=20; T_SMOKE=30; T_ATARI=75; T_BENCH=60; T_PEER=45; T_GUARD=20; T_MINATAR=0
fi

# ---- setup and the machine -------------------------------------------------------------------------
if [[ -n $WHEELHOUSE ]]; then
  if [[ -f $WHEELHOUSE && $WHEELHOUSE == *.tar.xz ]]; then  # the archive scripts/wheelhouse.sh writes beside DIR
    mkdir -p "$SITE.wheels" && tar -xJf "$WHEELHOUSE" -C "$SITE.wheels" || exit 2
    WHEELHOUSE="$SITE.wheels"
  fi
  # --no-deps: the wheelhouse is the training path's packages, not every one its dependencies declare
  SETUP="$PYTHON -m pip install --quiet --no-index --no-deps --prefix $SITE $(echo "$WHEELHOUSE"/*.whl)"
fi
if [[ ${SYNC:-1} == 1 || -n $WHEELHOUSE ]]; then stage setup "$T_SETUP" $SETUP; fi
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  nvidia-smi 2>/dev/null | grep -o "CUDA Version: [0-9.]*" || true; } > "$OUT/card.txt"
stage info "$T_INFO" bash -c "$RUN purejaxspi info --json > '$OUT/info.json'"

# ---- a 2-run CartPole train: any install or CUDA problem shows in seconds ----------------------------
stage smoke "$T_SMOKE" $RUN purejaxspi train --compilation-cache True --env CartPole-v1 --num-seeds 2 $SMOKE --out "$OUT/runs/smoke" --overwrite --quiet
# the same program again, loaded from the persistent compilation cache: the stage's seconds show the saving
stage smoke-cached "$T_SMOKE" $RUN purejaxspi train --env CartPole-v1 --num-seeds 2 $SMOKE --compilation-cache True \
  --out "$OUT/runs/smoke-cached" --overwrite --quiet

# ---- Atari on the GPU: envpool's XLA step, then its Python callback, each in its own process ----------
for interface in xla callback; do
  stage "atari-$interface" "$T_ATARI" $RUN purejaxspi bench --env Breakout-v5 --algo ppo deepspi --num-runs $ATARI_RUNS \
    $ATARI_SHAPE $ATARI_CONV --envpool-interface "$interface" $BENCH --env-only --quiet --json "$OUT/bench-atari-$interface.json"
done

# ---- the mixture head's cost, convolutions lax against patches, 64/16 runs against 1 ------------------
stage bench-minatar "$T_BENCH" $RUN purejaxspi bench --env Breakout-MinAtar --algo ppo deepspi --density mixture \
  --encoder conv --num-runs $MINATAR_RUNS $MINATAR_SHAPE --conv lax patches $BENCH --no-env-only --quiet --json "$OUT/bench-minatar.json"

# ---- the peer row: purejaxrl's PPO on the same machine and workload (benchmarks/vs_purejaxrl.py) ------
if [[ -n $PUREJAXRL ]]; then
  stage purejaxrl "$T_PEER" $PY benchmarks/vs_purejaxrl.py --purejaxrl "$PUREJAXRL" $PEER --out "$OUT/vs-purejaxrl.json"
fi

# ---- the memory guard: refused with the device's own figures, exit 2 -------------------------------
stage guard "$T_GUARD" bash -c "$RUN purejaxspi train --env CartPole-v1 --budget preset --num-seeds 100000 --num-envs 1024 \
  --out '$OUT/runs/guard' --quiet 2> '$OUT/guard.txt'; test \$? -eq 2"

# ---- the real-budget MinAtar benchmark: the time left, each finished pair kept ------------------------
RECORD=$(sed -E 's/.*--budget ([0-9]+).*/minatar_\1.runs.jsonl/' <<< "$MINATAR")
mkdir -p "$OUT/minatar"
if [[ $DRY == 0 && -f benchmarks/results/$RECORD && ! -f $OUT/minatar/$RECORD ]]; then
  cp "benchmarks/results/$RECORD" "$OUT/minatar/$RECORD"
fi
LEFT=$(( TOTAL - SECONDS - 15 ))  # 15 s for the report
(( T_MINATAR == 0 )) && T_MINATAR=$(( LEFT > 30 ? LEFT : 30 ))
stage minatar "$T_MINATAR" $PY benchmarks/minatar.py $MINATAR --no-table --out "$OUT/minatar" --runs "$OUT/runs/minatar"

$PY benchmarks/gpu_report.py "$OUT" --dry-run-flag "$DRY"
echo "report: $OUT/report.md"
