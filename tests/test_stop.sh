#!/usr/bin/env bash
# Stop rules: --shift-tol stops at the first iteration whose max centroid shift is at most S ×
# the RMS norm of the starting centroids (found here from the log of the same run without the
# rule, and the init file); --reassign-tol stops at the first iteration where the fraction of
# changed labels is at most R, and the logged fractions equal an fp64 Lloyd in numpy. 1 and 3
# ranks. Usage errors.
source "$(dirname "$0")/lib.sh"
CI="$PYTHON $(dirname "$0")/check_init.py"
"$FKM" gen --output "$T/x.h5" --n 9001 --d 5 --clusters 9 --spread 4 --sigma 1.3 --seed 17 || fail gen
$CHECK initfile "$T/x.h5" /data 9 "$T/init.h5" || fail initfile
for n in 1 3; do
  mpirun_n $n "$FKM" fit --input "$T/x.h5" --k 9 --iters 60 --tol 0 --init "$T/init.h5" --backend cpu \
    --log-json "$T/full_$n.json" -q || fail "full run -n $n"
  # a threshold between two shifts in the middle of the run
  S=$($PYTHON - "$T/full_$n.json" "$T/init.h5" <<'PY'
import json, sys, h5py, numpy as np
its = [json.loads(l) for l in open(sys.argv[1]) if '"iter"' in l]
c = h5py.File(sys.argv[2], "r")["/centroids"][...].astype(np.float64)
scale = np.sqrt((c * c).sum() / c.shape[0])
sh = [r["max_shift"] for r in its]
j = next(i for i in range(1, len(sh)) if sh[i] < 0.05 * sh[0])
print("%.9g" % (np.sqrt(sh[j] * max(sh[j - 1], sh[j] * 1.01)) / scale))
PY
)
  mpirun_n $n "$FKM" fit --input "$T/x.h5" --k 9 --iters 60 --tol 0 --init "$T/init.h5" --backend cpu \
    --shift-tol "$S" --log-json "$T/shift_$n.json" -q || fail "shift-tol run -n $n"
  $CI shift-stop "$T/full_$n.json" "$T/shift_$n.json" "$T/init.h5" "$S" && ok "--shift-tol $S, $n ranks" \
    || fail "--shift-tol -n $n"
  for R in 0.0025 0; do
    mpirun_n $n "$FKM" fit --input "$T/x.h5" --k 9 --iters 100 --tol 0 --init "$T/init.h5" --backend cpu \
      --reassign-tol $R --log-json "$T/re_$n.json" -q || fail "reassign-tol run -n $n"
    $CI reassign-stop "$T/x.h5" /data "$T/init.h5" "$T/re_$n.json" $R && ok "--reassign-tol $R, $n ranks" \
      || fail "--reassign-tol $R -n $n"
  done
done
# the fraction shows in the human log too; the rules are off by default
"$FKM" fit --input "$T/x.h5" --k 9 --iters 3 --tol 0 --init "$T/init.h5" --backend cpu --reassign-tol 0 \
  | grep -q "iter    2 .*reassigned" && ok "reassigned in the log line" || fail "log line"
! grep -q 'reassigned\|shift-tol' "$T/full_1.json" && ok "no rule by default" || fail "default rules"
"$FKM" fit --input "$T/x.h5" --k 3 --shift-tol -1 2>"$T/e"; [ $? -eq 2 ] && grep -q shift-tol "$T/e" \
  && ok "--shift-tol -1 refused" || fail "--shift-tol -1"
"$FKM" fit --input "$T/x.h5" --k 3 --reassign-tol 1.5 2>"$T/e"; [ $? -eq 2 ] && grep -q reassign-tol "$T/e" \
  && ok "--reassign-tol 1.5 refused" || fail "--reassign-tol 1.5"
finish
