package dev.lora4j.cli;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.util.Properties;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.IVersionProvider;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.ParseResult;
import picocli.CommandLine.ScopeType;

/**
 * The {@code lora4j} command line: LitGPT's workflow (finetune, evaluate, generate, chat, merge, inspect, export-gguf) on
 * lora4j. Results go to standard output, log lines and progress to standard error.
 *
 * <p>Exit codes: 0 success, 2 usage error (picocli's message names the option), 1 failure (one
 * line {@code lora4j <command>: <message>}; the stack trace too with {@code --verbose}).
 *
 * <pre>
 * java --add-modules jdk.incubator.vector -jar lora-cli/target/lora4j.jar inspect llama2-7b --targets all
 * </pre>
 */
@Command(name = "lora4j", mixinStandardHelpOptions = true, versionProvider = Lora4j.Version.class,
        description = "LoRA and QLoRA fine-tuning of Llama-family models in Java.",
        subcommands = {FinetuneCommand.class, GenerateCommand.class, ChatCommand.class, EvaluateCommand.class,
            MergeCommand.class, InspectCommand.class, QuantizeCommand.class, ExportGgufCommand.class, CommandLine.HelpCommand.class})
public final class Lora4j implements Runnable {

    /** The system property slf4j-simple reads its level from (it wins over simplelogger.properties). */
    static final String LOG_LEVEL_PROPERTY = "org.slf4j.simpleLogger.defaultLogLevel";

    private boolean verbose;
    private boolean quiet;

    @CommandLine.Spec
    private CommandLine.Model.CommandSpec spec;

    @Option(names = {"-v", "--verbose"}, scope = ScopeType.INHERIT,
            description = "Log debug details, and print the stack trace of a failure.")
    void setVerbose(boolean value) {
        verbose = value;
    }

    @Option(names = {"-q", "--quiet"}, scope = ScopeType.INHERIT, description = "Log warnings and errors only.")
    void setQuiet(boolean value) {
        quiet = value;
    }

    /** True when --verbose was given (to this command or any subcommand). */
    public boolean verbose() {
        return verbose;
    }

    /** True when --quiet was given (to this command or any subcommand): no progress bar. */
    public boolean quiet() {
        return quiet;
    }

    @Override
    public void run() {
        throw new ParameterException(spec.commandLine(), "a command is required: "
                + String.join(", ", spec.subcommands().keySet()));
    }

    /** Runs the command line and exits with its exit code. */
    public static void main(String[] args) {
        // XChart renders the loss plot without a display
        System.setProperty("java.awt.headless", "true");
        // log lines print above the progress bar instead of tearing it (before any logger exists)
        System.setErr(ConsoleLines.install(System.err));
        presetLogLevel(args);
        System.exit(commandLine().execute(args));
    }

    /**
     * The configured command line (what {@link #main} executes); tests run it in-process with
     * {@link CommandLine#setOut} / {@link CommandLine#setErr} to capture the output.
     */
    public static CommandLine commandLine() {
        Lora4j root = new Lora4j();
        CommandLine cl = new CommandLine(root);
        cl.setCaseInsensitiveEnumValuesAllowed(true);
        cl.setExecutionStrategy(parseResult -> {
            root.configureLogging();
            return new CommandLine.RunLast().execute(parseResult);
        });
        cl.setParameterExceptionHandler(Lora4j::usageError);
        cl.setExecutionExceptionHandler((e, commandLine, parseResult) -> failure(root, e, commandLine));
        return cl;
    }

    /**
     * Sets slf4j-simple's level from -v/--verbose or -q/--quiet before any logger exists:
     * slf4j-simple reads its configuration once, when the first logger is created, which happens
     * as soon as the command classes load, i.e. before picocli has parsed anything. Arguments after
     * "--" are not options.
     */
    static void presetLogLevel(String[] args) {
        for (String arg : args) {
            if (arg.equals("--")) {
                break;
            }
            if (arg.equals("-v") || arg.equals("--verbose")) {
                System.setProperty(LOG_LEVEL_PROPERTY, "debug");
            } else if (arg.equals("-q") || arg.equals("--quiet")) {
                System.setProperty(LOG_LEVEL_PROPERTY, "warn");
            }
        }
    }

    private void configureLogging() {
        if (verbose && quiet) {
            throw new ParameterException(spec.commandLine(), "--verbose and --quiet exclude each other; give one");
        }
    }

    /** Exit code 2: picocli's message (it names the option and the value) and where to get help. */
    private static int usageError(ParameterException e, String[] args) {
        CommandLine cl = e.getCommandLine();
        PrintWriter err = cl.getErr();
        err.println(cl.getColorScheme().errorText(e.getMessage()));
        if (!CommandLine.UnmatchedArgumentException.printSuggestions(e, err)) {
            err.println("Try '" + cl.getCommandSpec().qualifiedName() + " --help' for more information.");
        }
        return cl.getCommandSpec().exitCodeOnInvalidInput();
    }

    /** Exit code 1: one line naming the command and the cause; the stack trace only with --verbose. */
    private static int failure(Lora4j root, Exception e, CommandLine cl) {
        PrintWriter err = cl.getErr();
        err.println(cl.getColorScheme().errorText(cl.getCommandSpec().qualifiedName() + ": " + describe(e)));
        if (root.verbose) {
            e.printStackTrace(err);
        } else {
            err.println("(run with --verbose for the stack trace)");
        }
        err.flush();
        return cl.getCommandSpec().exitCodeOnExecutionException();
    }

    /** The exception's message, or its class when it has none (a NullPointerException, say). */
    static String describe(Throwable e) {
        String message = e.getMessage();
        if (e instanceof java.nio.file.NoSuchFileException) {
            return "no such file: " + message;
        }
        return message == null || message.isBlank() ? e.getClass().getName() : message;
    }

    /** The project version ("0.1.0-SNAPSHOT"), filtered into version.properties at build time. */
    public static String version() {
        Properties p = new Properties();
        try (InputStream in = Lora4j.class.getResourceAsStream("version.properties")) {
            if (in == null) {
                throw new IOException("dev/lora4j/cli/version.properties is missing from the class path");
            }
            p.load(in);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        return p.getProperty("version");
    }

    /** The project version and the Java runtime, for --version. */
    public static final class Version implements IVersionProvider {
        @Override
        public String[] getVersion() {
            return new String[] {"lora4j " + version(),
                "Java " + System.getProperty("java.version") + " (" + System.getProperty("java.vm.name") + ")"};
        }
    }
}
