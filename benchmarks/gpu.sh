#!/usr/bin/env bash
# GPU numbers in one script (under 8 minutes on one GPU): card, driver and versions; Breakout-MinAtar
# deepspi and ppo at 1 and 16 runs (vmap), env steps/s and deepspi/ppo time per iteration; Breakout-v5
# (envpool) deepspi at 1 and 16 runs of 128 envs x 8 steps; the Nature CNN as patches @ matrix against
# lax.conv; compile times. Writes benchmarks/results/gpu/*.json and prints a summary.
#
#   bash benchmarks/gpu.sh            # on a CUDA machine, from the repository root
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
uv sync --quiet --extra cuda

{
  echo "date: $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  uv run python -c "import jax, jaxlib, flax, optax; print('jax', jax.__version__, 'jaxlib', jaxlib.__version__, 'flax', flax.__version__, 'optax', optax.__version__); print(jax.devices())"
} | tee "$OUT/machine.txt"

# MinAtar: deepspi against ppo, 1 and 16 runs (vmap is `auto` on a GPU), mixture head as the paper's
uv run purejaxspi bench --env Breakout-MinAtar --algo ppo deepspi --num-runs 1 16 --density mixture \
  --iterations 5 --repeats 3 --quiet --json "$OUT/minatar.json"

# Atari through envpool, the paper's 128 envs x 8 steps (the emulators run on the host's cores)
uv run purejaxspi bench --env Breakout-v5 --algo deepspi --num-runs 1 16 --num-envs 128 --num-steps 8 \
  --iterations 3 --repeats 2 --no-env-only --quiet --json "$OUT/atari.json"

# The Nature CNN: patches @ matrix (ours) against lax.conv, forward and backward, batch 1024 x 16 runs
uv run python - "$OUT/nature_cnn.json" <<'PY'
import json, sys, time
import jax, jax.numpy as jnp
from purejaxspi.algo.conv import conv2d

def lax_conv(x, k, s):
    return jax.lax.conv_general_dilated(x, k, (s, s), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))

def cnn(conv):
    def f(params, x):
        for (k, b), s in zip(params, (4, 2, 1)):
            x = jax.nn.relu(conv(x, k, s) + b)
        return jnp.sum(x)
    return jax.jit(jax.vmap(jax.grad(f), in_axes=(0, 0)))

key = jax.random.PRNGKey(0)
runs, batch = 16, 1024
shapes = [(8, 8, 4, 32), (4, 4, 32, 64), (3, 3, 64, 64)]
params = [(jax.random.normal(key, (runs,) + s) * 0.05, jnp.zeros((runs, s[-1]))) for s in shapes]
x = jax.random.uniform(key, (runs, batch, 84, 84, 4))
rows = {}
for name, conv in (("patches_matmul", conv2d), ("lax_conv", lax_conv)):
    f = cnn(conv)
    t = time.perf_counter(); jax.block_until_ready(f(params, x)); compile_s = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(10):
        out = f(params, x)
    jax.block_until_ready(out)
    rows[name] = {"compile_seconds": compile_s, "seconds_per_grad": (time.perf_counter() - t) / 10}
rows["faster"] = min(("patches_matmul", "lax_conv"), key=lambda n: rows[n]["seconds_per_grad"])
json.dump(rows, open(sys.argv[1], "w"), indent=2)
print(json.dumps(rows, indent=2))
PY

uv run python - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for name in ("minatar", "atari"):
    for r in json.loads((out / f"{name}.json").read_text()):
        print(f"{r['env']:18s} {r['algo']:8s} runs {r['num_runs']:3d}  {r['steps_per_second']:>12,.0f} env steps/s  "
              f"{r['seconds_per_iteration']:.4f} s/iter  compile {r['compile_seconds']:.1f} s"
              + (f"  vs ppo {r['time_per_iteration_vs_ppo']:.2f}x" if "time_per_iteration_vs_ppo" in r else ""))
PY
