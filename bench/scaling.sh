#!/usr/bin/env bash
# Weak and strong scaling of `fkm fit` over 1..P ranks: per-iteration time, all-reduce time and
# efficiency, from the JSON iteration log (median over the timed iterations, the first two
# dropped as warm-up).
#
#   bench/scaling.sh [P=4] [N_PER_RANK=1000000] [D=128] [K=1024] [BACKEND=cpu] [ITERS=8]
#
# Weak scaling: N = N_PER_RANK × ranks (efficiency = t(1) / t(P)). Strong scaling: N =
# N_PER_RANK × P split over 1..P ranks (efficiency = t(1) / (P' · t(P'))). Ranks share the
# machine's devices: on one GPU, several ranks share it through the MPI path (--comm mpi);
# with one GPU per rank, NCCL. Environment: FKM (the binary), MPIEXEC, EXTRA (more fkm flags),
# TMPDIR (where the generated data goes).
set -euo pipefail
P=${1:-4}; NPR=${2:-1000000}; D=${3:-128}; K=${4:-1024}; BACKEND=${5:-cpu}; ITERS=${6:-8}
FKM=${FKM:-$(dirname "$0")/../build/fkm}
MPIEXEC=${MPIEXEC:-mpirun}
PY=${PYTHON:-python3}
DIR=$(mktemp -d "${TMPDIR:-/tmp}/fkm-scaling.XXXXXX")
trap 'rm -rf "$DIR"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}
dtype=f32; [ "$BACKEND" = cuda ] && dtype=f16

median_of() { # json log -> "iter_ms comm_ms"
  $PY - "$1" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if '"iter"' in l]
rows = rows[2:] if len(rows) > 3 else rows
print("%.3f %.3f" % (statistics.median(r["ms"] for r in rows), statistics.median(r["ms_comm"] for r in rows)))
PY
}
run() { # ranks n -> "iter_ms comm_ms"
  local ranks=$1 n=$2 f="$DIR/x$2.h5"
  [ -e "$f" ] || "$FKM" gen --output "$f" --n "$n" --d "$D" --clusters 64 --dtype $dtype --seed 1 > /dev/null
  "$MPIEXEC" --oversubscribe -n "$ranks" "$FKM" fit --input "$f" --k "$K" --iters "$ITERS" --tol 0 \
    --backend "$BACKEND" -q --log-json "$DIR/log.jsonl" ${EXTRA:-} > /dev/null
  median_of "$DIR/log.jsonl"
}
echo "fkm scaling: backend=$BACKEND D=$D K=$K iters=$ITERS ranks 1..$P, $(hostname)"
printf "%-7s %6s %12s %12s %10s %10s\n" mode ranks N ms/iter allreduce efficiency
base=""
for r in $(seq 1 "$P"); do
  read -r t c < <(run "$r" $((NPR * r)))
  [ -z "$base" ] && base=$t
  printf "%-7s %6d %12d %12.2f %10.2f %9.0f%%\n" weak "$r" $((NPR * r)) "$t" "$c" "$($PY -c "print(100*$base/$t)")"
done
base=""
for r in $(seq 1 "$P"); do
  read -r t c < <(run "$r" $((NPR * P)))
  [ -z "$base" ] && base=$t
  printf "%-7s %6d %12d %12.2f %10.2f %9.0f%%\n" strong "$r" $((NPR * P)) "$t" "$c" "$($PY -c "print(100*$base/($r*$t))")"
done
