#!/usr/bin/env bash
# fkm assign: labels and counts equal fkm fit's own for the fit's centroids and data (1 and 3
# ranks); a fresh float16 dataset at another path, streamed from the file in chunks, against
# an fp64 numpy reference (labels, squared distances, counts, inertia); bad usage exits 2.
source "$(dirname "$0")/lib.sh"
CI="$PYTHON $(dirname "$0")/check_init.py"
"$FKM" gen --output "$T/x.h5" --n 15013 --d 9 --clusters 12 --seed 31 || fail gen
mpirun_n 2 "$FKM" fit --input "$T/x.h5" --k 12 --iters 6 --backend cpu --output "$T/fit.h5" --labels -q || fail fit
for n in 1 3; do
  mpirun_n $n "$FKM" assign --centroids "$T/fit.h5" --input "$T/x.h5" --backend cpu --output "$T/a$n.h5" -q \
    || fail "assign -n $n"
  $PYTHON - "$T/fit.h5" "$T/a$n.h5" <<'PY' && ok "assign -n $n: the fit's labels and counts" || fail "assign -n $n vs fit"
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
for k in ("labels", "counts", "centroids"):
    if not np.array_equal(a[k][...], b[k][...]):
        sys.exit("%s differ" % k)
if "distances" in b or int(b.attrs["iterations"]) != 0:
    sys.exit("unexpected /distances or iterations")
PY
done
# a fresh dataset: float16, another dataset path, streamed from the file in chunks
"$FKM" gen --output "$T/y.h5" --n 7001 --d 9 --clusters 5 --seed 77 --dtype f16 --dataset /emb/v || fail gen2
mpirun_n 2 "$FKM" assign --centroids "$T/fit.h5:/centroids" --input "$T/y.h5" --dataset /emb/v --distances \
  --backend cpu --residency file --chunk-rows 999 --output "$T/ay.h5" -q || fail "assign fresh"
$CI assign "$T/y.h5" /emb/v "$T/fit.h5" "$T/ay.h5" && ok "fresh data vs fp64 numpy" || fail "fresh data vs numpy"
# fit --labels --distances writes the same /distances
"$FKM" fit --input "$T/x.h5" --k 12 --iters 0 --init "$T/fit.h5" --backend cpu --output "$T/fd.h5" --labels \
  --distances -q && $CI assign "$T/x.h5" /data "$T/fit.h5" "$T/fd.h5" && ok "fit --distances" || fail "fit --distances"
# usage and input errors: exit 2, one line naming the problem, no output file
"$FKM" assign --input "$T/x.h5" --output "$T/e.h5" 2>"$T/e"; [ $? -eq 2 ] && grep -q -- "--centroids" "$T/e" \
  && ok "missing --centroids" || fail "missing --centroids"
"$FKM" assign --centroids "$T/fit.h5" --input "$T/x.h5" 2>"$T/e"; [ $? -eq 2 ] && grep -q -- "--output" "$T/e" \
  && ok "missing --output" || fail "missing --output"
"$FKM" gen --output "$T/z.h5" --n 100 --d 4 --seed 1 || fail gen3
"$FKM" assign --centroids "$T/fit.h5" --input "$T/z.h5" --output "$T/e.h5" 2>"$T/e"; [ $? -eq 2 ] && [ ! -e "$T/e.h5" ] \
  && ok "centroids of another width: $(cat "$T/e")" || fail "width mismatch"
"$FKM" assign --centroids "$T/nope.h5" --input "$T/x.h5" --output "$T/e.h5" 2>"$T/e"; [ $? -eq 2 ] && grep -q "nope.h5" "$T/e" \
  && ok "missing centroids file" || fail "missing centroids file"
"$FKM" fit --input "$T/x.h5" --k 3 --output "$T/e.h5" --distances 2>"$T/e"; [ $? -eq 2 ] && grep -q -- "--labels" "$T/e" \
  && ok "fit --distances needs --labels" || fail "fit --distances without --labels"
finish
