package dev.lora4j.tensor;

/** Heap F32 storage: the storage of every activation, gradient and trainable parameter. */
public final class FloatStorage implements Storage {
    private final float[] data;

    public FloatStorage(float[] data) {
        this.data = data;
    }

    public FloatStorage(int size) {
        this.data = new float[size];
    }

    public float[] array() {
        return data;
    }

    @Override
    public DType dtype() {
        return DType.F32;
    }

    @Override
    public long size() {
        return data.length;
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
        return 4L * data.length;
    }
}
