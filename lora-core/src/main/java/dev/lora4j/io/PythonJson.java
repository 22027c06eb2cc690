package dev.lora4j.io;

import com.fasterxml.jackson.databind.JsonNode;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.math.MathContext;
import java.math.RoundingMode;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * JSON text exactly as Python's {@code json.dumps} writes it, for the files bitsandbytes and
 * Hugging Face produce: {@code json.dumps(d)} (bitsandbytes' packed quant_state: items separated
 * by ", ", keys by ": ", one line) and {@code json.dumps(d, indent=2, sort_keys=True)}
 * (transformers' config.json). Both use ensure_ascii (non-ASCII as lowercase \\uXXXX escapes)
 * and Python's {@code repr} for floats (the shortest text that reads back as the same double,
 * fixed notation for exponents −4 ≤ e &lt; 16, else {@code 1e-05} style, {@code .0} on whole
 * numbers).
 *
 * <p>Values: null, Boolean, Integer, Long, BigInteger, Float (written as the double it equals),
 * Double, String, lists, maps with String keys, and Jackson trees.
 */
public final class PythonJson {

    private PythonJson() {
    }

    /** {@code json.dumps(value)}. */
    public static String dumps(Object value) {
        StringBuilder out = new StringBuilder();
        write(out, value, -1, 0, false);
        return out.toString();
    }

    /** {@code json.dumps(value, indent=indent, sort_keys=sortKeys)}. */
    public static String dumps(Object value, int indent, boolean sortKeys) {
        StringBuilder out = new StringBuilder();
        write(out, value, indent, 0, sortKeys);
        return out.toString();
    }

    private static void write(StringBuilder out, Object value, int indent, int level, boolean sortKeys) {
        if (value instanceof JsonNode node) {
            value = fromTree(node);
        }
        if (value == null) {
            out.append("null");
        } else if (value instanceof Boolean b) {
            out.append(b ? "true" : "false");
        } else if (value instanceof Integer || value instanceof Long || value instanceof BigInteger) {
            out.append(value);
        } else if (value instanceof Float f) {
            out.append(floatRepr(f.doubleValue()));
        } else if (value instanceof Double d) {
            out.append(floatRepr(d));
        } else if (value instanceof String s) {
            quote(out, s);
        } else if (value instanceof Collection<?> list) {
            if (list.isEmpty()) {
                out.append("[]");
                return;
            }
            out.append('[');
            boolean first = true;
            for (Object item : list) {
                separator(out, first, indent, level + 1);
                write(out, item, indent, level + 1, sortKeys);
                first = false;
            }
            close(out, indent, level);
            out.append(']');
        } else if (value instanceof Map<?, ?> map) {
            if (map.isEmpty()) {
                out.append("{}");
                return;
            }
            List<String> keys = new ArrayList<>();
            for (Object key : map.keySet()) {
                keys.add((String) key);
            }
            if (sortKeys) {
                keys.sort(PythonJson::compareCodePoints);
            }
            out.append('{');
            boolean first = true;
            for (String key : keys) {
                separator(out, first, indent, level + 1);
                quote(out, key);
                out.append(": ");
                write(out, map.get(key), indent, level + 1, sortKeys);
                first = false;
            }
            close(out, indent, level);
            out.append('}');
        } else {
            throw new IllegalArgumentException("cannot write a " + value.getClass().getName() + " as JSON");
        }
    }

    private static void separator(StringBuilder out, boolean first, int indent, int level) {
        if (indent < 0) {
            out.append(first ? "" : ", ");
        } else {
            out.append(first ? "\n" : ",\n").append(" ".repeat(indent * level));
        }
    }

    private static void close(StringBuilder out, int indent, int level) {
        if (indent >= 0) {
            out.append('\n').append(" ".repeat(indent * level));
        }
    }

    /** A Jackson tree as plain values, keeping object key order and the integer/float distinction. */
    public static Object fromTree(JsonNode node) {
        if (node == null || node.isNull() || node.isMissingNode()) {
            return null;
        }
        if (node.isObject()) {
            Map<String, Object> map = new LinkedHashMap<>();
            node.properties().forEach(e -> map.put(e.getKey(), fromTree(e.getValue())));
            return map;
        }
        if (node.isArray()) {
            List<Object> list = new ArrayList<>();
            node.forEach(item -> list.add(fromTree(item)));
            return list;
        }
        if (node.isBoolean()) {
            return node.booleanValue();
        }
        if (node.isIntegralNumber()) {
            return node.bigIntegerValue();
        }
        if (node.isNumber()) {
            return node.doubleValue();
        }
        return node.asText();
    }

    /**
     * Python's string order (by code point, not UTF-16 unit, which differs above U+FFFF), as
     * sort_keys uses; it is also the byte order of the UTF-8 encodings.
     */
    public static int compareCodePoints(String a, String b) {
        int i = 0;
        int j = 0;
        while (i < a.length() && j < b.length()) {
            int ca = a.codePointAt(i);
            int cb = b.codePointAt(j);
            if (ca != cb) {
                return Integer.compare(ca, cb);
            }
            i += Character.charCount(ca);
            j += Character.charCount(cb);
        }
        return Integer.compare(a.length() - i, b.length() - j);
    }

    private static void quote(StringBuilder out, String s) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                default -> {
                    if (c >= ' ' && c <= '~') {
                        out.append(c);
                    } else {
                        out.append(String.format("\\u%04x", (int) c));
                    }
                }
            }
        }
        out.append('"');
    }

    /** Python's {@code repr(float)}; NaN and infinities as json.dumps writes them. */
    public static String floatRepr(double value) {
        if (Double.isNaN(value)) {
            return "NaN";
        }
        if (Double.isInfinite(value)) {
            return value > 0 ? "Infinity" : "-Infinity";
        }
        if (value == 0.0) {
            return 1.0 / value < 0 ? "-0.0" : "0.0";
        }
        double abs = Math.abs(value);
        BigDecimal shortest = shortestRoundTrip(new BigDecimal(abs), abs).stripTrailingZeros();
        String digits = shortest.unscaledValue().toString();
        int point = digits.length() - shortest.scale(); // value = 0.digits × 10^point
        StringBuilder out = new StringBuilder(value < 0 ? "-" : "");
        if (point <= -4 || point > 16) {
            out.append(digits.charAt(0));
            if (digits.length() > 1) {
                out.append('.').append(digits, 1, digits.length());
            }
            out.append('e').append(String.format("%+03d", point - 1));
        } else if (point <= 0) {
            out.append("0.").append("0".repeat(-point)).append(digits);
        } else if (point >= digits.length()) {
            out.append(digits).append("0".repeat(point - digits.length())).append(".0");
        } else {
            out.append(digits, 0, point).append('.').append(digits, point, digits.length());
        }
        return out.toString();
    }

    private static BigDecimal shortestRoundTrip(BigDecimal exact, double target) {
        for (int precision = 1; precision <= 17; precision++) {
            BigDecimal best = null;
            for (RoundingMode mode : new RoundingMode[] {RoundingMode.HALF_EVEN, RoundingMode.DOWN, RoundingMode.UP}) {
                BigDecimal candidate = exact.round(new MathContext(precision, mode));
                if (candidate.doubleValue() == target
                        && (best == null || candidate.subtract(exact).abs().compareTo(best.subtract(exact).abs()) < 0)) {
                    best = candidate;
                }
            }
            if (best != null) {
                return best;
            }
        }
        throw new AssertionError("17 significant digits always read back as the same double: " + target);
    }
}
