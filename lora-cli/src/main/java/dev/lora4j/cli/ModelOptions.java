package dev.lora4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.tokenizer.ChatTemplate;
import dev.lora4j.tokenizer.HfTokenizer;
import dev.lora4j.gguf.GgufFile;
import dev.lora4j.gguf.GgufModel;
import dev.lora4j.gguf.GgufTokenizer;
import dev.lora4j.lora.AdapterConfigJson;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.model.ModelLoader;
import dev.lora4j.quant.QuantConfig;
import dev.lora4j.quant.QuantizedCheckpoint;
import dev.lora4j.quant.Quantizer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.TypeConversionException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Which model a command runs ({@code @Mixin ModelOptions model;}): a Hugging Face model folder
 * (16-bit, or 4-bit bitsandbytes) or a GGUF model file (llama.cpp's; its weights used as stored,
 * its tokenizer and chat template included), given as the first positional argument as in LitGPT or with
 * {@code --model}; optionally PEFT adapters on top ({@code --adapter DIR} or
 * {@code --adapter name=DIR}, repeatable; all of them active) and 4-bit quantization of the
 * frozen base at load time ({@code --quantize nf4-dq}).
 */
public final class ModelOptions {
    private static final Logger LOG = LoggerFactory.getLogger(ModelOptions.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern ADAPTER_NAME = Pattern.compile("[A-Za-z0-9_-]+");

    @Spec(Spec.Target.MIXEE)
    private CommandSpec spec;

    @Parameters(index = "0", arity = "0..1", paramLabel = "MODEL",
            description = "Hugging Face model folder (config.json, model.safetensors, tokenizer.json) or a GGUF model file.")
    Path positionalModel;

    @Option(names = {"-m", "--model"}, paramLabel = "MODEL", description = "The model folder or GGUF file (instead of the positional MODEL).")
    Path optionModel;

    /** The GGUF model once loaded (tokenizer and chat template come from it). */
    private GgufModel gguf;

    @Option(names = "--adapter", paramLabel = "[NAME=]DIR", converter = AdapterConverter.class,
            description = "A PEFT adapter folder (adapter_config.json, adapter_model.safetensors) to apply; repeat for "
                    + "several, all active, each optionally named NAME=DIR.")
    List<AdapterRef> adapters = new ArrayList<>();

    @Option(names = "--quantize", paramLabel = "TYPE", converter = QuantConverter.class,
            description = "Quantize the frozen base to 4 bits when loading: nf4, nf4-dq, fp4 or fp4-dq, optionally "
                    + "@BLOCKSIZE (e.g. nf4-dq@64), as QLoRA does.")
    QuantConfig quantize;

    /** One --adapter: its name (default "default" for the first, else the folder name) and folder. */
    public record AdapterRef(String name, Path dir) {
    }

    /** A loaded model: the base (adapters attached when given) and where it came from. */
    public record LoadedModel(Path folder, LlamaModel model, LoraModel lora, boolean quantizedBase) {
        /** True when at least one adapter was loaded (then {@link #lora()} is non-null). */
        public boolean hasAdapters() {
            return lora != null;
        }
    }

    /**
     * The model folder, checked to exist with a config.json.
     *
     * @throws picocli.CommandLine.ParameterException naming MODEL when it is missing, doubly given or not a model folder
     */
    public Path folder() {
        if (positionalModel != null && optionModel != null) {
            throw OptionErrors.usage(spec, "the model is given twice (" + positionalModel + " and --model " + optionModel
                    + "); give one");
        }
        Path folder = positionalModel != null ? positionalModel : optionModel;
        if (folder == null) {
            throw OptionErrors.usage(spec, "Missing required parameter: 'MODEL' (a Hugging Face model folder, "
                    + "positional or --model)");
        }
        if (Files.isRegularFile(folder)) {
            if (!GgufModel.isGguf(folder)) {
                throw OptionErrors.invalid(spec, "MODEL", folder, "is " + describeFile(folder) + ", not a model folder,"
                        + " and not a GGUF model (a GGUF file starts with \"GGUF\"); " + MODEL_FOLDER_NEEDS
                        + ", or a .gguf file");
            }
            return folder;
        }
        if (!Files.isDirectory(folder)) {
            throw OptionErrors.invalid(spec, "MODEL", folder, "no such folder; give a Hugging Face model folder "
                    + "with config.json and model.safetensors, or a .gguf file");
        }
        if (!Files.isRegularFile(folder.resolve("config.json"))) {
            throw OptionErrors.invalid(spec, "MODEL", folder, "the folder has no config.json; give a Hugging Face "
                    + "model folder");
        }
        return folder;
    }

    /** What a model folder must hold, for messages. */
    static final String MODEL_FOLDER_NEEDS = "give a Hugging Face model folder, which holds config.json, the weights "
            + "(model.safetensors, or shards with model.safetensors.index.json) and tokenizer.json";

    /** What a file given where a folder is expected appears to be, by its name and first bytes. */
    static String describeFile(Path file) {
        String name = file.getFileName().toString().toLowerCase(java.util.Locale.ROOT);
        if (name.equals("config.json")) {
            return "a model's config.json (give the folder that contains it)";
        }
        if (name.equals("adapter_config.json")) {
            return "a PEFT adapter's config (the adapter folder goes in --adapter)";
        }
        if (name.endsWith(".safetensors")) {
            return "a safetensors weights file (give the folder that contains it with config.json)";
        }
        if (name.endsWith(".gguf")) {
            return "a GGUF file";
        }
        if (name.endsWith(".json") || name.endsWith(".jsonl") || name.endsWith(".csv")) {
            return "a data or JSON file (training data goes in --data)";
        }
        try (java.io.InputStream in = Files.newInputStream(file)) {
            byte[] head = in.readNBytes(512);
            boolean text = true;
            for (byte b : head) {
                if (b == 0) {
                    text = false;
                    break;
                }
            }
            return text ? "a text file" : "a binary file";
        } catch (IOException e) {
            return "a file that cannot be read (" + e.getMessage() + ")";
        }
    }

    /** Whether MODEL is a GGUF file rather than a Hugging Face folder. */
    public boolean isGguf() {
        return Files.isRegularFile(folder());
    }

    /** The model's configuration: config.json, or a GGUF file's metadata. */
    public LlamaConfig config() {
        Path model = folder();
        if (isGguf()) {
            return GgufModel.readConfig(model);
        }
        try {
            return LlamaConfig.read(model.resolve("config.json"));
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + model.resolve("config.json") + ": " + e.getMessage(), e);
        }
    }

    /** The GGUF model (loaded on first use); only when {@link #isGguf()}. */
    public GgufModel gguf() {
        if (gguf == null) {
            gguf = GgufModel.load(folder());
        }
        return gguf;
    }

    /** The adapters to apply, named: the first defaults to "default" (PEFT's name), the others to their folder name. */
    public List<AdapterRef> adapters() {
        List<AdapterRef> out = new ArrayList<>();
        Set<String> names = new LinkedHashSet<>();
        for (AdapterRef a : adapters) {
            String name = a.name() != null ? a.name()
                    : out.isEmpty() ? LoraModel.DEFAULT_ADAPTER : a.dir().getFileName().toString().replace('.', '_');
            if (!names.add(name)) {
                throw OptionErrors.invalid(spec, "--adapter", a.dir(), "the adapter name '" + name + "' is used twice; "
                        + "name them as NAME=DIR");
            }
            if (!Files.isRegularFile(a.dir().resolve(AdapterConfigJson.FILE_NAME))) {
                throw OptionErrors.invalid(spec, "--adapter", a.dir(), Files.isDirectory(a.dir())
                        ? "the folder has no adapter_config.json; give a PEFT adapter folder"
                        : "no such folder; give a PEFT adapter folder");
            }
            out.add(new AdapterRef(name, a.dir()));
        }
        return out;
    }

    /** The --quantize setting, or null for none. */
    public QuantConfig quantize() {
        return quantize;
    }

    /**
     * Loads the model: a 4-bit folder through lora-quant, any other through {@link ModelLoader}
     * (weights memory-mapped as stored); then --quantize, then the adapters, all active.
     */
    public LoadedModel load() {
        return load(null);
    }

    /**
     * As {@link #load()}, with the base model placed on {@code device} (null: where the loader put
     * it) before the adapters are attached, so that they are created there too.
     */
    public LoadedModel load(dev.lora4j.tensor.Device device) {
        Path folder = folder();
        List<AdapterRef> refs = adapters();
        if (isGguf() && quantize != null) {
            throw OptionErrors.invalid(spec, "--quantize", quantize, folder + " is a GGUF file whose weights are used as "
                    + "stored (quantized GGUF types are decoded on the fly); drop --quantize");
        }
        boolean quantizedFolder = !isGguf() && QuantizedCheckpoint.isQuantized(folder);
        LlamaModel model = isGguf() ? gguf().model() : quantizedFolder ? QuantizedCheckpoint.load(folder)
                : ModelLoader.load(folder, ModelLoader.Options.defaults());
        if (quantize != null) {
            if (quantizedFolder) {
                throw OptionErrors.invalid(spec, "--quantize", quantize, folder + " is quantized already (its config.json "
                        + "has a quantization_config); drop --quantize");
            }
            Quantizer.quantize(model, quantize);
        }
        if (device != null && model.embedTokens().device() != device) {
            model = model.to(device);
        }
        LoraModel lora = null;
        for (AdapterRef ref : refs) {
            if (lora == null) {
                lora = LoraModel.load(model, ref.name(), ref.dir());
            } else {
                lora.loadAdapter(ref.name(), ref.dir());
            }
        }
        if (lora != null && refs.size() > 1) {
            lora.setActive(refs.stream().map(AdapterRef::name).toArray(String[]::new));
            LOG.info("active adapters: {}", lora.active());
        }
        return new LoadedModel(folder, model, lora, quantizedFolder || quantize != null);
    }

    /** The tokenizer of the model folder (tokenizer.json with tokenizer_config.json), or of the GGUF file. */
    public HfTokenizer tokenizer() {
        Path folder = folder();
        if (isGguf()) {
            if (gguf != null) {
                return gguf.tokenizer();
            }
            try (GgufFile file = dev.lora4j.gguf.GgufSplit.open(folder)) {
                return GgufTokenizer.load(file);
            } catch (IOException e) {
                throw new UncheckedIOException("reading " + folder + ": " + e.getMessage(), e);
            }
        }
        if (!Files.isRegularFile(folder.resolve("tokenizer.json"))) {
            throw OptionErrors.invalid(spec, "MODEL", folder, "the folder has no tokenizer.json; copy the tokenizer of "
                    + "the base model into it");
        }
        try {
            return HfTokenizer.load(folder);
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + folder.resolve("tokenizer.json") + ": " + e.getMessage(), e);
        }
    }

    /**
     * The token ids that end generation: config.json's eos_token_id, generation_config.json's
     * (a number or a list, as transformers writes it) and the tokenizer's EOS token.
     */
    public static Set<Integer> stopTokens(LoadedModel loaded, HfTokenizer tokenizer) {
        Set<Integer> ids = new LinkedHashSet<>(loaded.model().config().eosTokenIds());
        tokenizer.eosId().ifPresent(ids::add);
        Path generationConfig = loaded.folder().resolve("generation_config.json");
        if (Files.isRegularFile(generationConfig)) {
            try {
                JsonNode eos = JSON.readTree(generationConfig.toFile()).path("eos_token_id");
                if (eos.isIntegralNumber()) {
                    ids.add(eos.intValue());
                } else if (eos.isArray()) {
                    eos.forEach(n -> ids.add(n.intValue()));
                }
            } catch (IOException e) {
                throw new UncheckedIOException("reading " + generationConfig + ": " + e.getMessage(), e);
            }
        }
        return ids;
    }

    /** Where the model files besides the weights live, for copying into a derived folder. */
    static final List<String> TOKENIZER_FILES = List.of("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
            "tokenizer.model", "generation_config.json");

    /**
     * Copies the tokenizer and generation files present in {@code from} into {@code to}; returns their names.
     * From a GGUF file, tokenizer.json and tokenizer_config.json are written from its metadata.
     */
    static List<String> copyTokenizerFiles(Path from, Path to) {
        List<String> copied = new ArrayList<>();
        if (Files.isRegularFile(from)) {
            try (GgufFile file = dev.lora4j.gguf.GgufSplit.open(from)) {
                GgufTokenizer.writeHuggingFace(file, to);
            } catch (IOException e) {
                throw new UncheckedIOException("writing the tokenizer of " + from + " to " + to + ": " + e.getMessage(), e);
            }
            return List.of("tokenizer.json", "tokenizer_config.json");
        }
        for (String name : TOKENIZER_FILES) {
            Path source = from.resolve(name);
            if (Files.isRegularFile(source)) {
                try {
                    Files.copy(source, to.resolve(name), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
                } catch (IOException e) {
                    throw new UncheckedIOException("copying " + source + " to " + to + ": " + e.getMessage(), e);
                }
                copied.add(name);
            }
        }
        return copied;
    }

    /** The chat template of a GGUF model ({@code tokenizer.chat_template}). */
    public ChatTemplate ggufChatTemplate() {
        return gguf().chat();
    }

    @Override
    public String toString() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("model", positionalModel != null ? positionalModel : optionModel);
        m.put("adapters", adapters);
        m.put("quantize", quantize);
        return "ModelOptions" + m;
    }

    /** "DIR" or "NAME=DIR" (NAME of letters, digits, '_' and '-'; a path may itself contain '='). */
    static final class AdapterConverter implements ITypeConverter<AdapterRef> {
        @Override
        public AdapterRef convert(String value) {
            int eq = value.indexOf('=');
            if (eq > 0 && ADAPTER_NAME.matcher(value.substring(0, eq)).matches()) {
                if (eq == value.length() - 1) {
                    throw new TypeConversionException("'" + value + "' names no folder after '='; use NAME=DIR");
                }
                return new AdapterRef(value.substring(0, eq), Path.of(value.substring(eq + 1)));
            }
            return new AdapterRef(null, Path.of(value));
        }
    }

    /** QuantConfig.parse, its message as picocli's. */
    static final class QuantConverter implements ITypeConverter<QuantConfig> {
        @Override
        public QuantConfig convert(String value) {
            try {
                return QuantConfig.parse(value);
            } catch (IllegalArgumentException e) {
                throw new TypeConversionException(e.getMessage());
            }
        }
    }
}
