package dev.lora4j.cli;

import java.util.function.Supplier;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.ParameterException;

/**
 * Turns the IllegalArgumentException of a library setter (which names its Java parameter, e.g.
 * {@code learningRate}) into picocli's usage error naming the command-line option ({@code --lr}),
 * so that bad values exit with code 2 and a message the user can act on.
 */
final class OptionErrors {
    private OptionErrors() {
    }

    /** Runs {@code call}; an IllegalArgumentException becomes "Invalid value for option 'name': ...". */
    static <T> T check(CommandSpec spec, String option, Object value, Supplier<T> call) {
        try {
            return call.get();
        } catch (IllegalArgumentException e) {
            throw invalid(spec, option, value, e.getMessage());
        }
    }

    /** A usage error (exit code 2) about one option's value. */
    static ParameterException invalid(CommandSpec spec, String option, Object value, String why) {
        return new ParameterException(commandLine(spec), "Invalid value for option '" + option + "' (" + value + "): " + why);
    }

    /** A usage error (exit code 2) with a message of its own. */
    static ParameterException usage(CommandSpec spec, String message) {
        return new ParameterException(commandLine(spec), message);
    }

    private static CommandLine commandLine(CommandSpec spec) {
        CommandLine cl = spec.commandLine();
        return cl != null ? cl : new CommandLine(spec);
    }
}
