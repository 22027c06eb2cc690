package dev.lora4j.backend;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.RecursiveAction;

/**
 * Splits index ranges over the common fork-join pool. Work below {@code grain} runs inline, so
 * small tensors pay no scheduling cost. Each index is visited exactly once and chunks are fixed
 * by (n, grain, parallelism), so results do not depend on scheduling as long as bodies write
 * disjoint outputs.
 */
public final class Parallel {
    private Parallel() {
    }

    /** A body over the half-open range [from, to). */
    @FunctionalInterface
    public interface RangeBody {
        void run(int from, int to);
    }

    public static int parallelism() {
        return ForkJoinPool.getCommonPoolParallelism();
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
        ForkJoinPool.commonPool().invoke(new Chunk(0, n, chunk, body));
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
