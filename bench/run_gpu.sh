#!/usr/bin/env bash
# Build, test and benchmark FlashAssign on a machine with a CUDA GPU; every log goes to $OUT
# (default ./gpu_logs). Steps (env STEPS, default all, in this order):
#   build     cmake + ninja, Release, -DFKM_CUDA=ON (only the GPU targets if the full build fails)
#   sass      resource usage and tensor-core instruction counts of the kernels (sass.txt)
#   test      ctest -L gpu --output-on-failure (ctest.log)
#   sanitize  compute-sanitizer memcheck and racecheck on test_gpu_assign, small shapes
#   bench     bench_gpu (bench.log; BENCH_ARGS are passed on)
# Usage: bash bench/run_gpu.sh        (from the repository root, on the GPU machine)
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_logs}
BUILD=${BUILD:-build}
STEPS=${STEPS:-"build sass test sanitize bench"}
mkdir -p "$OUT"
has() { [[ " $STEPS " == *" $1 "* ]]; }
status=0

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv
    nvcc --version | tail -2
} > "$OUT/info.txt" 2>&1
cat "$OUT/info.txt"

if has build; then
    t0=$(date +%s)
    if ! cmake -S . -B "$BUILD" -G Ninja -DFKM_CUDA=ON -DCMAKE_BUILD_TYPE=Release > "$OUT/build.log" 2>&1; then
        echo "configure failed"; tail -30 "$OUT/build.log"; exit 1
    fi
    if ! cmake --build "$BUILD" -j "$(nproc)" >> "$OUT/build.log" 2>&1; then
        echo "full build failed (others' work in progress?); building the GPU targets only"
        grep -m5 -B2 -A5 "error" "$OUT/build.log" | head -40
        targets="test_gpu_assign bench_gpu"
        grep -q "test_gpu_update" tests/CMakeLists.txt && targets="$targets test_gpu_update"
        if ! cmake --build "$BUILD" -j "$(nproc)" --target $targets >> "$OUT/build.log" 2>&1; then
            echo "GPU targets failed to build"; tail -40 "$OUT/build.log"; exit 1
        fi
    fi
    echo "build: $(( $(date +%s) - t0 )) s"
fi

if has sass; then
    lib="$BUILD/libfkm_cuda.a"
    {
        echo "== resource usage (registers, shared, local/stack) =="
        cuobjdump --dump-resource-usage "$lib" 2>&1 | awk '/Function/ {f=$2} /REG:/ {print f, $1, $2, $3, $4}' \
            | grep -E "assign|exact|convert|norms" | sed 's/_ZN3fkm//; s/_ZN[0-9A-Za-z_]*convert[0-9A-Za-z_]*/convert/' 
        echo "== tensor-core / memory instruction counts per assign kernel =="
        cuobjdump -sass "$lib" 2>/dev/null | awk '
            /Function :/ { if (name != "") printf "%-70s HGMMA %4d HMMA %4d LDSM %4d LDGSTS %4d LDL %3d STL %3d BAR %3d WARPGROUP %3d\n", name, hg, hm, ld, cp, ll, sl, bar, wg;
                           name=$3; hg=hm=ld=cp=ll=sl=bar=wg=0 }
            /HGMMA/ {hg++} /HMMA/ {hm++} /LDSM/ {ld++} /LDGSTS/ {cp++} /LDL/ {ll++} /STL/ {sl++} /BAR.SYNC/ {bar++} /WARPGROUP/ {wg++}
            END { if (name != "") printf "%-70s HGMMA %4d HMMA %4d LDSM %4d LDGSTS %4d LDL %3d STL %3d BAR %3d WARPGROUP %3d\n", name, hg, hm, ld, cp, ll, sl, bar, wg }' \
            | grep -E "assign|exact" | sed 's/_ZN3fkm//'
    } > "$OUT/sass.txt" 2>&1
    cat "$OUT/sass.txt"
fi

if has test; then
    ( cd "$BUILD" && timeout 900 ctest -L gpu --output-on-failure ) > "$OUT/ctest.log" 2>&1 || status=1
    grep -E "tests passed|tests failed|FAILED|Failed|checks|seed|runs in|Passed|\*\*\*" "$OUT/ctest.log" | tail -20
fi

if has sanitize; then
    for tool in memcheck racecheck; do
        FKM_TEST_SMALL=1 timeout 900 compute-sanitizer --tool "$tool" --error-exitcode 9 \
            "$BUILD/tests/test_gpu_assign" --small > "$OUT/$tool.log" 2>&1
        rc=$?
        echo "compute-sanitizer $tool: rc=$rc; $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Hazard" "$OUT/$tool.log" | sort | uniq -c | head -5 | tr '\n' ' ')"
        [ $rc -eq 0 ] || status=1
    done
fi

if has bench; then
    timeout "${BENCH_TIMEOUT:-1500}" "$BUILD/bench/bench_gpu" ${BENCH_ARGS:-} > "$OUT/bench.log" 2>&1 || status=1
    sed -n '/^\(NVIDIA\|Tesla\|H100\|H200\).*peak = /,$p' "$OUT/bench.log"
    grep -E "^device|^measured" "$OUT/bench.log"
fi
exit $status
