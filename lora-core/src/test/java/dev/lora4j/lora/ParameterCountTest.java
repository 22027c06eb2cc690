package dev.lora4j.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.testing.TinyModels;
import org.junit.jupiter.api.Test;

/**
 * Parameter counts from the config alone, against the numbers PEFT's print_trainable_parameters
 * reports for meta-llama/Llama-2-7b-hf (6,738,415,616 base parameters; r·(in + out) per adapted
 * module, lm_head included in {@link Target#ALL}).
 */
class ParameterCountTest {
    private static final long LLAMA2_7B = 6_738_415_616L;

    @Test
    void llama2BaseParameters() {
        assertEquals(LLAMA2_7B, LlamaModel.meta(LlamaConfig.llama2_7b()).baseParameterCount());
        assertEquals(LLAMA2_7B, LoraModel.count(LlamaConfig.llama2_7b(), LoraConfig.rank(8)).base());
    }

    @Test
    void llama2QueryValueRank8() {
        LoraModel.ParameterCount c = LoraModel.count(LlamaConfig.llama2_7b(),
                LoraConfig.rank(8).targets(Target.QUERY, Target.VALUE));
        assertEquals(4_194_304L, c.trainable());
        assertEquals(LLAMA2_7B + 4_194_304L, c.total());
        // PEFT prints 0.0622 for this setting
        assertEquals(0.0622, c.trainablePercent(), 5e-5);
        assertTrue(c.toString().contains("trainable params: 4,194,304"), c.toString());
    }

    @Test
    void llama2AllLinearAndHead() {
        LlamaConfig llama = LlamaConfig.llama2_7b();
        assertEquals(20_277_248L, LoraModel.count(llama, LoraConfig.rank(8).targets(Target.ALL)).trainable());
        assertEquals(40_554_496L, LoraModel.count(llama, LoraConfig.rank(16).targets(Target.ALL)).trainable());
        assertEquals(648_871_936L, LoraModel.count(llama, LoraConfig.rank(256).targets(Target.ALL)).trainable());
    }

    @Test
    void defaultTargetsExcludeTheHead() {
        // 32 layers x 8 x (4·(4096+4096) + 3·(4096+11008)); ALL adds lm_head's 8·(4096+32000)
        long expected = 32L * 8 * (4 * 8192 + 3 * (4096 + 11008));
        assertEquals(expected, LoraModel.count(LlamaConfig.llama2_7b(), LoraConfig.rank(8)).trainable());
        assertEquals(20_277_248L - 8L * (4096 + 32000), expected);
    }

    @Test
    void rankPatternIsCounted() {
        LoraConfig config = LoraConfig.rank(8).targets(Target.QUERY, Target.VALUE).rankPattern(java.util.Map.of("q_proj", 2));
        // q: 32 x 2 x 8192, v: 32 x 8 x 8192
        assertEquals(32L * 2 * 8192 + 32L * 8 * 8192, LoraModel.count(LlamaConfig.llama2_7b(), config).trainable());
    }

    @Test
    void wrappedModelAgreesWithTheCount() {
        for (LoraConfig config : new LoraConfig[] {
                LoraConfig.rank(4).targets(Target.QUERY, Target.VALUE),
                LoraConfig.rank(2).targets(Target.ALL),
                LoraConfig.rank(3).rankPattern(java.util.Map.of("down_proj", 5)),
                LoraConfig.rank(2).targets(Target.MLP).layersToTransform(1)}) {
            LoraModel.ParameterCount expected = LoraModel.count(TinyModels.gqa(), config);
            LlamaModel base = TinyModels.model(1);
            long baseCount = base.baseParameterCount();
            LoraModel lora = LoraModel.wrap(base, config);
            assertEquals(expected.base(), baseCount, config.toString());
            assertEquals(expected.trainable(), lora.trainableParameterCount(), config.toString());
            assertEquals(expected.trainable(), lora.adapterParameterCount(LoraModel.DEFAULT_ADAPTER), config.toString());
            assertEquals(expected.total(), lora.totalParameterCount(), config.toString());
            long inTrainer = dev.lora4j.train.Trainer.trainableParameters(lora.model()).stream()
                    .mapToLong(dev.lora4j.tensor.Tensor::numel).sum();
            assertEquals(expected.trainable(), inTrainer, config.toString());
        }
    }

    @Test
    void tiedEmbeddingsAreCountedOnce() {
        LlamaConfig tied = TinyModels.gqaBuilder().tieWordEmbeddings(true).build();
        LlamaConfig untied = TinyModels.gqa();
        long head = (long) untied.vocabSize() * untied.hiddenSize();
        assertEquals(LlamaModel.meta(untied).baseParameterCount() - head, LlamaModel.meta(tied).baseParameterCount());
    }
}
