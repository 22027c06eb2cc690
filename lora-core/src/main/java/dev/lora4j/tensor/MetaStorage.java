package dev.lora4j.tensor;

/**
 * Shape-only storage: a model built on it has every tensor's shape and dtype but allocates no
 * memory, for counting parameters and planning memory before loading.
 */
public final class MetaStorage implements Storage {
    private final DType dtype;
    private final long size;

    public MetaStorage(DType dtype, long size) {
        this.dtype = dtype;
        this.size = size;
    }

    @Override
    public DType dtype() {
        return dtype;
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public void decode(long start, int count, float[] dst, int dstOffset) {
        throw new IllegalStateException("this tensor has a shape but no data (the model was built from its config alone "
                + "for counting); load the weights to compute with it");
    }

    @Override
    public long byteSize() {
        return 0;
    }
}
