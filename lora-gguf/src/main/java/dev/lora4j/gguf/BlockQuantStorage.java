package dev.lora4j.gguf;

import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Storage;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Objects;

/**
 * A frozen weight in one of ggml's block-quantized formats (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K; see
 * {@link GgmlQuants}), usually memory-mapped from a GGUF file. Nothing is widened ahead of time:
 * the matrix products call {@link #decode} panel by panel, as for lora-quant's 4-bit storages, so
 * a Q4_K_M base costs its file size in memory. {@link #dtype()} is U8 (the packed bytes),
 * {@link #size()} counts logical elements. Immutable and thread-safe.
 */
public final class BlockQuantStorage implements Storage {
    private final GgmlType type;
    private final ByteBuffer bytes;
    private final long size;
    private final int blockSize;
    private final int typeSize;

    /** Per-thread scratch: one block's bytes and one block's values. */
    private static final ThreadLocal<byte[]> RAW = ThreadLocal.withInitial(() -> new byte[512]);
    private static final ThreadLocal<float[]> VALUES = ThreadLocal.withInitial(() -> new float[256]);

    public BlockQuantStorage(GgmlType type, ByteBuffer bytes) {
        if (!type.isQuantized() || !type.decodable()) {
            throw new IllegalArgumentException("BlockQuantStorage holds Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K or Q6_K blocks, not " + type);
        }
        if (bytes.remaining() % type.typeSize() != 0) {
            throw new IllegalArgumentException(type + " data of " + bytes.remaining() + " bytes is not a whole number of "
                    + type.typeSize() + "-byte blocks");
        }
        this.type = type;
        this.bytes = bytes.slice().order(ByteOrder.LITTLE_ENDIAN);
        this.blockSize = type.blockSize();
        this.typeSize = type.typeSize();
        this.size = (long) this.bytes.remaining() / typeSize * blockSize;
    }

    public GgmlType type() {
        return type;
    }

    /** The raw blocks (a read-only view). */
    public ByteBuffer bytes() {
        return bytes.asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN);
    }

    @Override
    public DType dtype() {
        return DType.U8;
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public void decode(long start, int count, float[] dst, int dstOffset) {
        Objects.checkFromIndexSize(start, count, size);
        Objects.checkFromIndexSize(dstOffset, count, dst.length);
        byte[] raw = RAW.get();
        long i = start;
        long end = start + count;
        int o = dstOffset;
        while (i < end) {
            long block = i / blockSize;
            int within = (int) (i - block * blockSize);
            int n = (int) Math.min(blockSize - within, end - i);
            bytes.get(Math.toIntExact(block * typeSize), raw, 0, typeSize);
            if (within == 0 && n == blockSize) {
                GgmlQuants.decodeBlock(type, raw, 0, dst, o);
            } else {
                float[] values = VALUES.get();
                GgmlQuants.decodeBlock(type, raw, 0, values, 0);
                System.arraycopy(values, within, dst, o, n);
            }
            i += n;
            o += n;
        }
    }

    @Override
    public boolean offHeap() {
        return bytes.isDirect();
    }

    @Override
    public long byteSize() {
        return bytes.capacity();
    }

    @Override
    public int decodeAlignment() {
        return blockSize;
    }

    @Override
    public String toString() {
        return "BlockQuantStorage[" + type + ", " + size + " elements, " + byteSize() + " bytes]";
    }
}
