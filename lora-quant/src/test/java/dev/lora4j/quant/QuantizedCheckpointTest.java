package dev.lora4j.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.autograd.Autograd;
import dev.lora4j.io.Checkpoint;
import dev.lora4j.io.SafetensorsWriter;
import dev.lora4j.io.TensorInfo;
import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.model.ModelLoader;
import dev.lora4j.nn.Linear;
import dev.lora4j.tensor.BufferStorage;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Hugging Face 4-bit folders as transformers + bitsandbytes save them. The synthetic folders here
 * are written key by key from bitsandbytes' layout (QuantState.as_dict(packed=True) under
 * Linear4bit's "weight." prefix, json.dumps of the non-tensor items), independently of lora4j's
 * writer, then read, checked value by value, and saved again byte for byte.
 */
class QuantizedCheckpointTest {

    /** config.json as transformers writes it: sorted keys, two-space indent, trailing newline. */
    private static final String CONFIG = """
            {
              "architectures": [
                "LlamaForCausalLM"
              ],
              "attention_bias": false,
              "attention_dropout": 0.0,
              "bos_token_id": 1,
              "eos_token_id": 2,
              "head_dim": 16,
              "hidden_act": "silu",
              "hidden_size": 64,
              "initializer_range": 0.02,
              "intermediate_size": 128,
              "max_position_embeddings": 128,
              "mlp_bias": false,
              "model_type": "llama",
              "num_attention_heads": 4,
              "num_hidden_layers": 1,
              "num_key_value_heads": 2,
              "pretraining_tp": 1,
              "quantization_config": {
                "_load_in_4bit": true,
                "_load_in_8bit": false,
                "bnb_4bit_compute_dtype": "bfloat16",
                "bnb_4bit_quant_storage": "uint8",
                "bnb_4bit_quant_type": "nf4",
                "bnb_4bit_use_double_quant": true,
                "llm_int8_enable_fp32_cpu_offload": false,
                "llm_int8_has_fp16_weight": false,
                "llm_int8_skip_modules": null,
                "llm_int8_threshold": 6.0,
                "load_in_4bit": true,
                "load_in_8bit": false,
                "quant_method": "bitsandbytes"
              },
              "rms_norm_eps": 1e-05,
              "rope_scaling": null,
              "rope_theta": 10000.0,
              "tie_word_embeddings": false,
              "torch_dtype": "bfloat16",
              "transformers_version": "4.46.3",
              "use_cache": true,
              "vocab_size": 32
            }
            """;

    private static final String[][] PROJECTIONS = {
        {"self_attn.q_proj", "64", "64"}, {"self_attn.k_proj", "32", "64"}, {"self_attn.v_proj", "32", "64"},
        {"self_attn.o_proj", "64", "64"}, {"mlp.gate_proj", "128", "64"}, {"mlp.up_proj", "128", "64"},
        {"mlp.down_proj", "64", "128"}};

    private record Entry(DType dtype, int[] shape, byte[] bytes) {
    }

    /** The tensors of a bitsandbytes NF4 + double-quantization checkpoint of a 1-layer model, in a fixed order. */
    private static Map<String, Entry> bnbTensors() {
        SplittableRandom rng = new SplittableRandom(2024);
        Map<String, Entry> t = new LinkedHashMap<>();
        t.put("model.embed_tokens.weight", bf16(rng, 32, 64));
        t.put("model.layers.0.input_layernorm.weight", bf16(rng, 64));
        t.put("model.layers.0.post_attention_layernorm.weight", bf16(rng, 64));
        t.put("model.norm.weight", bf16(rng, 64));
        t.put("lm_head.weight", bf16(rng, 32, 64));
        for (String[] p : PROJECTIONS) {
            String w = "model.layers.0." + p[0] + ".weight";
            int out = Integer.parseInt(p[1]);
            int in = Integer.parseInt(p[2]);
            int n = out * in;
            int blocks = n / 64;
            byte[] packed = new byte[n / 2];
            byte[] codes = new byte[blocks];
            for (int i = 0; i < packed.length; i++) {
                packed[i] = (byte) rng.nextInt(256);
            }
            for (int i = 0; i < blocks; i++) {
                codes[i] = (byte) rng.nextInt(256);
            }
            t.put(w, new Entry(DType.U8, new int[] {n / 2, 1}, packed));
            t.put(w + ".absmax", new Entry(DType.U8, new int[] {blocks}, codes));
            t.put(w + ".quant_map", f32(QuantMaps.nf4()));
            t.put(w + ".nested_absmax", f32(new float[] {0.0123f + out * 1e-5f}));
            t.put(w + ".nested_quant_map", f32(QuantMaps.dynamicSigned()));
            String json = "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"bfloat16\", \"shape\": [" + out + ", " + in
                    + "], \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": 0.031876906752586365}";
            byte[] bytes = json.getBytes(StandardCharsets.UTF_8);
            t.put(w + ".quant_state.bitsandbytes__nf4", new Entry(DType.U8, new int[] {bytes.length}, bytes));
        }
        return t;
    }

    private static Entry bf16(SplittableRandom rng, int... shape) {
        float[] v = Tensor.normal(rng.split(), 0f, 0.5f, Math.toIntExact(Tensor.numel(shape))).data();
        ByteBuffer buf = ByteBuffer.allocate(2 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float f : v) {
            buf.putShort(DType.floatToBf16(f));
        }
        return new Entry(DType.BF16, shape, buf.array());
    }

    private static Entry f32(float[] values) {
        ByteBuffer buf = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float f : values) {
            buf.putFloat(f);
        }
        return new Entry(DType.F32, new int[] {values.length}, buf.array());
    }

    private static float[] floats(Entry e) {
        float[] out = new float[e.bytes().length / 4];
        ByteBuffer.wrap(e.bytes()).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out);
        return out;
    }

    private static Path write(Path dir, String config, Map<String, Entry> tensors) throws IOException {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("config.json"), config);
        SafetensorsWriter writer = new SafetensorsWriter();
        tensors.forEach((name, e) -> writer.add(name, e.dtype(), e.shape(), e.bytes()));
        writer.metadata("format", "pt");
        writer.write(dir.resolve("model.safetensors"));
        return dir;
    }

    @Test
    void loadsBitsandbytesLayoutAndDequantizesAsBitsandbytesDoes(@TempDir Path tmp) throws IOException {
        Map<String, Entry> tensors = bnbTensors();
        LlamaModel model = QuantizedCheckpoint.load(write(tmp.resolve("bnb"), CONFIG, tensors));
        float[] nf4 = QuantMaps.nf4();
        float[] map = QuantMaps.dynamicSigned();
        float offset = (float) 0.031876906752586365;
        for (String[] p : PROJECTIONS) {
            String w = "model.layers.0." + p[0] + ".weight";
            Tensor weight = model.allTensors().get(w);
            QuantizedStorage q = assertInstanceOf(QuantizedStorage.class, weight.storage(), w);
            assertEquals(QuantConfig.NF4_DQ, q.config());
            assertEquals(DType.BF16, q.sourceDType());
            byte[] packed = tensors.get(w).bytes();
            byte[] codes = tensors.get(w + ".absmax").bytes();
            float nestedAbsmax = floats(tensors.get(w + ".nested_absmax"))[0];
            float[] values = weight.toFloatArray();
            for (int i = 0; i < values.length; i++) {
                int code = (packed[i / 2] >> (i % 2 == 0 ? 4 : 0)) & 0xF;
                float absmax = map[codes[i / 64] & 0xFF] * nestedAbsmax + offset;
                assertEquals(nf4[code] * absmax, values[i], 0f, w + " element " + i);
            }
        }
        Tensor embed = model.embedTokens();
        assertEquals(DType.BF16, embed.dtype(), "unquantized matrices stay as stored");
    }

    @Test
    void savingALoadedFolderReproducesItByteForByte(@TempDir Path tmp) throws IOException {
        Path source = write(tmp.resolve("bnb"), CONFIG, bnbTensors());
        QuantizedCheckpoint.Loaded loaded = QuantizedCheckpoint.read(source);
        Path copy = tmp.resolve("copy");
        QuantizedCheckpoint.save(loaded, copy);
        assertArrayEquals(Files.readAllBytes(source.resolve("model.safetensors")), Files.readAllBytes(copy.resolve("model.safetensors")));
        assertEquals(CONFIG, Files.readString(copy.resolve("config.json")));
    }

    @Test
    void fourBitForwardEqualsForwardOnTheDequantizedWeights(@TempDir Path tmp) throws IOException {
        Path source = write(tmp.resolve("bnb"), CONFIG, bnbTensors());
        LlamaModel quantized = QuantizedCheckpoint.load(source);
        LlamaModel dense = QuantizedCheckpoint.load(source);
        for (Linear lin : dense.linears().values()) {
            Tensor w = lin.weight();
            lin.setWeight(Tensor.of(w.toFloatArray(), w.shape()).name(w.name()));
        }
        int[] tokens = {1, 5, 9, 30, 2, 7, 7, 11};
        Autograd.Scope scope = Autograd.noGrad();
        try {
            assertArrayEquals(dense.forward(tokens, 2).toFloatArray(), quantized.forward(tokens, 2).toFloatArray());
        } finally {
            scope.close();
        }
    }

    @Test
    void quantizeFolderWritesWhatBitsandbytesWouldAndReadsBackIdentically(@TempDir Path tmp) throws IOException {
        Path stories = TestFixtures.require("stories260K/hf");
        Path target = tmp.resolve("nf4");
        QuantizedCheckpoint.Loaded written = QuantizedCheckpoint.quantizeFolder(stories, target, QuantConfig.NF4_DQ);
        assertTrue(QuantizedCheckpoint.isQuantized(target));
        assertTrue(!QuantizedCheckpoint.isQuantized(stories));

        String original = Files.readString(stories.resolve("config.json"));
        String block = """
                  "quantization_config": {
                    "_load_in_4bit": true,
                    "_load_in_8bit": false,
                    "bnb_4bit_compute_dtype": "float32",
                    "bnb_4bit_quant_storage": "uint8",
                    "bnb_4bit_quant_type": "nf4",
                    "bnb_4bit_use_double_quant": true,
                    "llm_int8_enable_fp32_cpu_offload": false,
                    "llm_int8_has_fp16_weight": false,
                    "llm_int8_skip_modules": null,
                    "llm_int8_threshold": 6.0,
                    "load_in_4bit": true,
                    "load_in_8bit": false,
                    "quant_method": "bitsandbytes"
                  },
                """;
        String expected = original.replace("  \"rms_norm_eps\"", block + "  \"rms_norm_eps\"");
        assertEquals(expected, Files.readString(target.resolve("config.json")));

        LlamaModel source = ModelLoader.load(stories, ModelLoader.Options.defaults());
        QuantizedCheckpoint.Loaded loaded = QuantizedCheckpoint.read(target);
        for (Map.Entry<String, Tensor> e : loaded.model().allTensors().entrySet()) {
            Tensor t = e.getValue();
            if (t.storage() instanceof QuantizedStorage q) {
                QuantizedStorage fresh = (QuantizedStorage) Quantizer.quantize(source.allTensors().get(e.getKey()),
                        QuantConfig.NF4_DQ).storage();
                assertArrayEquals(fresh.packed(), q.packed(), e.getKey());
                assertArrayEquals(fresh.nested().codes(), q.nested().codes(), e.getKey());
                assertArrayEquals(fresh.nested().absmax(), q.nested().absmax(), e.getKey());
                assertEquals(fresh.nested().offset(), q.nested().offset(), e.getKey());
                assertEquals(DType.F32, q.sourceDType());
                assertEquals(BnbFormat.quantStateJson(fresh), new String(q.storedQuantState(), StandardCharsets.UTF_8));
            } else {
                assertArrayEquals(source.allTensors().get(e.getKey()).toFloatArray(), t.toFloatArray(), e.getKey());
            }
        }
        assertEquals(35, loaded.model().allTensors().values().stream().filter(t -> t.storage() instanceof QuantizedStorage)
                .count(), "7 projections x 5 layers");
        assertEquals(written.model().baseByteSize(), loaded.model().baseByteSize());

        Path again = tmp.resolve("again");
        QuantizedCheckpoint.save(loaded, again);
        assertArrayEquals(Files.readAllBytes(target.resolve("model.safetensors")), Files.readAllBytes(again.resolve("model.safetensors")));
        assertEquals(Files.readString(target.resolve("config.json")), Files.readString(again.resolve("config.json")));
    }

    @Test
    void quantStateJsonIsPythonsJsonDumpsInBitsandbytesOrder() {
        float[] x = new float[4 * 64];
        for (int b = 0; b < 4; b++) {
            x[b * 64 + 5] = b + 1; // absmax 1, 2, 3, 4: mean 2.5
        }
        Tensor w = Tensor.of(x, 4, 64);
        QuantizedStorage dq = (QuantizedStorage) Quantizer.quantize(w, QuantConfig.NF4_DQ).storage();
        assertEquals("{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [4, 64], "
                + "\"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": 2.5}", BnbFormat.quantStateJson(dq));
        Tensor half = new Tensor(BufferStorage.of(x, DType.BF16), 4, 64);
        QuantizedStorage fp4 = (QuantizedStorage) Quantizer.quantize(half, QuantConfig.FP4.withBlocksize(128)).storage();
        assertEquals("{\"quant_type\": \"fp4\", \"blocksize\": 128, \"dtype\": \"bfloat16\", \"shape\": [4, 64]}",
                BnbFormat.quantStateJson(fp4));
    }

    @Test
    void savesFreshlyQuantizedModelsInTheSameLayout(@TempDir Path tmp) throws IOException {
        LlamaModel model = LlamaModel.initialize(LlamaConfig.parse(CONFIG, "config.json"), 8);
        Quantizer.quantize(model, QuantConfig.FP4);
        Path dir = tmp.resolve("fp4");
        QuantizedCheckpoint.save(model, dir);
        try (Checkpoint checkpoint = Checkpoint.open(dir)) {
            String w = "model.layers.0.mlp.down_proj.weight";
            assertEquals("U8[4096, 1]", describe(checkpoint.info(w)));
            assertEquals("F32[128]", describe(checkpoint.info(w + ".absmax")));
            assertEquals("F32[16]", describe(checkpoint.info(w + ".quant_map")));
            assertTrue(checkpoint.contains(w + ".quant_state.bitsandbytes__fp4"));
            assertTrue(!checkpoint.contains(w + ".nested_absmax"));
            assertEquals("BF16[32, 64]", describe(checkpoint.info("lm_head.weight")));
        }
        String config = Files.readString(dir.resolve("config.json"));
        assertTrue(config.contains("\"bnb_4bit_quant_type\": \"fp4\""), config);
        assertTrue(config.contains("\"bnb_4bit_use_double_quant\": false"), config);
        LlamaModel back = QuantizedCheckpoint.load(dir);
        Tensor original = model.allTensors().get("model.layers.0.self_attn.q_proj.weight");
        assertArrayEquals(original.toFloatArray(), back.allTensors().get("model.layers.0.self_attn.q_proj.weight").toFloatArray());
    }

    private static String describe(TensorInfo info) {
        return info.dtype() + Arrays.toString(info.shape());
    }

    // ---------------------------------------------------------------- bad input

    private static String failure(Path tmp, String config, Consumer<Map<String, Entry>> change) throws IOException {
        Map<String, Entry> tensors = bnbTensors();
        change.accept(tensors);
        Path dir = write(tmp.resolve("bad"), config, tensors);
        return assertThrows(IllegalArgumentException.class, () -> QuantizedCheckpoint.load(dir)).getMessage();
    }

    private static final String Q = "model.layers.0.self_attn.q_proj.weight";

    private static void replaceJson(Map<String, Entry> t, String weight, String from, String to) {
        String key = weight + ".quant_state.bitsandbytes__nf4";
        String json = new String(t.get(key).bytes(), StandardCharsets.UTF_8).replace(from, to);
        byte[] bytes = json.getBytes(StandardCharsets.UTF_8);
        t.put(key, new Entry(DType.U8, new int[] {bytes.length}, bytes));
    }

    @Test
    void quantStateShapeThatDisagreesWithTheConfigIsNamed(@TempDir Path tmp) throws IOException {
        String m = failure(tmp, CONFIG, t -> replaceJson(t, Q, "[64, 64]", "[64, 32]"));
        assertTrue(m.contains(Q) && m.contains("quant_state shape [64, 32] disagrees with the shape [64, 64]"), m);
    }

    @Test
    void unknownQuantTypeIsNamed(@TempDir Path tmp) throws IOException {
        String m = failure(tmp, CONFIG, t -> t.put(Q + ".quant_state.bitsandbytes__nf5",
                t.remove(Q + ".quant_state.bitsandbytes__nf4")));
        assertTrue(m.contains(Q) && m.contains("unknown quant type 'nf5'"), m);
    }

    @Test
    void unsupportedBlocksizeIsNamed(@TempDir Path tmp) throws IOException {
        String m = failure(tmp, CONFIG, t -> replaceJson(t, Q, "\"blocksize\": 64", "\"blocksize\": 48"));
        assertTrue(m.contains(Q + ".quant_state.bitsandbytes__nf4") && m.contains("blocksize 48 is not supported"), m);
    }

    @Test
    void truncatedPackedTensorIsNamedWithBothSizes(@TempDir Path tmp) throws IOException {
        String m = failure(tmp, CONFIG, t -> t.put(Q, new Entry(DType.U8, new int[] {2000, 1}, new byte[2000])));
        assertTrue(m.contains("tensor " + Q + " is U8[2000, 1] but should be U8[2048, 1]") && m.contains("truncated"), m);
    }

    @Test
    void absmaxCountThatDisagreesWithTheBlocksizeIsNamed(@TempDir Path tmp) throws IOException {
        String m = failure(tmp, CONFIG, t -> replaceJson(t, Q, "\"blocksize\": 64", "\"blocksize\": 128"));
        assertTrue(m.contains(Q + ".absmax is U8[64] but should be U8[32]"), m);
    }

    @Test
    void missingNestedTensorsAreNamed(@TempDir Path tmp) throws IOException {
        String m = failure(tmp, CONFIG, t -> {
            t.remove(Q + ".nested_absmax");
            t.remove(Q + ".nested_quant_map");
        });
        assertTrue(m.contains(Q) && m.contains("describes double quantization but") && m.contains("missing"), m);
    }

    @Test
    void quantTypeThatDisagreesWithTheConfigIsNamed(@TempDir Path tmp) throws IOException {
        String m = failure(tmp, CONFIG.replace("\"bnb_4bit_quant_type\": \"nf4\"", "\"bnb_4bit_quant_type\": \"fp4\""), t -> { });
        assertTrue(m.contains("is nf4-dq but config.json's quantization_config says fp4 with double quantization"), m);
    }

    @Test
    void foldersWithoutBitsandbytesFourBitConfigAreRefused(@TempDir Path tmp) throws IOException {
        String plain = CONFIG.replaceAll("(?s)  \"quantization_config\": \\{.*?\\n  },\\n", "");
        assertTrue(failure(tmp, plain, t -> { }).contains("has no quantization_config"));
        String gptq = CONFIG.replace("\"quant_method\": \"bitsandbytes\"", "\"quant_method\": \"gptq\"");
        assertTrue(failure(tmp, gptq, t -> { }).contains("quant_method \"gptq\" is not supported"));
        String eightBit = CONFIG.replace("\"load_in_4bit\": true", "\"load_in_4bit\": false")
                .replace("\"_load_in_4bit\": true", "\"_load_in_4bit\": false");
        assertTrue(failure(tmp, eightBit, t -> { }).contains("load_in_4bit is not true"));
    }

    @Test
    void foreignQuantMapIsRefused(@TempDir Path tmp) throws IOException {
        String m = failure(tmp, CONFIG, t -> t.put(Q + ".quant_map", f32(QuantMaps.fp4())));
        assertTrue(m.contains(Q + ".quant_map[0] is 0.0 but bitsandbytes' nf4 table has -1.0"), m);
    }

    @Test
    void brokenQuantStateJsonIsNamed(@TempDir Path tmp) throws IOException {
        String m = failure(tmp, CONFIG, t -> replaceJson(t, Q, "}", ""));
        assertTrue(m.contains(Q + ".quant_state.bitsandbytes__nf4 is not valid JSON"), m);
        String extra = failure(tmp, CONFIG, t -> replaceJson(t, Q, "\"quant_type\"", "\"qtype\": 1, \"quant_type\""));
        assertTrue(extra.contains("unknown key \"qtype\""), extra);
    }
}
