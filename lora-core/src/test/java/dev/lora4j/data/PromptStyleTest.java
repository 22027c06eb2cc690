package dev.lora4j.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class PromptStyleTest {
    private static final InstructionRecord WITH_INPUT = new InstructionRecord("Summarize the text.", "The cat sat.", "A cat sat.");
    private static final InstructionRecord NO_INPUT = InstructionRecord.of("Name a color.", "Blue.");

    @Test
    void alpacaMatchesLitGptWithInput() {
        assertEquals("Below is an instruction that describes a task, paired with an input that provides further context. "
                + "Write a response that appropriately completes the request.\n\n"
                + "### Instruction:\nSummarize the text.\n\n### Input:\nThe cat sat.\n\n### Response:\n",
                PromptStyle.alpaca().prompt(WITH_INPUT));
    }

    @Test
    void alpacaMatchesLitGptWithoutInput() {
        assertEquals("Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
                + "### Instruction:\nName a color.\n\n### Response:\n", PromptStyle.alpaca().prompt(NO_INPUT));
    }

    @Test
    void stanfordAlpacaEndsWithoutNewline() {
        assertEquals("Below is an instruction that describes a task, paired with an input that provides further context. "
                + "Write a response that appropriately completes the request.\n\n"
                + "### Instruction:\nSummarize the text.\n\n### Input:\nThe cat sat.\n\n### Response:",
                PromptStyle.stanfordAlpaca().prompt(WITH_INPUT));
        assertEquals("Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
                + "### Instruction:\nName a color.\n\n### Response:", PromptStyle.stanfordAlpaca().prompt(NO_INPUT));
    }

    @Test
    void plainStyle() {
        assertEquals("Summarize the text.\nThe cat sat.\n", PromptStyle.plain().prompt(WITH_INPUT));
        assertEquals("Name a color.\n", PromptStyle.plain().prompt(NO_INPUT));
    }

    @Test
    void namedStylesAndUnknownNameListsChoices() {
        assertSame(PromptStyle.alpaca(), PromptStyle.named("alpaca"));
        assertSame(PromptStyle.alpaca(), PromptStyle.named(" Alpaca "));
        assertSame(PromptStyle.stanfordAlpaca(), PromptStyle.named("stanford-alpaca"));
        assertSame(PromptStyle.plain(), PromptStyle.named("plain"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PromptStyle.named("chatml"));
        assertTrue(e.getMessage().contains("\"chatml\"") && e.getMessage().contains("alpaca, stanford-alpaca, plain"), e.getMessage());
        assertEquals("alpaca", PromptStyle.alpaca().toString());
    }

    @Test
    void customTemplateSubstitutesOnceAndUnescapesBraces() {
        PromptStyle style = PromptStyle.custom("Q: {instruction} [{input}] {{json}}\nA:", "Q: {instruction}\nA:");
        assertEquals("Q: Summarize the text. [The cat sat.] {json}\nA:", style.prompt(WITH_INPUT));
        assertEquals("Q: Name a color.\nA:", style.prompt(NO_INPUT));
        // A field whose text looks like a placeholder is inserted verbatim, not substituted again.
        assertEquals("Q: say {input} [x] {json}\nA:", style.prompt(new InstructionRecord("say {input}", "x", "")));
        assertTrue(style.toString().startsWith("custom(withInput=\"Q: {instruction} [{input}] {{json}}\\nA:\""), style.toString());
    }

    @Test
    void customTemplateValidation() {
        IllegalArgumentException missingInput = assertThrows(IllegalArgumentException.class,
                () -> PromptStyle.custom("{instruction}", "{instruction}"));
        assertTrue(missingInput.getMessage().contains("withInput must contain {input}"), missingInput.getMessage());
        IllegalArgumentException missingInstruction = assertThrows(IllegalArgumentException.class,
                () -> PromptStyle.custom("{instruction} {input}", "Answer:"));
        assertTrue(missingInstruction.getMessage().contains("withoutInput must contain {instruction}"), missingInstruction.getMessage());
        IllegalArgumentException inputInWithout = assertThrows(IllegalArgumentException.class,
                () -> PromptStyle.custom("{instruction} {input}", "{instruction} {input}"));
        assertTrue(inputInWithout.getMessage().contains("withoutInput must not contain {input}"), inputInWithout.getMessage());
        IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class,
                () -> PromptStyle.custom("{instruction} {input} {context} {system}", "{instruction}"));
        assertTrue(unknown.getMessage().contains("unknown placeholders {context}, {system}"), unknown.getMessage());
        assertThrows(IllegalArgumentException.class, () -> PromptStyle.custom(null, "{instruction}"));
    }

    @Test
    void recordRejectsNullFields() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new InstructionRecord("a", null, "b"));
        assertTrue(e.getMessage().contains("input"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new InstructionRecord(null, "", "b"));
        assertThrows(IllegalArgumentException.class, () -> new InstructionRecord("a", "", null));
    }
}
