package dev.lora4j.gguf;

import java.util.Arrays;
import java.util.Objects;

/**
 * One GGUF metadata value. Scalars are boxed: every integer type as {@link Long} (u64 values above
 * 2^63 wrap, as Java has no unsigned long), FLOAT32 as {@link Float}, FLOAT64 as {@link Double},
 * BOOL as {@link Boolean}, STRING as {@link String}. An ARRAY carries its {@code elementType} and
 * a Java array: {@code long[]} for integers, {@code float[]}, {@code double[]}, {@code boolean[]}
 * or {@code String[]}.
 */
public record GgufValue(GgufValueType type, GgufValueType elementType, Object value) {
    public GgufValue {
        Objects.requireNonNull(type, "type");
        Objects.requireNonNull(value, "value");
        if ((type == GgufValueType.ARRAY) != (elementType != null)) {
            throw new IllegalArgumentException("an element type is given for arrays only (type " + type + ")");
        }
        if (elementType == GgufValueType.ARRAY) {
            throw new IllegalArgumentException("arrays of arrays are not supported");
        }
        Class<?> expected = switch (type == GgufValueType.ARRAY ? elementType : type) {
            case UINT8, INT8, UINT16, INT16, UINT32, INT32, UINT64, INT64 -> type == GgufValueType.ARRAY ? long[].class : Long.class;
            case FLOAT32 -> type == GgufValueType.ARRAY ? float[].class : Float.class;
            case FLOAT64 -> type == GgufValueType.ARRAY ? double[].class : Double.class;
            case BOOL -> type == GgufValueType.ARRAY ? boolean[].class : Boolean.class;
            case STRING -> type == GgufValueType.ARRAY ? String[].class : String.class;
            case ARRAY -> throw new AssertionError();
        };
        if (!expected.isInstance(value)) {
            throw new IllegalArgumentException(type + (elementType != null ? " of " + elementType : "") + " holds a "
                    + expected.getSimpleName() + ", not a " + value.getClass().getSimpleName());
        }
    }

    public static GgufValue u32(long v) {
        if (v < 0 || v > 0xffffffffL) {
            throw new IllegalArgumentException("u32 value out of range: " + v);
        }
        return new GgufValue(GgufValueType.UINT32, null, v);
    }

    public static GgufValue u16(long v) {
        if (v < 0 || v > 0xffff) {
            throw new IllegalArgumentException("u16 value out of range: " + v);
        }
        return new GgufValue(GgufValueType.UINT16, null, v);
    }

    public static GgufValue i32(long v) {
        return new GgufValue(GgufValueType.INT32, null, (long) Math.toIntExact(v));
    }

    public static GgufValue u64(long v) {
        return new GgufValue(GgufValueType.UINT64, null, v);
    }

    public static GgufValue f32(double v) {
        return new GgufValue(GgufValueType.FLOAT32, null, (float) v);
    }

    public static GgufValue bool(boolean v) {
        return new GgufValue(GgufValueType.BOOL, null, v);
    }

    public static GgufValue string(String v) {
        return new GgufValue(GgufValueType.STRING, null, v);
    }

    public static GgufValue strings(String... v) {
        return new GgufValue(GgufValueType.ARRAY, GgufValueType.STRING, v);
    }

    public static GgufValue floats(float... v) {
        return new GgufValue(GgufValueType.ARRAY, GgufValueType.FLOAT32, v);
    }

    /** An array of INT32 (llama.cpp's token types). */
    public static GgufValue ints(int... v) {
        return new GgufValue(GgufValueType.ARRAY, GgufValueType.INT32, Arrays.stream(v).asLongStream().toArray());
    }

    /** Number of elements of an array, 1 for a scalar. */
    public int length() {
        if (type != GgufValueType.ARRAY) {
            return 1;
        }
        return java.lang.reflect.Array.getLength(value);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof GgufValue v && v.type == type && v.elementType == elementType
                && Objects.deepEquals(v.value, value);
    }

    @Override
    public int hashCode() {
        return Objects.hash(type, elementType, Arrays.deepHashCode(new Object[] {value}));
    }

    @Override
    public String toString() {
        if (type != GgufValueType.ARRAY) {
            return type + " " + value;
        }
        int n = length();
        return "ARRAY of " + n + " " + elementType;
    }
}
