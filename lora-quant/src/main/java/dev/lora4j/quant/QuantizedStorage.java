package dev.lora4j.quant;

import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Storage;
import java.util.Arrays;
import java.util.Objects;

/**
 * A frozen weight in bitsandbytes' 4-bit layout, decoded blockwise to F32 on every read, so that
 * gemm widens it panel by panel and no F32 or BF16 copy of the weight ever exists.
 *
 * <p>Layout (bitsandbytes {@code quantize_4bit}): the {@link #size()} elements in row-major order
 * form blocks of {@link #blocksize()} (the last may be shorter); element i of block b decodes to
 * {@code code[q_i] · absmax_b}, where q_i is a 4-bit code, two per byte, element 2k in the HIGH
 * nibble. With double quantization absmax_b is itself decoded:
 * {@code absmax_b = map[c_b] · nestedAbsmax[b / nestedBlocksize] + offset} with an 8-bit code c_b
 * (bitsandbytes {@code dequantize_blockwise} followed by {@code += offset}, in float32).
 *
 * <p>{@link #dtype()} is U8, the element type of the packed bytes (bitsandbytes' weight tensor is
 * uint8 too); {@link #size()} counts logical 4-bit elements. Immutable and thread-safe.
 */
public final class QuantizedStorage implements Storage {

    /**
     * Double-quantized absmax: one 8-bit code per block into the 256-value {@code map}, the F32
     * absmax of each group of {@code blocksize} codes, and the float32 offset (the mean of the
     * original absmax values; kept as the double that was saved, so that a checkpoint round trip
     * writes back the same text).
     */
    public record NestedAbsmax(byte[] codes, float[] absmax, float[] map, int blocksize, double offset) {
        public NestedAbsmax {
            Objects.requireNonNull(codes, "codes");
            Objects.requireNonNull(absmax, "absmax");
            QuantConfig.checkBlocksize("nested blocksize", blocksize);
            if (map.length != 256) {
                throw new IllegalArgumentException("nested quant map has " + map.length + " values; an 8-bit map has 256");
            }
            if (absmax.length != (codes.length + blocksize - 1) / blocksize) {
                throw new IllegalArgumentException("nested absmax has " + absmax.length + " values but " + codes.length
                        + " codes in blocks of " + blocksize + " need " + (codes.length + blocksize - 1) / blocksize);
            }
        }
    }

    private final QuantType type;
    private final int blocksize;
    private final long size;
    private final int[] shape;
    private final DType sourceDType;
    private final byte[] packed;
    private final float[] absmax;
    private final NestedAbsmax nested;
    private final float nestedOffset;
    private final float[] code;
    private final float[] storedQuantMap;
    private final byte[] storedQuantState;

    /**
     * @param shape the weight's logical shape (bitsandbytes' {@code quant_state.shape})
     * @param sourceDType the dtype the weight had before quantization ({@code quant_state.dtype})
     * @param absmax per-block absmax, or null with {@code nested}
     * @param storedQuantMap the {@code quant_map} to write back, or null for the type's table
     * @param storedQuantState the serialized {@code quant_state} JSON to write back, or null to generate it
     */
    QuantizedStorage(QuantType type, int blocksize, int[] shape, DType sourceDType, byte[] packed, float[] absmax,
                     NestedAbsmax nested, float[] storedQuantMap, byte[] storedQuantState) {
        QuantConfig.checkBlocksize("blocksize", blocksize);
        long n = 1;
        for (int d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
            }
            n = Math.multiplyExact(n, d);
        }
        long blocks = (n + blocksize - 1) / blocksize;
        if (packed.length != (n + 1) / 2) {
            throw new IllegalArgumentException("packed codes hold " + packed.length + " bytes but " + n + " elements need "
                    + (n + 1) / 2);
        }
        if ((absmax == null) == (nested == null)) {
            throw new IllegalArgumentException("exactly one of absmax and nested absmax must be given");
        }
        long scales = absmax != null ? absmax.length : nested.codes().length;
        if (scales != blocks) {
            throw new IllegalArgumentException("absmax has " + scales + " values but " + n + " elements in blocks of "
                    + blocksize + " need " + blocks);
        }
        if (storedQuantMap != null && storedQuantMap.length != 16) {
            throw new IllegalArgumentException("quant_map has " + storedQuantMap.length + " values; a 4-bit map has 16");
        }
        this.type = type;
        this.blocksize = blocksize;
        this.size = n;
        this.shape = shape.clone();
        this.sourceDType = sourceDType;
        this.packed = packed;
        this.absmax = absmax;
        this.nested = nested;
        this.nestedOffset = nested == null ? 0f : (float) nested.offset();
        this.code = type.codeShared();
        this.storedQuantMap = storedQuantMap;
        this.storedQuantState = storedQuantState;
    }

    /**
     * Quantizes {@code n = prod(shape)} elements of {@code src} from {@code offset} (row-major).
     *
     * @param what names the tensor in error messages
     */
    public static QuantizedStorage quantize(String what, Storage src, long offset, int[] shape, QuantConfig config,
                                            DType sourceDType) {
        long n = 1;
        for (int d : shape) {
            n = Math.multiplyExact(n, d);
        }
        if (offset < 0 || offset + n > src.size()) {
            throw new IllegalArgumentException(what + ": " + n + " elements from offset " + offset + " exceed its storage of "
                    + src.size());
        }
        if ((n + 1) / 2 > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException(what + ": " + n + " elements exceed the 2^32 that one packed array holds");
        }
        byte[] packed = new byte[(int) ((n + 1) / 2)];
        float[] absmax = Blockwise.quantize4(what, src, offset, n, config.type(), config.blocksize(), packed);
        if (!config.doubleQuant()) {
            return new QuantizedStorage(config.type(), config.blocksize(), shape, sourceDType, packed, absmax, null, null,
                    null);
        }
        return new QuantizedStorage(config.type(), config.blocksize(), shape, sourceDType, packed, null,
                doubleQuantize(absmax), null, null);
    }

    /** bitsandbytes' compress_statistics: absmax minus its mean, quantized to 8 bits in blocks of 256. */
    static NestedAbsmax doubleQuantize(float[] absmax) {
        double sum = 0;
        for (float a : absmax) {
            sum += a;
        }
        float offset = (float) (sum / absmax.length);
        float[] centered = new float[absmax.length];
        for (int i = 0; i < absmax.length; i++) {
            centered[i] = absmax[i] - offset;
        }
        byte[] codes = new byte[absmax.length];
        float[] map = QuantMaps.dynamicSignedShared();
        float[] nestedAbsmax = Blockwise.quantize8(centered, map, QuantConfig.NESTED_BLOCKSIZE, codes);
        return new NestedAbsmax(codes, nestedAbsmax, map, QuantConfig.NESTED_BLOCKSIZE, offset);
    }

    // ---------------------------------------------------------------- Storage

    @Override
    public DType dtype() {
        return DType.U8;
    }

    @Override
    public long size() {
        return size;
    }

    /**
     * Decodes {@code count} elements from {@code start}: per block, the 16 code values are scaled
     * once, then every element is a table lookup. {@code start} may fall anywhere, mid-block or
     * on a low nibble.
     */
    @Override
    public void decode(long start, int count, float[] dst, int dstOffset) {
        Objects.checkFromIndexSize(start, count, size);
        Objects.checkFromIndexSize(dstOffset, count, dst.length);
        float[] table = new float[16];
        byte[] bytes = packed;
        long i = start;
        long end = start + count;
        int o = dstOffset;
        while (i < end) {
            int block = (int) (i / blocksize);
            long blockEnd = Math.min(end, (long) (block + 1) * blocksize);
            float scale = blockScale(block);
            for (int k = 0; k < 16; k++) {
                table[k] = code[k] * scale;
            }
            if ((i & 1) != 0) {
                dst[o++] = table[bytes[(int) (i >> 1)] & 0xF];
                i++;
            }
            int p = (int) (i >> 1);
            int pairs = (int) ((blockEnd - i) >> 1);
            for (int last = p + pairs; p < last; p++, o += 2) {
                int v = bytes[p];
                dst[o] = table[(v >> 4) & 0xF];
                dst[o + 1] = table[v & 0xF];
            }
            i += 2L * pairs;
            if (i < blockEnd) {
                dst[o++] = table[(bytes[p] >> 4) & 0xF];
                i++;
            }
        }
    }

    /** The absmax of {@code block}, decoded from its 8-bit code under double quantization. */
    public float blockScale(int block) {
        if (absmax != null) {
            return absmax[block];
        }
        return nested.map()[nested.codes()[block] & 0xFF] * nested.absmax()[block / nested.blocksize()] + nestedOffset;
    }

    @Override
    public long byteSize() {
        long scales = absmax != null ? 4L * absmax.length : nested.codes().length + 4L * nested.absmax().length + 4;
        return packed.length + scales;
    }

    @Override
    public int decodeAlignment() {
        return blocksize;
    }

    // ---------------------------------------------------------------- accessors

    public QuantType type() {
        return type;
    }

    public int blocksize() {
        return blocksize;
    }

    public boolean isDoubleQuant() {
        return nested != null;
    }

    /** The configuration this storage follows (type, blocksize, double quantization). */
    public QuantConfig config() {
        return new QuantConfig(type, blocksize, nested != null);
    }

    public int[] shape() {
        return shape.clone();
    }

    public DType sourceDType() {
        return sourceDType;
    }

    public int blockCount() {
        return absmax != null ? absmax.length : nested.codes().length;
    }

    /** The packed 4-bit codes (not copied; do not modify: a device backend uploads them as they are). */
    public byte[] packed() {
        return packed;
    }

    /** Per-block F32 absmax, or null under double quantization (not copied; do not modify). */
    public float[] absmax() {
        return absmax;
    }

    /** The double-quantized absmax, or null. */
    public NestedAbsmax nested() {
        return nested;
    }

    /** The 16-value {@code quant_map} to serialize: as loaded, else the type's table. */
    float[] quantMap() {
        return storedQuantMap != null ? storedQuantMap : code;
    }

    /** The {@code quant_state} JSON bytes read from a checkpoint, or null when this storage was quantized here. */
    byte[] storedQuantState() {
        return storedQuantState;
    }

    @Override
    public String toString() {
        return "QuantizedStorage[" + config() + ", shape " + Arrays.toString(shape) + ", from " + sourceDType + ", "
                + byteSize() + " bytes]";
    }
}
