package dev.lora4j.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.model.ModelLoader;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.testing.TinyModels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Every merge compares the merged model, as saved, with the adapter model on probe tokens. */
class MergeCheckTest {

    /** A tied tiny model with an adapter on every layer and lm_head whose B is random (a trained-like update). */
    private static LoraModel tiedWithAdapter(long seed) {
        LlamaModel base = LlamaModel.initialize(TinyModels.gqaBuilder().tieWordEmbeddings(true).build(), seed);
        LoraModel lora = LoraModel.wrap(base, LoraConfig.rank(4).alpha(8).targets(Target.ALL));
        long s = 70;
        for (Map.Entry<String, Tensor> e : lora.peftTensors(LoraModel.DEFAULT_ADAPTER, t -> t).entrySet()) {
            if (e.getKey().contains("lora_B")) {
                TinyModels.randomize(e.getValue(), 0.5f, s++);
            }
        }
        return lora;
    }

    @Test
    void mergeAndUnloadOfATiedHeadSavesAFolderThatReproducesTheAdapter(@TempDir Path out) throws Exception {
        LoraModel lora = tiedWithAdapter(1);
        MergeCheck.Probe probe = MergeCheck.probe(lora);
        assertEquals(1 + MergeCheck.PROBE_NEW_TOKENS, probe.tokens().length);
        assertEquals(1, probe.tokens()[0], "the probe starts at BOS");
        assertTrue(Math.abs(probe.baseLoss() - probe.adapterLoss()) > 0.1, probe.toString());

        LlamaModel merged = lora.mergeAndUnload();
        assertFalse(merged.config().tieWordEmbeddings());
        List<String> written = ModelLoader.saveFolder(merged, out, DType.F32, null);
        assertEquals(List.of("config.json", "model.safetensors", "generation_config.json"), written);
        JsonNode generation = new ObjectMapper().readTree(Files.readString(out.resolve("generation_config.json")));
        assertEquals(1, generation.get("bos_token_id").asInt());
        assertEquals(2, generation.get("eos_token_id").asInt());
        assertEquals("float32", new ObjectMapper().readTree(out.resolve("config.json").toFile()).get("torch_dtype").asText());
        LlamaModel reloaded = ModelLoader.load(out, ModelLoader.Options.defaults());
        assertEquals(probe.adapterLoss(), MergeCheck.loss(reloaded, probe.tokens()), 1e-4);
        MergeCheck.verifyLoaded(probe, reloaded, MergeCheck.tolerance(DType.F32), "the saved folder");
    }

    @Test
    void aModelWithoutTheUpdateFailsTheCheckNamingBothLosses() {
        LoraModel lora = tiedWithAdapter(2);
        MergeCheck.Probe probe = MergeCheck.probe(lora);
        LlamaModel base = LlamaModel.initialize(TinyModels.gqaBuilder().tieWordEmbeddings(true).build(), 2);
        MergeCheck.MergeMismatchException e = assertThrows(MergeCheck.MergeMismatchException.class,
                () -> MergeCheck.verify(probe, base, MergeCheck.tolerance("bf16")));
        assertTrue(e.getMessage().startsWith("merge check failed: the merged model gives loss"), e.getMessage());
        assertTrue(e.getMessage().contains(String.format(java.util.Locale.ROOT, "%.5f", probe.adapterLoss())), e.getMessage());
        assertEquals(probe.baseLoss(), e.result().mergedLoss(), 1e-6, "the base is what a lost update leaves");
    }

    @Test
    void disabledAdaptersAreStillMergedAndCheckedAsPeftDoes() {
        LoraModel lora = tiedWithAdapter(3);
        lora.disableAdapters();
        MergeCheck.Probe probe = MergeCheck.probe(lora);
        assertTrue(lora.adaptersDisabled(), "the probe restores the disabled state");
        LlamaModel merged = lora.mergeAndUnload();
        assertEquals(probe.adapterLoss(), MergeCheck.loss(merged, probe.tokens()), 1e-4);
    }

    @Test
    void tolerancesAreNamedByStorage() {
        assertEquals(0.02 + 0.01 * 2, MergeCheck.tolerance(DType.BF16).allowed(2.0), 1e-12);
        assertTrue(MergeCheck.tolerance("nf4-dq@128").allowed(1) > MergeCheck.tolerance("f16").allowed(1));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> MergeCheck.tolerance("int8"));
        assertTrue(e.getMessage().contains("'int8'"), e.getMessage());
    }
}
