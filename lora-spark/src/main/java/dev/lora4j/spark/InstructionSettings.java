package dev.lora4j.spark;

import dev.lora4j.data.InstructionDataset;
import java.io.Serializable;

/**
 * How instruction records become token ids on the workers, as {@link InstructionDataset.Builder}
 * settings applied to {@code InstructionDataset.builder(tokenizer)} with the base model's tokenizer,
 * e.g. {@code b -> b.promptStyle(PromptStyle.alpaca()).maxLength(512)}. Serializable for Spark.
 */
@FunctionalInterface
public interface InstructionSettings extends Serializable {

    /** Applies the settings to {@code builder}. */
    void configure(InstructionDataset.Builder builder);

    /** Keeps every InstructionDataset default. */
    static InstructionSettings defaults() {
        return b -> {
        };
    }
}
