package dev.lora4j.nn;

import dev.lora4j.backend.Backends;
import dev.lora4j.tensor.Device;
import dev.lora4j.tensor.Tensor;

/**
 * Keys and values of the tokens seen so far, per layer, so that generation feeds one new token
 * at a time: [B, capacity, G, D] per layer, filled up to {@link #length()}, on the device of the
 * model that made the cache (host arrays on the CPU, device memory on a GPU).
 */
public final class KvCache {
    final Tensor[] keys;
    final Tensor[] values;
    final int batch;
    final int capacity;
    final int kvHeads;
    final int headDim;
    private int length;

    /** A cache in host memory. */
    public KvCache(int layers, int batch, int capacity, int kvHeads, int headDim) {
        this(layers, batch, capacity, kvHeads, headDim, Device.CPU);
    }

    /** A cache on {@code device} (persistent storage of that device's backend). */
    public KvCache(int layers, int batch, int capacity, int kvHeads, int headDim, Device device) {
        this.batch = batch;
        this.capacity = capacity;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.keys = new Tensor[layers];
        this.values = new Tensor[layers];
        int[] shape = {batch, capacity, kvHeads, headDim};
        int n = batch * capacity * kvHeads * headDim;
        for (int l = 0; l < layers; l++) {
            keys[l] = store(device, n, shape);
            values[l] = store(device, n, shape);
        }
    }

    private static Tensor store(Device device, int n, int[] shape) {
        return device == Device.CPU ? Tensor.of(new float[n], shape) : Backends.forDevice(device).fromHost(new float[n], shape);
    }

    /** Number of positions already cached. */
    public int length() {
        return length;
    }

    public int capacity() {
        return capacity;
    }

    /** The key store of one layer, [B, capacity, G, D]. */
    public Tensor keysOf(int layer) {
        return keys[layer];
    }

    /** The value store of one layer, [B, capacity, G, D]. */
    public Tensor valuesOf(int layer) {
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
