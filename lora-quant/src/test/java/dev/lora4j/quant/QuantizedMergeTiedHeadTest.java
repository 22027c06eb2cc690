package dev.lora4j.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.data.ArithmeticTasks;
import dev.lora4j.data.Example;
import dev.lora4j.tokenizer.HfTokenizer;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.lora.MergeCheck;
import dev.lora4j.lora.Target;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.model.ModelLoader;
import dev.lora4j.nn.Linear;
import dev.lora4j.train.Trainer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 14's scenario: quantize the shipped arith-tiny (tied embeddings) to NF4, train LoRA on
 * every layer including lm_head for a few steps, merge. The merge used to keep the head tied, so
 * the saved model lost the head's update (val loss 2.17 with the adapter, 2.80 merged).
 */
class QuantizedMergeTiedHeadTest {
    private static final Path ARITH_TINY = Path.of("../lora-examples/models/arith-tiny");

    /** arith-tiny at NF4 with a LoRA adapter on every linear layer (lm_head included), trained 12 steps. */
    private static LoraModel trainedQlora(LoraConfig config) throws Exception {
        LlamaModel base = QuantizedCheckpoint.load(quantizedCopy());
        assertTrue(base.config().tieWordEmbeddings(), "arith-tiny ties lm_head to the embedding");
        LoraModel lora = LoraModel.wrap(base, config);
        HfTokenizer tok = HfTokenizer.load(ARITH_TINY);
        List<Example> data = new ArrayList<>();
        for (ArithmeticTasks.Problem p : ArithmeticTasks.generate(96, 2, false, 3)) {
            data.add(Example.unmasked(tok.encode(p.question() + "\nAnswer: " + p.answerText())));
        }
        Trainer.builder(lora.model()).learningRate(1e-2).warmupSteps(0).maxSteps(12).globalBatchSize(8)
                .microBatchSize(8).seed(1).padTokenId(0).progressLogging(false).build().fit(data);
        return lora;
    }

    private static Path folder;

    private static synchronized Path quantizedCopy() throws Exception {
        if (folder == null) {
            folder = Files.createTempDirectory("arith-tiny-nf4");
            QuantizedCheckpoint.quantizeFolder(ARITH_TINY, folder, QuantConfig.NF4_DQ);
        }
        return folder;
    }

    @Test
    void mergeIntoFourBitBaseUntiesTheHeadAndTheSavedFolderKeepsTheAdapterLoss(@TempDir Path out) throws Exception {
        LoraModel lora = trainedQlora(LoraConfig.rank(8).alpha(16).targets(Target.ALL).seed(4));
        MergeCheck.Probe probe = MergeCheck.probe(lora);
        assertTrue(probe.baseLoss() - probe.adapterLoss() > 0.2,
                "the probe must see the adapter: base " + probe.baseLoss() + ", adapter " + probe.adapterLoss());

        QuantizedMerge.Result r = QuantizedMerge.merge(lora, QuantizedMerge.Target.BF16);
        LlamaModel merged = r.model();
        assertFalse(merged.config().tieWordEmbeddings(), "the merged head differs from the embedding");
        assertNotSame(merged.embedTokens(), merged.linears().get("lm_head").weight());
        assertTrue(merged.allTensors().containsKey("lm_head.weight"));
        System.out.println(r.check());

        List<String> written = r.save(out, ARITH_TINY);
        assertTrue(written.containsAll(List.of("config.json", "model.safetensors", "tokenizer.json",
                "generation_config.json")), "written: " + written);
        LlamaModel reloaded = ModelLoader.load(out, ModelLoader.Options.defaults());
        double reloadedLoss = MergeCheck.loss(reloaded, probe.tokens());
        assertEquals(probe.adapterLoss(), reloadedLoss, MergeCheck.tolerance("bf16").allowed(probe.adapterLoss()),
                "the saved BF16 folder reproduces the adapter model (probe " + probe + ")");
    }

    @Test
    void requantizedMergeChecksItselfAndSavesAFourBitFolder(@TempDir Path out) throws Exception {
        LoraModel lora = trainedQlora(LoraConfig.rank(8).alpha(16).targets(Target.ALL).seed(4));
        MergeCheck.Probe probe = MergeCheck.probe(lora);
        QuantizedMerge.Result r = QuantizedMerge.merge(lora, QuantizedMerge.Target.REQUANTIZE);
        assertEquals("nf4-dq", r.check().tolerance().stored());
        r.save(out, ARITH_TINY);
        assertTrue(QuantizedCheckpoint.isQuantized(out));
        LlamaModel reloaded = QuantizedCheckpoint.load(out);
        assertFalse(reloaded.config().tieWordEmbeddings());
        assertEquals(r.check().mergedLoss(), MergeCheck.loss(reloaded, probe.tokens()), 1e-4,
                "the 4-bit folder holds exactly the checked model");
    }

    /** The old bug, rebuilt: the merged head put in place but the model left tied; the check catches it. */
    @Test
    void aMergeThatLeavesTheHeadTiedFailsTheCheck() throws Exception {
        LoraModel lora = trainedQlora(LoraConfig.rank(8).alpha(16).targets(Target.HEAD).seed(4));
        MergeCheck.Probe probe = MergeCheck.probe(lora);
        LlamaModel correct = QuantizedMerge.merge(lora, QuantizedMerge.Target.BF16).model();
        LlamaModel buggy = QuantizedCheckpoint.load(quantizedCopy());
        buggy.replaceLinear("lm_head", new Linear("lm_head", correct.linears().get("lm_head").weight(), null));
        MergeCheck.MergeMismatchException e = assertThrows(MergeCheck.MergeMismatchException.class,
                () -> MergeCheck.verify(probe, buggy, MergeCheck.tolerance("bf16")));
        System.out.println(e.getMessage());
        assertTrue(e.getMessage().contains(String.format(java.util.Locale.ROOT, "%.5f", probe.adapterLoss())), e.getMessage());
        assertTrue(e.getMessage().contains("bf16"), e.getMessage());
    }
}
