package dev.lora4j.data;

import java.util.List;

/**
 * Turns an {@link InstructionRecord} into the prompt text the model sees before its response.
 * The response itself is not part of the prompt: {@link InstructionDataset} appends the record's
 * output after it. Implementations must be stateless and thread-safe.
 */
@FunctionalInterface
public interface PromptStyle {

    /** The prompt for {@code record}, ending where the response begins. */
    String prompt(InstructionRecord record);

    /**
     * The Alpaca template as LitGPT writes it ({@code litgpt.prompts.Alpaca}): Stanford Alpaca's
     * text followed by a newline after "### Response:", so the response starts on its own line.
     * The "with input" form is used when the record's input is non-empty.
     */
    static PromptStyle alpaca() {
        return PromptTemplate.ALPACA;
    }

    /**
     * The Alpaca template exactly as Stanford Alpaca's train.py {@code PROMPT_DICT} writes it:
     * identical to {@link #alpaca()} except that it ends with "### Response:" and no newline.
     */
    static PromptStyle stanfordAlpaca() {
        return PromptTemplate.STANFORD_ALPACA;
    }

    /**
     * No preamble and no markers: the instruction, then the input on the next line when there is
     * one, then a newline ("{instruction}\n{input}\n" or "{instruction}\n").
     */
    static PromptStyle plain() {
        return PromptTemplate.PLAIN;
    }

    /**
     * A template of your own. {@code {instruction}} and {@code {input}} are replaced by the
     * record's fields; {@code {{} and {@code }}} stand for literal braces. {@code withInput} is
     * used when the record's input is non-empty and must contain both placeholders;
     * {@code withoutInput} must contain {@code {instruction}} and not {@code {input}} (it would
     * always be empty there). Any other {@code {name}} is an error naming it.
     */
    static PromptStyle custom(String withInput, String withoutInput) {
        return PromptTemplate.custom(withInput, withoutInput);
    }

    /** The built-in style called {@code name} (see {@link #names()}), ignoring case. */
    static PromptStyle named(String name) {
        return PromptTemplate.named(name);
    }

    /** The names {@link #named} accepts: alpaca, stanford-alpaca, plain. */
    static List<String> names() {
        return PromptTemplate.NAMES;
    }
}
