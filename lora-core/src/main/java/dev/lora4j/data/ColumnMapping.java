package dev.lora4j.data;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;

/**
 * Which key of a JSON/JSONL object, or which column of a CSV file, holds each field of an
 * {@link InstructionRecord}. The input is optional: without it every record's input is "".
 *
 * @param instruction the source key of the instruction
 * @param input the source key of the input, or null when the data has no input field
 * @param output the source key of the expected output
 */
public record ColumnMapping(String instruction, String input, String output) {
    /** instruction / input / output, as in Stanford Alpaca's alpaca_data.json. */
    public static final ColumnMapping ALPACA = new ColumnMapping("instruction", "input", "output");
    /** instruction / context / response, as in databricks-dolly-15k (its category key is ignored). */
    public static final ColumnMapping DOLLY = new ColumnMapping("instruction", "context", "response");

    public ColumnMapping {
        requireKey("instruction", instruction);
        if (input != null) {
            requireKey("input", input);
        }
        requireKey("output", output);
    }

    private static void requireKey(String field, String key) {
        if (key == null || key.isBlank()) {
            throw new IllegalArgumentException("column mapping: the source key of " + field + " must be a non-blank name, was "
                    + (key == null ? "null" : "\"" + key + "\""));
        }
    }

    /**
     * Parses {@code "instruction=question,input=context,output=answer"}: comma-separated
     * {@code field=sourceKey} pairs for the fields instruction, input (optional) and output.
     * Spaces around names are ignored; source keys cannot contain ',' or '='.
     */
    public static ColumnMapping parse(String spec) {
        if (spec == null || spec.isBlank()) {
            throw new IllegalArgumentException("column mapping is empty; expected e.g. \"instruction=question,input=context,output=answer\"");
        }
        Map<String, String> fields = new LinkedHashMap<>();
        for (String part : spec.split(",", -1)) {
            int eq = part.indexOf('=');
            if (eq < 0 || part.indexOf('=', eq + 1) >= 0) {
                throw new IllegalArgumentException("column mapping \"" + spec + "\": entry \"" + part.strip()
                        + "\" is not field=sourceKey; expected e.g. \"instruction=question,input=context,output=answer\"");
            }
            String field = part.substring(0, eq).strip();
            String key = part.substring(eq + 1).strip();
            if (!field.equals("instruction") && !field.equals("input") && !field.equals("output")) {
                throw new IllegalArgumentException("column mapping \"" + spec + "\": unknown field \"" + field
                        + "\"; the fields are instruction, input (optional) and output");
            }
            if (key.isEmpty()) {
                throw new IllegalArgumentException("column mapping \"" + spec + "\": field " + field + " has no source key after '='");
            }
            if (fields.put(field, key) != null) {
                throw new IllegalArgumentException("column mapping \"" + spec + "\": field " + field + " is mapped twice");
            }
        }
        for (String required : new String[] {"instruction", "output"}) {
            if (!fields.containsKey(required)) {
                throw new IllegalArgumentException("column mapping \"" + spec + "\" does not map " + required
                        + "; instruction and output are required, e.g. \"instruction=question,output=answer\"");
            }
        }
        return new ColumnMapping(fields.get("instruction"), fields.get("input"), fields.get("output"));
    }

    /** The input's source key, if the data has one. */
    public Optional<String> inputKey() {
        return Optional.ofNullable(input);
    }

    /** The form {@link #parse} reads. */
    @Override
    public String toString() {
        return "instruction=" + instruction + (input == null ? "" : ",input=" + input) + ",output=" + output;
    }
}
