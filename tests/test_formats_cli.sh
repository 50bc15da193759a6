#!/usr/bin/env bash
# `fkm fit` on .npy, .fbin, .u8bin, .i8bin and the HDF5 int8/uint8/bfloat16 types: the same
# data in any format gives bitwise the same centroids, counts and labels as in HDF5 (one
# rank and three ranks); `fkm info` describes each; a bad file is one line, exit 2.
source "$(dirname "$0")/lib.sh"
SEED=${FKM_TEST_SEED:-$((RANDOM * 32768 + RANDOM))}
echo "data seed $SEED (FKM_TEST_SEED=$SEED reproduces)"
"$FKM" gen --output "$T/x.h5" --n 5000 --d 12 --clusters 6 --seed "$SEED" || fail gen

# the same matrices in every format, from numpy (the test's own writer, not fkm's)
$PYTHON - "$T" "$SEED" <<'PY' || fail "making the files"
import struct, sys
import h5py, numpy as np
t, seed = sys.argv[1], int(sys.argv[2])
x = h5py.File(t + "/x.h5", "r")["/data"][...].astype(np.float32)
rng = np.random.default_rng(seed)

def bigann(path, a, dt):
    with open(path, "wb") as f:
        f.write(struct.pack("<II", *a.shape))
        f.write(np.ascontiguousarray(a, dtype=dt).tobytes())

np.save(t + "/x.npy", x)
bigann(t + "/x.fbin", x, "<f4")
# float16 and float64 in .npy and HDF5
np.save(t + "/h.npy", x.astype("<f2"))
np.save(t + "/w.npy", x.astype("<f8") + rng.uniform(-1e-3, 1e-3, x.shape))
w = np.load(t + "/w.npy")
# uint8 / int8: quantised copies of x (as in SIFT / big-ann data)
q = np.clip(np.round(x * 6 + 128), 0, 255).astype(np.uint8)
s = np.clip(np.round(x * 6), -128, 127).astype(np.int8)
np.save(t + "/q.npy", q)
bigann(t + "/q.u8bin", q, "u1")
bigann(t + "/s.i8bin", s, "i1")
# bfloat16: the top 16 bits of x, stored as uint16 with dtype = "bfloat16"; its float32
# reference is those bits shifted back
b = (x.view(np.uint32) >> 16).astype(np.uint16)
bf = (b.astype(np.uint32) << 16).view(np.float32)
with h5py.File(t + "/ref.h5", "w") as f:
    f["/h"] = x.astype("<f2")
    f["/w"] = w
    f["/q"] = q
    f["/s"] = s
    f["/b_as_f32"] = bf
    f["/b"] = b
    f["/b"].attrs["dtype"] = "bfloat16"
PY

fit() { # fit OUT INPUT [DATASET]: fixed k, seed and iterations
  local out=$1 in=$2 ds=${3:-/data}
  "$FKM" fit --input "$in" --dataset "$ds" --k 6 --iters 15 --tol 0 --seed 7 --backend cpu \
    --labels -q --output "$out" || fail "fit $in:$ds"
}
same() { # same A B WHAT
  if $CHECK same --datasets-only "$1" "$2" > "$T/same.txt"; then ok "$3"; else fail "$3: $(cat "$T/same.txt")"; fi
}
fit "$T/o_h5.h5" "$T/x.h5"
fit "$T/o_npy.h5" "$T/x.npy" /ignored
fit "$T/o_fbin.h5" "$T/x.fbin"
same "$T/o_h5.h5" "$T/o_npy.h5" ".npy float32 fit equals HDF5"
same "$T/o_h5.h5" "$T/o_fbin.h5" ".fbin fit equals HDF5"
$CHECK layout "$T/o_npy.h5" 5000 12 6 > /dev/null || fail "layout of the .npy fit"
fit "$T/o_h16.h5" "$T/ref.h5" /h
fit "$T/o_n16.h5" "$T/h.npy"
same "$T/o_h16.h5" "$T/o_n16.h5" ".npy float16 fit equals HDF5 float16"
fit "$T/o_h64.h5" "$T/ref.h5" /w
fit "$T/o_n64.h5" "$T/w.npy"
same "$T/o_h64.h5" "$T/o_n64.h5" ".npy float64 fit equals HDF5 float64"
fit "$T/o_hq.h5" "$T/ref.h5" /q
fit "$T/o_nq.h5" "$T/q.npy"
fit "$T/o_bq.h5" "$T/q.u8bin"
same "$T/o_hq.h5" "$T/o_nq.h5" ".npy uint8 fit equals HDF5 uint8"
same "$T/o_hq.h5" "$T/o_bq.h5" ".u8bin fit equals HDF5 uint8"
fit "$T/o_hs.h5" "$T/ref.h5" /s
fit "$T/o_bs.h5" "$T/s.i8bin"
same "$T/o_hs.h5" "$T/o_bs.h5" ".i8bin fit equals HDF5 int8"
fit "$T/o_hb.h5" "$T/ref.h5" /b
fit "$T/o_hbf.h5" "$T/ref.h5" /b_as_f32
same "$T/o_hb.h5" "$T/o_hbf.h5" "HDF5 bfloat16 fit equals float32 of the same values"

# several ranks shard every format alike
if [ -n "${MPIEXEC:-}" ] && [ -x "$MPIEXEC" ]; then
  mpirun_n 3 "$FKM" fit --input "$T/x.h5" --k 6 --iters 15 --tol 0 --seed 7 --backend cpu \
    --labels -q --output "$T/m_h5.h5" || fail "3-rank fit h5"
  mpirun_n 3 "$FKM" fit --input "$T/x.fbin" --k 6 --iters 15 --tol 0 --seed 7 --backend cpu \
    --labels -q --output "$T/m_fbin.h5" || fail "3-rank fit fbin"
  mpirun_n 3 "$FKM" fit --input "$T/q.npy" --k 6 --iters 15 --tol 0 --seed 7 --backend cpu \
    --labels -q --output "$T/m_npy.h5" || fail "3-rank fit npy"
  mpirun_n 3 "$FKM" fit --input "$T/ref.h5" --dataset /q --k 6 --iters 15 --tol 0 --seed 7 \
    --backend cpu --labels -q --output "$T/m_hq.h5" || fail "3-rank fit h5 uint8"
  same "$T/m_h5.h5" "$T/m_fbin.h5" "3 ranks: .fbin fit equals HDF5"
  same "$T/m_hq.h5" "$T/m_npy.h5" "3 ranks: .npy uint8 fit equals HDF5 uint8"
else
  echo "no MPIEXEC: skipping the 3-rank comparisons"
fi

# fkm info: one line per file
"$FKM" info "$T/x.npy" > "$T/info.txt" && grep -qx "$T/x.npy  shape 5000 x 12  float32  npy v1.0" "$T/info.txt" \
  && ok "info .npy" || fail "info .npy: $(cat "$T/info.txt")"
"$FKM" info "$T/q.u8bin" > "$T/info.txt" && grep -qx "$T/q.u8bin  shape 5000 x 12  uint8  u8bin" "$T/info.txt" \
  && ok "info .u8bin" || fail "info .u8bin: $(cat "$T/info.txt")"
"$FKM" info "$T/ref.h5" > "$T/info.txt" && grep -q "^/b  shape 5000 x 12  bfloat16" "$T/info.txt" \
  && grep -q "^/s  shape 5000 x 12  int8" "$T/info.txt" && ok "info HDF5 bfloat16, int8" \
  || fail "info ref.h5: $(cat "$T/info.txt")"

# bad files: one line "fkm: error: input 'FILE': ...", exit 2, no output
head -c 1000 "$T/x.fbin" > "$T/cut.fbin"
$PYTHON -c "import numpy as np; np.save('$T/fort.npy', np.asfortranarray(np.ones((4, 3), np.float32)))"
expect_bad() { # expect_bad "text in message" FILE
  rm -f "$T/bad_out.h5"
  "$FKM" fit --input "$2" --k 2 --output "$T/bad_out.h5" > /dev/null 2> "$T/stderr.txt"
  local rc=$?
  if [ $rc -ne 2 ]; then fail "$2: exit $rc, want 2 ($(cat "$T/stderr.txt"))"; return; fi
  if ! grep -qF "fkm: error: input '$2': $1" "$T/stderr.txt"; then fail "$2: message '$(cat "$T/stderr.txt")' lacks '$1'"; return; fi
  if [ "$(wc -l < "$T/stderr.txt")" -ne 1 ]; then fail "$2: more than one line on stderr"; return; fi
  if [ -e "$T/bad_out.h5" ]; then fail "$2: output file left behind"; return; fi
  ok "$1"
}
expect_bad "file is 1000 bytes, header says 8 + 5000×12×4 = 240008" "$T/cut.fbin"
expect_bad "Fortran-order arrays are not supported" "$T/fort.npy"
finish
