package dev.lora4j.quant;

import java.util.Locale;

/**
 * How to quantize a frozen weight to 4 bits, as bitsandbytes' {@code quantize_4bit}: the data type,
 * the number of consecutive elements (row-major) sharing one absmax, and whether those absmax
 * values are themselves quantized ("double quantization", QLoRA §3: absmax minus its mean, in
 * blocks of {@value #NESTED_BLOCKSIZE}, to 8 bits with the signed dynamic map).
 *
 * <p>Storage per parameter: 4 bits + 32/blocksize bits of absmax, i.e. 4.5 bits at blocksize 64;
 * with double quantization 4 + 8/blocksize + 32/(blocksize·256) bits, i.e. about 4.127.
 *
 * @param blocksize a power of two from {@value #MIN_BLOCKSIZE} to {@value #MAX_BLOCKSIZE}
 */
public record QuantConfig(QuantType type, int blocksize, boolean doubleQuant) {
    public static final int DEFAULT_BLOCKSIZE = 64;
    public static final int MIN_BLOCKSIZE = 32;
    public static final int MAX_BLOCKSIZE = 4096;
    /** Block size of the 8-bit quantization of absmax under double quantization (bitsandbytes' 256). */
    public static final int NESTED_BLOCKSIZE = 256;

    public static final QuantConfig NF4 = new QuantConfig(QuantType.NF4, DEFAULT_BLOCKSIZE, false);
    /** NF4 with double quantization: QLoRA's setting. */
    public static final QuantConfig NF4_DQ = new QuantConfig(QuantType.NF4, DEFAULT_BLOCKSIZE, true);
    public static final QuantConfig FP4 = new QuantConfig(QuantType.FP4, DEFAULT_BLOCKSIZE, false);
    public static final QuantConfig FP4_DQ = new QuantConfig(QuantType.FP4, DEFAULT_BLOCKSIZE, true);

    public QuantConfig {
        if (type == null) {
            throw new IllegalArgumentException("quant type must be nf4 or fp4, not null");
        }
        checkBlocksize("blocksize", blocksize);
    }

    /** Throws unless {@code value} is a power of two in [32, 4096]; {@code what} names the setting. */
    static void checkBlocksize(String what, long value) {
        if (value < MIN_BLOCKSIZE || value > MAX_BLOCKSIZE || Long.bitCount(value) != 1) {
            throw new IllegalArgumentException(what + " " + value + " is not supported; use a power of two from "
                    + MIN_BLOCKSIZE + " to " + MAX_BLOCKSIZE + " (bitsandbytes' default is " + DEFAULT_BLOCKSIZE + ")");
        }
    }

    public QuantConfig withBlocksize(int value) {
        return new QuantConfig(type, value, doubleQuant);
    }

    public QuantConfig withDoubleQuant(boolean value) {
        return new QuantConfig(type, blocksize, value);
    }

    /**
     * Parses "nf4", "nf4-dq", "fp4" or "fp4-dq" (any case; "_" may replace "-"), optionally
     * followed by "@" and a block size: "nf4-dq@128".
     */
    public static QuantConfig parse(String text) {
        if (text == null || text.isBlank()) {
            throw new IllegalArgumentException("quantization must be one of nf4, nf4-dq, fp4, fp4-dq (optionally @blocksize), "
                    + "got " + (text == null ? "null" : "an empty string"));
        }
        String s = text.trim().toLowerCase(Locale.ROOT).replace('_', '-');
        int blocksize = DEFAULT_BLOCKSIZE;
        int at = s.indexOf('@');
        if (at >= 0) {
            try {
                blocksize = Integer.parseInt(s.substring(at + 1));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("quantization '" + text + "': block size '" + s.substring(at + 1)
                        + "' is not an integer; e.g. nf4-dq@64");
            }
            s = s.substring(0, at);
        }
        boolean dq = s.endsWith("-dq");
        String typeName = dq ? s.substring(0, s.length() - 3) : s;
        if (!typeName.equals("nf4") && !typeName.equals("fp4")) {
            throw new IllegalArgumentException("quantization '" + text + "' is not one of nf4, nf4-dq, fp4, fp4-dq "
                    + "(optionally @blocksize, e.g. nf4-dq@128)");
        }
        return new QuantConfig(QuantType.parse(typeName), blocksize, dq);
    }

    /** Number of blocks of {@code n} elements (the last one may be partial). */
    public long blocks(long n) {
        return (n + blocksize - 1) / blocksize;
    }

    /**
     * Bytes that {@code n} quantized elements occupy: packed codes, absmax (F32, or U8 plus the
     * F32 nested absmax and offset). The shared code tables are not counted.
     */
    public long bytesFor(long n) {
        long blocks = blocks(n);
        long scales = doubleQuant ? blocks + 4 * ((blocks + NESTED_BLOCKSIZE - 1) / NESTED_BLOCKSIZE) + 4 : 4 * blocks;
        return (n + 1) / 2 + scales;
    }

    /** Storage bits per parameter for a large tensor (4.5 for NF4 at 64, ~4.127 with double quantization). */
    public double bitsPerParameter() {
        return doubleQuant ? 4 + 8.0 / blocksize + 32.0 / ((double) blocksize * NESTED_BLOCKSIZE) : 4 + 32.0 / blocksize;
    }

    /** The canonical name, as {@link #parse} reads it: "nf4-dq", or "fp4@128". */
    @Override
    public String toString() {
        return type.bnbName() + (doubleQuant ? "-dq" : "") + (blocksize == DEFAULT_BLOCKSIZE ? "" : "@" + blocksize);
    }
}
