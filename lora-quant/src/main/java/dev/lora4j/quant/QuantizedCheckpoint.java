package dev.lora4j.quant;

import dev.lora4j.io.PythonJson;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.io.Checkpoint;
import dev.lora4j.io.SafetensorsWriter;
import dev.lora4j.io.TensorInfo;
import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.model.ModelLoader;
import dev.lora4j.tensor.BufferStorage;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Hugging Face model folders quantized by bitsandbytes ({@code load_in_4bit}, saved with
 * {@code save_pretrained}): {@code config.json} with a {@code quantization_config} and
 * {@code model.safetensors} (or shards) in which every quantized projection is stored as
 * described in {@link BnbFormat}, and everything else (embedding, norms, biases, lm_head) as
 * ordinary 16- or 32-bit tensors.
 *
 * <p>{@link #read} builds a {@link LlamaModel} whose projections hold {@link QuantizedStorage}
 * (copied to the heap: packed codes and scales only) and whose other matrices stay memory-mapped
 * in their stored dtype; norms are copied to F32 as {@link ModelLoader} does. {@link #save}
 * writes the same layout. Reading a folder and saving it again reproduces model.safetensors byte
 * for byte, and config.json too when it was written by transformers (keys sorted, two-space
 * indent), provided every tensor of the folder belongs to the model and the unquantized tensors
 * share one dtype.
 *
 * <p>{@link #quantizeFolder} turns a 16-bit Hugging Face folder into such a 4-bit folder.
 */
public final class QuantizedCheckpoint {
    private static final Logger LOG = LoggerFactory.getLogger(QuantizedCheckpoint.class);
    private static final ObjectMapper JSON = new ObjectMapper();

    private QuantizedCheckpoint() {
    }

    /**
     * A loaded 4-bit folder.
     *
     * @param configJson the folder's config.json text, kept whole so that keys lora4j does not
     *     model (transformers_version, initializer_range, ...) survive a save
     * @param dtype the dtype of the unquantized tensors as stored (that of the embedding)
     */
    public record Loaded(LlamaModel model, String configJson, DType dtype) {
    }

    /**
     * True when the folder's config.json has a {@code quantization_config}, i.e. the folder must be
     * loaded with {@link #read} rather than {@link ModelLoader}.
     */
    public static boolean isQuantized(Path folder) {
        Path configPath = folder.resolve("config.json");
        try {
            return Files.isRegularFile(configPath) && JSON.readTree(Files.readString(configPath)).has("quantization_config");
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException(configPath + ": not valid JSON: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + configPath + ": " + e.getMessage(), e);
        }
    }

    /** Loads a 4-bit folder's model; see {@link #read}. */
    public static LlamaModel load(Path folder) {
        return read(folder).model();
    }

    /**
     * Loads a Hugging Face folder quantized by bitsandbytes. Every size in every quant state is
     * checked against config.json before anything large is allocated.
     *
     * @throws IllegalArgumentException naming the file, the tensor and the mismatch when the
     *     folder is not a bitsandbytes 4-bit checkpoint or disagrees with its config
     */
    public static Loaded read(Path folder) {
        Path configPath = folder.resolve("config.json");
        if (!Files.isRegularFile(configPath)) {
            throw new IllegalArgumentException(folder + ": config.json is missing; a Hugging Face model folder needs "
                    + "config.json next to model.safetensors");
        }
        try {
            String configText = Files.readString(configPath);
            LlamaConfig config = LlamaConfig.parse(configText, configPath.toString());
            BnbConfig bnb = BnbConfig.parse(JSON.readTree(configText), configPath.toString());
            try (Checkpoint checkpoint = Checkpoint.open(folder)) {
                String file = String.valueOf(checkpoint.source().getFileName());
                Set<String> unused = new LinkedHashSet<>(checkpoint.names());
                LlamaModel model = LlamaModel.assemble(config, (name, shape) -> {
                    Tensor t = tensor(checkpoint, file, config, bnb, name, shape, unused);
                    return t.name(name);
                });
                ModelLoader.warnAboutUnusedTensors(folder, config, unused);
                DType dtype = model.embedTokens().dtype().isFloatingPoint() ? model.embedTokens().dtype() : DType.F32;
                LOG.info("loaded 4-bit {} ({} layers, {} parameters, {} MB of frozen weights) from {}", bnb.describe(),
                        config.numHiddenLayers(), model.baseParameterCount(), model.baseByteSize() >> 20, folder);
                return new Loaded(model, configText, dtype);
            }
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException(configPath + ": not valid JSON: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new UncheckedIOException("reading 4-bit model folder " + folder + ": " + e.getMessage(), e);
        }
    }

    private static Tensor tensor(Checkpoint checkpoint, String file, LlamaConfig config, BnbConfig bnb, String name,
                                 int[] shape, Set<String> unused) {
        String stateKey = BnbFormat.quantStateKey(checkpoint, name);
        if (stateKey != null) {
            if (shape.length != 2 || name.equals(config.architecture().embedName() + ".weight")) {
                throw new IllegalArgumentException(file + ": tensor " + name + " has a 4-bit quant state, but only linear "
                        + "weights can be 4-bit");
            }
            QuantizedStorage q = BnbFormat.read(checkpoint, name, stateKey, shape);
            if (q.type() != bnb.type() || q.isDoubleQuant() != bnb.doubleQuant()) {
                throw new IllegalArgumentException(file + ": tensor " + name + " is " + q.config() + " but config.json's "
                        + "quantization_config says " + bnb.describe());
            }
            unused.remove(name);
            unused.remove(stateKey);
            unused.removeAll(BnbFormat.auxiliaryKeys(name));
            return new Tensor(q, shape);
        }
        if (!checkpoint.contains(name)) {
            throw new IllegalArgumentException(file + ": tensor " + name + " is missing (config.json says "
                    + config.numHiddenLayers() + " layers" + (name.equals("lm_head.weight") ? " and tie_word_embeddings false" : "")
                    + ")");
        }
        TensorInfo info = checkpoint.info(name);
        if (!Arrays.equals(info.shape(), shape)) {
            throw new IllegalArgumentException(file + ": tensor " + name + " has shape " + Arrays.toString(info.shape())
                    + " but config.json implies " + Arrays.toString(shape));
        }
        if (info.dtype() != DType.F32 && info.dtype() != DType.BF16 && info.dtype() != DType.F16) {
            throw new IllegalArgumentException(file + ": tensor " + name + " is " + info.dtype() + " without a "
                    + name + ".quant_state.bitsandbytes__nf4/fp4 entry; unquantized weights must be F32, BF16 or F16");
        }
        unused.remove(name);
        return shape.length == 1 ? checkpoint.f32(name) : checkpoint.tensor(name);
    }

    /**
     * Writes {@code model} as a bitsandbytes 4-bit folder, with config.json made from the
     * model's configuration; unquantized tensors are written as BF16.
     */
    public static void save(LlamaModel model, Path folder) {
        save(model, model.config().toJson(), DType.BF16, folder);
    }

    /** Writes a loaded folder back (see the class comment for when this is byte-identical). */
    public static void save(Loaded loaded, Path folder) {
        save(loaded.model(), loaded.configJson(), loaded.dtype(), folder);
    }

    /**
     * Writes {@code model} as a bitsandbytes 4-bit folder: config.json is {@code configJson} with
     * a {@code quantization_config} describing the model's 4-bit weights (an existing one is kept
     * when it agrees), written as transformers writes it; model.safetensors holds every quantized
     * projection in bitsandbytes' layout and every other tensor as {@code dtype}.
     *
     * @throws IllegalArgumentException if the model has no 4-bit weight, or 4-bit weights of
     *     different types (one quantization_config cannot describe them)
     */
    public static void save(LlamaModel model, String configJson, DType dtype, Path folder) {
        if (dtype != DType.F32 && dtype != DType.BF16 && dtype != DType.F16) {
            throw new IllegalArgumentException("unquantized tensors are written as F32, BF16 or F16, not " + dtype);
        }
        QuantConfig quant = null;
        for (Map.Entry<String, Tensor> e : model.allTensors().entrySet()) {
            if (e.getValue().storage() instanceof QuantizedStorage q) {
                QuantConfig c = new QuantConfig(q.type(), QuantConfig.DEFAULT_BLOCKSIZE, q.isDoubleQuant());
                if (quant != null && !quant.equals(c)) {
                    throw new IllegalArgumentException(e.getKey() + " is " + q.config() + " but other weights are " + quant
                            + "; one quantization_config describes one type: requantize so that all agree");
                }
                quant = c;
            }
        }
        if (quant == null) {
            throw new IllegalArgumentException("the model has no 4-bit weight; quantize it first (Quantizer.quantize) or "
                    + "save it as a 16-bit folder with ModelLoader.save");
        }
        try {
            Files.createDirectories(folder);
            Files.writeString(folder.resolve("config.json"), configWithQuantization(configJson, quant, dtype));
            SafetensorsWriter writer = new SafetensorsWriter();
            for (Map.Entry<String, Tensor> e : model.allTensors().entrySet()) {
                Tensor t = e.getValue();
                if (t.storage() instanceof QuantizedStorage q) {
                    BnbFormat.write(writer, e.getKey(), q);
                } else {
                    writer.add(e.getKey(), t, dtype);
                }
            }
            writer.metadata("format", "pt");
            writer.write(folder.resolve("model.safetensors"));
        } catch (IOException e) {
            throw new UncheckedIOException("writing 4-bit model folder " + folder + ": " + e.getMessage(), e);
        }
        LOG.info("saved 4-bit model ({}) to {}", quant, folder);
    }

    /**
     * Quantizes a 16-bit Hugging Face folder into a bitsandbytes 4-bit folder: the decoder
     * projections become {@code config}, the rest is written in the dtype the source stores
     * its embedding in. What {@code lora4j quantize} does.
     *
     * @return the quantized model (as written) and its config.json
     */
    public static Loaded quantizeFolder(Path source, Path target, QuantConfig config) {
        Path configPath = source.resolve("config.json");
        String configText;
        try {
            configText = Files.readString(configPath);
            if (JSON.readTree(configText).has("quantization_config")) {
                throw new IllegalArgumentException(configPath + " has a quantization_config: the folder is quantized already; "
                        + "quantize the 16-bit model instead");
            }
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException(configPath + ": not valid JSON: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + configPath + ": " + e.getMessage(), e);
        }
        if (source.toAbsolutePath().normalize().equals(target.toAbsolutePath().normalize())) {
            throw new IllegalArgumentException("quantizing " + source + " into itself would overwrite the weights being read; "
                    + "give another target folder");
        }
        LlamaModel model = ModelLoader.load(source, ModelLoader.Options.defaults());
        DType dtype = model.embedTokens().storage() instanceof BufferStorage b ? b.dtype() : DType.F32;
        Quantizer.quantize(model, config);
        save(model, configText, dtype, target);
        try {
            return new Loaded(model, Files.readString(target.resolve("config.json")), dtype);
        } catch (IOException e) {
            throw new UncheckedIOException("reading back " + target.resolve("config.json") + ": " + e.getMessage(), e);
        }
    }

    /** config.json with quantization_config set (kept when it already describes {@code quant}). */
    static String configWithQuantization(String configJson, QuantConfig quant, DType dtype) {
        JsonNode tree;
        try {
            tree = JSON.readTree(configJson);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("config.json text is not valid JSON: " + e.getOriginalMessage(), e);
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> map = (Map<String, Object>) PythonJson.fromTree(tree);
        JsonNode existing = tree.get("quantization_config");
        boolean keep = false;
        if (existing != null && existing.isObject()) {
            try {
                BnbConfig current = BnbConfig.parse(tree, "config.json");
                keep = current.type() == quant.type() && current.doubleQuant() == quant.doubleQuant();
            } catch (IllegalArgumentException e) {
                keep = false;
            }
        }
        if (!keep) {
            map.put("quantization_config", BnbConfig.toMap(quant, dtype));
        }
        return PythonJson.dumps(map, 2, true) + "\n";
    }

    /** The part of transformers' BitsAndBytesConfig that lora4j reads. */
    record BnbConfig(QuantType type, boolean doubleQuant) {

        String describe() {
            return type.bnbName() + (doubleQuant ? " with double quantization" : "");
        }

        static BnbConfig parse(JsonNode config, String where) {
            JsonNode q = config.get("quantization_config");
            if (q == null || !q.isObject()) {
                throw new IllegalArgumentException(where + " has no quantization_config: this is not a 4-bit checkpoint; load "
                        + "it with LlamaModel.load, or quantize it with QuantizedCheckpoint.quantizeFolder");
            }
            String method = q.path("quant_method").asText("bitsandbytes");
            if (!method.equals("bitsandbytes")) {
                throw new IllegalArgumentException(where + ": quantization_config.quant_method \"" + method
                        + "\" is not supported; lora4j reads bitsandbytes 4-bit checkpoints");
            }
            boolean fourBit = q.path("load_in_4bit").asBoolean(q.path("_load_in_4bit").asBoolean(false));
            if (!fourBit) {
                throw new IllegalArgumentException(where + ": quantization_config.load_in_4bit is not true"
                        + (q.path("load_in_8bit").asBoolean(false) ? " (an 8-bit LLM.int8() checkpoint)" : "")
                        + "; lora4j reads bitsandbytes 4-bit (nf4/fp4) checkpoints");
            }
            String storage = q.path("bnb_4bit_quant_storage").asText("uint8");
            if (!storage.equals("uint8")) {
                throw new IllegalArgumentException(where + ": quantization_config.bnb_4bit_quant_storage \"" + storage
                        + "\" is not supported; lora4j reads weights packed in uint8 (the default)");
            }
            String type = q.path("bnb_4bit_quant_type").asText("fp4");
            QuantType parsed;
            try {
                parsed = QuantType.parse(type);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(where + ": quantization_config.bnb_4bit_quant_type \"" + type
                        + "\" is unknown; bitsandbytes defines nf4 and fp4");
            }
            return new BnbConfig(parsed, q.path("bnb_4bit_use_double_quant").asBoolean(false));
        }

        /** transformers' {@code BitsAndBytesConfig.to_dict()} for a 4-bit config. */
        static Map<String, Object> toMap(QuantConfig quant, DType computeDType) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("_load_in_4bit", true);
            m.put("_load_in_8bit", false);
            m.put("bnb_4bit_compute_dtype", BnbFormat.torchName(computeDType));
            m.put("bnb_4bit_quant_storage", "uint8");
            m.put("bnb_4bit_quant_type", quant.type().bnbName());
            m.put("bnb_4bit_use_double_quant", quant.doubleQuant());
            m.put("llm_int8_enable_fp32_cpu_offload", false);
            m.put("llm_int8_has_fp16_weight", false);
            m.put("llm_int8_skip_modules", null);
            m.put("llm_int8_threshold", 6.0);
            m.put("load_in_4bit", true);
            m.put("load_in_8bit", false);
            m.put("quant_method", "bitsandbytes");
            return m;
        }
    }
}
