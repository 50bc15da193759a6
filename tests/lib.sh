# Shared helpers of the shell tests (sourced). Environment from CTest: FKM, MPIEXEC, PYTHON, TEST_TMP.
set -u
FAILS=0
T=${TEST_TMP:-$(mktemp -d)}
rm -rf "$T" && mkdir -p "$T"
CHECK="$PYTHON $(dirname "${BASH_SOURCE[0]}")/check_fit.py"
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok: $*"; }
mpirun_n() { local n=$1; shift; "$MPIEXEC" --oversubscribe -n "$n" "$@"; }
finish() {
  if [ "$FAILS" -ne 0 ]; then echo "$FAILS checks failed"; exit 1; fi
  echo "all checks passed"; exit 0
}
# BACKEND=cuda (the gpu-labelled twin of a test) or cpu: sets B to the --backend flag; without a
# visible GPU the cuda twin is skipped (exit 77).
use_backend() {
  BACKEND=${BACKEND:-cpu}
  if [ "$BACKEND" = cuda ] && { ! command -v nvidia-smi > /dev/null || ! nvidia-smi -L > /dev/null 2>&1; }; then
    echo "no GPU: skipped"; exit 77
  fi
  B="--backend $BACKEND"
}
