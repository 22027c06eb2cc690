package dev.lora4j.benchmarks;

import dev.lora4j.backend.AttentionMask;
import dev.lora4j.backend.Backend;
import dev.lora4j.backend.Backends;
import dev.lora4j.tensor.Tensor;
import java.lang.management.ManagementFactory;
import java.util.Arrays;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Causal attention forward + backward of one layer ({@link Backend#attention},
 * {@link Backend#attentionBackward}) at growing sequence lengths, the SmolLM2-135M head layout by
 * default (9 query heads, 3 kv heads, head size 64, batch 1). Per length it prints the median,
 * min and max milliseconds of a forward + backward pair and the Java heap bytes allocated (all
 * threads) by the first pair at that length and per pair afterwards. The lengths run in
 * increasing order in one JVM, so the first-pair figure is what the kernels' per-thread scratch
 * grows by for the longer sequence: nothing when the scratch is tile-sized. Before the first length
 * it warms up on T = 256 for {@code --warmup-s} seconds (until C2 has compiled the vector kernels,
 * they box every vector they touch).
 *
 * <pre>java --add-modules jdk.incubator.vector -cp benchmarks/target/benchmarks.jar \
 *     dev.lora4j.benchmarks.AttentionBenchmark [--seq 256,512,1024,2048] [--heads 9] [--kv-heads 3]
 *     [--head-dim 64] [--reps 5] [--warmup-s 20] [--backend scalar|vector]</pre>
 */
public final class AttentionBenchmark {
    private AttentionBenchmark() {
    }

    public static void main(String[] args) {
        int[] seqs = {256, 512, 1024, 2048};
        int heads = 9;
        int kvHeads = 3;
        int headDim = 64;
        int reps = 5;
        double warmupSeconds = 20;
        for (int i = 0; i < args.length; i += 2) {
            if (i + 1 >= args.length) {
                throw new IllegalArgumentException("option " + args[i] + " needs a value");
            }
            String v = args[i + 1];
            switch (args[i]) {
                case "--seq" -> seqs = Arrays.stream(v.split(",")).mapToInt(s -> Integer.parseInt(s.trim())).toArray();
                case "--heads" -> heads = Integer.parseInt(v);
                case "--kv-heads" -> kvHeads = Integer.parseInt(v);
                case "--head-dim" -> headDim = Integer.parseInt(v);
                case "--reps" -> reps = Integer.parseInt(v);
                case "--warmup-s" -> warmupSeconds = Double.parseDouble(v);
                case "--backend" -> System.setProperty(Backends.PROPERTY, v);
                default -> throw new IllegalArgumentException("unknown option " + args[i]
                        + "; options: --seq T1,T2,..., --heads H, --kv-heads G, --head-dim D, --reps N, "
                        + "--warmup-s SECONDS, --backend scalar|vector");
            }
        }
        if (reps < 1 || heads < 1 || kvHeads < 1 || heads % kvHeads != 0 || headDim < 1) {
            throw new IllegalArgumentException("--reps, --heads, --kv-heads and --head-dim must be >= 1 and heads a "
                    + "multiple of kv heads; got reps " + reps + ", heads " + heads + ", kv heads " + kvHeads
                    + ", head dim " + headDim);
        }
        Backend backend = Backends.get();
        com.sun.management.ThreadMXBean threads =
                (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        SplittableRandom rng = new SplittableRandom(1);
        // warm the JIT on a short sequence, so that the first pair at each length measures scratch, not
        // compilation: C2 compiles the vector kernels late, and until it has they box every vector
        long until = System.nanoTime() + (long) (warmupSeconds * 1e9);
        do {
            run(backend, rng, 256, heads, kvHeads, headDim, 5, threads, false);
        } while (System.nanoTime() < until);
        for (int t : seqs) {
            run(backend, rng, t, heads, kvHeads, headDim, reps, threads, true);
        }
    }

    private static void run(Backend backend, SplittableRandom rng, int t, int heads, int kvHeads, int d, int reps,
                            com.sun.management.ThreadMXBean threads, boolean print) {
        Tensor q = Tensor.normal(rng, 0f, 1f, 1, t, heads, d);
        Tensor k = Tensor.normal(rng, 0f, 1f, 1, t, kvHeads, d);
        Tensor v = Tensor.normal(rng, 0f, 1f, 1, t, kvHeads, d);
        Tensor dOut = Tensor.normal(rng, 0f, 1f, 1, t, heads, d);
        Tensor out = Tensor.zeros(1, t, heads, d);
        Tensor lse = Tensor.zeros(1, heads, t);
        Tensor dq = Tensor.zeros(1, t, heads, d);
        Tensor dk = Tensor.zeros(1, t, kvHeads, d);
        Tensor dv = Tensor.zeros(1, t, kvHeads, d);
        AttentionMask mask = AttentionMask.causal(0, d);
        long before = allocatedBytes(threads);
        backend.attention(out, lse, q, k, v, mask);
        backend.attentionBackward(dq, dk, dv, dOut, q, k, v, out, lse, mask);
        long first = allocatedBytes(threads) - before;
        double[] ms = new double[reps];
        before = allocatedBytes(threads);
        for (int r = 0; r < reps; r++) {
            long t0 = System.nanoTime();
            backend.attention(out, lse, q, k, v, mask);
            backend.attentionBackward(dq, dk, dv, dOut, q, k, v, out, lse, mask);
            ms[r] = (System.nanoTime() - t0) / 1e6;
        }
        long steady = (allocatedBytes(threads) - before) / reps;
        Arrays.sort(ms);
        if (print) {
            System.out.printf(Locale.ROOT, "attention %s T=%d H=%d G=%d D=%d fwd+bwd_ms=%.2f min=%.2f max=%.2f "
                            + "first_pair_alloc_kb=%.1f alloc_per_pair_kb=%.1f%n", backend.name(), t, heads, kvHeads, d,
                    ms[reps / 2], ms[0], ms[reps - 1], first / 1024.0, steady / 1024.0);
        }
    }

    /** Bytes allocated on the Java heap so far by the threads alive now (pool workers included). */
    private static long allocatedBytes(com.sun.management.ThreadMXBean threads) {
        long sum = 0;
        for (long bytes : threads.getThreadAllocatedBytes(threads.getAllThreadIds())) {
            if (bytes > 0) {
                sum += bytes;
            }
        }
        return sum;
    }
}
