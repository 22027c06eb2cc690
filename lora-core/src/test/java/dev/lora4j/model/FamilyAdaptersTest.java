package dev.lora4j.model;

import static dev.lora4j.testing.Fixtures.assertClose;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.autograd.Autograd;
import dev.lora4j.lora.AdapterConfigJson;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.lora.Target;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.testing.Fixtures;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeSet;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * PEFT adapters in and out for every family: the golden adapters save and load back unchanged,
 * new adapters on Target.ALL land on the family's own (fused) modules, and a merged model saves
 * as a Hugging Face folder that loads back with the same logits.
 */
class FamilyAdaptersTest {
    private static final int[] TOKENS = {5, 17, 3, 42, 8, 23, 11, 60, 2, 31, 7, 19};

    private static float[] logits(LlamaModel model) {
        try (Autograd.Scope ignored = Autograd.noGrad()) {
            return model.forward(TOKENS, 2).toFloatArray();
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"qwen3", "phi3", "mistral-swa", "phi-1_5", "falcon", "gemma2", "gemma3"})
    void goldenAdapterRoundTrips(String family, @TempDir Path tmp) throws Exception {
        Path root = Fixtures.require("golden-" + family);
        LoraModel lora = LoraModel.load(LlamaModel.load(root.resolve("model")), root.resolve("adapter"));
        lora.saveAdapter(tmp);
        assertEquals(AdapterConfigJson.read(root.resolve("adapter")).lora().targetModules(),
                AdapterConfigJson.read(tmp).lora().targetModules());
        LoraModel again = LoraModel.load(LlamaModel.load(root.resolve("model")), tmp);
        Map<String, Tensor> before = lora.peftTensors("default", t -> t);
        Map<String, Tensor> after = again.peftTensors("default", t -> t);
        assertEquals(before.keySet(), after.keySet());
        for (String key : before.keySet()) {
            assertClose(family + " " + key, before.get(key).toFloatArray(), after.get(key).toFloatArray(), 0, 0);
        }
        assertClose(family + " logits", logits(lora.model()), logits(again.model()), 0, 0);
    }

    @ParameterizedTest
    @ValueSource(strings = {"phi3", "phi-1_5", "falcon", "gemma3"})
    void targetAllAdaptsTheFamilysModulesAndMergesIntoASavedFolder(String family, @TempDir Path tmp) throws Exception {
        Path root = Fixtures.require("golden-" + family);
        LlamaModel base = LlamaModel.load(root.resolve("model"));
        // a non-zero B so that the adapter changes the logits
        LoraModel lora = LoraModel.wrap(base, LoraConfig.rank(2).alpha(4).targets(Target.ALL));
        lora.peftTensors("default", t -> t).forEach((k, t) -> {
            if (k.contains("lora_B")) {
                float[] d = t.data();
                for (int i = 0; i < d.length; i++) {
                    d[i] = 0.01f * ((i * 7 + k.length()) % 11 - 5);
                }
            }
        });
        TreeSet<String> adapted = new TreeSet<>();
        lora.peftTensors("default", t -> t).keySet().forEach(k -> adapted.add(k.replaceAll(".*\\.(\\w+)\\.lora_[AB].*", "$1")));
        TreeSet<String> expected = new TreeSet<>();
        for (String llama : Target.ALL.moduleSuffixes()) {
            expected.add(base.config().architecture().moduleNameFor(llama));
        }
        assertEquals(expected, adapted, family + ": modules adapted by Target.ALL");
        lora.saveAdapter(tmp.resolve("adapter"));
        assertEquals(new TreeSet<>(expected), new TreeSet<>(AdapterConfigJson.read(tmp.resolve("adapter")).lora().targetModules()));
        float[] adaptedLogits = logits(lora.model());
        LoraModel reloaded = LoraModel.load(LlamaModel.load(root.resolve("model")), tmp.resolve("adapter"));
        assertClose(family + " reloaded adapter", adaptedLogits, logits(reloaded.model()), 0, 0);

        LlamaModel merged = lora.mergeAndUnload();
        ModelLoader.save(merged, tmp.resolve("merged"), DType.F32);
        LlamaModel loaded = LlamaModel.load(tmp.resolve("merged"));
        assertEquals(merged.config(), loaded.config());
        assertClose(family + " merged and saved", adaptedLogits, logits(loaded), 1e-4, 1e-5);
        assertTrue(loaded.config().toJson().contains("\"model_type\": \"" + base.config().modelType() + "\""));
    }
}
