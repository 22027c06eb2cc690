package dev.lora4j.gguf;

/**
 * ggml tensor element types as GGUF stores them ({@code enum ggml_type} in ggml.h): the id written
 * in each tensor info, the number of elements per block and the bytes per block. A row of a
 * tensor holds whole blocks ({@code ne[0] % blockSize == 0}), so row {@code r} of a matrix starts
 * at byte {@code r * rowBytes(ne[0])}.
 *
 * <p>Only the types lora4j reads or writes have a decoder ({@link #decodable()}); the others are
 * listed so that a file using them is refused by name rather than as an unknown number.
 */
public enum GgmlType {
    F32(0, 1, 4),
    F16(1, 1, 2),
    Q4_0(2, 32, 18),
    Q4_1(3, 32, 20),
    Q5_0(6, 32, 22),
    Q5_1(7, 32, 24),
    Q8_0(8, 32, 34),
    Q8_1(9, 32, 36),
    Q2_K(10, 256, 84),
    Q3_K(11, 256, 110),
    Q4_K(12, 256, 144),
    Q5_K(13, 256, 176),
    Q6_K(14, 256, 210),
    Q8_K(15, 256, 292),
    IQ2_XXS(16, 256, 66),
    IQ2_XS(17, 256, 74),
    IQ3_XXS(18, 256, 98),
    IQ1_S(19, 256, 50),
    IQ4_NL(20, 32, 18),
    IQ3_S(21, 256, 110),
    IQ2_S(22, 256, 82),
    IQ4_XS(23, 256, 136),
    I8(24, 1, 1),
    I16(25, 1, 2),
    I32(26, 1, 4),
    I64(27, 1, 8),
    F64(28, 1, 8),
    IQ1_M(29, 256, 56),
    BF16(30, 1, 2),
    TQ1_0(34, 256, 54),
    TQ2_0(35, 256, 66),
    MXFP4(39, 32, 17);

    private final int id;
    private final int blockSize;
    private final int typeSize;

    GgmlType(int id, int blockSize, int typeSize) {
        this.id = id;
        this.blockSize = blockSize;
        this.typeSize = typeSize;
    }

    /** The number written in a GGUF tensor info. */
    public int id() {
        return id;
    }

    /** Elements per block (1 for plain types). */
    public int blockSize() {
        return blockSize;
    }

    /** Bytes per block. */
    public int typeSize() {
        return typeSize;
    }

    /** Bytes of {@code elements} elements, a multiple of {@link #blockSize()}. */
    public long byteSize(long elements) {
        return elements / blockSize * typeSize;
    }

    /** Whether lora4j can widen this type to F32 (and so use it as a frozen weight). */
    public boolean decodable() {
        return switch (this) {
            case F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K -> true;
            default -> false;
        };
    }

    public boolean isQuantized() {
        return blockSize > 1;
    }

    /** The type with this id, or null when ggml has none (or one this table does not know). */
    public static GgmlType byId(long id) {
        for (GgmlType t : values()) {
            if (t.id == id) {
                return t;
            }
        }
        return null;
    }

    /** Parses a type name such as {@code q8_0} or {@code F16} (case-insensitive). */
    public static GgmlType parse(String name) {
        for (GgmlType t : values()) {
            if (t.name().equalsIgnoreCase(name)) {
                return t;
            }
        }
        throw new IllegalArgumentException("unknown ggml type '" + name + "'; expected e.g. F32, F16, BF16 or Q8_0");
    }
}
