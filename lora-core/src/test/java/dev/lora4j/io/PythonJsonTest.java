package dev.lora4j.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class PythonJsonTest {

    @Test
    void floatsLookLikePythonRepr() {
        // Values of repr(float) in CPython 3.
        assertEquals("8.0", PythonJson.floatRepr(8.0));
        assertEquals("0.0", PythonJson.floatRepr(0.0));
        assertEquals("-0.0", PythonJson.floatRepr(-0.0));
        assertEquals("0.05", PythonJson.floatRepr(0.05));
        assertEquals("0.1", PythonJson.floatRepr(0.1));
        assertEquals("0.30000000000000004", PythonJson.floatRepr(0.1 + 0.2));
        assertEquals("0.0001", PythonJson.floatRepr(1e-4));
        assertEquals("1e-05", PythonJson.floatRepr(1e-5));
        assertEquals("1.5e-07", PythonJson.floatRepr(1.5e-7));
        assertEquals("-2.5e-05", PythonJson.floatRepr(-2.5e-5));
        assertEquals("123.456", PythonJson.floatRepr(123.456));
        assertEquals("1000000000000000.0", PythonJson.floatRepr(1e15));
        assertEquals("9007199254740992.0", PythonJson.floatRepr(9007199254740992.0));
        assertEquals("1e+16", PythonJson.floatRepr(1e16));
        assertEquals("1.2345678901234568e+17", PythonJson.floatRepr(123456789012345678.0));
        assertEquals("1e+22", PythonJson.floatRepr(1e22));
        assertEquals("5e-324", PythonJson.floatRepr(Double.MIN_VALUE));
        assertEquals("1.7976931348623157e+308", PythonJson.floatRepr(Double.MAX_VALUE));
        assertEquals("2.2250738585072014e-308", PythonJson.floatRepr(Double.MIN_NORMAL));
        assertEquals("512.0", PythonJson.floatRepr(512));
        assertEquals("0.3333333333333333", PythonJson.floatRepr(1.0 / 3));
        // json.dumps defaults to allow_nan=True
        assertEquals("NaN", PythonJson.floatRepr(Double.NaN));
        assertEquals("-Infinity", PythonJson.floatRepr(Double.NEGATIVE_INFINITY));
    }

    @Test
    void reprReadsBackAndIsShortest() {
        java.util.SplittableRandom random = new java.util.SplittableRandom(3);
        for (int i = 0; i < 2000; i++) {
            double v = Double.longBitsToDouble(random.nextLong());
            if (!Double.isFinite(v)) {
                continue;
            }
            String repr = PythonJson.floatRepr(v);
            assertEquals(v, Double.parseDouble(repr), repr);
            String mantissa = repr.replaceFirst("^-", "").replaceFirst("e.*$", "").replace(".", "")
                    .replaceFirst("^0+", "").replaceFirst("0+$", "");
            assertEquals(true, mantissa.length() <= 17, repr);
        }
    }

    @Test
    void layoutMatchesJsonDumpsIndent2() {
        Map<String, Object> inner = new LinkedHashMap<>();
        inner.put("b", 2);
        inner.put("a", List.of());
        Map<String, Object> root = new LinkedHashMap<>();
        root.put("z", null);
        root.put("list", List.of("x", 1, true));
        root.put("empty", Map.of());
        root.put("nested", inner);
        root.put("f", 0.5);
        assertEquals("{\n"
                + "  \"empty\": {},\n"
                + "  \"f\": 0.5,\n"
                + "  \"list\": [\n"
                + "    \"x\",\n"
                + "    1,\n"
                + "    true\n"
                + "  ],\n"
                + "  \"nested\": {\n"
                + "    \"a\": [],\n"
                + "    \"b\": 2\n"
                + "  },\n"
                + "  \"z\": null\n"
                + "}", PythonJson.dumps(root, 2, true));
        assertEquals("[]", PythonJson.dumps(List.of(), 2, true));
        assertEquals(true, PythonJson.dumps(root, 2, false).startsWith("{\n  \"z\": null,\n  \"list\": [\n    \"x\",\n"),
                "without sort_keys the map's order is kept");
    }

    @Test
    void stringsAreEscapedAsciiOnly() {
        assertEquals("\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u007f\\u00e9\\u20ac\\ud83d\\ude00 ~\"",
                PythonJson.dumps("a\"b\\c\n\r\t\b\f\u0001\u007fé€\uD83D\uDE00 ~", 2, true));
    }

    @Test
    void keysSortByCodePoint() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("\uFB01", 1);
        m.put("\uD83D\uDE00", 2);
        m.put("B", 3);
        m.put("a", 4);
        m.put("_", 5);
        assertEquals("{\n  \"B\": 3,\n  \"_\": 5,\n  \"a\": 4,\n  \"\\ufb01\": 1,\n  \"\\ud83d\\ude00\": 2\n}",
                PythonJson.dumps(m, 2, true));
    }
}
