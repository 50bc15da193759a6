#!/usr/bin/env bash
# Build and check the sort-inverse update on a GPU machine: the test, compute-sanitizer
# (memcheck + racecheck on small shapes), the timing at N=8M K=1024 D=128 f16, and a
# per-kernel breakdown with Nsight Compute. Logs go to $OUT (or ./gpu_logs).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_logs}; mkdir -p "$OUT"
B=${BUILD:-build}
targets=${TARGETS:-test_gpu_update}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader
{ cmake -S . -B "$B" -G Ninja -DFKM_CUDA=ON -DCMAKE_BUILD_TYPE=Release >"$OUT/cmake.log" 2>&1 &&
  cmake --build "$B" --target $targets >"$OUT/build.log" 2>&1; } ||
  { tail -40 "$OUT/cmake.log" "$OUT/build.log"; exit 1; }
echo "build ok"
T="$B/tests/test_gpu_update"
$T >"$OUT/test.log" 2>&1; echo "test rc=$?"; tail -4 "$OUT/test.log"
if [ "${SANITIZE:-1}" = 1 ]; then
  FKM_TEST_SMALL=1 timeout 200 compute-sanitizer --tool memcheck --leak-check full $T >"$OUT/memcheck.log" 2>&1
  echo "memcheck rc=$?"; tail -3 "$OUT/memcheck.log"
  FKM_TEST_SMALL=2 timeout 120 compute-sanitizer --tool racecheck $T >"$OUT/racecheck.log" 2>&1
  echo "racecheck rc=$?"; tail -3 "$OUT/racecheck.log"
fi
FKM_TIME_ONLY=1 $T >"$OUT/time.log" 2>&1; echo "time rc=$?"; grep -E "^time|fail" "$OUT/time.log"
if [ "${NCU:-1}" = 1 ]; then
  FKM_TIME_ONLY=1 FKM_TIME_ITERS=1 FKM_TIME_WARMUP=0 timeout 150 ncu --clock-control none --cache-control none --print-units base \
    --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum --csv \
    $T >"$OUT/ncu.csv" 2>"$OUT/ncu.err"; echo "ncu rc=$?"
  python3 - "$OUT/ncu.csv" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
if not rows: sys.exit(0)
h = rows[0]; ki = h.index("Kernel Name"); mi = h.index("Metric Name"); vi = h.index("Metric Value"); ii = h.index("ID")
per = collections.OrderedDict()
for r in rows[1:]:
    per.setdefault(r[ii], {"k": r[ki][:60]})[r[mi]] = float(r[vi].replace(",", ""))
# the last timed call of the first shape: kernels after the 4th fill? print all, grouped
for i, m in per.items():
    print("%4s %-60s %9.1f us  rd %8.1f MB  wr %8.1f MB" % (i, m["k"], m.get("gpu__time_duration.sum", 0) / 1e3,
          m.get("dram__bytes_read.sum", 0) / 1e6, m.get("dram__bytes_write.sum", 0) / 1e6))
PY
fi
