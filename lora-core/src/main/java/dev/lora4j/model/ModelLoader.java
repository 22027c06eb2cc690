package dev.lora4j.model;

import dev.lora4j.io.Checkpoint;
import dev.lora4j.io.SafetensorsWriter;
import dev.lora4j.io.TensorInfo;
import dev.lora4j.tensor.BufferStorage;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Reads and writes Hugging Face model folders: {@code config.json} plus {@code model.safetensors}
 * or a sharded {@code model.safetensors.index.json}. Frozen weights stay memory-mapped in their
 * stored dtype unless {@link Options#frozenDType} asks for a conversion; norm weights are always
 * copied to F32 (they are tiny and read on every token).
 */
public final class ModelLoader {
    private static final Logger LOG = LoggerFactory.getLogger(ModelLoader.class);

    private ModelLoader() {
    }

    /**
     * @param frozenDType dtype for the frozen matrices (embedding, projections, lm_head): null
     *     keeps what the checkpoint stores (zero-copy), F32/BF16/F16 convert into heap memory
     */
    public record Options(DType frozenDType) {
        public Options {
            if (frozenDType != null && frozenDType != DType.F32 && frozenDType != DType.BF16 && frozenDType != DType.F16) {
                throw new IllegalArgumentException("frozenDType must be F32, BF16, F16 or null (as stored), was " + frozenDType);
            }
        }

        public static Options defaults() {
            return new Options(null);
        }

        public Options frozenDType(DType value) {
            return new Options(value);
        }
    }

    /**
     * The model on the device of the backend requested with {@code -Dlora4j.backend} (e.g.
     * {@code cuda}), so that unchanged training code runs there. A backend chosen automatically
     * leaves the model on the CPU (move it with {@code LoraModel.to} or the CLI's --device), so that
     * host-only work such as merging keeps working on machines with a GPU.
     */
    private static LlamaModel placed(LlamaModel model) {
        String requested = System.getProperty(dev.lora4j.backend.Backends.PROPERTY);
        if (requested == null || requested.isBlank()) {
            return model;
        }
        dev.lora4j.tensor.Device device = dev.lora4j.backend.Backends.get().device();
        if (device == dev.lora4j.tensor.Device.CPU) {
            return model;
        }
        LOG.info("placing the model's weights on {} (backend {})", device, dev.lora4j.backend.Backends.get().name());
        return model.to(device);
    }

    public static LlamaModel load(Path folder, Options options) {
        if (!Files.isDirectory(folder)) {
            throw new IllegalArgumentException("model folder " + folder + " does not exist or is not a folder; expected a "
                    + "Hugging Face model folder with config.json and model.safetensors");
        }
        Path configPath = folder.resolve("config.json");
        if (!Files.isRegularFile(configPath)) {
            throw new IllegalArgumentException(folder + ": config.json is missing; a Hugging Face model folder needs "
                    + "config.json next to model.safetensors");
        }
        LlamaConfig config;
        try {
            config = LlamaConfig.read(configPath);
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + configPath + ": " + e.getMessage(), e);
        }
        // every tensor is mapped or copied while the model is assembled; mappings outlive the closed file
        try (Checkpoint checkpoint = Checkpoint.open(folder)) {
            Set<String> unused = new LinkedHashSet<>(checkpoint.names());
            LlamaModel model = LlamaModel.assemble(config, (name, shape) -> {
                if (!checkpoint.contains(name)) {
                    throw new IllegalArgumentException(checkpoint.source().getFileName() + ": tensor " + name + " is missing ("
                            + "config.json says " + config.numHiddenLayers() + " layers"
                            + (name.equals("lm_head.weight") ? " and tie_word_embeddings false" : "") + ")");
                }
                TensorInfo info = checkpoint.info(name);
                if (!Arrays.equals(info.shape(), shape)) {
                    throw new IllegalArgumentException(checkpoint.source().getFileName() + ": tensor " + name + " has shape "
                            + Arrays.toString(info.shape()) + " but config.json implies " + Arrays.toString(shape));
                }
                if (!info.dtype().isFloatingPoint() || info.dtype() == DType.F64) {
                    throw new IllegalArgumentException(checkpoint.source().getFileName() + ": tensor " + name + " is "
                            + info.dtype() + "; F32, BF16 and F16 weights are supported (4-bit checkpoints load through lora-quant)");
                }
                unused.remove(name);
                boolean small = shape.length == 1;
                Tensor t;
                if (small) {
                    t = checkpoint.f32(name);
                } else if (options.frozenDType() == null || options.frozenDType() == info.dtype()) {
                    t = checkpoint.tensor(name);
                } else if (options.frozenDType() == DType.F32) {
                    t = checkpoint.f32(name);
                } else {
                    t = new Tensor(BufferStorage.of(checkpoint.f32(name).data(), options.frozenDType()), shape);
                }
                return t.name(name);
            });
            warnAboutUnusedTensors(folder, config, unused);
            LOG.info("loaded {} ({} layers, hidden {}, {} parameters, {} MB of weights) from {}", config.modelType(),
                    config.numHiddenLayers(), config.hiddenSize(), model.baseParameterCount(),
                    model.baseByteSize() / (1 << 20), folder);
            return placed(model);
        } catch (IOException e) {
            throw new UncheckedIOException("reading model folder " + folder + ": " + e.getMessage(), e);
        }
    }

    /**
     * Logs, as one warning, checkpoint tensors the model did not read (nothing is dropped
     * silently). RoPE's cached inv_freq and a stored lm_head.weight of a tied model are expected.
     */
    public static void warnAboutUnusedTensors(Path folder, LlamaConfig config, Set<String> unused) {
        Set<String> left = new LinkedHashSet<>(unused);
        left.removeIf(n -> n.endsWith("rotary_emb.inv_freq"));
        if (config.tieWordEmbeddings()) {
            left.remove("lm_head.weight");
        }
        if (!left.isEmpty()) {
            LOG.warn("{}: {} tensor(s) not used by {}: {}", folder, left.size(), config.modelType(), left);
        }
    }

    /**
     * Writes config.json and model.safetensors (Hugging Face names; lm_head.weight omitted when
     * tied) with every tensor stored as {@code dtype}.
     */
    public static void save(LlamaModel model, Path folder, DType dtype) {
        try {
            Files.createDirectories(folder);
            model.config().write(folder.resolve("config.json"));
            SafetensorsWriter writer = new SafetensorsWriter();
            for (Map.Entry<String, Tensor> e : model.allTensors().entrySet()) {
                writer.add(e.getKey(), e.getValue(), dtype);
            }
            writer.metadata("format", "pt");
            writer.write(folder.resolve("model.safetensors"));
        } catch (IOException e) {
            throw new UncheckedIOException("writing model folder " + folder + ": " + e.getMessage(), e);
        }
    }

    /** The files besides config.json and the weights that make a folder usable by transformers and lora4j. */
    public static final List<String> TOKENIZER_FILES = List.of("tokenizer.json", "tokenizer_config.json",
            "special_tokens_map.json", "tokenizer.model");

    /**
     * Writes a complete Hugging Face model folder in one call: {@code config.json} (torch_dtype
     * set to {@code dtype}), {@code model.safetensors} (every tensor as {@code dtype}), the
     * tokenizer files found in {@code baseFolder} ({@link #TOKENIZER_FILES}) and
     * {@code generation_config.json} (the base folder's, or one made from the config's BOS/EOS
     * ids). {@code AutoModelForCausalLM.from_pretrained(folder)} and {@link #load} read it.
     *
     * <pre>{@code
     * LlamaModel merged = lora.mergeAndUnload();
     * ModelLoader.saveFolder(merged, Path.of("merged"), DType.BF16, Path.of("models/base"));
     * }</pre>
     *
     * @param baseFolder the folder the base model was loaded from (tokenizer and generation
     *     config are copied from it); null writes only config, weights and a generation config
     * @return the names of the files written, in order
     */
    public static List<String> saveFolder(LlamaModel model, Path folder, DType dtype, Path baseFolder) {
        if (dtype != DType.F32 && dtype != DType.BF16 && dtype != DType.F16) {
            throw new IllegalArgumentException("saveFolder: dtype must be F32, BF16 or F16, was " + dtype);
        }
        List<String> written = new ArrayList<>();
        save(model, folder, dtype);
        try {
            // config.json states the dtype the weights are stored in
            model.config().toBuilder().torchDtype(torchName(dtype)).build().write(folder.resolve("config.json"));
        } catch (IOException e) {
            throw new UncheckedIOException("writing " + folder.resolve("config.json") + ": " + e.getMessage(), e);
        }
        written.add("config.json");
        written.add("model.safetensors");
        written.addAll(copyModelFiles(model.config(), baseFolder, folder));
        LOG.info("wrote {} to {}", written, folder);
        return written;
    }

    /**
     * Copies the tokenizer files of {@code baseFolder} ({@link #TOKENIZER_FILES}, those present)
     * into {@code folder}, and its generation_config.json, or writes one from the config's
     * special token ids when it has none (or {@code baseFolder} is null).
     *
     * @return the names of the files written
     */
    public static List<String> copyModelFiles(LlamaConfig config, Path baseFolder, Path folder) {
        List<String> written = new ArrayList<>();
        try {
            Files.createDirectories(folder);
            if (baseFolder != null) {
                for (String name : TOKENIZER_FILES) {
                    Path source = baseFolder.resolve(name);
                    if (Files.isRegularFile(source)) {
                        Files.copy(source, folder.resolve(name), StandardCopyOption.REPLACE_EXISTING);
                        written.add(name);
                    }
                }
            }
            Path generation = baseFolder == null ? null : baseFolder.resolve("generation_config.json");
            if (generation != null && Files.isRegularFile(generation)) {
                Files.copy(generation, folder.resolve("generation_config.json"), StandardCopyOption.REPLACE_EXISTING);
            } else {
                writeGenerationConfig(config, folder.resolve("generation_config.json"));
            }
            written.add("generation_config.json");
        } catch (IOException e) {
            throw new UncheckedIOException("writing model folder " + folder + ": " + e.getMessage(), e);
        }
        return written;
    }

    /** transformers' GenerationConfig.from_model_config: the special token ids of config.json. */
    private static void writeGenerationConfig(LlamaConfig config, Path file) throws IOException {
        Map<String, Object> map = new LinkedHashMap<>();
        if (config.bosTokenId() != null) {
            map.put("bos_token_id", config.bosTokenId());
        }
        List<Integer> eos = config.eosTokenIds();
        if (eos.size() == 1) {
            map.put("eos_token_id", eos.get(0));
        } else if (!eos.isEmpty()) {
            map.put("eos_token_id", eos);
        }
        if (config.padTokenId() != null) {
            map.put("pad_token_id", config.padTokenId());
        }
        StringBuilder json = new StringBuilder("{\n");
        int i = 0;
        for (Map.Entry<String, Object> e : map.entrySet()) {
            json.append("  \"").append(e.getKey()).append("\": ").append(e.getValue()).append(++i < map.size() ? ",\n" : "\n");
        }
        json.append("}\n");
        Files.writeString(file, json.toString()); // List.toString is a JSON array of ints
    }

    /** The name config.json's torch_dtype uses for a dtype. */
    public static String torchName(DType dtype) {
        return switch (dtype) {
            case F32 -> "float32";
            case BF16 -> "bfloat16";
            case F16 -> "float16";
            default -> dtype.name().toLowerCase(Locale.ROOT);
        };
    }
}
