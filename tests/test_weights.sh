#!/usr/bin/env bash
# --weights FILE[:/dataset]: weighted Lloyd against an independent fp64 reference (means of w·x
# over Σ w, inertia Σ w·d², /weights = Σ w per cluster, /counts = rows) on 1 and 3 ranks, in
# memory and streamed; integer weights equal repeating each row w times; weights of 1 equal no
# weights bitwise; k-means++ and k-means|| never seed from rows of weight 0 and do not depend
# on the number of ranks; cosine with weights; .npy (1-D) and HDF5 (1-D, N×1) weights;
# checkpoint + resume bitwise; --max-points-per-centroid; every bad weights file is a one-line
# input error. BACKEND=cuda runs the same on the GPU.
source "$(dirname "$0")/lib.sh"
use_backend
"$FKM" gen --output "$T/x.h5" --n 5003 --d 9 --clusters 6 --spread 4 --sigma 1 --seed 23 || fail gen
$CHECK initfile "$T/x.h5" /data 6 "$T/init.h5" || fail initfile
# weights: on a grid of 1/8 in [0, 4), a tenth of them 0; also as .npy (1-D), N×1 HDF5, ones,
# and integer weights with the matching repeated-rows file
$PYTHON - "$T" <<'PY' || fail "weights files"
import sys, h5py, numpy as np
t = sys.argv[1]
rng = np.random.default_rng(7)
x = h5py.File(t + "/x.h5", "r")["/data"][...]
n = x.shape[0]
w = (rng.integers(0, 32, n) / 8.0).astype(np.float32)
w[rng.random(n) < 0.1] = 0
with h5py.File(t + "/w.h5", "w") as f:
    f["/weights"] = w
    f["/col"] = w.reshape(n, 1)
    f["/ones"] = np.ones(n, np.float32)
    f["/short"] = w[:-1]
    f["/two"] = np.stack([w, w], 1)
    bad = w.copy(); bad[17] = -1; f["/neg"] = bad
    bad = w.copy(); bad[4000] = np.nan; f["/nan"] = bad
    f["/zero"] = np.zeros(n, np.float32)
    wi = rng.integers(0, 4, n).astype(np.float32)
    f["/int"] = wi
np.save(t + "/w.npy", w)
with h5py.File(t + "/rep.h5", "w") as f:
    f["/data"] = np.repeat(x, wi.astype(np.int64), axis=0)
# two far blobs, the second of weight 0
a = rng.normal(size=(600, 4)).astype(np.float32)
b = rng.normal(size=(600, 4)).astype(np.float32) + 100
with h5py.File(t + "/two.h5", "w") as f:
    f["/data"] = np.concatenate([a, b])
    f["/weights"] = np.concatenate([np.ones(600), np.zeros(600)]).astype(np.float32)
PY
for n in 1 3; do
  mpirun_n $n "$FKM" fit --input "$T/x.h5" --k 6 --iters 7 --tol 0 --init "$T/init.h5" --weights "$T/w.h5" $B \
    --empty keep --output "$T/w$n.h5" --labels -q || fail "weighted fit -n $n"
  $CHECK ref "$T/x.h5" /data "$T/init.h5" "$T/w$n.h5" 7 --weights "$T/w.h5:/weights" \
    && ok "weighted, $n ranks, vs fp64" || fail "weighted -n $n vs reference"
done
mpirun_n 2 "$FKM" fit --input "$T/x.h5" --k 6 --iters 5 --tol 0 --init "$T/init.h5" --weights "$T/w.h5" $B \
  --chunk-rows 700 --residency device --output "$T/wdev.h5" --labels -q || fail "device"
mpirun_n 2 "$FKM" fit --input "$T/x.h5" --k 6 --iters 5 --tol 0 --init "$T/init.h5" --weights "$T/w.h5" $B \
  --chunk-rows 700 --residency file --output "$T/wfile.h5" --labels -q || fail "file"
$CHECK same "$T/wdev.h5" "$T/wfile.h5" && ok "weighted: file residency == device" || fail "weighted residencies"
# other files holding the same weights
for spec in "$T/w.h5:/col" "$T/w.npy"; do
  "$FKM" fit --input "$T/x.h5" --k 6 --iters 7 --tol 0 --init "$T/init.h5" --weights "$spec" $B --empty keep \
    --output "$T/wspec.h5" --labels -q || fail "weights $spec"
  $CHECK same --datasets-only "$T/w1.h5" "$T/wspec.h5" && ok "weights from $(basename "$spec")" || fail "weights $spec"
done
# weights of 1 == no weights, bitwise (products by 1 are exact; counts come from the labels)
"$FKM" fit --input "$T/x.h5" --k 6 --iters 7 --tol 0 --init "$T/init.h5" $B --output "$T/plain.h5" --labels -q || fail plain
"$FKM" fit --input "$T/x.h5" --k 6 --iters 7 --tol 0 --init "$T/init.h5" --weights "$T/w.h5:/ones" $B \
  --output "$T/ones.h5" --labels -q || fail ones
$PYTHON - "$T/plain.h5" "$T/ones.h5" <<'PY' && ok "weights of 1 == no weights (bitwise)" || fail "ones vs plain"
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
for k in ("centroids", "labels", "counts"):
    assert a[k][...].tobytes() == b[k][...].tobytes(), k
assert float(a.attrs["inertia"]) == float(b.attrs["inertia"])
assert np.array_equal(b["/weights"][...], a["/counts"][...].astype(np.float64))
PY
# integer weights == each row repeated that many times
"$FKM" fit --input "$T/x.h5" --k 6 --iters 7 --tol 0 --init "$T/init.h5" --weights "$T/w.h5:/int" $B --empty keep \
  --output "$T/wint.h5" -q || fail "integer weights"
"$FKM" fit --input "$T/rep.h5" --k 6 --iters 7 --tol 0 --init "$T/init.h5" $B --empty keep --output "$T/rep_out.h5" -q \
  || fail "repeated rows"
$PYTHON - "$T/wint.h5" "$T/rep_out.h5" <<'PY' && ok "integer weights == repeated rows" || fail "integer weights vs repeated"
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
ca, cb = a["/centroids"][...].astype(np.float64), b["/centroids"][...].astype(np.float64)
assert np.abs(ca - cb).max() <= 1e-5 * np.abs(cb).max(), np.abs(ca - cb).max()
assert np.array_equal(a["/weights"][...], b["/counts"][...].astype(np.float64))
ia, ib = float(a.attrs["inertia"]), float(b.attrs["inertia"])
assert abs(ia - ib) <= 1e-6 * ib, (ia, ib)
PY
# seeding: rows of weight 0 (the far blob) are never chosen; 1 rank == 3 ranks
for I in kmeans++ 'kmeans||'; do
  for n in 1 3; do
    mpirun_n $n "$FKM" fit --input "$T/two.h5" --k 5 --iters 0 --init "$I" --weights "$T/two.h5" $B \
      --output "$T/seed_$n.h5" --labels -q || fail "--init $I weighted -n $n"
  done
  $PYTHON - "$T/seed_1.h5" <<'PY' && ok "--init $I: no centroid from rows of weight 0" || fail "--init $I picked a weight-0 row"
import sys, h5py, numpy as np
c = h5py.File(sys.argv[1], "r")["/centroids"][...]
assert (c < 50).all(), c
PY
  $CHECK close "$T/seed_1.h5" "$T/seed_3.h5" && ok "--init $I weighted: 1 rank == 3 ranks" || fail "--init $I ranks"
done
# cosine with weights: a weighted mean of the unit rows, normalised
"$FKM" fit --input "$T/x.h5" --k 6 --iters 6 --tol 0 --init "$T/init.h5" --weights "$T/w.h5" --metric cosine $B \
  --empty keep --output "$T/wcos.h5" --labels -q || fail "weighted cosine"
$CHECK ref "$T/x.h5" /data "$T/init.h5" "$T/wcos.h5" 6 --metric cosine --weights "$T/w.h5:/weights" \
  && ok "weighted cosine vs fp64" || fail "weighted cosine"
# checkpoint and resume
"$FKM" fit --input "$T/x.h5" --k 6 --iters 9 --tol 0 --init "$T/init.h5" --weights "$T/w.h5" $B --output "$T/full9.h5" \
  -q || fail "full 9"
"$FKM" fit --input "$T/x.h5" --k 6 --iters 9 --tol 0 --init "$T/init.h5" --weights "$T/w.h5" $B --checkpoint "$T/ck.h5" \
  --checkpoint-every 4 -q || fail "checkpointed run"
"$FKM" fit --input "$T/x.h5" --k 6 --iters 9 --tol 0 --init "$T/init.h5" --weights "$T/w.h5" $B --resume "$T/ck.h5" \
  --output "$T/res9.h5" -q || fail "resume"
$CHECK same "$T/full9.h5" "$T/res9.h5" && ok "weighted resume bitwise" || fail "weighted resume"
# training on a sample keeps the sampled rows' weights
"$FKM" fit --input "$T/x.h5" --k 6 --iters 4 --weights "$T/w.h5" --max-points-per-centroid 300 $B \
  --output "$T/samp.h5" --labels -q && $CHECK layout "$T/samp.h5" 5003 9 6 >/dev/null && ok "weights with a training sample" \
  || fail "weights + --max-points-per-centroid"
# bad weights: exit 2, one line naming the file and what is wrong, no output
expect_bad() {
  local want=$1; shift
  rm -f "$T/bad_out.h5"
  "$FKM" fit --input "$T/x.h5" --k 6 --iters 2 $B --output "$T/bad_out.h5" "$@" 2> "$T/err"; local rc=$?
  if [ $rc -eq 2 ] && grep -q -- "$want" "$T/err" && [ "$(wc -l < "$T/err")" -eq 1 ] && [ ! -e "$T/bad_out.h5" ]; then
    ok "refused: $want"
  else
    fail "bad weights ($*): rc $rc, $(cat "$T/err")"
  fi
}
expect_bad "5002 values, the input" --weights "$T/w.h5:/short"
expect_bad "expected one per row" --weights "$T/w.h5:/two"
expect_bad "row 17 has weight -1" --weights "$T/w.h5:/neg"
expect_bad "row 4000 has weight nan" --weights "$T/w.h5:/nan"
expect_bad "every weight is 0" --weights "$T/w.h5:/zero"
expect_bad "/missing" --weights "$T/w.h5:/missing"
expect_bad "nosuch.h5" --weights "$T/nosuch.h5"
finish
