#!/usr/bin/env bash
# Configure and build fkm into ./build (CUDA parts too when nvcc is found).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${FKM_CMAKE_ARGS:-} >build.log 2>&1 || { cat build.log; exit 1; }
cmake --build build -j"$(nproc)" >>build.log 2>&1 || { tail -50 build.log; exit 1; }
echo "build: ok ($(grep -o 'fkm: CUDA=[A-Z]* NCCL=[A-Z]*' build.log | head -1))"
