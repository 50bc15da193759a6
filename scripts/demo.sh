#!/usr/bin/env bash
# Quick start: install what is missing, build, generate a demo dataset and cluster it on 2 ranks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
./build/fkm gen --output demo.h5 --n 200000 --d 64 --clusters 50 --seed 1
./build/fkm info demo.h5
mpirun -np 2 ./build/fkm fit --input demo.h5 --k 50 --iters 30 --output demo_out.h5 --labels
./build/fkm info demo_out.h5
