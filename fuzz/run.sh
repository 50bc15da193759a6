#!/usr/bin/env bash
# Build the io/ fuzz harnesses with clang (libFuzzer + ASan + UBSan) and run each for a
# bounded time from its seed corpus, after replaying the committed crash regressions.
#
#   fuzz/run.sh                 every harness of the CI set, FUZZ_SECONDS (10) each
#   fuzz/run.sh npy h5          only those
#   FUZZ_H5_RAW=1 fuzz/run.sh   add h5_raw (raw bytes as an HDF5 file: finds HDF5's own bugs)
#
# Environment: FUZZ_SECONDS (10), FUZZ_BUILD (build folder, $BUILD_DIR/fuzz or /tmp/fkm-fuzz),
# FUZZ_JOBS (harnesses run at once: one per CPU, at most 3), CC (a clang). When no clang
# with libFuzzer is found and this runs as root with apt-get, clang is installed first;
# otherwise exit 77 (skipped). A crash leaves its input in $FUZZ_BUILD/artifacts/ and fails the run:
# commit it to fuzz/regressions/<harness>/ once fixed, so that every run replays it.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
SECONDS_EACH=${FUZZ_SECONDS:-10}
BUILD=${FUZZ_BUILD:-${BUILD_DIR:+$BUILD_DIR/fuzz}}
BUILD=${BUILD:-/tmp/fkm-fuzz}
NCPU=$(nproc 2>/dev/null || echo 2)
JOBS=${FUZZ_JOBS:-$((NCPU < 3 ? NCPU : 3))}
if [ $# -gt 0 ]; then HARNESSES="$*"; else HARNESSES="npy bigann h5"; fi
[ "${FUZZ_H5_RAW:-0}" = 1 ] && HARNESSES="$HARNESSES h5_raw"
mkdir -p "$BUILD" || exit 1

# ---- a clang that links -fsanitize=fuzzer ----
probe() { # probe CC: 0 when CC builds and runs a libFuzzer program
  printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }\n' \
    > "$BUILD/probe.c"
  "$1" -fsanitize=fuzzer,address,undefined "$BUILD/probe.c" -o "$BUILD/probe" > /dev/null 2>&1 &&
    "$BUILD/probe" -runs=1 > /dev/null 2>&1
}
find_clang() {
  local c
  for c in ${CC:-} clang $(compgen -c clang- 2>/dev/null | grep -E '^clang-[0-9]+$' | sort -t- -k2 -nr | uniq); do
    if command -v "$c" > /dev/null 2>&1 && probe "$c"; then CLANG=$(command -v "$c"); return 0; fi
  done
  return 1
}
CLANG=
if ! find_clang; then
  if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null 2>&1; then
    echo "fuzz: no clang with libFuzzer; installing clang with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq > "$BUILD/apt.log" 2>&1
    # Debian 12 ships libFuzzer in libclang-rt-<N>-dev, older releases inside clang itself
    apt-get install -y -qq --no-install-recommends clang >> "$BUILD/apt.log" 2>&1
    rt=$(apt-cache depends clang 2>/dev/null | sed -n 's/.*Depends: clang-\([0-9]*\)$/libclang-rt-\1-dev/p' | head -1)
    [ -n "$rt" ] && apt-get install -y -qq --no-install-recommends "$rt" >> "$BUILD/apt.log" 2>&1
    find_clang || { echo "fuzz: SKIP: clang installed but cannot link -fsanitize=fuzzer (see $BUILD/apt.log)"; exit 77; }
  else
    echo "fuzz: SKIP: no clang with libFuzzer (apt-get install clang libclang-rt-14-dev), and not root to install it"
    exit 77
  fi
fi
echo "fuzz: $($CLANG --version | head -1), $SECONDS_EACH s per harness, build in $BUILD"

# ---- build (only the io/ sources and the harnesses) ----
if ! { cmake -S "$HERE" -B "$BUILD/cmake" -DCMAKE_C_COMPILER="$CLANG" \
         -DCMAKE_BUILD_TYPE=RelWithDebInfo > "$BUILD/build.log" 2>&1 &&
       cmake --build "$BUILD/cmake" -j "$NCPU" >> "$BUILD/build.log" 2>&1; }; then
  tail -30 "$BUILD/build.log"
  echo "fuzz: FAIL: the harnesses do not build"
  exit 1
fi

# ASan: HDF5 asks for absurd sizes on crafted files (h5_raw); return NULL instead of dying
export ASAN_OPTIONS=${ASAN_OPTIONS:-allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

# ---- per harness: replay the regressions, then fuzz ----
run_one() { # run_one HARNESS: writes $BUILD/HARNESS.log and .result
  local h=$1 bin="$BUILD/cmake/fuzz_$1" log="$BUILD/$1.log" extra=()
  local work="$BUILD/corpus/$h" art="$BUILD/artifacts/$h-"
  mkdir -p "$work" "$BUILD/artifacts"
  local regs=() asan=$ASAN_OPTIONS
  # raw HDF5 bytes: HDF5 1.10 leaks on most corrupt files and its huge allocations make some
  # inputs take minutes under ASan (its bugs, not ours: fuzz/README.md); its regressions are
  # replayed by test_fuzz_replay_h5_raw instead
  if [ "$h" = h5_raw ]; then
    extra=(-detect_leaks=0 -malloc_limit_mb=2048 -timeout=120)
    asan=$asan:detect_leaks=0
  elif [ -d "$HERE/regressions/$h" ]; then
    while IFS= read -r f; do regs+=("$f"); done < <(find "$HERE/regressions/$h" -type f ! -name '.*' ! -name '*.md' | sort)
  fi
  if [ ${#regs[@]} -gt 0 ]; then
    if ! ASAN_OPTIONS=$asan "$bin" "${extra[@]}" "${regs[@]}" > "$log.replay" 2>&1; then
      echo "FAIL regressions" > "$BUILD/$h.result"
      return
    fi
  fi
  # the first corpus folder collects new inputs; the committed seeds are only read
  ASAN_OPTIONS=$asan "$bin" -max_total_time="$SECONDS_EACH" -timeout=20 -rss_limit_mb=3072 \
    -max_len=4096 -print_final_stats=1 -artifact_prefix="$art" "${extra[@]}" \
    "$work" "$HERE/corpus/$h" > "$log" 2>&1
  local rc=$?
  local runs; runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  local cov; cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  if [ $rc -eq 0 ]; then
    echo "ok ${runs:-?} runs, ${#regs[@]} regressions replayed, $cov" > "$BUILD/$h.result"
  else
    echo "FAIL rc $rc after ${runs:-?} runs: $(grep -m1 -E 'ERROR|broken promise|runtime error' "$log")" > "$BUILD/$h.result"
  fi
}

rm -f "$BUILD"/*.result
running=0
for h in $HARNESSES; do
  if [ ! -x "$BUILD/cmake/fuzz_$h" ]; then echo "FAIL no harness" > "$BUILD/$h.result"; continue; fi
  run_one "$h" &
  running=$((running + 1))
  if [ $running -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait

status=0
for h in $HARNESSES; do
  r=$(cat "$BUILD/$h.result" 2>/dev/null || echo "FAIL no result")
  echo "fuzz_$h: $r"
  case $r in
  FAIL*)
    status=1
    [ -s "$BUILD/$h.log.replay" ] && tail -20 "$BUILD/$h.log.replay"
    [ -s "$BUILD/$h.log" ] && grep -v -E '^#[0-9]+ +(NEW|REDUCE|pulse)' "$BUILD/$h.log" | tail -30
    ls "$BUILD/artifacts/$h-"* 2> /dev/null | sed 's/^/  input: /'
    ;;
  esac
done
exit $status
