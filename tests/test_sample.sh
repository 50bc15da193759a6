#!/usr/bin/env bash
# --max-points-per-centroid M: Lloyd runs on the k·M rows fkm's sampler draws from the seed
# (re-implemented in check_init.py) and the labels, counts and inertia cover all rows, against
# an fp64 numpy reference; the same result on 1 and 3 ranks (and the file residency); with
# N ≤ k·M the flag changes nothing; usage errors.
source "$(dirname "$0")/lib.sh"
CI="$PYTHON $(dirname "$0")/check_init.py"
"$FKM" gen --output "$T/x.h5" --n 30011 --d 7 --clusters 10 --spread 3 --seed 41 || fail gen
$CHECK initfile "$T/x.h5" /data 10 "$T/init.h5" || fail initfile
for n in 1 3; do
  mpirun_n $n "$FKM" fit --input "$T/x.h5" --k 10 --iters 7 --tol 0 --init "$T/init.h5" --seed 12 \
    --max-points-per-centroid 150 --backend cpu --output "$T/s$n.h5" --labels -q || fail "fit -n $n"
done
$CI sample-ref "$T/x.h5" /data "$T/init.h5" "$T/s1.h5" 7 150 12 && ok "trained on the sample, labels of all rows" \
  || fail "sample reference"
$CHECK close "$T/s1.h5" "$T/s3.h5" && ok "1 and 3 ranks agree" || fail "1 vs 3 ranks"
mpirun_n 2 "$FKM" fit --input "$T/x.h5" --k 10 --iters 7 --tol 0 --init "$T/init.h5" --seed 12 \
  --max-points-per-centroid 150 --backend cpu --residency file --chunk-rows 500 --output "$T/sf.h5" --labels -q \
  && $CHECK close "$T/s1.h5" "$T/sf.h5" && ok "file residency agrees" || fail "file residency"
# the random init draws from the sample too: the same on 1 and 3 ranks
for n in 1 3; do
  mpirun_n $n "$FKM" fit --input "$T/x.h5" --k 10 --iters 0 --seed 3 --max-points-per-centroid 50 \
    --backend cpu --output "$T/r$n.h5" --labels -q || fail "random init -n $n"
done
$CI same "$T/r1.h5" "$T/r3.h5" && ok "random init from the sample: rank-independent" || fail "random init from the sample"
# N ≤ k·M: no sampling, bitwise the run without the flag
"$FKM" fit --input "$T/x.h5" --k 10 --iters 3 --backend cpu --max-points-per-centroid 3002 --output "$T/a.h5" --labels -q \
  && "$FKM" fit --input "$T/x.h5" --k 10 --iters 3 --backend cpu --output "$T/b.h5" --labels -q \
  && $CHECK same "$T/a.h5" "$T/b.h5" && ok "N <= k*M changes nothing" || fail "N <= k*M"
"$FKM" fit --input "$T/x.h5" --k 10 --max-points-per-centroid 0 2>"$T/e"; [ $? -eq 2 ] && grep -q max-points "$T/e" \
  && ok "--max-points-per-centroid 0 refused" || fail "--max-points-per-centroid 0"
finish
