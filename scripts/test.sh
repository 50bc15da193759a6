#!/usr/bin/env bash
# Install what is missing, build, and run the whole CTest suite (GPU tests skip without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh
cd build
ctest --output-on-failure -j2 "$@"
