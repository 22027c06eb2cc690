package dev.lora4j.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.io.SafetensorsFile;
import dev.lora4j.io.SafetensorsWriter;
import dev.lora4j.io.TensorInfo;
import dev.lora4j.nn.Linear;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.testing.TinyModels;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.function.BiConsumer;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Hugging Face folder save/load: round trips in F32/BF16/F16, tied heads, Qwen2 biases, RoPE scaling, errors. */
class ModelLoaderTest {
    private static final int[] TOKENS = TinyModels.tokens(2 * 9, 48, 5);

    @TempDir
    Path tmp;

    /** A model whose every tensor (norms and biases included) is random, so a round trip checks all of them. */
    private static LlamaModel randomModel(LlamaConfig config, long seed) {
        LlamaModel model = LlamaModel.initialize(config, seed);
        long s = seed * 1000;
        for (Map.Entry<String, Tensor> e : model.allTensors().entrySet()) {
            TinyModels.randomize(e.getValue(), 0.05f, s++);
            if (e.getKey().endsWith("norm.weight")) {
                float[] d = e.getValue().data();
                for (int i = 0; i < d.length; i++) {
                    d[i] += 1f;
                }
            }
        }
        return model;
    }

    private static void roundAllTensors(LlamaModel model, UnaryOperator<Float> rounding) {
        for (Tensor t : model.allTensors().values()) {
            float[] d = t.data();
            for (int i = 0; i < d.length; i++) {
                d[i] = rounding.apply(d[i]);
            }
        }
    }

    private static void assertSameTensors(LlamaModel expected, LlamaModel actual) {
        Map<String, Tensor> e = expected.allTensors();
        Map<String, Tensor> a = actual.allTensors();
        assertEquals(List.copyOf(e.keySet()), List.copyOf(a.keySet()));
        for (String name : e.keySet()) {
            assertArrayEquals(e.get(name).shape(), a.get(name).shape(), name);
            assertArrayEquals(e.get(name).toFloatArray(), a.get(name).toFloatArray(), name);
        }
    }

    // ---------------------------------------------------------------- round trips

    @Test
    void f32RoundTripIsExact() throws IOException {
        LlamaModel model = randomModel(TinyModels.gqa(), 1);
        ModelLoader.save(model, tmp, DType.F32);
        LlamaModel mapped = LlamaModel.load(tmp);
        LlamaModel heap = ModelLoader.load(tmp, ModelLoader.Options.defaults().frozenDType(DType.F32));
        assertEquals(model.config(), mapped.config());
        assertSameTensors(model, mapped);
        assertSameTensors(model, heap);
        assertEquals(DType.F32, mapped.linears().get("lm_head").weight().dtype());
        float[] expected = TinyModels.logits(model, TOKENS, 2);
        assertArrayEquals(expected, TinyModels.logits(mapped, TOKENS, 2));
        assertArrayEquals(expected, TinyModels.logits(heap, TOKENS, 2));
        try (SafetensorsFile f = SafetensorsFile.open(tmp.resolve("model.safetensors"))) {
            assertEquals(model.allTensors().keySet(), f.names());
            assertEquals(Map.of("format", "pt"), f.metadata());
        }
    }

    @Test
    void bf16RoundTripEqualsTheModelRoundedToBf16() throws IOException {
        LlamaModel model = randomModel(TinyModels.gqa(), 2);
        ModelLoader.save(model, tmp, DType.BF16);
        try (SafetensorsFile f = SafetensorsFile.open(tmp.resolve("model.safetensors"))) {
            for (TensorInfo info : f.infos()) {
                assertEquals(DType.BF16, info.dtype(), info.name());
            }
        }
        LlamaModel loaded = LlamaModel.load(tmp);
        assertEquals(DType.BF16, loaded.linears().get("model.layers.0.mlp.up_proj").weight().dtype(),
                "frozen matrices stay BF16 (mapped) by default");
        assertEquals(DType.F32, loaded.norm().dtype(), "norm weights are widened to F32");
        float[] unrounded = TinyModels.logits(model, TOKENS, 2);
        roundAllTensors(model, v -> DType.bf16ToFloat(DType.floatToBf16(v)));
        assertSameTensors(model, loaded);
        float[] expected = TinyModels.logits(model, TOKENS, 2);
        assertArrayEquals(expected, TinyModels.logits(loaded, TOKENS, 2));
        assertTrue(TinyModels.maxAbsDiff(unrounded, expected) > 0, "BF16 rounding must be visible in the logits");
        // converting to heap F32 on load gives the same values
        LlamaModel widened = ModelLoader.load(tmp, ModelLoader.Options.defaults().frozenDType(DType.F32));
        assertArrayEquals(expected, TinyModels.logits(widened, TOKENS, 2));
    }

    @Test
    void f32CheckpointConvertedToBf16OrF16OnLoad() {
        LlamaModel model = randomModel(TinyModels.gqa(), 3);
        ModelLoader.save(model, tmp, DType.F32);
        LlamaModel bf16 = ModelLoader.load(tmp, ModelLoader.Options.defaults().frozenDType(DType.BF16));
        LlamaModel f16 = ModelLoader.load(tmp, ModelLoader.Options.defaults().frozenDType(DType.F16));
        assertEquals(DType.BF16, bf16.embedTokens().dtype());
        assertEquals(DType.F16, f16.linears().get("lm_head").weight().dtype());
        assertEquals(model.baseByteSize() / 2 + sumOfNorms(model) / 2, bf16.baseByteSize(), "matrices halve, norms stay F32");

        LlamaModel roundedBf16 = randomModel(TinyModels.gqa(), 3);
        roundMatrices(roundedBf16, v -> DType.bf16ToFloat(DType.floatToBf16(v)));
        assertArrayEquals(TinyModels.logits(roundedBf16, TOKENS, 2), TinyModels.logits(bf16, TOKENS, 2));
        LlamaModel roundedF16 = randomModel(TinyModels.gqa(), 3);
        roundMatrices(roundedF16, v -> DType.f16ToFloat(DType.floatToF16(v)));
        assertArrayEquals(TinyModels.logits(roundedF16, TOKENS, 2), TinyModels.logits(f16, TOKENS, 2));
    }

    private static long sumOfNorms(LlamaModel model) {
        return model.allTensors().values().stream().filter(t -> t.rank() == 1).mapToLong(t -> 4 * t.numel()).sum();
    }

    /** Norms are kept in F32 by the loader; only matrices are converted. */
    private static void roundMatrices(LlamaModel model, UnaryOperator<Float> rounding) {
        for (Tensor t : model.allTensors().values()) {
            if (t.rank() == 2) {
                float[] d = t.data();
                for (int i = 0; i < d.length; i++) {
                    d[i] = rounding.apply(d[i]);
                }
            }
        }
    }

    @Test
    void tiedEmbeddingsWriteNoHeadAndShareTheEmbedding() throws IOException {
        LlamaModel model = randomModel(TinyModels.gqaBuilder().tieWordEmbeddings(true).build(), 4);
        assertSame(model.embedTokens(), model.linears().get("lm_head").weight());
        ModelLoader.save(model, tmp, DType.F32);
        try (SafetensorsFile f = SafetensorsFile.open(tmp.resolve("model.safetensors"))) {
            assertFalse(f.contains("lm_head.weight"));
            assertTrue(f.contains("model.embed_tokens.weight"));
        }
        LlamaModel loaded = LlamaModel.load(tmp);
        assertTrue(loaded.config().tieWordEmbeddings());
        assertSame(loaded.embedTokens(), loaded.linears().get("lm_head").weight());
        assertArrayEquals(TinyModels.logits(model, TOKENS, 2), TinyModels.logits(loaded, TOKENS, 2));
    }

    @Test
    void tiedCheckpointThatStillStoresTheHeadLoads() throws IOException {
        // some exporters write lm_head.weight even when it is tied; it is ignored, not an error
        LlamaModel model = randomModel(TinyModels.gqaBuilder().tieWordEmbeddings(true).build(), 5);
        ModelLoader.save(model, tmp, DType.F32);
        rewrite(tmp, (file, writer) -> {
            copyAllBut(file, writer, "");
            writer.add("lm_head.weight", model.embedTokens());
        });
        assertArrayEquals(TinyModels.logits(model, TOKENS, 2), TinyModels.logits(LlamaModel.load(tmp), TOKENS, 2));
    }

    @Test
    void qwen2BiasesBuildAndRoundTrip() throws IOException {
        LlamaConfig qwen = TinyModels.gqaBuilder().modelType("qwen2").build();
        assertTrue(qwen.qkvBias());
        LlamaModel model = randomModel(qwen, 6);
        LlamaModel.DecoderLayer layer0 = model.layers().get(0);
        Map<String, Linear> linears = model.linears();
        for (String m : List.of("q_proj", "k_proj", "v_proj")) {
            Linear lin = linears.get("model.layers.1.self_attn." + m);
            assertNotNull(lin.bias(), m + " has a bias in qwen2");
            assertEquals(lin.outFeatures(), lin.bias().dim(0));
        }
        assertNull(linears.get("model.layers.1.self_attn.o_proj").bias(), "qwen2's o_proj has no bias");
        assertNull(linears.get("model.layers.1.mlp.up_proj").bias());
        assertNotNull(layer0.inputLayernorm);

        ModelLoader.save(model, tmp, DType.F32);
        try (SafetensorsFile f = SafetensorsFile.open(tmp.resolve("model.safetensors"))) {
            assertTrue(f.contains("model.layers.0.self_attn.k_proj.bias"));
            assertFalse(f.contains("model.layers.0.self_attn.o_proj.bias"));
        }
        String json = Files.readString(tmp.resolve("config.json"));
        assertTrue(json.contains("\"model_type\": \"qwen2\"") && json.contains("Qwen2ForCausalLM"), json);
        LlamaModel loaded = LlamaModel.load(tmp);
        assertEquals(qwen, loaded.config());
        assertSameTensors(model, loaded);
        float[] withBias = TinyModels.logits(model, TOKENS, 2);
        assertArrayEquals(withBias, TinyModels.logits(loaded, TOKENS, 2));
        // the biases take part in the forward pass
        java.util.Arrays.fill(linears.get("model.layers.0.self_attn.q_proj").bias().data(), 0f);
        assertTrue(TinyModels.maxAbsDiff(withBias, TinyModels.logits(model, TOKENS, 2)) > 1e-6);
    }

    @Test
    void llama3RopeScalingConfigLoadsAndRoundTrips() throws IOException {
        String json = TinyModels.gqa().toJson().replace("\"rope_scaling\": null",
                "\"rope_scaling\": {\"factor\": 8.0, \"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0, "
                        + "\"original_max_position_embeddings\": 32, \"rope_type\": \"llama3\"}");
        assertTrue(json.contains("llama3"), "the base config must serialize rope_scaling as null: " + json);
        LlamaModel plain = randomModel(TinyModels.gqa(), 7);
        ModelLoader.save(plain, tmp, DType.F32);
        Files.writeString(tmp.resolve("config.json"), json);
        LlamaModel scaled = LlamaModel.load(tmp);
        assertEquals(LlamaConfig.RopeScaling.llama3(8, 1, 4, 32), scaled.config().ropeScaling());
        // same weights, other RoPE frequencies: position-dependent logits change
        assertTrue(TinyModels.maxAbsDiff(TinyModels.logits(plain, TOKENS, 2), TinyModels.logits(scaled, TOKENS, 2)) > 1e-6);
        Path again = tmp.resolve("again");
        ModelLoader.save(scaled, again, DType.F32);
        LlamaModel reloaded = LlamaModel.load(again);
        assertEquals(scaled.config(), reloaded.config());
        assertArrayEquals(TinyModels.logits(scaled, TOKENS, 2), TinyModels.logits(reloaded, TOKENS, 2));
    }

    @Test
    void loadingLeavesNoFileOpen() {
        ModelLoader.save(randomModel(TinyModels.gqa(), 8), tmp, DType.F32);
        long before = TinyModels.openFileDescriptors();
        LlamaModel last = null;
        for (int i = 0; i < 16; i++) {
            last = LlamaModel.load(tmp);
        }
        assertTrue(TinyModels.openFileDescriptors() - before < 4, "open descriptors grew from " + before + " to "
                + TinyModels.openFileDescriptors());
        // mapped weights stay readable after the file is closed
        assertArrayEquals(TinyModels.logits(randomModel(TinyModels.gqa(), 8), TOKENS, 2), TinyModels.logits(last, TOKENS, 2));
    }

    // ---------------------------------------------------------------- errors

    private static void rewrite(Path folder, BiConsumer<SafetensorsFile, SafetensorsWriter> edit) throws IOException {
        Path file = folder.resolve("model.safetensors");
        byte[] original = Files.readAllBytes(file);
        Path copy = folder.resolve("original.safetensors.bak");
        Files.write(copy, original);
        try (SafetensorsFile f = SafetensorsFile.open(copy)) {
            SafetensorsWriter writer = new SafetensorsWriter();
            edit.accept(f, writer);
            writer.write(file);
        }
        Files.delete(copy);
    }

    private static void copyAllBut(SafetensorsFile file, SafetensorsWriter writer, String skipped) {
        for (TensorInfo info : file.infos()) {
            if (!info.name().equals(skipped)) {
                writer.add(info.name(), info.dtype(), info.shape(), file.bytes(info.name()));
            }
        }
    }

    @Test
    void missingTensorNamesFileAndTensor() throws IOException {
        ModelLoader.save(randomModel(TinyModels.gqa(), 9), tmp, DType.F32);
        String name = "model.layers.1.mlp.up_proj.weight";
        rewrite(tmp, (file, writer) -> copyAllBut(file, writer, name));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LlamaModel.load(tmp));
        assertTrue(e.getMessage().contains("model.safetensors") && e.getMessage().contains(name)
                && e.getMessage().contains("missing") && e.getMessage().contains("2 layers"), e.getMessage());
    }

    @Test
    void missingHeadOfAnUntiedModelSaysSo() throws IOException {
        ModelLoader.save(randomModel(TinyModels.gqa(), 10), tmp, DType.F32);
        rewrite(tmp, (file, writer) -> copyAllBut(file, writer, "lm_head.weight"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LlamaModel.load(tmp));
        assertTrue(e.getMessage().contains("lm_head.weight") && e.getMessage().contains("tie_word_embeddings false"),
                e.getMessage());
    }

    @Test
    void wrongShapeNamesBothShapes() throws IOException {
        ModelLoader.save(randomModel(TinyModels.gqa(), 11), tmp, DType.F32);
        String name = "model.layers.0.self_attn.k_proj.weight";
        rewrite(tmp, (file, writer) -> {
            copyAllBut(file, writer, name);
            writer.add(name, Tensor.zeros(32, 32));
        });
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LlamaModel.load(tmp));
        // 2 key/value heads of 8 dimensions: k_proj is [16, 32]
        assertTrue(e.getMessage().contains(name) && e.getMessage().contains("[32, 32]") && e.getMessage().contains("[16, 32]"),
                e.getMessage());
    }

    @Test
    void integerTensorIsRejected() throws IOException {
        ModelLoader.save(randomModel(TinyModels.gqa(), 12), tmp, DType.F32);
        String name = "model.norm.weight";
        rewrite(tmp, (file, writer) -> {
            copyAllBut(file, writer, name);
            writer.addLongs(name, DType.I32, new int[] {32}, new long[32]);
        });
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LlamaModel.load(tmp));
        assertTrue(e.getMessage().contains(name) && e.getMessage().contains("I32"), e.getMessage());
    }

    @Test
    void unsupportedModelTypeListsTheSupportedOnes() throws IOException {
        ModelLoader.save(randomModel(TinyModels.gqa(), 13), tmp, DType.F32);
        Path config = tmp.resolve("config.json");
        Files.writeString(config, Files.readString(config).replace("\"model_type\": \"llama\"", "\"model_type\": \"gpt2\""));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LlamaModel.load(tmp));
        assertTrue(e.getMessage().contains("config.json") && e.getMessage().contains("'gpt2'")
                && e.getMessage().contains("llama, mistral, qwen2"), e.getMessage());
    }

    @Test
    void unsupportedRopeScalingListsTheSupportedOnes() throws IOException {
        ModelLoader.save(randomModel(TinyModels.gqa(), 14), tmp, DType.F32);
        Path config = tmp.resolve("config.json");
        Files.writeString(config, Files.readString(config).replace("\"rope_scaling\": null",
                "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LlamaModel.load(tmp));
        assertTrue(e.getMessage().contains("'yarn'") && e.getMessage().contains("llama3, linear"), e.getMessage());
    }

    @Test
    void missingConfigOrFolderIsExplained() throws IOException {
        Path nowhere = tmp.resolve("no-such-model");
        IllegalArgumentException folder = assertThrows(IllegalArgumentException.class, () -> LlamaModel.load(nowhere));
        assertTrue(folder.getMessage().contains(nowhere.toString()) && folder.getMessage().contains("does not exist"),
                folder.getMessage());

        ModelLoader.save(randomModel(TinyModels.gqa(), 15), tmp, DType.F32);
        Files.delete(tmp.resolve("config.json"));
        IllegalArgumentException config = assertThrows(IllegalArgumentException.class, () -> LlamaModel.load(tmp));
        assertTrue(config.getMessage().contains("config.json is missing"), config.getMessage());
    }

    @Test
    void missingWeightsFileIsExplained() throws IOException {
        ModelLoader.save(randomModel(TinyModels.gqa(), 16), tmp, DType.F32);
        Files.delete(tmp.resolve("model.safetensors"));
        RuntimeException e = assertThrows(RuntimeException.class, () -> LlamaModel.load(tmp));
        assertTrue(e.getMessage().contains("model.safetensors"), e.getMessage());
    }
}
