#!/usr/bin/env bash
# Bad input, beyond test_cli.sh: each case gives one line "fkm: error: ..." naming the input,
# exit status 2, and no output file. Also non-finite rows (error, or skipped and counted) and
# the documented behaviour for K larger than the number of distinct rows.
source "$(dirname "$0")/lib.sh"
cd "$T"
"$FKM" gen --output x.h5 --n 500 --d 6 --clusters 3 --seed 1 > /dev/null || fail gen
$PYTHON - <<'PY' || fail "making files"
import h5py, numpy as np, struct
rng = np.random.default_rng()
x = rng.normal(size=(400, 5)).astype(np.float32)
with h5py.File("nan.h5", "w") as f:
    y = x.copy(); y[37, 2] = np.nan; f["/data"] = y
with h5py.File("inf.h5", "w") as f:
    y = x.copy(); y[5, 0] = np.inf; f["/data"] = y
with h5py.File("nanskip.h5", "w") as f:
    y = x.copy(); y[[3, 4, 250, 399], 1] = [np.nan, np.inf, -np.inf, np.nan]; f["/data"] = y
with h5py.File("clean.h5", "w") as f:
    f["/data"] = np.delete(x, [3, 4, 250, 399], axis=0)
with h5py.File("d0.h5", "w") as f:
    f["/data"] = np.zeros((5, 0), np.float32)
with h5py.File("c.h5", "w") as f:
    f["/k4"] = rng.normal(size=(4, 6)).astype(np.float32)
    f["/nan"] = np.full((3, 6), np.nan, np.float32)
with h5py.File("dup.h5", "w") as f:
    f["/data"] = np.repeat(rng.normal(size=(3, 4)).astype(np.float32), 50, axis=0)
# a truncated HDF5 file: the first half of a real one
b = open("x.h5", "rb").read(); open("trunc.h5", "wb").write(b[: len(b) // 2])
# .fbin whose header disagrees with the file size; one with rows*dims overflowing
open("short.fbin", "wb").write(struct.pack("<II", 100, 8) + b"\0" * 64)
open("huge.fbin", "wb").write(struct.pack("<II", 0xFFFFFFFF, 0xFFFFFFFF) + b"\0" * 64)
# a .npy cut short
hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (100, 4), }"
hdr = hdr + " " * (64 - 10 - len(hdr) - 1) + "\n"
open("cut.npy", "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() + b"\0" * 40)
PY
bad() { # bad "text in message" fkm-args...
  local want=$1; shift
  rm -f out.h5
  "$FKM" "$@" > stdout.txt 2> stderr.txt
  local rc=$?
  if [ $rc -ne 2 ]; then fail "'$*': exit $rc, want 2 ($(head -c 300 stderr.txt))"; return; fi
  if ! grep -q -- "^fkm: error: .*$want" stderr.txt; then fail "'$*': '$(cat stderr.txt)' lacks '$want'"; return; fi
  if [ "$(wc -l < stderr.txt)" -ne 1 ]; then fail "'$*': more than one line on stderr"; return; fi
  if ls | grep -q "^out.h5"; then fail "'$*': output file left behind"; return; fi
  ok "$want"
}
bad "row 37 has a non-finite value (nan) in column 2" fit --input nan.h5 --k 2 --output out.h5
bad "row 5 has a non-finite value (inf)" fit --input inf.h5 --k 2 --output out.h5
bad "not an HDF5 file\|truncated\|cannot\|corrupt" fit --input trunc.h5 --k 2 --output out.h5
bad "short.fbin" fit --input short.fbin --k 2 --output out.h5
bad "huge.fbin" fit --input huge.fbin --k 2 --output out.h5
bad "cut.npy" fit --input cut.npy --k 2 --output out.h5
bad "0 columns" fit --input d0.h5 --k 2 --output out.h5
bad "is the input file" fit --input x.h5 --k 2 --output ./x.h5
bad "is the input file" fit --input x.h5 --k 2 --output "$T/x.h5"
bad "is the input file" fit --input x.h5 --k 2 --checkpoint ./x.h5
bad "4 rows, --k is 3\|has 4 rows" fit --input x.h5 --k 3 --init c.h5:/k4 --output out.h5
bad "nan" fit --input x.h5 --k 3 --init c.h5:/nan --output out.h5
bad "c.h5" fit --input x.h5 --k 4 --init c.h5:/missing --output out.h5
bad "nothere.h5" fit --input x.h5 --k 4 --init nothere.h5 --output out.h5
bad "--iters" fit --input x.h5 --k 2 --iters -1 --output out.h5
bad "--tol" fit --input x.h5 --k 2 --tol -1 --output out.h5
bad "--tol" fit --input x.h5 --k 2 --tol nan --output out.h5
bad "--chunk-rows" fit --input x.h5 --k 2 --chunk-rows 0 --output out.h5
bad "--checkpoint-every" fit --input x.h5 --k 2 --checkpoint ck.h5 --checkpoint-every 0 --output out.h5
bad "--precision" fit --input x.h5 --k 2 --precision fp8 --output out.h5
bad "--residency" fit --input x.h5 --k 2 --residency tape --output out.h5
bad "--comm" fit --input x.h5 --k 2 --comm carrier-pigeon --output out.h5
bad "--empty" fit --input x.h5 --k 2 --empty drop --output out.h5
bad "--log-json" fit --input x.h5 --k 2 --log-json no/such/dir/log.jsonl --output out.h5
bad "--labels needs --output" fit --input x.h5 --k 2 --labels
bad "--dataset 'data'" fit --input x.h5 --dataset data --k 2 --output out.h5
bad "--k 3000000000 is too large" fit --input x.h5 --k 3000000000 --output out.h5
bad "--seed" fit --input x.h5 --k 2 --seed -5 --output out.h5
bad "needs a value" fit --input x.h5 --k 2 --output
bad "takes no value" fit --input x.h5 --k 2 --labels=yes --output out.h5
bad "unexpected argument" fit --input x.h5 --k 2 stray --output out.h5
bad "--d must be" gen --output out.h5 --n 10 --d 0
bad "--dtype" gen --output out.h5 --n 10 --d 3 --dtype int4
bad "--clusters" gen --output out.h5 --n 10 --d 3 --clusters 0
bad "--n" gen --output out.h5 --n 1e3 --d 3
bad "no such file" info missing.h5
bad "a FILE is required" info
if [ "${FKM_HAS_GPU:-0}" = 0 ]; then
  bad "--backend cuda" fit --input x.h5 --k 2 --backend cuda --output out.h5
fi

# --skip-nonfinite: the rows are left out (label -1) and the fit equals the fit of the clean rows
"$FKM" fit --input nanskip.h5 --k 3 --iters 10 --tol 0 --skip-nonfinite --output skip.h5 --labels > skip.txt \
  || fail "--skip-nonfinite run"
grep -q "skipping 4 rows" skip.txt && ok "skipped rows are counted in the log" || fail "log: $(head -2 skip.txt)"
"$FKM" fit --input clean.h5 --k 3 --iters 10 --tol 0 --output clean_out.h5 --labels -q || fail "clean run"
$PYTHON - <<'PY' && ok "--skip-nonfinite == fit of the finite rows; left-out rows labelled -1" || fail "skip result"
import h5py, numpy as np
a, b = h5py.File("skip.h5"), h5py.File("clean_out.h5")
assert a["/centroids"][...].tobytes() == b["/centroids"][...].tobytes()
la = a["/labels"][...]
assert list(np.nonzero(la == -1)[0]) == [3, 4, 250, 399], np.nonzero(la == -1)
assert np.array_equal(np.delete(la, [3, 4, 250, 399]), b["/labels"][...])
assert a["/counts"][...].sum() == 396
PY
# K larger than the number of distinct rows: documented to complete, with the duplicates'
# clusters empty (re-seeded by splitting) and every row counted
"$FKM" fit --input dup.h5 --k 5 --iters 5 --output dup_out.h5 --labels > dup.txt && \
  $PYTHON -c "import h5py; f=h5py.File('dup_out.h5'); assert f['/counts'][...].sum()==150" \
  && ok "K > distinct rows completes" || fail "K > distinct rows: $(tail -2 dup.txt)"
# out of host memory: status 1, how much, and the flag that helps; that flag then works
# (not under AddressSanitizer, whose shadow memory a virtual-memory limit forbids)
if ldd "$FKM" | grep -q libasan; then finish; fi
# The limit is the smallest (in 150 MB steps) under which the streamed fit of the rows below
# runs in this build (a CUDA build maps large libraries; OpenBLAS spins on a failed mmap of its
# buffers, hence the timeouts); the same rows kept in memory need about 520 MiB more, so the
# in-memory fit must then fail cleanly, naming the flag that helps.
"$FKM" gen --output big16.h5 --n 600000 --d 256 --dtype f16 --seed 2 > /dev/null || fail "gen big"
lim=""
for kb in $(seq 600000 150000 4000000); do
  if (ulimit -v $kb; timeout 15 "$FKM" fit --input big16.h5 --k 4 --iters 1 -q --backend cpu --residency file) > /dev/null 2>&1; then
    lim=$kb; break
  fi
done
if [ -z "$lim" ]; then fail "no virtual-memory limit lets the streamed fit run"; finish; fi
ok "--residency file runs under a ${lim} kB virtual-memory limit"
(ulimit -v $lim; timeout 60 "$FKM" fit --input big16.h5 --k 4 --iters 1 --backend cpu -q --residency device --output out.h5) 2> oom.txt; rc=$?
[ $rc -eq 1 ] && grep -q "out of host memory.*MiB.*--residency file" oom.txt && [ ! -e out.h5 ] \
  && ok "out of memory: $(cut -c1-90 oom.txt)..." || fail "out of memory under ${lim} kB: rc $rc $(cat oom.txt)"
finish
