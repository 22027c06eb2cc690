package dev.lora4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.tokenizer.HfTokenizer;
import dev.lora4j.gguf.GgufExport;
import dev.lora4j.gguf.GgufFileType;
import dev.lora4j.gguf.OllamaModelfile;
import dev.lora4j.lora.AdapterConfigJson;
import dev.lora4j.model.LlamaModel;
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
import picocli.CommandLine.Command;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.TypeConversionException;

/**
 * {@code lora4j export-gguf}: writes GGUF files for llama.cpp, Ollama and LM Studio — a LoRA
 * adapter ({@code --adapter DIR}), a model (MODEL alone), or the model with its adapters merged
 * ({@code --merge}) — and an Ollama {@code Modelfile} beside the export.
 */
@Command(name = "export-gguf", mixinStandardHelpOptions = true,
        description = "Export a LoRA adapter, or a (merged) model with its tokenizer, as GGUF for llama.cpp and Ollama.",
        footer = {"", "Examples:",
            "  lora4j export-gguf base/ --adapter out/adapter --out adapter.gguf --base-out base.gguf",
            "  lora4j export-gguf base/ --adapter out/adapter --merge --type q8_0 --out merged.gguf",
            "  lora4j export-gguf base/ --adapter out/adapter --merge --type q4_k_m --out merged.Q4_K_M.gguf",
            "  lora4j export-gguf model.Q4_K_M.gguf --adapter out/adapter --out adapter.gguf",
            "Then: ollama create my-model -f Modelfile && ollama run my-model"})
public final class ExportGgufCommand implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Spec
    private CommandSpec spec;

    @Mixin
    ModelOptions modelOptions;

    @Option(names = {"-o", "--out"}, required = true, paramLabel = "FILE",
            description = "The GGUF file to write: the adapter, or the model with --merge or without --adapter.")
    Path out;

    @Option(names = "--merge", description = "Merge the adapters into the base and write one model file.")
    boolean merge;

    @Option(names = "--type", paramLabel = "TYPE", converter = TypeConverter.class,
            description = "Weight type of a model export: f32, f16, bf16, q8_0 or q4_k_m (default: the base's f32/f16/bf16, "
                    + "f16 for a quantized base). Norms stay f32; rows not a multiple of 32 fall back from q8_0 to f16. "
                    + "q4_k_m is llama.cpp's Q4_K_M mix, byte for byte what llama-quantize makes of the f32 export.")
    GgufFileType type;

    @Option(names = "--base-out", paramLabel = "FILE",
            description = "With an adapter export: also write the base model as GGUF here (for the Modelfile's FROM).")
    Path baseOut;

    @Option(names = "--no-modelfile", description = "Do not write the Ollama Modelfile beside --out.")
    boolean noModelfile;

    @Option(names = "--split-max-size", paramLabel = "N[K|M|G]", converter = SizeConverter.class,
            description = "Split a model export into shards of at most N bytes of tensor data (K, M, G: 1000, 1000^2, "
                    + "1000^3), named OUT-00001-of-0000N.gguf as llama.cpp's gguf-split does; llama.cpp loads them "
                    + "from the first file. A model that fits in one shard is written as --out.")
    Long splitMaxSize;

    @Override
    public Integer call() {
        Path model = modelOptions.folder();
        boolean adapterExport = !modelOptions.adapters().isEmpty() && !merge;
        if (merge && modelOptions.adapters().isEmpty()) {
            throw OptionErrors.usage(spec, "--merge needs at least one --adapter to merge");
        }
        if (adapterExport && modelOptions.adapters().size() > 1) {
            throw OptionErrors.usage(spec, "llama.cpp applies one adapter per GGUF file: export the adapters one at a "
                    + "time, or merge them with --merge");
        }
        if (adapterExport && type != null) {
            throw OptionErrors.usage(spec, "--type applies to model exports (--merge or no --adapter); adapters are "
                    + "written in f32");
        }
        if (splitMaxSize != null && adapterExport) {
            throw OptionErrors.usage(spec, "--split-max-size applies to model exports (--merge or no --adapter)");
        }
        if (baseOut != null && !adapterExport) {
            throw OptionErrors.usage(spec, "--base-out goes with an adapter export (--adapter without --merge)");
        }
        for (ModelOptions.AdapterRef ref : modelOptions.adapters()) {
            refuseDora(ref.dir());
        }
        if (Files.isDirectory(out)) {
            throw OptionErrors.invalid(spec, "--out", out, "is a folder; give the .gguf file to write");
        }
        HfTokenizer tokenizer = modelOptions.tokenizer();
        ModelOptions.LoadedModel loaded = modelOptions.load();
        PrintWriter stdout = spec.commandLine().getOut();
        Path modelfileDir = out.toAbsolutePath().getParent();
        String template = chatTemplate(model);
        if (adapterExport) {
            Path base = modelOptions.isGguf() ? model : null;
            if (baseOut != null) {
                exportModel(loaded.model(), model, typeFor(loaded.model()), baseOut);
                stdout.println("wrote base model " + baseOut);
                base = baseOut;
            }
            GgufExport.adapter(loaded.lora(), out);
            stdout.println("wrote LoRA adapter " + out);
            if (!noModelfile && base != null) {
                stdout.println("wrote " + OllamaModelfile.write(modelfileDir, base, out, template, tokenizer));
            } else if (!noModelfile) {
                stdout.println("no Modelfile: Ollama needs the base as GGUF too (add --base-out base.gguf)");
            }
        } else {
            LlamaModel toWrite = merge ? loaded.lora().mergeAndUnload() : loaded.model();
            GgufFileType t = type != null ? type : typeFor(loaded.model());
            List<Path> files = exportModel(toWrite, model, t, out, splitMaxSize == null ? 0 : splitMaxSize);
            stdout.printf(Locale.ROOT, "wrote %s model %s (%,d parameters)%n", t, files.size() == 1 ? out
                    : files.size() + " shards " + files.get(0) + " ... " + files.get(files.size() - 1),
                    toWrite.baseParameterCount());
            if (!noModelfile && files.size() > 1) {
                stdout.println("no Modelfile for a split model: export without --split-max-size for Ollama");
            } else if (!noModelfile) {
                stdout.println("wrote " + OllamaModelfile.write(modelfileDir, out, null, template, tokenizer));
            }
        }
        stdout.flush();
        return 0;
    }

    /** Writes a model file; a GGUF input's tokenizer goes through a temporary tokenizer.json. */
    private void exportModel(LlamaModel model, Path source, GgufFileType t, Path file) {
        exportModel(model, source, t, file, 0);
    }

    private List<Path> exportModel(LlamaModel model, Path source, GgufFileType t, Path file, long splitMaxBytes) {
        if (!modelOptions.isGguf()) {
            return GgufExport.model(model, source, t, file, splitMaxBytes);
        }
        Path dir = null;
        try {
            dir = Files.createTempDirectory("lora4j-export-gguf");
            ModelOptions.copyTokenizerFiles(source, dir);
            return GgufExport.model(model, dir, t, file, splitMaxBytes);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } finally {
            if (dir != null) {
                try (var files = Files.list(dir)) {
                    for (Path p : files.toList()) {
                        Files.deleteIfExists(p);
                    }
                    Files.deleteIfExists(dir);
                } catch (IOException ignored) {
                    // a temporary folder left behind is harmless
                }
            }
        }
    }

    private String chatTemplate(Path model) {
        if (modelOptions.isGguf()) {
            return modelOptions.gguf().chatTemplate();
        }
        Path config = model.resolve("tokenizer_config.json");
        if (!Files.isRegularFile(config)) {
            return null;
        }
        try {
            JsonNode t = JSON.readTree(config.toFile()).path("chat_template");
            if (t.isTextual()) {
                return t.asText();
            }
            for (JsonNode named : t) {
                if (named.path("name").asText().equals("default")) {
                    return named.path("template").asText();
                }
            }
            return null;
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + config + ": " + e.getMessage(), e);
        }
    }

    /** DoRA's magnitude vector has no place in a GGUF LoRA: refused before anything is loaded. */
    private void refuseDora(Path adapterDir) {
        Path config = adapterDir.resolve(AdapterConfigJson.FILE_NAME);
        try {
            if (Files.isRegularFile(config) && JSON.readTree(config.toFile()).path("use_dora").asBoolean(false)) {
                throw OptionErrors.invalid(spec, "--adapter", adapterDir, "is a DoRA adapter (use_dora true): llama.cpp's "
                        + "GGUF LoRA format cannot represent DoRA's magnitude vector; train a plain LoRA adapter");
            }
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + config + ": " + e.getMessage(), e);
        }
    }

    private static GgufFileType typeFor(LlamaModel model) {
        if (model.embedTokens().storage() instanceof BufferStorage b) {
            return b.dtype() == DType.F32 ? GgufFileType.F32 : b.dtype() == DType.BF16 ? GgufFileType.BF16 : GgufFileType.F16;
        }
        return GgufFileType.F16;
    }

    /** A byte count: digits, optionally followed by K, M or G (powers of 1000, as llama.cpp's gguf-split reads them). */
    static final class SizeConverter implements ITypeConverter<Long> {
        @Override
        public Long convert(String value) {
            String v = value.trim().toUpperCase(Locale.ROOT);
            long unit = v.endsWith("K") ? 1000L : v.endsWith("M") ? 1000_000L : v.endsWith("G") ? 1000_000_000L : 1;
            String digits = unit == 1 ? v : v.substring(0, v.length() - 1);
            long n;
            try {
                n = Long.parseLong(digits);
            } catch (NumberFormatException e) {
                n = -1;
            }
            if (n < 1 || n > Long.MAX_VALUE / unit) {
                throw new TypeConversionException("'" + value + "' is not a split size; give a positive number of bytes, "
                        + "optionally followed by K, M or G (e.g. 2G)");
            }
            return n * unit;
        }
    }

    /** f32 / f16 / bf16 / q8_0 / q4_k_m. */
    static final class TypeConverter implements ITypeConverter<GgufFileType> {
        @Override
        public GgufFileType convert(String value) {
            return switch (value.trim().toLowerCase(Locale.ROOT)) {
                case "f32", "fp32", "float32" -> GgufFileType.F32;
                case "f16", "fp16", "float16" -> GgufFileType.F16;
                case "bf16", "bfloat16" -> GgufFileType.BF16;
                case "q8_0", "q8" -> GgufFileType.Q8_0;
                case "q4_k_m" -> GgufFileType.Q4_K_M;
                default -> throw new TypeConversionException("'" + value + "' is not a GGUF export type; use f32, f16, "
                        + "bf16, q8_0 or q4_k_m");
            };
        }
    }
}
