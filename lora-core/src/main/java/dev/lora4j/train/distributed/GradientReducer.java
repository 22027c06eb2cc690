package dev.lora4j.train.distributed;

/**
 * The collective operations a data-parallel {@link dev.lora4j.train.Trainer} needs: worker
 * {@link #rank()} of {@link #worldSize()} sums its trainable gradients with the other workers'
 * once per optimizer step, and gathers small per-worker records (losses, token counts, adapter
 * checksums).
 *
 * <p>Contract: every worker calls the same operations in the same order with arrays of the same
 * length; each call returns only when all workers have contributed, and every worker receives the
 * same bits (so that clipping, the optimizer and the adapters stay identical across workers).
 * Implementations fail with an {@link java.io.UncheckedIOException} naming the peer instead of
 * waiting forever.
 */
public interface GradientReducer extends AutoCloseable {

    /** This worker's index, 0 to {@code worldSize() - 1}; rank 0 writes checkpoints. */
    int rank();

    /** Number of workers. */
    int worldSize();

    /** {@code values[i] = Σ over workers of values[i]}, in place; every worker gets the same result. */
    void sum(float[] values);

    /** {@code values[i] = (Σ over workers of values[i]) / worldSize()}, in place. */
    default void mean(float[] values) {
        sum(values);
        float inv = 1f / worldSize();
        for (int i = 0; i < values.length; i++) {
            values[i] *= inv;
        }
    }

    /**
     * Every worker's {@code mine}, indexed by rank; all workers must pass the same length.
     *
     * @throws IllegalStateException if a worker passes another length
     */
    byte[][] allGather(byte[] mine);

    /** Releases the connections; a closed reducer fails every later call. */
    @Override
    void close();
}
