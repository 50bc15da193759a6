#!/usr/bin/env bash
# --init kmeans++ and kmeans||: the same initial centroids (bitwise) for 1, 2 and 3 ranks and
# across residencies; every initial centroid is a row of the input; lower final inertia than random on
# a hard mixture (mean over seeds); k-means|| with fewer candidates than k fills up with rows;
# usage errors. (The D²-proportional draws are tested in test_kmeanspp.)
source "$(dirname "$0")/lib.sh"
CI="$PYTHON $(dirname "$0")/check_init.py"
tagof() { case "$1" in kmeans++) echo pp ;; 'kmeans||') echo par ;; *) echo "$1" ;; esac; }
"$FKM" gen --output "$T/x.h5" --n 12007 --d 11 --clusters 30 --spread 6 --seed 21 || fail gen
for init in kmeans++ 'kmeans||'; do
  tag=$(tagof "$init")
  for n in 1 2 3; do
    mpirun_n $n "$FKM" fit --input "$T/x.h5" --k 30 --iters 0 --seed 5 --init "$init" \
      --backend cpu --output "$T/${tag}_$n.h5" --labels -q || fail "$init -n $n"
  done
  $CI same "$T/${tag}_1.h5" "$T/${tag}_2.h5" "$T/${tag}_3.h5" && ok "$init: 1, 2, 3 ranks bitwise equal" \
    || fail "$init: rank counts differ"
  mpirun_n 2 "$FKM" fit --input "$T/x.h5" --k 30 --iters 0 --seed 5 --init "$init" \
    --backend cpu --residency file --chunk-rows 1234 --output "$T/${tag}_file.h5" --labels -q || fail "$init file"
  $CI same "$T/${tag}_1.h5" "$T/${tag}_file.h5" && ok "$init: --residency file gives the same" \
    || fail "$init: residency file differs"
  "$FKM" fit --input "$T/x.h5" --k 30 --iters 0 --seed 6 --init "$init" --backend cpu \
    --output "$T/${tag}_0.h5" -q || fail "$init iters 0"
  $CI rows "$T/${tag}_0.h5" "$T/x.h5" /data && ok "$init: centroids are input rows" || fail "$init rows"
done
# a sample smaller than the data: still rows, still rank-independent, and not the full-data result
for n in 1 3; do
  mpirun_n $n "$FKM" fit --input "$T/x.h5" --k 30 --iters 0 --seed 6 --init kmeans++ --init-sample 500 \
    --backend cpu --output "$T/s_$n.h5" -q || fail "init-sample -n $n"
done
$CI same "$T/s_1.h5" "$T/s_3.h5" && $CI rows "$T/s_1.h5" "$T/x.h5" /data && ok "--init-sample 500" || fail "--init-sample"
$CI same "$T/s_1.h5" "$T/pp_0.h5" >/dev/null && fail "--init-sample had no effect"

# a hard mixture (many close clusters): Lloyd from random rows gets stuck more often
"$FKM" gen --output "$T/hard.h5" --n 20000 --d 6 --clusters 60 --spread 12 --sigma 0.6 --seed 8 || fail gen
declare -A F
for init in random kmeans++ 'kmeans||'; do
  tag=$(tagof "$init")
  for s in 1 2 3 4 5; do
    "$FKM" fit --input "$T/hard.h5" --k 60 --iters 10 --seed $s --init "$init" --backend cpu \
      --output "$T/h_${tag}_$s.h5" -q || fail "hard $init $s"
    F[$tag]+="$T/h_${tag}_$s.h5 "
  done
done
$CI mean-inertia ${F[pp]} -- ${F[random]} && ok "kmeans++ beats random on average" || fail "kmeans++ vs random"
$CI mean-inertia ${F[par]} -- ${F[random]} && ok "kmeans|| beats random on average" || fail "kmeans|| vs random"

# k-means|| with fewer distinct rows than k: candidates run out (φ = 0), random rows fill up
$CI dup "$T/dup.h5" 12 4 2 || fail dup
for n in 1 2; do
  mpirun_n $n "$FKM" fit --input "$T/dup.h5" --k 10 --iters 0 --init 'kmeans||' --backend cpu \
    --output "$T/dup_$n.h5" --labels -q || fail "dup -n $n"
done
$CI same "$T/dup_1.h5" "$T/dup_2.h5" && $CI rows "$T/dup_1.h5" "$T/dup.h5" /data \
  && ok "kmeans|| fills up when candidates < k" || fail "kmeans|| few candidates"
"$FKM" fit --input "$T/dup.h5" --k 10 --iters 0 --init kmeans++ --backend cpu --output "$T/dup_pp.h5" -q \
  && $CI rows "$T/dup_pp.h5" "$T/dup.h5" /data && ok "kmeans++ with fewer distinct rows than k" || fail "kmeans++ dup"

# usage errors: exit 2 and one line naming the flag
"$FKM" fit --input "$T/x.h5" --k 3 --init-sample 100 2>"$T/e1"; [ $? -eq 2 ] && grep -q "init-sample" "$T/e1" \
  && ok "--init-sample without kmeans++" || fail "--init-sample without kmeans++"
"$FKM" fit --input "$T/x.h5" --k 30 --init kmeans++ --init-sample 10 2>"$T/e2"; [ $? -eq 2 ] && grep -q "smaller than --k" "$T/e2" \
  && ok "--init-sample < k" || fail "--init-sample < k"
"$FKM" fit --input "$T/x.h5" --k 3 --init kmeans++ --init-sample 0 2>"$T/e3"; [ $? -eq 2 ] && ok "--init-sample 0" || fail "--init-sample 0"
finish
