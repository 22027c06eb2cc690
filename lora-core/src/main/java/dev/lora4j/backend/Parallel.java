package dev.lora4j.backend;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.RecursiveAction;

/**
 * Splits index ranges over the common fork-join pool and the calling thread. Work below
 * {@code grain} runs inline, so small tensors pay no scheduling cost. Each index is visited
 * exactly once and chunks are fixed by (n, grain, parallelism), so results do not depend on
 * scheduling as long as bodies write disjoint outputs.
 *
 * <p>The caller works too: the common pool has one thread fewer than the machine has cores
 * (on 2 cores, one), so leaving the caller idle would use only half of a 2-core machine.
 */
public final class Parallel {
    private Parallel() {
    }

    /** A body over the half-open range [from, to). */
    @FunctionalInterface
    public interface RangeBody {
        void run(int from, int to);
    }

    /** Threads a range is spread over: the common pool's workers plus the calling thread. */
    public static int parallelism() {
        return ForkJoinPool.getCommonPoolParallelism() + 1;
    }

    /** Runs {@code body} over [0, n) in chunks of at least {@code grain} indices. */
    public static void forRange(int n, int grain, RangeBody body) {
        int threads = Math.max(1, parallelism());
        if (n <= grain || threads == 1) {
            body.run(0, n);
            return;
        }
        int chunks = Math.min(threads * 4, (n + grain - 1) / grain);
        int chunk = (n + chunks - 1) / chunks;
        // invoke() computes on this thread and forks the other halves to the common pool; inside a
        // pool worker it behaves the same, so nested ranges do not deadlock
        new Chunk(0, n, chunk, body).invoke();
    }

    private static final class Chunk extends RecursiveAction {
        private final int from;
        private final int to;
        private final int chunk;
        private final RangeBody body;

        Chunk(int from, int to, int chunk, RangeBody body) {
            this.from = from;
            this.to = to;
            this.chunk = chunk;
            this.body = body;
        }

        @Override
        protected void compute() {
            if (to - from <= chunk) {
                body.run(from, to);
                return;
            }
            int pieces = (to - from + chunk - 1) / chunk;
            int mid = from + (pieces / 2) * chunk;
            invokeAll(new Chunk(from, mid, chunk, body), new Chunk(mid, to, chunk, body));
        }
    }
}
