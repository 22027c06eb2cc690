#!/usr/bin/env bash
# Builds and runs the OpenBLAS sgemm reference beside GemmBenchmark (see the README's Benchmarks section).
# usage: benchmarks/openblas/run.sh [THREADS [SECONDS [FORM:MxNxK ...]]]
# Needs gcc and OpenBLAS's CBLAS headers and library (Debian: apt-get install libopenblas-dev).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${TMPDIR:-/tmp}/lora4j-sgemm-bench"
if [ ! -f /usr/include/x86_64-linux-gnu/cblas.h ] && [ ! -f /usr/include/cblas.h ] && [ ! -f /usr/include/openblas/cblas.h ]; then
  echo "run.sh: cblas.h not found; install OpenBLAS's development files (Debian: apt-get install libopenblas-dev)" >&2
  exit 2
fi
gcc -O2 -o "$out" "$here/sgemm_bench.c" -lopenblas
threads="${1:-1}"
seconds="${2:-2}"
shift $(( $# > 2 ? 2 : $# ))
if [ $# -eq 0 ]; then
  # the shapes of GemmBenchmark's default grid
  set -- NT:256x1536x576 NN:256x576x1536 NT:256x576x1536 NN:256x1536x576 TN:1536x576x256 \
         NT:256x4096x4096 NT:256x2752x4096 NN:256x4096x2752 NT:207x207x702 NN:7x702x207
fi
OPENBLAS_NUM_THREADS="$threads" "$out" "$threads" "$seconds" "$@"
