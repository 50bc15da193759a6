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
