package dev.lora4j.tensor;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Read-only storage over little-endian bytes: F32, BF16 or F16, typically a slice of a
 * memory-mapped safetensors file, so a frozen weight costs no heap. BF16/F16 are widened to F32
 * on every {@link #decode}.
 */
public final class BufferStorage implements Storage {
    private final ByteBuffer bytes;
    private final DType dtype;
    private final long size;

    public BufferStorage(ByteBuffer bytes, DType dtype) {
        if (dtype != DType.F32 && dtype != DType.BF16 && dtype != DType.F16) {
            throw new IllegalArgumentException("BufferStorage holds F32, BF16 or F16 weights, not " + dtype);
        }
        if (bytes.remaining() % dtype.byteSize() != 0) {
            throw new IllegalArgumentException("buffer of " + bytes.remaining() + " bytes is not a whole number of "
                    + dtype + " elements");
        }
        this.bytes = bytes.slice().order(ByteOrder.LITTLE_ENDIAN);
        this.dtype = dtype;
        this.size = this.bytes.remaining() / dtype.byteSize();
    }

    /** Converts F32 values to a new heap buffer of the given dtype (rounding to nearest even). */
    public static BufferStorage of(float[] values, DType dtype) {
        ByteBuffer buf = ByteBuffer.allocate(values.length * dtype.byteSize()).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : values) {
            switch (dtype) {
                case F32 -> buf.putFloat(v);
                case BF16 -> buf.putShort(DType.floatToBf16(v));
                case F16 -> buf.putShort(DType.floatToF16(v));
                default -> throw new IllegalArgumentException("unsupported dtype " + dtype);
            }
        }
        buf.flip();
        return new BufferStorage(buf, dtype);
    }

    /** The raw little-endian bytes (a read-only view). */
    public ByteBuffer bytes() {
        return bytes.asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN);
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
        int base = Math.toIntExact(start * dtype.byteSize());
        switch (dtype) {
            case F32 -> {
                for (int i = 0; i < count; i++) {
                    dst[dstOffset + i] = bytes.getFloat(base + 4 * i);
                }
            }
            case BF16 -> {
                for (int i = 0; i < count; i++) {
                    dst[dstOffset + i] = Float.intBitsToFloat((bytes.getShort(base + 2 * i) & 0xffff) << 16);
                }
            }
            case F16 -> {
                for (int i = 0; i < count; i++) {
                    dst[dstOffset + i] = DType.f16ToFloat(bytes.getShort(base + 2 * i));
                }
            }
            default -> throw new IllegalStateException();
        }
    }

    @Override
    public long byteSize() {
        return size * dtype.byteSize();
    }
}
