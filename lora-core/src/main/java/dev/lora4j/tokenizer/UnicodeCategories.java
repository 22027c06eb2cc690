package dev.lora4j.tokenizer;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Unicode general categories from a committed table (generated on JDK 25, Unicode 16.0, by
 * {@code UnicodeCategoryTableGenerator}) instead of the running JDK's: JDK 17's tables are
 * Unicode 13, so letters added in Unicode 14 and 15 would be "unassigned" there and split words
 * that Hugging Face's tokenizers keep whole. Two uses:
 * <ul>
 *   <li>{@link #type(int)}: the category of a code point, as {@link Character#getType(int)}
 *       would give it on JDK 25 (the hand-written splitters use it);</li>
 *   <li>{@link #rewrite(String)}: a tokenizer regex whose {@code \p{..}} / {@code \P{..}}
 *       category classes are widened and narrowed by explicit code-point ranges wherever the
 *       running JDK disagrees with the table, so that {@link java.util.regex} matches as on
 *       JDK 25. On JDK 25 itself the regex comes back unchanged.</li>
 * </ul>
 */
final class UnicodeCategories {
    static final String RESOURCE = "unicode-general-categories.txt";
    /** Two-letter abbreviations indexed by {@link Character#getType} values (17 is unused). */
    private static final String[] ABBREVIATIONS = {"Cn", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Me", "Mc", "Nd", "Nl", "No",
        "Zs", "Zl", "Zp", "Cc", "Cf", "", "Co", "Cs", "Pd", "Ps", "Pe", "Pc", "Po", "Sm", "Sc", "Sk", "So", "Pi", "Pf"};
    /** Oniguruma's long property names for the general categories. */
    private static final Map<String, String> LONG_NAMES = Map.ofEntries(Map.entry("letter", "L"),
            Map.entry("cased_letter", "LC"), Map.entry("uppercase_letter", "Lu"), Map.entry("lowercase_letter", "Ll"),
            Map.entry("titlecase_letter", "Lt"), Map.entry("modifier_letter", "Lm"), Map.entry("other_letter", "Lo"),
            Map.entry("mark", "M"), Map.entry("combining_mark", "M"), Map.entry("nonspacing_mark", "Mn"),
            Map.entry("spacing_mark", "Mc"), Map.entry("enclosing_mark", "Me"), Map.entry("number", "N"),
            Map.entry("decimal_number", "Nd"), Map.entry("letter_number", "Nl"), Map.entry("other_number", "No"),
            Map.entry("punctuation", "P"), Map.entry("connector_punctuation", "Pc"), Map.entry("dash_punctuation", "Pd"),
            Map.entry("open_punctuation", "Ps"), Map.entry("close_punctuation", "Pe"), Map.entry("initial_punctuation", "Pi"),
            Map.entry("final_punctuation", "Pf"), Map.entry("other_punctuation", "Po"), Map.entry("symbol", "S"),
            Map.entry("math_symbol", "Sm"), Map.entry("currency_symbol", "Sc"), Map.entry("modifier_symbol", "Sk"),
            Map.entry("other_symbol", "So"), Map.entry("separator", "Z"), Map.entry("space_separator", "Zs"),
            Map.entry("line_separator", "Zl"), Map.entry("paragraph_separator", "Zp"), Map.entry("other", "C"),
            Map.entry("control", "Cc"), Map.entry("format", "Cf"), Map.entry("surrogate", "Cs"),
            Map.entry("private_use", "Co"), Map.entry("unassigned", "Cn"));

    private UnicodeCategories() {
    }

    /** The table, loaded on first use. */
    private static final class Table {
        static final int[] STARTS;
        static final byte[] TYPES;
        static final byte[] BMP = new byte[0x10000];
        static final int JDK;
        /** Per regex category name, its replacement on this JDK (null: the JDK agrees with the table). */
        static final Map<String, String> REPLACEMENTS = new HashMap<>();

        static {
            List<int[]> runs = new ArrayList<>();
            int jdk = 0;
            try (InputStream in = UnicodeCategories.class.getResourceAsStream(RESOURCE)) {
                if (in == null) {
                    throw new IllegalStateException("lora4j: resource dev/lora4j/tokenizer/" + RESOURCE
                            + " is missing from the class path; the lora-core jar is incomplete");
                }
                BufferedReader reader = new BufferedReader(new InputStreamReader(in, StandardCharsets.US_ASCII));
                for (String line; (line = reader.readLine()) != null; ) {
                    if (line.startsWith("#") || line.isBlank()) {
                        continue;
                    }
                    String[] parts = line.split(" ");
                    if (parts[0].equals("jdk")) {
                        jdk = Integer.parseInt(parts[1]);
                        continue;
                    }
                    runs.add(new int[] {Integer.parseInt(parts[0], 16), typeOf(parts[1])});
                }
            } catch (IOException e) {
                throw new UncheckedIOException("lora4j: reading resource " + RESOURCE, e);
            }
            STARTS = new int[runs.size()];
            TYPES = new byte[runs.size()];
            for (int i = 0; i < runs.size(); i++) {
                STARTS[i] = runs.get(i)[0];
                TYPES[i] = (byte) runs.get(i)[1];
            }
            for (int i = 0; i < STARTS.length && STARTS[i] < 0x10000; i++) {
                int end = i + 1 < STARTS.length ? Math.min(STARTS[i + 1], 0x10000) : 0x10000;
                java.util.Arrays.fill(BMP, STARTS[i], end, TYPES[i]);
            }
            JDK = jdk;
        }

        private static int typeOf(String abbreviation) {
            for (int t = 0; t < ABBREVIATIONS.length; t++) {
                if (ABBREVIATIONS[t].equals(abbreviation)) {
                    return t;
                }
            }
            throw new IllegalStateException("lora4j: resource " + RESOURCE + " names an unknown category " + abbreviation);
        }
    }

    /** The general category of {@code cp} as a {@link Character#getType} value, from the table. */
    static int type(int cp) {
        if (cp < 0x10000) {
            return cp < 0 ? Character.UNASSIGNED : Table.BMP[cp];
        }
        int lo = 0;
        int hi = Table.STARTS.length - 1;
        while (lo < hi) {
            int mid = (lo + hi + 1) >>> 1;
            if (Table.STARTS[mid] <= cp) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        return cp > Character.MAX_CODE_POINT ? Character.UNASSIGNED : Table.TYPES[lo];
    }

    /** The JDK feature release whose tables the committed table holds. */
    static int tableJdk() {
        return Table.JDK;
    }

    /** Bit mask over {@link Character#getType} values for a category name (L, Lu, N, ...), or 0 if not one. */
    static int mask(String name) {
        String n = LONG_NAMES.getOrDefault(name.toLowerCase(java.util.Locale.ROOT).replace(' ', '_').replace('-', '_'), name);
        if (n.equals("LC")) {
            return 1 << Character.UPPERCASE_LETTER | 1 << Character.LOWERCASE_LETTER | 1 << Character.TITLECASE_LETTER;
        }
        int mask = 0;
        for (int t = 0; t < ABBREVIATIONS.length; t++) {
            String a = ABBREVIATIONS[t];
            if (!a.isEmpty() && (a.equals(n) || (n.length() == 1 && a.charAt(0) == n.charAt(0)))) {
                mask |= 1 << t;
            }
        }
        return mask;
    }

    /**
     * The regex with every general-category class ({@code \p{L}}, {@code \pN}, {@code \P{Lu}},
     * {@code \p{^L}}, long names such as {@code \p{Letter}}) made to match the table's
     * categories on the running JDK. Other escapes, quoted sections and properties (scripts,
     * binary properties) are left as they are.
     */
    static String rewrite(String regex) {
        StringBuilder out = new StringBuilder(regex.length());
        int i = 0;
        while (i < regex.length()) {
            char c = regex.charAt(i);
            if (c != '\\' || i + 1 >= regex.length()) {
                out.append(c);
                i++;
                continue;
            }
            char e = regex.charAt(i + 1);
            if (e == 'Q') {
                int end = regex.indexOf("\\E", i + 2);
                end = end < 0 ? regex.length() : end + 2;
                out.append(regex, i, end);
                i = end;
                continue;
            }
            if (e != 'p' && e != 'P') {
                out.append(c).append(e);
                i += 2;
                continue;
            }
            int nameStart;
            int nameEnd;
            int next;
            if (i + 2 < regex.length() && regex.charAt(i + 2) == '{') {
                int close = regex.indexOf('}', i + 3);
                if (close < 0) {
                    out.append(regex, i, regex.length());
                    break;
                }
                nameStart = i + 3;
                nameEnd = close;
                next = close + 1;
            } else {
                nameStart = i + 2;
                nameEnd = Math.min(i + 3, regex.length());
                next = nameEnd;
            }
            String name = regex.substring(nameStart, nameEnd);
            boolean negated = e == 'P';
            if (name.startsWith("^")) {
                negated = !negated;
                name = name.substring(1);
            }
            String plain = name.startsWith("Is") && mask(name.substring(2)) != 0 ? name.substring(2)
                    : name.startsWith("gc=") || name.startsWith("general_category=") ? name.substring(name.indexOf('=') + 1) : name;
            int mask = mask(plain);
            String original = regex.substring(i, next);
            String cls = mask == 0 ? null : categoryClass(mask);
            if (cls == null || (cls.equals(jdkClass(mask)) && javaAccepts(original))) {
                out.append(original); // a script or binary property, or a category this JDK already agrees on
            } else {
                out.append(negated ? "[^" + cls + "]" : cls);
            }
            i = next;
        }
        return out.toString();
    }

    /** A character class matching the table's code points of these categories on this JDK. */
    private static String categoryClass(int mask) {
        String key = Integer.toString(mask);
        synchronized (Table.REPLACEMENTS) {
            String cached = Table.REPLACEMENTS.get(key);
            if (cached != null) {
                return cached;
            }
            String jdkClass = jdkClass(mask);
            StringBuilder plus = new StringBuilder();
            StringBuilder minus = new StringBuilder();
            int plusStart = -1;
            int minusStart = -1;
            for (int cp = 0; cp <= Character.MAX_CODE_POINT + 1; cp++) {
                boolean inTable = cp <= Character.MAX_CODE_POINT && (mask & 1 << type(cp)) != 0;
                boolean inJdk = cp <= Character.MAX_CODE_POINT && (mask & 1 << Character.getType(cp)) != 0;
                plusStart = range(plus, plusStart, inTable && !inJdk, cp);
                minusStart = range(minus, minusStart, inJdk && !inTable, cp);
            }
            String cls = plus.length() == 0 && minus.length() == 0 ? jdkClass
                    : "[" + jdkClass.substring(1, jdkClass.length() - 1) + plus + (minus.length() == 0 ? "" : "&&[^" + minus + "]") + "]";
            Table.REPLACEMENTS.put(key, cls);
            return cls;
        }
    }

    /** The running JDK's class for these categories, e.g. [\p{Lu}\p{Ll}\p{Lt}\p{Lm}\p{Lo}]. */
    private static String jdkClass(int mask) {
        StringBuilder out = new StringBuilder("[");
        for (int t = 0; t < ABBREVIATIONS.length; t++) {
            if ((mask & 1 << t) != 0) {
                out.append("\\p{").append(ABBREVIATIONS[t]).append('}');
            }
        }
        return out.append(']').toString();
    }

    private static boolean javaAccepts(String escape) {
        try {
            java.util.regex.Pattern.compile(escape);
            return true;
        } catch (java.util.regex.PatternSyntaxException e) {
            return false;
        }
    }

    /** Extends or closes a run of code points in {@code out}; returns the open run's start or -1. */
    private static int range(StringBuilder out, int start, boolean member, int cp) {
        if (member) {
            return start < 0 ? cp : start;
        }
        if (start >= 0) {
            out.append("\\x{").append(Integer.toHexString(start)).append('}');
            if (cp - 1 > start) {
                out.append("-\\x{").append(Integer.toHexString(cp - 1)).append('}');
            }
        }
        return -1;
    }
}
