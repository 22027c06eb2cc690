package dev.lora4j.lora;

import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;

/**
 * Writes JSON byte for byte as Python's {@code json.dumps(value, indent=2, sort_keys=...)} does
 * with its other defaults: items separated by {@code ","} and a newline, keys by {@code ": "},
 * empty containers as {@code []} and {@code {}}, no trailing newline, {@code ensure_ascii} (every
 * character outside space..tilde escaped, {@code \n \r \t \b \f} by name, others as lowercase
 * <code>&#92;u00XX</code>), floats as Python's {@code repr} and keys sorted by code point.
 *
 * <p>Values: null, Boolean, Integer, Long, Double, String, lists and maps with String keys.
 */
final class PythonJson {

    private static final int INDENT = 2;

    private PythonJson() {
    }

    static String dumps(Object value, boolean sortKeys) {
        StringBuilder out = new StringBuilder();
        write(out, value, 0, sortKeys);
        return out.toString();
    }

    private static void write(StringBuilder out, Object value, int level, boolean sortKeys) {
        if (value == null) {
            out.append("null");
        } else if (value instanceof Boolean) {
            out.append((Boolean) value ? "true" : "false");
        } else if (value instanceof Integer || value instanceof Long) {
            out.append(value);
        } else if (value instanceof Double) {
            out.append(floatRepr((Double) value));
        } else if (value instanceof String) {
            quote(out, (String) value);
        } else if (value instanceof Collection) {
            Collection<?> list = (Collection<?>) value;
            if (list.isEmpty()) {
                out.append("[]");
                return;
            }
            out.append('[');
            String separator = "";
            for (Object item : list) {
                out.append(separator);
                newline(out, level + 1);
                write(out, item, level + 1, sortKeys);
                separator = ",";
            }
            newline(out, level);
            out.append(']');
        } else if (value instanceof Map) {
            Map<?, ?> map = (Map<?, ?>) value;
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
            String separator = "";
            for (String key : keys) {
                out.append(separator);
                newline(out, level + 1);
                quote(out, key);
                out.append(": ");
                write(out, map.get(key), level + 1, sortKeys);
                separator = ",";
            }
            newline(out, level);
            out.append('}');
        } else {
            throw new IllegalArgumentException("cannot write a " + value.getClass().getName() + " as JSON");
        }
    }

    private static void newline(StringBuilder out, int level) {
        out.append('\n');
        out.append(" ".repeat(INDENT * level));
    }

    /** Python orders str keys by code point; String.compareTo orders UTF-16 units, which differs above U+FFFF. */
    static int compareCodePoints(String a, String b) {
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
                case '"': out.append("\\\""); break;
                case '\\': out.append("\\\\"); break;
                case '\n': out.append("\\n"); break;
                case '\r': out.append("\\r"); break;
                case '\t': out.append("\\t"); break;
                case '\b': out.append("\\b"); break;
                case '\f': out.append("\\f"); break;
                default:
                    if (c >= ' ' && c <= '~') {
                        out.append(c);
                    } else {
                        out.append(String.format("\\u%04x", (int) c));
                    }
            }
        }
        out.append('"');
    }

    /**
     * Python's {@code repr(float)}: the shortest decimal that reads back as the same double (the
     * nearest such one when several have that length). Written as 0.d₁d₂… × 10^decpt, it uses
     * fixed notation when −4 &lt; decpt ≤ 16, with {@code .0} added to whole numbers, and
     * {@code d.ddde±XX} otherwise: 0.05, 8.0, 0.0001, 1e-05, 1e+16.
     */
    static String floatRepr(double value) {
        if (!Double.isFinite(value)) {
            throw new IllegalArgumentException("JSON value must be finite, was " + value);
        }
        if (value == 0.0) {
            return (1.0 / value < 0) ? "-0.0" : "0.0";
        }
        BigDecimal exact = new BigDecimal(Math.abs(value));
        BigDecimal shortest = shortestRoundTrip(exact, Math.abs(value)).stripTrailingZeros();
        String digits = shortest.unscaledValue().toString();
        int decpt = digits.length() - shortest.scale();
        StringBuilder out = new StringBuilder(value < 0 ? "-" : "");
        if (decpt <= -4 || decpt > 16) {
            out.append(digits.charAt(0));
            if (digits.length() > 1) {
                out.append('.').append(digits, 1, digits.length());
            }
            out.append('e').append(String.format("%+03d", decpt - 1));
        } else if (decpt <= 0) {
            out.append("0.").append("0".repeat(-decpt)).append(digits);
        } else if (decpt >= digits.length()) {
            out.append(digits).append("0".repeat(decpt - digits.length())).append(".0");
        } else {
            out.append(digits, 0, decpt).append('.').append(digits, decpt, digits.length());
        }
        return out.toString();
    }

    private static BigDecimal shortestRoundTrip(BigDecimal exact, double target) {
        for (int precision = 1; precision <= 17; precision++) {
            BigDecimal best = null;
            for (RoundingMode mode : new RoundingMode[] {RoundingMode.HALF_EVEN, RoundingMode.DOWN, RoundingMode.UP}) {
                BigDecimal candidate = exact.round(new MathContext(precision, mode));
                if (candidate.doubleValue() == target && (best == null
                        || candidate.subtract(exact).abs().compareTo(best.subtract(exact).abs()) < 0)) {
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
