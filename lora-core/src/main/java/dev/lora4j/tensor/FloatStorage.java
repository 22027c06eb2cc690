package dev.lora4j.tensor;

/**
 * Heap F32 storage: the storage of every activation, gradient and trainable parameter on the CPU.
 * Its logical {@link #size()} may be shorter than the array when the array is a pooled buffer of a
 * larger size bucket (see {@link dev.lora4j.backend.Backend#openArena()}).
 */
public final class FloatStorage implements Storage {
    private final float[] data;
    private final int size;

    public FloatStorage(float[] data) {
        this(data, data.length);
    }

    /** The first {@code size} elements of {@code data}. */
    public FloatStorage(float[] data, int size) {
        if (size < 0 || size > data.length) {
            throw new IllegalArgumentException("FloatStorage: size " + size + " outside [0, " + data.length + "]");
        }
        this.data = data;
        this.size = size;
    }

    public FloatStorage(int size) {
        this(new float[size], size);
    }

    /** The backing array; elements at and after {@link #size()} do not belong to this storage. */
    public float[] array() {
        return data;
    }

    @Override
    public DType dtype() {
        return DType.F32;
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public void decode(long start, int count, float[] dst, int dstOffset) {
        System.arraycopy(data, Math.toIntExact(start), dst, dstOffset, count);
    }

    @Override
    public float getFloat(long index) {
        return data[Math.toIntExact(index)];
    }

    @Override
    public long byteSize() {
        return 4L * size;
    }
}
