package dev.lora4j.gguf;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.data.Example;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.lora.Target;
import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.nn.Linear;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.train.AdamW;
import dev.lora4j.train.CausalLmLoss;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A Q4_K_M file written by lora4j as a training base (no llama.cpp needed): the export reads back
 * close to the F32 weights, and LoRA training on it keeps every base matrix in its blocks — the
 * tied embedding, gathered row by row, and the output layer that shares it included.
 */
class Q4KMBaseTest {
    @TempDir
    Path tmp;

    @Test
    void trainsOnItsOwnQ4KMExportWithoutWideningTheBase() throws Exception {
        Path tokenizer = GgufTesting.characterTokenizer(tmp.resolve("tokenizer"), 90);
        LlamaConfig config = LlamaConfig.builder().vocabSize(512).hiddenSize(256).intermediateSize(512).numHiddenLayers(2)
                .numAttentionHeads(4).numKeyValueHeads(2).maxPositionEmbeddings(64).rmsNormEps(1e-5)
                .tieWordEmbeddings(true).bosTokenId(1).eosTokenIds(List.of(2)).build();
        SplittableRandom rng = new SplittableRandom(7);
        LlamaModel reference = LlamaModel.assemble(config, (name, shape) -> {
            float std = shape.length == 1 ? 0.1f : name.contains("embed") ? 1f : (float) (1 / Math.sqrt(shape[1]));
            return Tensor.normal(rng.split(), shape.length == 1 ? 1f : 0f, std, shape).name(name);
        });
        Path file = tmp.resolve("random.Q4_K_M.gguf");
        GgufExport.model(reference, tokenizer, GgufFileType.Q4_K_M, file);

        GgufModel gguf = GgufModel.load(file);
        LlamaModel base = gguf.model();
        // decoded weights near the originals (q/k rows back in Hugging Face order)
        for (var e : reference.allTensors().entrySet()) {
            if (e.getValue().rank() == 2) {
                float[] want = e.getValue().toFloatArray();
                float[] got = base.allTensors().get(e.getKey()).toFloatArray();
                double err = 0;
                double norm = 0;
                for (int k = 0; k < want.length; k++) {
                    err += (got[k] - want[k]) * (double) (got[k] - want[k]);
                    norm += want[k] * (double) want[k];
                }
                assertTrue(Math.sqrt(err / norm) < 0.1, e.getKey() + ": relative RMS error " + Math.sqrt(err / norm));
            }
        }
        BlockQuantStorage embedding = (BlockQuantStorage) base.embedTokens().storage();
        assertEquals(GgmlType.Q6_K, embedding.type(), "tied embedding: Q6_K as llama.cpp's Q4_K_M");

        LoraModel lora = LoraModel.wrap(base, LoraConfig.rank(4).alpha(8).targets(Target.ALL_LINEAR).seed(2));
        List<Tensor> params = new ArrayList<>(lora.peftTensors(LoraModel.DEFAULT_ADAPTER, t -> t).values());
        AdamW adam = new AdamW(params, 1e-2, 0.0);
        int[] ids = new int[24];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = 3 + (i * 7) % 80;
        }
        float first = 0;
        float last = 0;
        for (int step = 0; step < 6; step++) {
            Tensor loss = CausalLmLoss.loss(lora.model(), CausalLmLoss.collate(List.of(Example.unmasked(ids)), 0));
            last = loss.toFloatArray()[0];
            first = step == 0 ? last : first;
            loss.backward();
            adam.step();
            params.forEach(Tensor::zeroGrad);
        }
        assertTrue(last < first, "loss " + first + " -> " + last);
        assertSame(embedding, base.embedTokens().storage(), "the embedding stays the file's Q6_K blocks");
        for (Linear lin : base.linears().values()) {
            assertTrue(lin.weight().storage() instanceof BlockQuantStorage, lin.name() + " is "
                    + lin.weight().storage());
            assertTrue(lin.weight().grad() == null, lin.name() + " has a gradient");
        }
        assertSame(embedding, base.linears().get("lm_head").weight().storage(), "the tied head reads the same blocks");
        assertTrue(base.embedTokens().grad() == null, "no gradient for the frozen embedding");
    }
}
