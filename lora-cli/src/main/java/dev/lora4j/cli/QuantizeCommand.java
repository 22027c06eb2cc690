package dev.lora4j.cli;

import dev.lora4j.quant.QuantConfig;
import dev.lora4j.quant.QuantizedCheckpoint;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code lora4j quantize}: writes a bitsandbytes 4-bit copy of a 16-bit Hugging Face folder (the
 * decoder projections quantized, the rest kept as stored), which transformers loads with
 * bitsandbytes and lora4j loads directly as a QLoRA base.
 */
@Command(name = "quantize", mixinStandardHelpOptions = true,
        description = "Quantize a Hugging Face model folder to 4 bits (bitsandbytes format).",
        footer = {"", "Example: lora4j quantize base/ base-nf4/ --type nf4-dq"})
public final class QuantizeCommand implements Callable<Integer> {

    @Spec
    private CommandSpec spec;

    @Parameters(index = "0", paramLabel = "SRC", description = "The 16-bit model folder.")
    Path source;

    @Parameters(index = "1", paramLabel = "DST", description = "The folder to write the 4-bit model to.")
    Path target;

    @Option(names = "--type", defaultValue = "nf4-dq", paramLabel = "TYPE", converter = ModelOptions.QuantConverter.class,
            description = "nf4, nf4-dq, fp4 or fp4-dq, optionally @BLOCKSIZE such as nf4@128 (default: ${DEFAULT-VALUE}).")
    QuantConfig type;

    @Option(names = "--force", description = "Write into DST even when it is not empty.")
    boolean force;

    @Override
    public Integer call() {
        if (!Files.isRegularFile(source.resolve("config.json"))) {
            throw OptionErrors.invalid(spec, "SRC", source, Files.isDirectory(source)
                    ? "the folder has no config.json; give a Hugging Face model folder" : "no such folder");
        }
        if (Files.exists(target) && !force) {
            try (Stream<Path> entries = Files.isDirectory(target) ? Files.list(target) : Stream.of(target)) {
                if (entries.findAny().isPresent()) {
                    throw OptionErrors.invalid(spec, "DST", target, "exists and is not empty; give a new folder or add --force");
                }
            } catch (IOException e) {
                throw new UncheckedIOException("checking " + target + ": " + e.getMessage(), e);
            }
        }
        QuantizedCheckpoint.Loaded result = QuantizedCheckpoint.quantizeFolder(source, target, type);
        java.util.List<String> copied = ModelOptions.copyTokenizerFiles(source, target);
        PrintWriter out = spec.commandLine().getOut();
        out.printf(Locale.ROOT, "quantized %s -> %s as %s: %,d parameters, %s of frozen weights%n", source, target, type,
                result.model().baseParameterCount(), InspectCommand.bytes(result.model().baseByteSize()));
        if (!copied.isEmpty()) {
            out.println("copied " + String.join(", ", copied));
        }
        out.flush();
        return 0;
    }
}
