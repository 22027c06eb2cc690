package dev.lora4j.tensor;

/**
 * A flat run of elements of one {@link DType}. Compute storages are {@link FloatStorage} (heap
 * F32, mutable). Frozen weights may be any storage that can widen a range of elements to F32:
 * half-precision buffers (possibly memory-mapped from a checkpoint), or the 4-bit formats of
 * lora-quant. A device backend adds its own implementation whose bytes live on the device; it
 * may refuse {@link #decode} until copied back.
 */
public interface Storage {

    DType dtype();

    /** Number of logical elements. */
    long size();

    default Device device() {
        return Device.CPU;
    }

    /**
     * Widens {@code count} consecutive elements starting at {@code start} (in the row-major
     * flattening) into {@code dst[dstOffset ..]}.
     */
    void decode(long start, int count, float[] dst, int dstOffset);

    /** One element as float; slow path for tests and debugging. */
    default float getFloat(long index) {
        float[] one = new float[1];
        decode(index, 1, one, 0);
        return one[0];
    }

    /** Bytes this storage holds in memory (or maps), for memory reports. */
    long byteSize();

    /**
     * True when the bytes live outside the Java heap (a memory-mapped file or a direct buffer): they
     * count toward resident memory but not toward {@code -Xmx}. Used by memory plans.
     */
    default boolean offHeap() {
        return false;
    }

    /**
     * Size of the aligned groups that {@link #decode} prefers (1 for element-addressable formats,
     * the block size for blockwise-quantized ones). Callers decoding whole rows need not care.
     */
    default int decodeAlignment() {
        return 1;
    }
}
