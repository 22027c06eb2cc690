package dev.lora4j.benchmarks;

import dev.lora4j.backend.Backend;
import dev.lora4j.backend.Backends;
import dev.lora4j.backend.Parallel;
import dev.lora4j.tensor.FloatStorage;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Arrays;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * The twin of {@code benchmarks/openblas/sgemm_bench.c} for lora4j: times {@link Backend#gemm} on
 * the same problems and prints the same table (median, min, max GFLOP/s over the timed calls). With
 * {@code SGEMM_CLOCK=cpu} both divide by CPU time (here: of the calling and compute threads) instead of wall time, which on a
 * machine shared with other work measures a one-thread product without the turns other processes
 * take on its core.
 *
 * <p>{@code java --add-modules jdk.incubator.vector -cp benchmarks/target/benchmarks.jar
 * dev.lora4j.benchmarks.GemmCpuTime THREADS SECONDS [BACKEND] FORM:MxNxK ...} (BACKEND: scalar or
 * vector, default vector).
 */
public final class GemmCpuTime {
    private GemmCpuTime() {
    }

    public static void main(String[] args) {
        if (args.length < 3) {
            System.err.println("usage: GemmCpuTime THREADS SECONDS [scalar|vector] FORM:MxNxK ...");
            System.exit(2);
        }
        int threads = Integer.parseInt(args[0]);
        double budget = Double.parseDouble(args[1]);
        int first = 2;
        String backendName = "vector";
        if (args[2].equals("scalar") || args[2].equals("vector")) {
            backendName = args[2];
            first = 3;
        }
        System.setProperty(Parallel.PROPERTY, Integer.toString(threads));
        Backend backend = backendName.equals("scalar") ? Backends.scalar() : Backends.vector().orElseThrow(
                () -> new IllegalStateException("the vector backend needs --add-modules jdk.incubator.vector"));
        boolean cpu = "cpu".equals(System.getenv("SGEMM_CLOCK"));
        System.out.printf(Locale.ROOT, "# lora4j %s, %d thread(s), %s time%n", backend, Parallel.parallelism(),
                cpu ? "CPU" : "wall-clock");
        System.out.printf(Locale.ROOT, "%-6s %-16s %10s %10s %10s %6s%n", "form", "shape", "median", "min", "max",
                "calls");
        SplittableRandom rng = new SplittableRandom(42);
        for (int s = first; s < args.length; s++) {
            int[] p = GemmBenchmark.parse(args[s]);
            boolean ta = p[0] == 1;
            boolean tb = p[1] == 1;
            int m = p[2];
            int n = p[3];
            int k = p[4];
            FloatStorage a = new FloatStorage(random(rng, m * k));
            FloatStorage b = new FloatStorage(random(rng, k * n));
            FloatStorage c = new FloatStorage(m * n);
            double flops = 2.0 * m * n * k;
            Runnable call = () -> backend.gemm(ta, tb, m, n, k, 1f, a, 0, ta ? m : k, b, 0, tb ? k : n, 0f, c, 0, n);
            long start = System.nanoTime();
            while (System.nanoTime() - start < budget / 2 * 1e9) { // warm-up: the JIT compiles the kernels
                call.run();
            }
            double[] rates = new double[1 << 16];
            int calls = 0;
            start = System.nanoTime();
            while ((System.nanoTime() - start < budget * 1e9 || calls < 3) && calls < rates.length) {
                long t0 = cpu ? computeCpuTime() : System.nanoTime();
                call.run();
                long t1 = cpu ? computeCpuTime() : System.nanoTime();
                rates[calls++] = flops / Math.max(1, t1 - t0);
            }
            double[] sorted = Arrays.copyOf(rates, calls);
            Arrays.sort(sorted);
            System.out.printf(Locale.ROOT, "%-6s %-16s %10.1f %10.1f %10.1f %6d%n", args[s].substring(0, 2),
                    args[s].substring(3), sorted[calls / 2], sorted[0], sorted[calls - 1], calls);
        }
    }

    /** lora4j's compute threads, found once the pool has started. */
    private static long[] computeThreads;

    /**
     * CPU nanoseconds of this thread and lora4j's compute threads (the JVM's process CPU time is
     * only counted in clock ticks, too coarse for one call).
     */
    private static long computeCpuTime() {
        ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        if (computeThreads == null) {
            computeThreads = Thread.getAllStackTraces().keySet().stream()
                    .filter(t -> t.getName().startsWith("lora4j-compute-")).mapToLong(Thread::getId).toArray();
        }
        long total = mx.getCurrentThreadCpuTime();
        for (long id : computeThreads) {
            total += Math.max(0, mx.getThreadCpuTime(id));
        }
        return total;
    }

    private static float[] random(SplittableRandom rng, int size) {
        float[] x = new float[size];
        for (int i = 0; i < size; i++) {
            x[i] = (float) (rng.nextDouble() - 0.5);
        }
        return x;
    }
}
