#!/usr/bin/env bash
# Build and check the sort-inverse update and the CUDA backend on a GPU machine.
# STEPS (default "build test backend sanitize bench ncu") picks what runs; logs go to $OUT
# (or ./gpu_logs); a short summary is printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_logs}; mkdir -p "$OUT"
B=${BUILD:-build}
STEPS=${STEPS:-build test backend sanitize bench ncu}
has() { [[ " $STEPS " == *" $1 "* ]]; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader
if has build; then
  [ "${CLEAN:-1}" = 1 ] && rm -rf "$B" # a warm machine may hold objects built from another tree
  cmake -S . -B "$B" -G Ninja -DFKM_CUDA=ON -DCMAKE_BUILD_TYPE=Release >"$OUT/cmake.log" 2>&1 ||
    { tail -30 "$OUT/cmake.log"; exit 1; }
  targets="test_gpu_update bench_update"
  [ "${VARIANTS:-1}" = 1 ] && targets="$targets bench_update_u4 bench_update_nopf bench_update_mb4"
  has backend && targets="$targets test_gpu_backend"
  if ! cmake --build "$B" --target $targets >"$OUT/build.log" 2>&1; then
    grep -E "error|Error" "$OUT/build.log" | head -20
    echo "build of [$targets] failed; retrying the update targets alone"
    STEPS=${STEPS/backend/}
    cmake --build "$B" --target test_gpu_update bench_update >>"$OUT/build.log" 2>&1 ||
      { tail -30 "$OUT/build.log"; exit 1; }
  fi
  echo "build ok"
  if has assign; then
    cmake --build "$B" --target bench_gpu >>"$OUT/build.log" 2>&1 || { echo "bench_gpu did not build"; STEPS=${STEPS/assign/}; }
  fi
fi
T="$B/tests/test_gpu_update"
if has test; then
  timeout 300 $T >"$OUT/test.log" 2>&1; echo "test_gpu_update rc=$?"; tail -3 "$OUT/test.log"
fi
if has backend; then
  timeout 120 "$B/tests/test_gpu_backend" >"$OUT/backend.log" 2>&1; echo "test_gpu_backend rc=$?"; tail -14 "$OUT/backend.log"
fi
if has sanitize; then  # all four into sanitize.log
  S="$OUT/sanitize.log"; : >"$S"
  echo "=== memcheck test_gpu_update (small shapes)" >>"$S"
  FKM_TEST_SMALL=1 timeout 200 compute-sanitizer --tool memcheck --leak-check full $T >>"$S" 2>&1
  echo "memcheck rc=$?"; tail -2 "$S"
  echo "=== racecheck test_gpu_update (few shapes)" >>"$S"
  FKM_TEST_SMALL=2 timeout 150 compute-sanitizer --tool racecheck $T >>"$S" 2>&1
  echo "racecheck rc=$?"; tail -2 "$S"
  echo "=== synccheck test_gpu_update (few shapes)" >>"$S"
  FKM_TEST_SMALL=2 timeout 150 compute-sanitizer --tool synccheck $T >>"$S" 2>&1
  echo "synccheck rc=$?"; tail -2 "$S"
  if has backend; then
    echo "=== memcheck test_gpu_backend" >>"$S"
    timeout 200 compute-sanitizer --tool memcheck "$B/tests/test_gpu_backend" >>"$S" 2>&1
    echo "memcheck backend rc=$?"; tail -2 "$S"
  fi
fi
if has bench; then
  { "$B/bench/bench_update" 20
    if [ "${VARIANTS:-1}" = 1 ]; then
      echo "--- rows per lane 256"; FKM_UPDATE_ROWS_PER_LANE=256 "$B/bench/bench_update" 20 | tail -n +3
      echo "--- unroll 4"; "$B/bench/bench_update_u4" 20 | tail -n +3
      echo "--- no row-id prefetch"; "$B/bench/bench_update_nopf" 20 | tail -n +3
      echo "--- 4 blocks per SM"; "$B/bench/bench_update_mb4" 20 | tail -n +3
    fi
  } >"$OUT/bench.log" 2>&1; echo "bench rc=$?"
fi
if has ncu; then
  FKM_TIME_ONLY=1 FKM_TIME_ITERS=1 FKM_TIME_WARMUP=0 timeout 150 ncu --clock-control none --cache-control none --print-units base \
    --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum --csv \
    $T >"$OUT/ncu.csv" 2>"$OUT/ncu.err"; echo "ncu rc=$?"
  python3 - "$OUT/ncu.csv" >"$OUT/ncu.txt" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
h = rows[0]; ki = h.index("Kernel Name"); mi = h.index("Metric Name"); vi = h.index("Metric Value"); ii = h.index("ID")
per = collections.OrderedDict()
for r in rows[1:]:
    per.setdefault(r[ii], {"k": r[ki][:56]})[r[mi]] = float(r[vi].replace(",", ""))
for i, m in per.items():
    print("%4s %-56s %8.1f us rd %7.1f MB wr %6.1f MB" % (i, m["k"], m.get("gpu__time_duration.sum", 0) / 1e3,
          m.get("dram__bytes_read.sum", 0) / 1e6, m.get("dram__bytes_write.sum", 0) / 1e6))
PY
  head -14 "$OUT/ncu.txt"
fi
if has assign; then  # the assign (and full iteration) at the same shape, for the ratio
  timeout 120 "$B/bench/bench_gpu" fp16-8M-1k >"$OUT/bench_gpu.log" 2>&1; echo "bench_gpu rc=$?"
  tail -12 "$OUT/bench_gpu.log"
fi
if has cli; then  # the fkm program end to end: cpu vs cuda, every residency
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  if cmake --build "$B" --target fkm_cli >>"$OUT/build.log" 2>&1; then
    X=/tmp/fkm_cli; mkdir -p $X
    "$B/fkm" gen --output $X/x.h5 --n 200000 --d 64 --clusters 16 --seed 7 >/dev/null 2>&1
    for a in "--backend cpu" "--backend cuda" "--backend cuda --residency host --chunk-rows 30000" \
             "--backend cuda --residency file --chunk-rows 30000" "--backend cuda --residency device --chunk-rows 30000" \
             "--backend cuda --precision fp16"; do
      echo "== fit $a"
      timeout 120 "$B/fkm" fit --input $X/x.h5 --k 16 --iters 8 --tol 0 --seed 3 $a 2>&1 | tail -2
      echo "rc=$?"
    done >"$OUT/cli.log" 2>&1
    cat "$OUT/cli.log"
  else
    echo "fkm_cli did not build"; grep -m3 error "$OUT/build.log"
  fi
fi
rm -f "$OUT/ncu.csv" "$OUT/ncu.err" "$OUT/cmake.log"  # at most 8 files come back
has bench && cat "$OUT/bench.log"
