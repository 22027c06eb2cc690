package dev.lora4j.tensor;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;

/**
 * Read-only storage over little-endian bytes: F32, BF16 or F16, typically a slice of a
 * memory-mapped safetensors file, so a frozen weight costs no heap. BF16/F16 are widened to F32
 * on every {@link #decode}.
 */
public final class BufferStorage implements Storage {
    private final ByteBuffer bytes;
    private final DType dtype;
    private final long size;
    /** Views for bulk absolute reads (they do not move any position, so concurrent readers are safe). */
    private final FloatBuffer floats;
    private final ShortBuffer shorts;
    private static final ThreadLocal<short[]> SCRATCH = ThreadLocal.withInitial(() -> new short[4096]);

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
        this.floats = dtype == DType.F32 ? this.bytes.asFloatBuffer() : null;
        this.shorts = dtype == DType.F32 ? null : this.bytes.asShortBuffer();
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
        int first = Math.toIntExact(start);
        if (dtype == DType.F32) {
            floats.get(first, dst, dstOffset, count);
            return;
        }
        // one bulk read into a per-thread scratch array, then widen: several times faster than
        // element-wise ByteBuffer.getShort on memory-mapped weights
        short[] raw = SCRATCH.get();
        if (raw.length < count) {
            raw = new short[Math.max(count, 2 * raw.length)];
            SCRATCH.set(raw);
        }
        shorts.get(first, raw, 0, count);
        if (dtype == DType.BF16) {
            for (int i = 0; i < count; i++) {
                dst[dstOffset + i] = Float.intBitsToFloat((raw[i] & 0xffff) << 16);
            }
        } else {
            for (int i = 0; i < count; i++) {
                dst[dstOffset + i] = DType.f16ToFloat(raw[i]);
            }
        }
    }

    @Override
    public boolean offHeap() {
        return bytes.isDirect();
    }

    @Override
    public long byteSize() {
        return size * dtype.byteSize();
    }
}
