package dev.lora4j.tokenizer;

/**
 * UTF-8 helpers matching Rust's {@code str} semantics used by Hugging Face {@code tokenizers}, and
 * GPT-2's byte ↔ printable-character table used by byte-level BPE.
 *
 * <p>GPT-2 table (openai/gpt-2 {@code encoder.py}, {@code bytes_to_unicode}): bytes 33–126,
 * 161–172 and 174–255 stand for themselves; the other 68 bytes, in increasing order, become
 * U+0100, U+0101, ... so that every byte is a visible character.
 */
final class Utf8Bytes {
    private Utf8Bytes() {
    }

    static final char[] BYTE_TO_CHAR = new char[256];
    /** Indexed by char; -1 for chars that stand for no byte. */
    static final short[] CHAR_TO_BYTE = new short[256 + 68];

    static {
        java.util.Arrays.fill(CHAR_TO_BYTE, (short) -1);
        int next = 256;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
            char c = printable ? (char) b : (char) next++;
            BYTE_TO_CHAR[b] = c;
            CHAR_TO_BYTE[c] = (short) b;
        }
    }

    /** Byte value that GPT-2's table maps to {@code c}, or -1. */
    static int byteOf(char c) {
        return c < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[c] : -1;
    }

    /**
     * Writes the UTF-8 encoding of {@code codePoint} at {@code pos} and returns the byte count.
     * Lone surrogates (which a Rust string cannot hold) are encoded as U+FFFD.
     */
    static int encode(int codePoint, byte[] out, int pos) {
        int cp = codePoint >= 0xD800 && codePoint <= 0xDFFF ? 0xFFFD : codePoint;
        if (cp < 0x80) {
            out[pos] = (byte) cp;
            return 1;
        }
        if (cp < 0x800) {
            out[pos] = (byte) (0xC0 | (cp >>> 6));
            out[pos + 1] = (byte) (0x80 | (cp & 0x3F));
            return 2;
        }
        if (cp < 0x10000) {
            out[pos] = (byte) (0xE0 | (cp >>> 12));
            out[pos + 1] = (byte) (0x80 | ((cp >>> 6) & 0x3F));
            out[pos + 2] = (byte) (0x80 | (cp & 0x3F));
            return 3;
        }
        out[pos] = (byte) (0xF0 | (cp >>> 18));
        out[pos + 1] = (byte) (0x80 | ((cp >>> 12) & 0x3F));
        out[pos + 2] = (byte) (0x80 | ((cp >>> 6) & 0x3F));
        out[pos + 3] = (byte) (0x80 | (cp & 0x3F));
        return 4;
    }

    /** True when {@code bytes[0, len)} is well-formed UTF-8 (Rust {@code String::from_utf8}). */
    static boolean isValid(byte[] bytes, int len) {
        int i = 0;
        while (i < len) {
            int n = validSequenceLength(bytes, i, len);
            if (n <= 0) {
                return false;
            }
            i += n;
        }
        return true;
    }

    /**
     * Decodes like Rust's {@code String::from_utf8_lossy}: each maximal ill-formed subsequence
     * (Unicode "substitution of maximal subparts") becomes one U+FFFD.
     */
    static String decodeLossy(byte[] bytes, int len) {
        StringBuilder sb = new StringBuilder(len);
        int i = 0;
        while (i < len) {
            int n = validSequenceLength(bytes, i, len);
            if (n > 0) {
                appendCodePoint(sb, bytes, i, n);
                i += n;
            } else {
                sb.append('\uFFFD');
                i += -n;
            }
        }
        return sb.toString();
    }

    /**
     * Length of the well-formed sequence starting at {@code i}, or minus the number of bytes that
     * form its maximal ill-formed prefix (at least 1).
     */
    private static int validSequenceLength(byte[] b, int i, int len) {
        int b0 = b[i] & 0xFF;
        if (b0 < 0x80) {
            return 1;
        }
        int width;
        int lo = 0x80;
        int hi = 0xBF;
        if (b0 >= 0xC2 && b0 <= 0xDF) {
            width = 2;
        } else if (b0 >= 0xE0 && b0 <= 0xEF) {
            width = 3;
            if (b0 == 0xE0) {
                lo = 0xA0;
            } else if (b0 == 0xED) {
                hi = 0x9F;
            }
        } else if (b0 >= 0xF0 && b0 <= 0xF4) {
            width = 4;
            if (b0 == 0xF0) {
                lo = 0x90;
            } else if (b0 == 0xF4) {
                hi = 0x8F;
            }
        } else {
            return -1;
        }
        for (int k = 1; k < width; k++) {
            if (i + k >= len) {
                return -k;
            }
            int bk = b[i + k] & 0xFF;
            boolean ok = k == 1 ? bk >= lo && bk <= hi : bk >= 0x80 && bk <= 0xBF;
            if (!ok) {
                return -k;
            }
        }
        return width;
    }

    private static void appendCodePoint(StringBuilder sb, byte[] b, int i, int n) {
        int cp = switch (n) {
            case 1 -> b[i];
            case 2 -> ((b[i] & 0x1F) << 6) | (b[i + 1] & 0x3F);
            case 3 -> ((b[i] & 0x0F) << 12) | ((b[i + 1] & 0x3F) << 6) | (b[i + 2] & 0x3F);
            default -> ((b[i] & 0x07) << 18) | ((b[i + 1] & 0x3F) << 12) | ((b[i + 2] & 0x3F) << 6)
                    | (b[i + 3] & 0x3F);
        };
        sb.appendCodePoint(cp);
    }
}
