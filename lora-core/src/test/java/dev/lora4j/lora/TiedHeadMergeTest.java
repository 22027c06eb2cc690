package dev.lora4j.lora;

import static dev.lora4j.testing.Fixtures.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.autograd.Autograd;
import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.model.ModelLoader;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** An adapter on lm_head of a model with tied embeddings must not leak into the embedding, and must survive saving. */
class TiedHeadMergeTest {
    @TempDir
    Path tmp;

    @Test
    void mergingTiedHeadUntiesItAndKeepsEmbeddingIntact() {
        LlamaConfig config = LlamaConfig.builder().modelType("llama").vocabSize(40).hiddenSize(16).intermediateSize(24)
                .numHiddenLayers(1).numAttentionHeads(2).numKeyValueHeads(1).maxPositionEmbeddings(32).rmsNormEps(1e-5)
                .tieWordEmbeddings(true).build();
        LlamaModel model = LlamaModel.initialize(config, 3);
        float[] embeddingBefore = model.embedTokens().toFloatArray();
        LoraModel lora = LoraModel.wrap(model, LoraConfig.rank(2).targets(Target.ALL));
        SplittableRandom rng = new SplittableRandom(9);
        for (Tensor b : lora.peftTensors(LoraModel.DEFAULT_ADAPTER, t -> t).values()) {
            float[] d = b.data();
            for (int i = 0; i < d.length; i++) {
                d[i] = (float) rng.nextGaussian() * 0.1f;
            }
        }
        int[] ids = {1, 5, 7, 2, 9};
        float[] adapted;
        try (Autograd.Scope ignored = Autograd.noGrad()) {
            adapted = model.forward(ids, 1).toFloatArray();
            lora.merge();
            assertArrayEquals(embeddingBefore, model.embedTokens().toFloatArray(), "merge changed the tied embedding");
            lora.unmerge();
            LlamaModel merged = lora.mergeAndUnload();
            assertFalse(merged.config().tieWordEmbeddings());
            assertTrue(merged.allTensors().containsKey("lm_head.weight"));
            assertArrayEquals(embeddingBefore, merged.embedTokens().toFloatArray());
            assertClose("merged logits", adapted, merged.forward(ids, 1).toFloatArray(), 1e-4, 1e-5);
            ModelLoader.save(merged, tmp.resolve("m"), DType.F32);
            LlamaModel reloaded = LlamaModel.load(tmp.resolve("m"));
            assertClose("reloaded logits", adapted, reloaded.forward(ids, 1).toFloatArray(), 1e-4, 1e-5);
        }
    }
}
