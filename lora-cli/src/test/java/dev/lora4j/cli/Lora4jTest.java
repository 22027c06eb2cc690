package dev.lora4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class Lora4jTest {

    @Test
    void versionComesFromTheBuild() {
        CliRun run = CliRun.of("--version");
        assertEquals(0, run.exitCode(), run::toString);
        assertTrue(run.out().matches("(?s)lora4j \\d+\\.\\d+\\.\\d+(-SNAPSHOT)?\\R.*"), run::toString);
    }

    @Test
    void helpListsTheCommandsAndTheDefaults() {
        CliRun run = CliRun.of("--help");
        assertEquals(0, run.exitCode(), run::toString);
        for (String command : new String[] {"finetune", "evaluate", "inspect", "generate", "merge", "quantize"}) {
            assertTrue(run.out().contains(command), run::toString);
        }
        CliRun inspect = CliRun.of("help", "inspect");
        assertEquals(0, inspect.exitCode(), inspect::toString);
        String help = inspect.out().replaceAll("\\s+", " "); // descriptions wrap with the width of the option column
        assertTrue(help.contains("--rank") && help.contains("default: 8"), inspect::toString);
        assertTrue(help.contains("default: all-linear"), inspect::toString);
        assertTrue(help.contains("Presets: all-linear") && help.contains("and all (all-linear plus"), inspect::toString);
        assertTrue(help.contains("model preset: llama2-7b,"), inspect::toString);
    }

    @Test
    void usageErrorsExitWithTwo() {
        CliRun none = CliRun.of();
        assertEquals(2, none.exitCode(), none::toString);
        assertTrue(none.err().contains("inspect"), none::toString);
        CliRun unknown = CliRun.of("finetun");
        assertEquals(2, unknown.exitCode(), unknown::toString);
        assertTrue(unknown.err().contains("finetun"), unknown::toString);
        CliRun both = CliRun.of("inspect", "llama2-7b", "--verbose", "--quiet");
        assertEquals(2, both.exitCode(), both::toString);
        assertTrue(both.err().contains("--verbose") && both.err().contains("--quiet"), both::toString);
    }
}
