package dev.lora4j.cli;

import dev.lora4j.tokenizer.HfTokenizer;
import dev.lora4j.model.Generator;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.Callable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code lora4j generate}: continues a prompt with the model (and adapters), printing the text to
 * standard output as the tokens are produced. The prompt is used as given (no chat template);
 * generation ends at an EOS token of the config, generation_config.json or tokenizer, at a
 * {@code --stop} string (not printed), or after --max-new-tokens.
 */
@Command(name = "generate", mixinStandardHelpOptions = true,
        description = "Continue a prompt, streaming the new text to standard output.",
        footer = {"", "Example: lora4j generate models/arith-tiny --prompt 'What is 2+3?' --temperature 0"})
public final class GenerateCommand implements Callable<Integer> {
    private static final Logger LOG = LoggerFactory.getLogger(GenerateCommand.class);

    @Spec
    private CommandSpec spec;

    @Mixin
    ModelOptions modelOptions;

    @Mixin
    DeviceOptions deviceOptions;

    @Mixin
    SamplingOptions sampling;

    @Option(names = {"-p", "--prompt"}, paramLabel = "TEXT",
            description = "The prompt; escapes \\n and \\t are understood as in --stop. An empty prompt (-p '') "
                    + "starts from the BOS token alone. Read from standard input (as is) when absent.")
    String prompt;

    @Option(names = "--stop", paramLabel = "TEXT",
            description = "Stop when the new text contains TEXT (not printed); repeatable. Escapes \\n and \\t are "
                    + "understood, e.g. --stop '\\n'.")
    List<String> stopStrings = new ArrayList<>();

    @Override
    public Integer call() {
        dev.lora4j.tensor.Device computeDevice = deviceOptions.resolve(spec);
        HfTokenizer tokenizer = modelOptions.tokenizer();
        String text = prompt != null ? DataOptions.unescape(prompt) : readStdin();
        List<String> stops = stopStrings.stream().map(DataOptions::unescape).toList();
        for (int i = 0; i < stops.size(); i++) {
            if (stops.get(i).isEmpty()) {
                throw OptionErrors.usage(spec, "--stop value " + (i + 1) + " is empty; give the text to stop at");
            }
        }
        ModelOptions.LoadedModel loaded = modelOptions.load(computeDevice);
        Set<Integer> stop = ModelOptions.stopTokens(loaded, tokenizer);
        Generator generator = sampling.configure(new Generator(loaded.model())).tokenizer(tokenizer).stopTokens(stop)
                .stopStrings(stops);
        int[] promptIds = tokenizer.encode(text, true);
        if (promptIds.length == 0) {
            // an empty prompt: generate from BOS, as an unconditional sample does
            Integer bos = tokenizer.bosId().isPresent() ? Integer.valueOf(tokenizer.bosId().getAsInt())
                    : loaded.model().config().bosTokenId();
            if (bos == null) {
                throw OptionErrors.usage(spec, "the prompt is empty and neither tokenizer.json nor config.json names a "
                        + "BOS token to start from; give --prompt TEXT");
            }
            promptIds = new int[] {bos};
        }
        LOG.info("prompt: {} tokens; {}; stop tokens {}, stop strings {}", promptIds.length, sampling, stop, stops);
        PrintWriter out = spec.commandLine().getOut();
        long start = System.nanoTime();
        Generator.Generation result = generator.generateText(promptIds, piece -> {
            out.print(piece);
            out.flush();
        });
        double seconds = (System.nanoTime() - start) / 1e9;
        out.print("\n");
        out.flush();
        LOG.info(String.format(Locale.ROOT, "generated %d tokens in %.2f s (%.1f tokens/s), stopped: %s",
                result.tokens().length, seconds, result.tokens().length / Math.max(seconds, 1e-9), result.stopReason()));
        return 0;
    }

    private static String readStdin() {
        try {
            return new String(System.in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("reading the prompt from standard input: " + e.getMessage(), e);
        }
    }
}
