package dev.lora4j.benchmarks;

import dev.lora4j.backend.Backends;
import dev.lora4j.backend.Parallel;
import java.io.IOException;
import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * End-to-end LoRA training throughput, the lora4j side of {@code ../shared/bench/torch_lora_bench.py}
 * (see {@link TrainStep} for what a step is). For each shape: warm-up steps, then timed steps; one
 * line with the median tokens/s (and the min and max over the timed steps), peak RSS (VmHWM of
 * /proc/self/status, the same figure as the anchor's {@code /usr/bin/time -v} maximum resident
 * set size), Java heap bytes allocated per timed step (all live threads, from
 * {@code com.sun.management.ThreadMXBean}), process CPU seconds per timed step (all threads, GC
 * and JIT included: on a shared machine, tokens per CPU second is steadier than tokens per second)
 * and the garbage collections during the timed steps.
 *
 * <pre>
 * java --add-modules jdk.incubator.vector -cp benchmarks/target/benchmarks.jar \
 *     dev.lora4j.benchmarks.TrainStepBenchmark [--shape tiny|smollm2-135m|micro[,...]] [--batch B --seq T]
 *     [--rank 8] [--warmup N] [--steps N] [--backend scalar|vector] [--threads N] [--seed S]
 * </pre>
 *
 * Shapes and default batches are those of the anchor ({@link TrainShape#of}); the default warm-up
 * and step counts are per shape (tiny 5 + 10, smollm2-135m 2 + 5) so that one run takes well under
 * a minute on two cores. Peak RSS covers the whole process, so run one shape per JVM when
 * comparing it with the anchor (the comparison script {@code benchmarks/compare-torch.sh} does).
 */
public final class TrainStepBenchmark {

    private TrainStepBenchmark() {
    }

    public static void main(String[] args) {
        Options o = Options.parse(args);
        // Before any lora4j class or the common pool is touched: both are read once.
        if (o.backend != null) {
            System.setProperty(Backends.PROPERTY, o.backend);
        }
        if (o.threads > 0) {
            System.setProperty("lora4j.threads", Integer.toString(o.threads));
            System.setProperty("java.util.concurrent.ForkJoinPool.common.parallelism", Integer.toString(o.threads));
        }
        for (String name : o.shapes) {
            TrainShape shape = TrainShape.of(name);
            if (o.batch > 0 || o.seq > 0) {
                shape = shape.withBatch(o.batch > 0 ? o.batch : shape.batch(), o.seq > 0 ? o.seq : shape.seq());
            }
            boolean big = shape.name().equals("smollm2-135m");
            int warmup = o.warmup >= 0 ? o.warmup : big ? 2 : 5;
            int steps = o.steps > 0 ? o.steps : big ? 5 : 10;
            run(shape, o.rank, warmup, steps, o.seed);
        }
    }

    private static void run(TrainShape shape, int rank, int warmup, int steps, long seed) {
        TrainStep step = new TrainStep(shape, rank, seed);
        float firstLoss = Float.NaN;
        for (int i = 0; i < warmup; i++) {
            float loss = step.step();
            if (i == 0) {
                firstLoss = loss;
            }
        }
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        Map<String, long[]> gcBefore = gcCounts();
        com.sun.management.OperatingSystemMXBean os =
                (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        long cpuBefore = os.getProcessCpuTime();
        long allocatedBefore = allocatedBytes(threads);
        double[] seconds = new double[steps];
        float lastLoss = Float.NaN;
        for (int i = 0; i < steps; i++) {
            long start = System.nanoTime();
            lastLoss = step.step();
            seconds[i] = (System.nanoTime() - start) / 1e9;
            if (i == 0 && warmup == 0) {
                firstLoss = lastLoss;
            }
        }
        long allocatedPerStep = (allocatedBytes(threads) - allocatedBefore) / steps;
        double cpuPerStep = (os.getProcessCpuTime() - cpuBefore) / 1e9 / steps;
        Map<String, long[]> gcAfter = gcCounts();
        double[] sorted = seconds.clone();
        Arrays.sort(sorted);
        double median = median(sorted);
        int tokens = shape.tokensPerStep();
        StringBuilder gc = new StringBuilder();
        for (Map.Entry<String, long[]> e : gcAfter.entrySet()) {
            long[] before = gcBefore.getOrDefault(e.getKey(), new long[2]);
            gc.append(String.format(Locale.ROOT, " gc[%s]=%d/%dms", e.getKey().replace(' ', '_'),
                    e.getValue()[0] - before[0], e.getValue()[1] - before[1]));
        }
        System.out.printf(Locale.ROOT, "lora4j %s B=%d T=%d r=%d backend=%s threads=%d trainable=%d warmup=%d steps=%d"
                        + " step_s=%.3f tokens_per_s=%.1f tokens_per_s_min=%.1f tokens_per_s_max=%.1f cpu_s_per_step=%.3f peak_rss_mb=%.0f"
                        + " heap_alloc_per_step_mb=%.1f heap_committed_mb=%.0f loss_first=%.4f loss_last=%.4f%s%n",
                shape.name(), shape.batch(), shape.seq(), rank, Backends.get().name(), Parallel.parallelism(),
                step.trainableParameters(), warmup, steps, median, tokens / median, tokens / sorted[steps - 1],
                tokens / sorted[0], cpuPerStep, peakRssKb() / 1024.0, allocatedPerStep / 1e6,
                Runtime.getRuntime().totalMemory() / 1e6, firstLoss, lastLoss, gc);
    }

    /** Bytes allocated on the Java heap so far by the threads alive now (pool workers included). */
    private static long allocatedBytes(com.sun.management.ThreadMXBean threads) {
        long[] ids = threads.getAllThreadIds();
        long sum = 0;
        for (long bytes : threads.getThreadAllocatedBytes(ids)) {
            if (bytes > 0) {
                sum += bytes;
            }
        }
        return sum;
    }

    /** Collection count and accumulated milliseconds per collector (young and old are separate beans). */
    private static Map<String, long[]> gcCounts() {
        Map<String, long[]> out = new LinkedHashMap<>();
        for (GarbageCollectorMXBean bean : ManagementFactory.getGarbageCollectorMXBeans()) {
            out.put(bean.getName(), new long[] {bean.getCollectionCount(), bean.getCollectionTime()});
        }
        return out;
    }

    /** VmHWM (peak resident set) in kB, or -1 where /proc is not available. */
    static long peakRssKb() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmHWM:")) {
                    return Long.parseLong(line.substring(6).replace("kB", "").trim());
                }
            }
        } catch (IOException | NumberFormatException e) {
            return -1;
        }
        return -1;
    }

    private static double median(double[] sorted) {
        int n = sorted.length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }

    /** Command-line settings: "--name value" pairs; -1/0/null mean the per-shape default. */
    private static final class Options {
        List<String> shapes = List.of("tiny");
        int batch;
        int seq;
        int rank = 8;
        int warmup = -1;
        int steps;
        String backend;
        int threads;
        long seed = 1;

        static Options parse(String[] args) {
            Options o = new Options();
            for (int i = 0; i < args.length; i += 2) {
                if (args[i].equals("--help") || args[i].equals("-h")) {
                    throw new IllegalArgumentException(usage());
                }
                if (i + 1 >= args.length) {
                    throw new IllegalArgumentException("option " + args[i] + " needs a value; " + usage());
                }
                String v = args[i + 1];
                switch (args[i]) {
                    case "--shape" -> {
                        o.shapes = new ArrayList<>(List.of(v.split(",")));
                        o.shapes.forEach(TrainShape::of);
                    }
                    case "--batch" -> o.batch = positive("--batch", v);
                    case "--seq" -> o.seq = positive("--seq", v);
                    case "--rank" -> o.rank = positive("--rank", v);
                    case "--warmup" -> o.warmup = atLeast("--warmup", v, 0);
                    case "--steps" -> o.steps = positive("--steps", v);
                    case "--backend" -> o.backend = v;
                    case "--threads" -> o.threads = positive("--threads", v);
                    case "--seed" -> o.seed = Long.parseLong(v);
                    default -> throw new IllegalArgumentException("unknown option " + args[i] + "; " + usage());
                }
            }
            return o;
        }

        private static int positive(String option, String value) {
            return atLeast(option, value, 1);
        }

        private static int atLeast(String option, String value, int min) {
            int n;
            try {
                n = Integer.parseInt(value);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(option + " must be an integer >= " + min + ", was '" + value + "'");
            }
            if (n < min) {
                throw new IllegalArgumentException(option + " must be >= " + min + ", was " + n);
            }
            return n;
        }

        private static String usage() {
            return "options: --shape " + String.join("|", TrainShape.NAMES) + "[,...], --batch B, --seq T, --rank R, "
                    + "--warmup N (default 5, 2 for smollm2-135m), --steps N (default 10, 5 for smollm2-135m), "
                    + "--backend scalar|vector, --threads N, --seed S";
        }
    }
}
