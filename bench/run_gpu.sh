#!/usr/bin/env bash
# Build, test and benchmark FlashAssign on a machine with a CUDA GPU; every log goes to $OUT
# (default ./gpu_logs), at most 8 files. Steps (env STEPS, default "build sass test sanitize
# bench", in this order):
#   build     cmake + ninja, Release, -DFKM_CUDA=ON, plus CMAKE_ARGS (TARGETS="a b": only those targets; without
#             it the whole build, falling back to the GPU targets if that fails)
#   sass      resource usage and instruction counts of the kernels: HGMMA (wgmma), HMMA
#             (mma.sync), LDSM, LDGSTS (cp.async), UTMALDG (TMA), SYNCS (mbarrier), LDL/STL
#             (local memory = spills) (sass.txt)
#   test      ctest -L gpu --output-on-failure (test.log); with TESTS="assign metric ..." the
#             named build/tests/test_gpu_* programs instead, each under timeout $TEST_TIMEOUT
#   metric    test_gpu_metric once per version in METRIC_AUTO (FKM_ASSIGN_AUTO_VERSION=v: the
#             automatic choice replaced by v, so its IP cases run that kernel) (test.log)
#   sanitize  compute-sanitizer memcheck and racecheck on test_gpu_assign, small shapes; with
#             SAN_VARIANTS="f16/v17,..." only those variants (sanitize.log)
#   bench     bench_gpu (bench.log; BENCH_ARGS are passed on)
#   ncu       Nsight Compute on one assign launch (ncu.txt; NCU_VERSION, NCU_CASE)
# A summary of every step is printed last (summary.txt).
# Usage: bash bench/run_gpu.sh        (from anywhere, on the GPU machine)
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_logs}
BUILD=${BUILD:-build}
STEPS=${STEPS:-"build sass test sanitize bench"}
TEST_TIMEOUT=${TEST_TIMEOUT:-900}
mkdir -p "$OUT"
has() { [[ " $STEPS " == *" $1 "* ]]; }
status=0
SUM="$OUT/summary.txt"
: > "$SUM"
note() { echo "$*" | tee -a "$SUM"; }

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit --format=csv
    nvcc --version | tail -2
} > "$OUT/info.txt" 2>&1
cat "$OUT/info.txt"

if has build; then
    t0=$(date +%s)
    if ! cmake -S . -B "$BUILD" -G Ninja -DFKM_CUDA=ON -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} > "$OUT/build.log" 2>&1; then
        note "configure failed"; tail -30 "$OUT/build.log"; exit 1
    fi
    if [ -n "${TARGETS:-}" ]; then
        if ! cmake --build "$BUILD" -j "$(nproc)" --target $TARGETS >> "$OUT/build.log" 2>&1; then
            note "build of $TARGETS failed"; grep -m10 -A5 "error" "$OUT/build.log" | head -60; exit 1
        fi
    elif ! cmake --build "$BUILD" -j "$(nproc)" >> "$OUT/build.log" 2>&1; then
        echo "full build failed (others' work in progress?); building the GPU targets only"
        grep -m5 -B2 -A5 "error" "$OUT/build.log" | head -40
        targets="test_gpu_assign bench_gpu"
        grep -q "test_gpu_update" tests/CMakeLists.txt && targets="$targets test_gpu_update"
        if ! cmake --build "$BUILD" -j "$(nproc)" --target $targets >> "$OUT/build.log" 2>&1; then
            note "GPU targets failed to build"; tail -40 "$OUT/build.log"; exit 1
        fi
    fi
    note "build: $(( $(date +%s) - t0 )) s"
fi

if has sass; then
    lib="$BUILD/libfkm_cuda.a"
    {
        echo "== resource usage (registers, shared, local/stack) =="
        cuobjdump --dump-resource-usage "$lib" 2>&1 | awk '/Function/ {f=$2} /REG:/ {print f, $1, $2, $3, $4}' \
            | grep -E "assign|exact|convert|norms" | sed 's/_ZN3fkm//; s/_ZN[0-9A-Za-z_]*convert[0-9A-Za-z_]*/convert/'
        echo "== instruction counts per assign kernel (sm_90a code) =="
        cuobjdump -sass -arch sm_90a "$lib" 2>/dev/null | awk '
            function out() { if (name != "") printf "%-66s HGMMA %3d HMMA %4d LDSM %3d LDGSTS %3d UTMALDG %2d SYNCS %3d BAR %3d LDL %3d STL %3d\n", name, hg, hm, ld, cp, tma, sy, bar, ll, sl }
            /Function :/ { out(); name=$3; hg=hm=ld=cp=tma=sy=bar=ll=sl=0 }
            /HGMMA/ {hg++} /HMMA/ {hm++} /LDSM/ {ld++} /LDGSTS/ {cp++} /UTMALDG/ {tma++} /SYNCS/ {sy++} /BAR\./ {bar++} /LDL/ {ll++} /STL/ {sl++}
            END { out() }' | grep -E "assign|exact" | sed 's/_ZN3fkm//'
        echo "== fallback (sm_80) code present =="
        cuobjdump -lelf "$lib" 2>/dev/null | grep -c sm_80 | sed 's/^/sm_80 cubins: /'
    } > "$OUT/sass.txt" 2>&1
    cat "$OUT/sass.txt"
    grep -E "assign_v3" "$OUT/sass.txt" | awk '{print $1, "HGMMA", $3, "UTMALDG", $11, "LDL", $17, "STL", $19}' | sed 's/^/sass: /' >> "$SUM"
fi

if has test; then
    if [ -n "${TESTS:-}" ]; then
        : > "$OUT/test.log"
        for t in $TESTS; do
            t0=$(date +%s)
            timeout "$TEST_TIMEOUT" "$BUILD/tests/test_gpu_$t" >> "$OUT/test.log" 2>&1
            rc=$?
            [ $rc -eq 0 ] || status=1
            note "test_gpu_$t: rc=$rc ($(( $(date +%s) - t0 )) s): $(grep -E "runs in|checks|passed|failed" "$OUT/test.log" | tail -2 | tr '\n' ' ')"
        done
    else
        ( cd "$BUILD" && timeout "$TEST_TIMEOUT" ctest -L gpu --output-on-failure ) > "$OUT/test.log" 2>&1 || status=1
        grep -E "tests passed|tests failed|FAILED|Failed|checks|seed|runs in|Passed|\*\*\*" "$OUT/test.log" | tail -20 | tee -a "$SUM"
    fi
    grep -E "FAILED|failed:|wrong|differ$|invalid" "$OUT/test.log" | head -20 | tee -a "$SUM"
fi

if has metric; then
    for v in ${METRIC_AUTO:-}; do
        t0=$(date +%s)
        echo "== test_gpu_metric with FKM_ASSIGN_AUTO_VERSION=$v ==" >> "$OUT/test.log"
        FKM_ASSIGN_AUTO_VERSION=$v timeout "$TEST_TIMEOUT" "$BUILD/tests/test_gpu_metric" >> "$OUT/test.log" 2>&1
        rc=$?
        [ $rc -eq 0 ] || status=1
        note "test_gpu_metric auto=v$v: rc=$rc ($(( $(date +%s) - t0 )) s): $(grep -E "checks|passed|failed" "$OUT/test.log" | tail -1)"
    done
fi

if has sanitize; then
    : > "$OUT/sanitize.log"
    for tool in memcheck racecheck; do
        t0=$(date +%s)
        echo "== $tool ==" >> "$OUT/sanitize.log"
        FKM_TEST_SMALL=1 FKM_TEST_VARIANTS="${SAN_VARIANTS:-}" timeout "${SAN_TIMEOUT:-900}" \
            compute-sanitizer --tool "$tool" --error-exitcode 9 "$BUILD/tests/test_gpu_assign" --small >> "$OUT/sanitize.log" 2>&1
        rc=$?
        note "compute-sanitizer $tool: rc=$rc ($(( $(date +%s) - t0 )) s); $(sed -n "/== $tool ==/,\$p" "$OUT/sanitize.log" | grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Hazard|runs in" | sort | uniq -c | head -5 | tr '\n' ' ')"
        [ $rc -eq 0 ] || status=1
    done
fi

if has bench; then
    timeout "${BENCH_TIMEOUT:-1500}" "$BUILD/bench/bench_gpu" ${BENCH_ARGS:-} > "$OUT/bench.log" 2>&1 || status=1
    sed -n '/^\(NVIDIA\|Tesla\|H100\|H200\).*peak = /,$p' "$OUT/bench.log" | tee -a "$SUM"
    grep -E "^device|^measured" "$OUT/bench.log" | tee -a "$SUM"
fi

if has ncu; then
    timeout "${NCU_TIMEOUT:-120}" ncu --clock-control none -k regex:assign_v3 --launch-count 1 \
        --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
        --section WarpStateStats --section SchedulerStats \
        --metrics sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_tensor_op_hmma.sum,lts__t_bytes.sum.per_second,smsp__issue_active.avg.pct_of_peak_sustained_active,sm__cycles_elapsed.avg.per_second \
        "$BUILD/bench/bench_gpu" --assign-only --versions "${NCU_VERSION:-17}" "${NCU_CASE:-fp16-1M-8k}" > "$OUT/ncu.txt" 2>&1
    note "ncu (v${NCU_VERSION:-17} ${NCU_CASE:-fp16-1M-8k}): rc=$?"
    grep -E "tensor_op_hmma_cycles|lts__t_bytes|issue_active|cycles_elapsed|Compute \(SM\) Throughput|Memory Throughput|L2 Cache Throughput|DRAM Throughput|Duration|Issue Slots Busy|No Eligible|Registers Per|Stall" "$OUT/ncu.txt" | head -30 | sed 's/^ */ncu: /' | tee -a "$SUM"
fi

echo
echo "================ summary ================"
cat "$SUM"
exit $status
