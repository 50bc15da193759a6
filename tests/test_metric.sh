#!/usr/bin/env bash
# --metric cosine and ip against an independent fp64 reference (check_fit.py ref --metric):
# spherical k-means (unit rows, largest cosine, means scaled to unit length, inertia 1 − mean
# cosine) and maximum-inner-product k-means (largest x·c, plain means, inertia −mean x·c), on
# 1 and 3 ranks, in memory and streamed from the file (bitwise equal for the same chunk), the
# /distances they write, `fkm assign` with the fit's centroids, empty-cluster splits staying
# unit vectors, the k-means++ inits, and the usage errors. BACKEND=cuda runs the same on the
# GPU (exact arithmetic for float32 rows, so the labels still equal the fp64 reference).
source "$(dirname "$0")/lib.sh"
use_backend
"$FKM" gen --output "$T/x.h5" --n 6007 --d 12 --clusters 7 --spread 3 --sigma 1 --seed 41 || fail gen
$CHECK initfile "$T/x.h5" /data 7 "$T/init.h5" || fail initfile
for M in cosine ip; do
  for n in 1 3; do
    mpirun_n $n "$FKM" fit --input "$T/x.h5" --k 7 --iters 8 --tol 0 --init "$T/init.h5" --metric $M $B \
      --empty keep --output "$T/$M$n.h5" --labels --distances -q || fail "fit --metric $M -n $n"
    $CHECK ref "$T/x.h5" /data "$T/init.h5" "$T/$M$n.h5" 8 --metric $M && ok "--metric $M, $n ranks, vs fp64" \
      || fail "--metric $M -n $n vs reference"
  done
  # streamed from the file in chunks of 500 rows == in memory with the same chunks
  mpirun_n 2 "$FKM" fit --input "$T/x.h5" --k 7 --iters 5 --tol 0 --init "$T/init.h5" --metric $M $B \
    --chunk-rows 500 --residency device --output "$T/${M}_dev.h5" --labels -q || fail "device $M"
  mpirun_n 2 "$FKM" fit --input "$T/x.h5" --k 7 --iters 5 --tol 0 --init "$T/init.h5" --metric $M $B \
    --chunk-rows 500 --residency file --output "$T/${M}_file.h5" --labels -q || fail "file $M"
  $CHECK same "$T/${M}_dev.h5" "$T/${M}_file.h5" && ok "--metric $M: file residency == device" \
    || fail "--metric $M residencies differ"
  # assign with the fit's centroids gives the fit's labels
  mpirun_n 2 "$FKM" assign --centroids "$T/${M}1.h5" --input "$T/x.h5" --metric $M $B --output "$T/${M}_as.h5" \
    --distances -q || fail "assign --metric $M"
  $PYTHON - "$T/${M}1.h5" "$T/${M}_as.h5" <<'PY' && ok "assign --metric $M == fit's labels and distances" || fail "assign --metric $M"
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
assert np.array_equal(a["/labels"][...], b["/labels"][...]), "labels differ"
assert np.array_equal(a["/distances"][...], b["/distances"][...]), "distances differ"
assert str(b.attrs["metric"]) == str(a.attrs["metric"])
PY
done
# cosine: rows of very different lengths along the same direction share a cluster
$PYTHON - "$T/scale.h5" <<'PY' || fail "scaled rows"
import sys, h5py, numpy as np
rng = np.random.default_rng(5)
dirs = rng.normal(size=(4, 6)); x = []
for i in range(800):
    x.append(dirs[i % 4] * 10.0 ** rng.uniform(-3, 3))
with h5py.File(sys.argv[1], "w") as f: f["/data"] = np.array(x, dtype=np.float32)
PY
"$FKM" fit --input "$T/scale.h5" --k 4 --iters 10 --metric cosine $B --init kmeans++ --output "$T/scale_out.h5" \
  --labels -q || fail "fit scaled rows"
$PYTHON - "$T/scale_out.h5" <<'PY' && ok "cosine ignores row lengths" || fail "cosine on scaled rows"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r"); lab = f["/labels"][...]
groups = [set(lab[i::4]) for i in range(4)]
assert all(len(g) == 1 for g in groups) and len(set.union(*groups)) == 4, groups
assert abs(float(f.attrs["inertia"])) < 1e-6, f.attrs["inertia"]
PY
# an empty cluster is split (two equal initial centroids): every centroid stays a unit vector
$PYTHON - "$T/init.h5" "$T/dup.h5" <<'PY' || fail "dup init"
import sys, h5py, numpy as np
c = h5py.File(sys.argv[1], "r")["/centroids"][...]
c[1] = c[0]
with h5py.File(sys.argv[2], "w") as f: f["/centroids"] = c
PY
"$FKM" fit --input "$T/x.h5" --k 7 --iters 4 --tol 0 --init "$T/dup.h5" --metric cosine $B --output "$T/split.h5" \
  --log-json "$T/split.json" -q || fail "split run"
$PYTHON - "$T/split.h5" "$T/split.json" <<'PY' && ok "cosine split keeps unit centroids" || fail "cosine split"
import sys, json, h5py, numpy as np
c = h5py.File(sys.argv[1], "r")["/centroids"][...].astype(np.float64)
assert np.abs(np.sqrt((c * c).sum(1)) - 1).max() < 1e-6
its = [json.loads(l) for l in open(sys.argv[2]) if '"iter"' in l]
assert its[0]["empty"] >= 1, "no empty cluster to split"
PY
# k-means++ and k-means|| under cosine: the same centroids for 1 and 3 ranks
for I in kmeans++ 'kmeans||'; do
  for n in 1 3; do
    mpirun_n $n "$FKM" fit --input "$T/x.h5" --k 7 --iters 3 --init "$I" --metric cosine $B \
      --output "$T/init_$n.h5" --labels -q || fail "--init $I -n $n"
  done
  $CHECK close "$T/init_1.h5" "$T/init_3.h5" && ok "--metric cosine --init $I: 1 rank == 3 ranks" \
    || fail "--init $I cosine ranks"
done
# float16 rows are normalised too
"$FKM" gen --output "$T/h.h5" --n 3000 --d 16 --clusters 5 --dtype f16 --seed 3 || fail gen16
"$FKM" fit --input "$T/h.h5" --k 5 --iters 5 --metric cosine $B --output "$T/h_out.h5" -q || fail "f16 cosine"
$PYTHON - "$T/h_out.h5" <<'PY' && ok "float16 rows, cosine: unit centroids" || fail "f16 cosine centroids"
import sys, h5py, numpy as np
c = h5py.File(sys.argv[1], "r")["/centroids"][...].astype(np.float64)
assert np.abs(np.sqrt((c * c).sum(1)) - 1).max() < 1e-6
PY
# usage errors
"$FKM" fit --input "$T/x.h5" --k 3 --metric euclid 2>"$T/e"; [ $? -eq 2 ] && grep -q -- "--metric 'euclid'" "$T/e" \
  && ok "--metric euclid refused" || fail "--metric euclid"
"$FKM" fit --input "$T/x.h5" --k 3 --metric ip --init 'kmeans||' 2>"$T/e"; [ $? -eq 2 ] && grep -q "metric ip" "$T/e" \
  && ok "--metric ip --init kmeans|| refused" || fail "ip with kmeans||"
"$FKM" fit --input "$T/x.h5" --k 7 --iters 4 --tol 0 --init "$T/init.h5" --metric cosine $B --checkpoint "$T/ck.h5" \
  --checkpoint-every 2 -q || fail "checkpoint run"
"$FKM" fit --input "$T/x.h5" --k 7 --iters 6 --tol 0 --init "$T/init.h5" --metric ip $B --resume "$T/ck.h5" \
  2>"$T/e"; [ $? -eq 2 ] && grep -q "made with --metric cosine" "$T/e" && ok "resume with another metric refused" \
  || fail "resume metric"
finish
