package dev.lora4j.cli;

import dev.lora4j.lora.MergeCheck;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.model.ModelLoader;
import dev.lora4j.quant.QuantizedMerge;
import dev.lora4j.tensor.BufferStorage;
import dev.lora4j.tensor.DType;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code lora4j merge}: folds PEFT adapters into the base weights (W + scaling·B·A, PEFT's
 * merge_and_unload) and writes a plain Hugging Face folder that loads without lora4j or PEFT. A
 * 4-bit base is dequantized layer by layer and the merged weights are stored at 16 bits.
 */
@Command(name = "merge", mixinStandardHelpOptions = true,
        description = "Merge LoRA adapters into the base model and write a Hugging Face model folder.",
        footer = {"", "Example: lora4j merge --model base/ --adapter out/adapter --out merged/"})
public final class MergeCommand implements Callable<Integer> {
    private static final Logger LOG = LoggerFactory.getLogger(MergeCommand.class);

    @Spec
    private CommandSpec spec;

    @Mixin
    ModelOptions modelOptions;

    @Option(names = {"-o", "--out"}, required = true, paramLabel = "DIR", description = "Folder to write the merged model to.")
    Path out;

    @Option(names = "--dtype", paramLabel = "DTYPE", converter = DTypeConverter.class,
            description = "Dtype of the written weights: bf16, f16 or f32 (default: what the base stores; bf16 for a "
                    + "4-bit base).")
    DType dtype;

    @Option(names = "--force", description = "Write into --out even when it is not empty (its weight files are replaced).")
    boolean force;

    @Override
    public Integer call() {
        Path folder = modelOptions.folder();
        if (modelOptions.adapters().isEmpty()) {
            throw OptionErrors.usage(spec, "Missing required option: '--adapter=[NAME=]DIR' (the PEFT adapter to merge)");
        }
        checkOut(folder);
        ModelOptions.LoadedModel loaded = modelOptions.load();
        DType target = dtype != null ? dtype : storedDType(loaded);
        // the loss of the adapter model on a few tokens, to compare with the folder written below
        MergeCheck.Probe probe = MergeCheck.probe(loaded.lora());
        LlamaModel merged;
        if (loaded.quantizedBase()) {
            QuantizedMerge.Result result = QuantizedMerge.merge(loaded.lora(), QuantizedMerge.Target.BF16);
            LOG.info("merged into the 4-bit base at bf16; rounding against the exact f32 merge: {}", result.overall());
            merged = result.model();
        } else {
            merged = loaded.lora().mergeAndUnload();
        }
        List<String> written;
        try {
            Files.createDirectories(out);
            removeStaleWeights();
            written = ModelLoader.saveFolder(merged, out, target, folder);
        } catch (IOException e) {
            throw new UncheckedIOException("writing " + out + ": " + e.getMessage(), e);
        }
        // read the written folder back: what a user will load must reproduce the adapter model
        MergeCheck.Result check = MergeCheck.verifyLoaded(probe, ModelLoader.load(out, ModelLoader.Options.defaults()),
                MergeCheck.tolerance(loaded.quantizedBase() ? DType.BF16 : target),
                "the written folder " + out);
        PrintWriter stdout = spec.commandLine().getOut();
        stdout.printf(Locale.ROOT, "merged %s into %s: %,d parameters as %s -> %s%n",
                modelOptions.adapters().stream().map(a -> a.name() + "=" + a.dir()).toList(), folder,
                merged.baseParameterCount(), DTypeConverter.torchName(target), out);
        stdout.printf(Locale.ROOT, "check: loss on %d tokens %.4f with the adapter, %.4f merged (tolerance %.3g for %s)%n",
                probe.tokens().length, probe.adapterLoss(), check.mergedLoss(), check.tolerance().allowed(probe.adapterLoss()),
                check.tolerance().stored());
        stdout.println("wrote " + String.join(", ", written));
        stdout.flush();
        return 0;
    }

    private void checkOut(Path folder) {
        if (Files.exists(out) && !Files.isDirectory(out)) {
            throw OptionErrors.invalid(spec, "--out", out, "is a file; give a folder");
        }
        try {
            if (Files.exists(out) && Files.isSameFile(out, folder)) {
                throw OptionErrors.invalid(spec, "--out", out, "is the base model folder, whose weights are being read; "
                        + "give another folder");
            }
            if (Files.isDirectory(out) && !force) {
                try (Stream<Path> entries = Files.list(out)) {
                    if (entries.findAny().isPresent()) {
                        throw OptionErrors.invalid(spec, "--out", out, "the folder is not empty; give an empty or new "
                                + "folder, or add --force to replace its model files");
                    }
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("checking " + out + ": " + e.getMessage(), e);
        }
    }

    /** With --force: weight files of an earlier model in --out would mix with the new ones (a stale shard index). */
    private void removeStaleWeights() throws IOException {
        try (Stream<Path> entries = Files.list(out)) {
            for (Path p : entries.toList()) {
                String name = p.getFileName().toString();
                if (Files.isRegularFile(p) && (name.endsWith(".safetensors") || name.equals("model.safetensors.index.json"))) {
                    Files.delete(p);
                    LOG.info("--force: removed {}", p);
                }
            }
        }
    }

    private static DType storedDType(ModelOptions.LoadedModel loaded) {
        if (loaded.quantizedBase()) {
            return DType.BF16;
        }
        return loaded.model().embedTokens().storage() instanceof BufferStorage b ? b.dtype() : DType.F32;
    }
}
