package dev.lora4j.data;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * A {@link PromptStyle} made of two parsed templates. Templates are split into literal text and
 * placeholders once, up front, so a record whose text happens to contain "{input}" is inserted
 * verbatim rather than substituted a second time.
 */
final class PromptTemplate implements PromptStyle {
    private static final String PREAMBLE_WITH_INPUT = "Below is an instruction that describes a task, paired with an input that provides "
            + "further context. Write a response that appropriately completes the request.\n\n";
    private static final String PREAMBLE = "Below is an instruction that describes a task. "
            + "Write a response that appropriately completes the request.\n\n";

    static final PromptTemplate STANFORD_ALPACA = new PromptTemplate("stanford-alpaca",
            PREAMBLE_WITH_INPUT + "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:",
            PREAMBLE + "### Instruction:\n{instruction}\n\n### Response:");
    static final PromptTemplate ALPACA = new PromptTemplate("alpaca",
            PREAMBLE_WITH_INPUT + "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n",
            PREAMBLE + "### Instruction:\n{instruction}\n\n### Response:\n");
    static final PromptTemplate PLAIN = new PromptTemplate("plain", "{instruction}\n{input}\n", "{instruction}\n");
    static final List<String> NAMES = List.of(ALPACA.name, STANFORD_ALPACA.name, PLAIN.name);

    private final String name;
    private final String withInputSource;
    private final String withoutInputSource;
    private final List<Part> withInput;
    private final List<Part> withoutInput;

    /** Literal text, or a placeholder when {@code field} is non-null. */
    private record Part(String text, String field) {
    }

    private PromptTemplate(String name, String withInput, String withoutInput) {
        this.name = name;
        this.withInputSource = withInput;
        this.withoutInputSource = withoutInput;
        this.withInput = parse("withInput", withInput);
        this.withoutInput = parse("withoutInput", withoutInput);
        requirePlaceholder("withInput", withInput, this.withInput, "instruction", true);
        requirePlaceholder("withInput", withInput, this.withInput, "input", true);
        requirePlaceholder("withoutInput", withoutInput, this.withoutInput, "instruction", true);
        requirePlaceholder("withoutInput", withoutInput, this.withoutInput, "input", false);
    }

    static PromptTemplate custom(String withInput, String withoutInput) {
        if (withInput == null || withoutInput == null) {
            throw new IllegalArgumentException("custom prompt templates must not be null (withInput "
                    + (withInput == null ? "null" : "set") + ", withoutInput " + (withoutInput == null ? "null" : "set") + ")");
        }
        return new PromptTemplate("custom", withInput, withoutInput);
    }

    static PromptTemplate named(String name) {
        String key = name == null ? "" : name.strip().toLowerCase(Locale.ROOT);
        for (PromptTemplate style : List.of(ALPACA, STANFORD_ALPACA, PLAIN)) {
            if (style.name.equals(key)) {
                return style;
            }
        }
        throw new IllegalArgumentException("unknown prompt style \"" + name + "\"; the built-in styles are " + String.join(", ", NAMES)
                + " (or give your own templates with PromptStyle.custom)");
    }

    private static List<Part> parse(String which, String template) {
        List<Part> parts = new ArrayList<>();
        Set<String> unknown = new LinkedHashSet<>();
        StringBuilder literal = new StringBuilder();
        int i = 0;
        while (i < template.length()) {
            char c = template.charAt(i);
            if ((c == '{' || c == '}') && i + 1 < template.length() && template.charAt(i + 1) == c) {
                literal.append(c);
                i += 2;
                continue;
            }
            if (c == '{') {
                int close = placeholderEnd(template, i);
                if (close > 0) {
                    String field = template.substring(i + 1, close);
                    if (field.equals("instruction") || field.equals("input")) {
                        if (literal.length() > 0) {
                            parts.add(new Part(literal.toString(), null));
                            literal.setLength(0);
                        }
                        parts.add(new Part(null, field));
                    } else {
                        unknown.add("{" + field + "}");
                    }
                    i = close + 1;
                    continue;
                }
            }
            literal.append(c);
            i++;
        }
        if (!unknown.isEmpty()) {
            throw new IllegalArgumentException("prompt template " + which + " uses unknown placeholder" + (unknown.size() > 1 ? "s " : " ")
                    + String.join(", ", unknown) + "; only {instruction} and {input} exist (write {{ and }} for literal braces): \""
                    + template + "\"");
        }
        if (literal.length() > 0) {
            parts.add(new Part(literal.toString(), null));
        }
        return List.copyOf(parts);
    }

    /** Index of the '}' closing an identifier placeholder opened at {@code open}, or -1. */
    private static int placeholderEnd(String template, int open) {
        int j = open + 1;
        if (j >= template.length() || !Character.isJavaIdentifierStart(template.charAt(j))) {
            return -1;
        }
        while (j < template.length() && Character.isJavaIdentifierPart(template.charAt(j))) {
            j++;
        }
        return j < template.length() && template.charAt(j) == '}' ? j : -1;
    }

    private static void requirePlaceholder(String which, String source, List<Part> parts, String field, boolean required) {
        boolean present = parts.stream().anyMatch(p -> field.equals(p.field()));
        if (required && !present) {
            throw new IllegalArgumentException("prompt template " + which + " must contain {" + field + "}: \"" + source + "\"");
        }
        if (!required && present) {
            throw new IllegalArgumentException("prompt template " + which + " must not contain {" + field
                    + "}: it is used only for records whose input is empty: \"" + source + "\"");
        }
    }

    @Override
    public String prompt(InstructionRecord record) {
        StringBuilder out = new StringBuilder();
        for (Part part : record.hasInput() ? withInput : withoutInput) {
            if (part.field() == null) {
                out.append(part.text());
            } else {
                out.append(part.field().equals("instruction") ? record.instruction() : record.input());
            }
        }
        return out.toString();
    }

    @Override
    public String toString() {
        if (!name.equals("custom")) {
            return name;
        }
        return "custom(withInput=\"" + escape(withInputSource) + "\", withoutInput=\"" + escape(withoutInputSource) + "\")";
    }

    private static String escape(String s) {
        return s.replace("\\", "\\\\").replace("\n", "\\n").replace("\"", "\\\"");
    }
}
