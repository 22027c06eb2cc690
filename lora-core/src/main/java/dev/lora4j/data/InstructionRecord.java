package dev.lora4j.data;

/**
 * One supervised fine-tuning example before tokenization, in Stanford Alpaca's shape: an
 * instruction, optional extra context ({@code input}, "" when the dataset has none) and the
 * expected {@code output}.
 */
public record InstructionRecord(String instruction, String input, String output) {

    public InstructionRecord {
        if (instruction == null) {
            throw new IllegalArgumentException("instruction must not be null (use \"\" for an empty one)");
        }
        if (input == null) {
            throw new IllegalArgumentException("input must not be null (use \"\" when the record has no input)");
        }
        if (output == null) {
            throw new IllegalArgumentException("output must not be null (use \"\" for an empty one)");
        }
    }

    /** A record without input. */
    public static InstructionRecord of(String instruction, String output) {
        return new InstructionRecord(instruction, "", output);
    }

    /** Whether the record carries an input, which selects the "with input" prompt template. */
    public boolean hasInput() {
        return !input.isEmpty();
    }
}
