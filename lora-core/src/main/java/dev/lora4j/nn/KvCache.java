package dev.lora4j.nn;

/**
 * Keys and values of the tokens seen so far, per layer, so that generation feeds one new token
 * at a time: [B, capacity, G, D] per layer, filled up to {@link #length()}.
 */
public final class KvCache {
    final float[][] keys;
    final float[][] values;
    final int batch;
    final int capacity;
    final int kvHeads;
    final int headDim;
    private int length;

    public KvCache(int layers, int batch, int capacity, int kvHeads, int headDim) {
        this.batch = batch;
        this.capacity = capacity;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.keys = new float[layers][batch * capacity * kvHeads * headDim];
        this.values = new float[layers][batch * capacity * kvHeads * headDim];
    }

    /** Number of positions already cached. */
    public int length() {
        return length;
    }

    public int capacity() {
        return capacity;
    }

    /** The key store of one layer, [B, capacity, G, D]. */
    public float[] keysOf(int layer) {
        return keys[layer];
    }

    /** The value store of one layer, [B, capacity, G, D]. */
    public float[] valuesOf(int layer) {
        return values[layer];
    }

    /** Marks {@code tokens} more positions as filled (called once per forward by the model). */
    public void advance(int tokens) {
        length += tokens;
    }

    /** Forgets everything (reuse for a new prompt). */
    public void clear() {
        length = 0;
    }
}
