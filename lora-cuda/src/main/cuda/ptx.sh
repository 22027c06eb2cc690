#!/usr/bin/env bash
# Compiles every kernel source (src/main/cuda/*.cu) to PTX for sm_80 and sm_90.
#
#   ptx.sh generate   write the PTX resources (src/main/resources/dev/lora4j/cuda/ptx/sm_XX/NAME.ptx)
#   ptx.sh check      compile into target/ptx and fail when the committed PTX differs (run by the
#                     Maven build in generate-resources); without nvcc, say so and use the committed PTX
#   ptx.sh report     rewrite the ptxas table (registers, shared memory, occupancy) in README.md
#
# Every mode also runs ptxas -v on the PTX and fails on a register spill or a local-memory stack frame.
# nvcc is $NVCC, else nvcc on the PATH, else $CUDA_HOME/bin/nvcc or /usr/local/cuda*/bin/nvcc.
# The comparison is byte for byte; PTX carries no paths or dates (no -lineinfo/-G), so the same nvcc
# release makes the same bytes. A different release makes different (valid) PTX: check then reports
# the mismatch of releases and does not compare (regenerate with `ptx.sh generate`).
set -euo pipefail

MODE=${1:-check}
HERE=$(cd "$(dirname "$0")" && pwd)
MODULE=$(cd "$HERE/../../.." && pwd)
RESOURCES="$MODULE/src/main/resources/dev/lora4j/cuda/ptx"
ARCHS="80 90"
FLAGS="-std=c++17 -O3"

find_nvcc() {
  if [[ -n "${NVCC:-}" ]]; then echo "$NVCC"; return; fi
  if command -v nvcc >/dev/null 2>&1; then command -v nvcc; return; fi
  for c in "${CUDA_HOME:-/nonexistent}/bin/nvcc" /usr/local/cuda/bin/nvcc /usr/local/cuda-*/bin/nvcc; do
    if [[ -x "$c" ]]; then echo "$c"; return; fi
  done
}

NVCC_BIN=$(find_nvcc || true)
if [[ -z "$NVCC_BIN" ]]; then
  if [[ "$MODE" == check ]]; then
    echo "[lora-cuda] nvcc not found: using the committed PTX in $RESOURCES (not regenerated)"
    exit 0
  fi
  echo "[lora-cuda] $MODE needs nvcc (set NVCC or CUDA_HOME)" >&2
  exit 1
fi
PTXAS_BIN="$(dirname "$NVCC_BIN")/ptxas"
RELEASE=$("$NVCC_BIN" --version | grep -o 'release [0-9.]*, V[0-9.]*' || true)

compile_all() { # $1 = output root
  local out=$1
  for arch in $ARCHS; do
    mkdir -p "$out/sm_$arch"
    for src in "$HERE"/*.cu; do
      local name
      name=$(basename "$src" .cu)
      (cd "$HERE" && "$NVCC_BIN" $FLAGS -ptx -arch=sm_$arch "$name.cu" -o "$out/sm_$arch/$name.ptx")
    done
  done
}

ptxas_info() { # $1 = ptx root; prints "arch kernel regs smem stack spill_stores spill_loads"
  local root=$1
  for arch in $ARCHS; do
    for ptx in "$root/sm_$arch"/*.ptx; do
      "$PTXAS_BIN" -arch=sm_$arch -v "$ptx" -o /dev/null 2>&1 | awk -v arch="$arch" '
        /Compiling entry function/ { match($0, /\x27[^\x27]+\x27/); fn = substr($0, RSTART + 1, RLENGTH - 2) }
        /bytes stack frame/ { stack = $1; spst = $5; spld = $9 }
        /Used [0-9]+ registers/ {
          regs = 0; smem = 0
          for (i = 1; i <= NF; i++) { if ($(i + 1) == "registers,") regs = $i; if ($(i + 2) ~ /^smem,?$/) smem = $i }
          print arch, fn, regs, smem, stack, spst, spld }'
    done
  done
}

check_spills() { # $1 = ptx root
  local bad
  bad=$(ptxas_info "$1" | awk '$5 != 0 || $6 != 0 || $7 != 0')
  if [[ -n "$bad" ]]; then
    echo "[lora-cuda] register spills or stack frames (arch kernel regs smem stack spill-stores spill-loads):" >&2
    echo "$bad" >&2
    exit 1
  fi
}

case "$MODE" in
  generate)
    rm -rf "$RESOURCES"
    compile_all "$RESOURCES"
    check_spills "$RESOURCES"
    echo "[lora-cuda] PTX written to $RESOURCES ($RELEASE)"
    ;;
  check)
    committed=$(grep -ho 'release [0-9.]*, V[0-9.]*' "$RESOURCES/sm_80/matmul.ptx" 2>/dev/null || echo none)
    if [[ "$committed" != "$RELEASE" ]]; then
      echo "[lora-cuda] WARNING: the committed PTX was made by nvcc $committed, this is nvcc $RELEASE: not compared;"
      echo "[lora-cuda]   run src/main/cuda/ptx.sh generate to regenerate it with this nvcc"
      exit 0
    fi
    STAMP="$MODULE/target/ptx/stamp"
    digest=$(cat "$HERE"/*.cu "$HERE"/*.cuh "$0" "$RESOURCES"/sm_*/*.ptx | sha256sum | cut -c1-32)
    if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$digest" ]]; then
      echo "[lora-cuda] PTX up to date with its sources (checked earlier)"
      exit 0
    fi
    rm -rf "$MODULE/target/ptx"
    compile_all "$MODULE/target/ptx"
    if ! diff -r -q "$RESOURCES" "$MODULE/target/ptx" --exclude=stamp >/dev/null; then
      diff -r -q "$RESOURCES" "$MODULE/target/ptx" --exclude=stamp >&2 || true
      echo "[lora-cuda] the committed PTX does not match src/main/cuda: run src/main/cuda/ptx.sh generate and commit" >&2
      exit 1
    fi
    check_spills "$RESOURCES"
    echo "$digest" > "$STAMP"
    echo "[lora-cuda] committed PTX matches its sources ($RELEASE), no spills"
    ;;
  report)
    check_spills "$RESOURCES"
    table=$(ptxas_info "$RESOURCES" | sort -k2,2 -k1,1n | awk '
      BEGIN {
        # threads per block of each kernel (Kernels.java)
        split("matmul_bf16_tc attn_fwd attn_bwd_dq attn_bwd_dkdv", t128, " ")
        for (i in t128) threads[t128[i]] = 128
        smemSM[80] = 167936; smemSM[90] = 233472   # shared memory per SM usable by blocks (A100, H100)
        print "| kernel | arch | threads/block | registers | static smem (B) | blocks/SM | occupancy |"
        print "|---|---|---:|---:|---:|---:|---:|"
      }
      {
        arch = $1; fn = $2; regs = $3; smem = $4
        t = (fn in threads) ? threads[fn] : 256
        warps = int((t + 31) / 32)
        regsPerWarp = int((regs * 32 + 255) / 256) * 256
        byRegs = regs > 0 ? int(int(65536 / regsPerWarp) / warps) : 32
        byThreads = int(2048 / t)
        bySmem = smem > 0 ? int(smemSM[arch] / (smem + 1024)) : 32
        b = byRegs; if (byThreads < b) b = byThreads; if (bySmem < b) b = bySmem; if (b > 32) b = 32
        printf "| %s | sm_%s | %d | %d | %d | %d | %d%% |\n", fn, arch, t, regs, smem, b, int(100 * b * warps / 64 + 0.5)
      }')
    readme="$MODULE/README.md"
    python3 - "$readme" "$table" "$RELEASE" <<'PY'
import sys
path, table, release = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(path).read()
start, end = "<!-- ptxas-table:start -->", "<!-- ptxas-table:end -->"
a, b = text.index(start) + len(start), text.index(end)
body = "\n_Generated by `src/main/cuda/ptx.sh report` (nvcc " + release + ", ptxas -v; occupancy = resident warps / 64)._\n\n" + table + "\n"
open(path, "w").write(text[:a] + body + text[b:])
PY
    echo "[lora-cuda] ptxas table written to $readme"
    ;;
  *)
    echo "usage: ptx.sh generate|check|report" >&2
    exit 2
    ;;
esac
