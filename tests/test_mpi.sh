#!/usr/bin/env bash
# mpiexec -n 1..4 on one generated file: same rank count → bitwise identical outputs; other
# rank counts → labels identical (but exact ties), centroids within 1e-6; and the result
# equals an independent fp64 Lloyd (numpy) from the same initial centroids.
source "$(dirname "$0")/lib.sh"
"$FKM" gen --output "$T/x.h5" --n 20011 --d 19 --clusters 12 --seed 5 --dataset /emb/vectors || fail gen
for n in 1 2 3 4; do
  mpirun_n $n "$FKM" fit --input "$T/x.h5" --dataset /emb/vectors --k 12 --iters 15 --tol 0 \
    --seed 9 --backend cpu --output "$T/out$n.h5" --labels -q || fail "fit -n $n"
done
mpirun_n 3 "$FKM" fit --input "$T/x.h5" --dataset /emb/vectors --k 12 --iters 15 --tol 0 \
  --seed 9 --backend cpu --output "$T/out3b.h5" --labels -q || fail "fit -n 3 again"
$CHECK same "$T/out3.h5" "$T/out3b.h5" && ok "same rank count: bitwise equal" || fail "rerun differs"
for n in 2 3 4; do
  $CHECK close "$T/out1.h5" "$T/out$n.h5" && ok "-n $n matches -n 1" || fail "-n $n vs -n 1"
done
$CHECK layout "$T/out4.h5" 20011 19 12 || fail layout
# independent reference from a given init (f16 data too)
"$FKM" gen --output "$T/h.h5" --n 5003 --d 7 --clusters 6 --dtype f16 --seed 3 || fail gen16
$CHECK initfile "$T/h.h5" /data 6 "$T/init.h5" || fail initfile
mpirun_n 2 "$FKM" fit --input "$T/h.h5" --k 6 --iters 8 --tol 0 --init "$T/init.h5:/centroids" \
  --backend cpu --output "$T/h_out.h5" --labels -q || fail "fit f16"
$CHECK ref "$T/h.h5" /data "$T/init.h5" "$T/h_out.h5" 8 && ok "fp64 reference (f16 input)" || fail "reference f16"
mpirun_n 3 "$FKM" fit --input "$T/x.h5" --dataset /emb/vectors --k 12 --iters 6 --tol 0 \
  --init "$T/out1.h5:/centroids" --backend cpu --output "$T/r_out.h5" --labels -q || fail "fit ref"
$CHECK ref "$T/x.h5" /emb/vectors "$T/out1.h5" "$T/r_out.h5" 6 && ok "fp64 reference (f32)" || fail "reference f32"
# more ranks than rows: ranks with zero rows work
"$FKM" gen --output "$T/tiny.h5" --n 3 --d 2 --clusters 2 --seed 1 || fail gentiny
mpirun_n 5 "$FKM" fit --input "$T/tiny.h5" --k 2 --iters 3 --backend cpu --output "$T/tiny_out.h5" --labels -q \
  && $CHECK layout "$T/tiny_out.h5" 3 2 2 && ok "5 ranks, 3 rows" || fail "ranks without rows"
finish
