#!/usr/bin/env bash
# lora4j's end-to-end LoRA training step against the PyTorch anchor (../shared/bench/torch_lora_bench.py),
# the two run interleaved RUNS times on the same shape so that both see the same machine load.
# Prints every run's tokens/s, CPU seconds per step and peak RSS, then the medians, min..max and the ratios
# lora4j / PyTorch. Tokens per CPU second (all threads of the process, GC included) varies less than tokens
# per second when other work shares the cores; on an idle machine tokens/s is the figure that counts.
#
#   benchmarks/compare-torch.sh SHAPE [RUNS]          SHAPE: tiny | smollm2-135m, RUNS default 3
#
# Environment (all optional):
#   ANCHOR_DIR    folder holding torch_lora_bench.py          (default: <repo>/../shared/bench)
#   PYTHON        a Python with torch (Debian's python3-torch)  (default: /usr/bin/python3)
#   TORCH_THREADS PyTorch threads; 1 is fastest on 2 cores      (default: 1)
#   TORCH_STEPS   timed PyTorch steps after its one warm-up     (default: tiny 10, smollm2-135m 3)
#   HF_PYTHON     if set, a Python with transformers + PEFT: hf_peft_bench.py runs in the same rounds
#   JAVA          java executable                               (default: java on PATH)
#   JAVA_OPTS     extra JVM options, e.g. "-Xmx2g -XX:+UseParallelGC"
#   LORA4J_ARGS   extra TrainStepBenchmark options, e.g. "--threads 2 --steps 20"
#   BATCH, SEQ    override the shape's batch x sequence for both programs
#
# Build the jar first, without installing: mvn -q -B -pl benchmarks -am package -DskipTests
set -euo pipefail

usage() { echo "usage: $0 tiny|smollm2-135m [RUNS]" >&2; exit 2; }
[[ $# -ge 1 && $# -le 2 ]] || usage
SHAPE=$1
RUNS=${2:-3}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "RUNS must be an integer >= 1, was '$RUNS'" >&2; exit 2; }
case $SHAPE in
  tiny) B=${BATCH:-4}; T=${SEQ:-128}; STEPS=${TORCH_STEPS:-10} ;;
  smollm2-135m) B=${BATCH:-1}; T=${SEQ:-256}; STEPS=${TORCH_STEPS:-3} ;;
  *) echo "unknown shape '$SHAPE': the anchor knows tiny and smollm2-135m" >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ANCHOR_DIR=${ANCHOR_DIR:-$ROOT/../shared/bench}
PYTHON=${PYTHON:-/usr/bin/python3}
TORCH_THREADS=${TORCH_THREADS:-1}
JAVA=${JAVA:-java}
JAR=$ROOT/benchmarks/target/benchmarks.jar
TIME=/usr/bin/time

[[ -f $JAR ]] || { echo "$JAR is missing: build it with 'mvn -q -B -pl benchmarks -am package -DskipTests'" >&2; exit 1; }
[[ -f $ANCHOR_DIR/torch_lora_bench.py ]] || { echo "no torch_lora_bench.py in ANCHOR_DIR=$ANCHOR_DIR; set ANCHOR_DIR" >&2; exit 1; }
[[ -x $TIME ]] || { echo "$TIME is missing (it measures the Python peak RSS): apt-get install time" >&2; exit 1; }
"$PYTHON" -c 'import torch' 2>/dev/null || {
  echo "$PYTHON cannot import torch: apt-get install python3-torch libopenblas0-pthread, or set PYTHON" >&2; exit 1; }
BLAS=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
if [[ $PYTHON == /usr/bin/python3 && $BLAS != *openblas* ]]; then
  echo "warning: libblas.so.3 resolves to '$BLAS', not OpenBLAS: Debian's torch is then ~50x slower;" \
       "apt-get install libopenblas0-pthread" >&2
fi

# field NAME LINE: the value of NAME=... in a key=value line
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

run_lora4j() {
  local out
  # shellcheck disable=SC2086
  out=$("$JAVA" --add-modules jdk.incubator.vector ${JAVA_OPTS:-} -cp "$JAR" dev.lora4j.benchmarks.TrainStepBenchmark \
        --shape "$SHAPE" --batch "$B" --seq "$T" ${LORA4J_ARGS:-} 2>"$TMP/lora4j.err" | grep '^lora4j ') || {
    echo "lora4j run failed:" >&2; cat "$TMP/lora4j.err" >&2; exit 1; }
  echo "  $out"
  echo "$(field tokens_per_s "$out") $(field peak_rss_mb "$out") $(field heap_alloc_per_step_mb "$out")" \
       "$(awk -v c="$(field cpu_s_per_step "$out")" -v n=$((B * T)) 'BEGIN { print n / c }')" >>"$TMP/lora4j"
}

# run_python LABEL PYTHON SCRIPT: one anchor run under /usr/bin/time -v. The script runs unchanged through a
# wrapper that also reads the process CPU clock where the script reads its timer (once before and once after
# the timed steps), so that CPU seconds per step can be set beside lora4j's.
run_python() {
  local label=$1 py=$2 script=$3 out line cpu rss util
  out=$("$TIME" -v -o "$TMP/time.txt" "$py" -c '
import runpy, sys, time
wall, marks = time.perf_counter, []
def timer():
    marks.append(time.process_time())
    return wall()
time.perf_counter = timer
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
print("cpu_s_per_step=%.3f" % ((marks[-1] - marks[-2]) / int(sys.argv[5])))
' "$ANCHOR_DIR/$script" "$SHAPE" "$B" "$T" 8 "$STEPS" "$TORCH_THREADS" \
        2>"$TMP/$label.err") || { echo "$label run failed:" >&2; cat "$TMP/$label.err" >&2; exit 1; }
  line=$(grep tokens_per_s <<<"$out")
  cpu=$(sed -n 's/^cpu_s_per_step=//p' <<<"$out")
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): *//p' "$TMP/time.txt")
  # CPU use of the whole process (start-up included): well below THREADS means it waited for a core
  util=$(sed -n 's/.*Percent of CPU this job got: *//p' "$TMP/time.txt")
  echo "  $line cpu_s_per_step=$cpu peak_rss_mb=$((rss / 1024)) cpu_util=$util"
  echo "$(field tokens_per_s "$line") $((rss / 1024)) $(awk -v c="$cpu" -v n=$((B * T)) 'BEGIN { print n / c }')" >>"$TMP/$label"
}

# stats FILE COLUMN [DECIMALS]: "median (min..max)" of one column
stats() {
  sort -g -k"$2","$2" "$1" | awk -v c="$2" -v d="${3:-1}" '{ v[NR] = $c } END {
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    f = "%." d "f"; printf f " (" f ".." f ")", m, v[1], v[NR] }'
}
median() { sort -g -k"$2","$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
: >"$TMP/lora4j"; : >"$TMP/torch"; : >"$TMP/hf"

echo "shape $SHAPE, batch $B x $T, LoRA r=8; $RUNS interleaved rounds; PyTorch threads=$TORCH_THREADS, $STEPS timed steps;" \
     "load average $(cut -d' ' -f1-3 /proc/loadavg)"
for ((i = 1; i <= RUNS; i++)); do
  echo "round $i (load average $(cut -d' ' -f1 /proc/loadavg))"
  if ((i % 2)); then run_lora4j; run_python torch "$PYTHON" torch_lora_bench.py
  else run_python torch "$PYTHON" torch_lora_bench.py; run_lora4j; fi
  if [[ -n ${HF_PYTHON:-} ]]; then run_python hf "$HF_PYTHON" hf_peft_bench.py; fi
done

echo "summary over $RUNS rounds: median (min..max)"
echo "  lora4j   tokens/s $(stats "$TMP/lora4j" 1)  tokens/CPU-s $(stats "$TMP/lora4j" 4)  peak RSS MB $(stats "$TMP/lora4j" 2 0)" \
     " heap MB/step $(stats "$TMP/lora4j" 3)"
echo "  PyTorch  tokens/s $(stats "$TMP/torch" 1)  tokens/CPU-s $(stats "$TMP/torch" 3)  peak RSS MB $(stats "$TMP/torch" 2 0)"
if [[ -s $TMP/hf ]]; then
  echo "  HF+PEFT  tokens/s $(stats "$TMP/hf" 1)  tokens/CPU-s $(stats "$TMP/hf" 3)  peak RSS MB $(stats "$TMP/hf" 2 0)"
fi
awk -v a="$(median "$TMP/lora4j" 1)" -v b="$(median "$TMP/torch" 1)" -v ra="$(median "$TMP/lora4j" 2)" \
    -v rb="$(median "$TMP/torch" 2)" -v ca="$(median "$TMP/lora4j" 4)" -v cb="$(median "$TMP/torch" 3)" \
    'BEGIN { printf "  ratio lora4j / PyTorch of the medians: tokens/s %.2f, tokens/CPU-s %.2f, peak RSS %.2f\n", a / b, ca / cb, ra / rb }'
paste "$TMP/lora4j" "$TMP/torch" | awk '{ print $1 / $5 }' >"$TMP/ratio"
echo "  per-round ratio lora4j / PyTorch tokens/s: $(stats "$TMP/ratio" 1 2)"
