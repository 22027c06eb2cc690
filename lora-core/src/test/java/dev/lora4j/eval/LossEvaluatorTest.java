package dev.lora4j.eval;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.lora4j.autograd.Autograd;
import dev.lora4j.data.Example;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.testing.TinyModels;
import dev.lora4j.train.CausalLmLoss;
import java.util.List;
import org.junit.jupiter.api.Test;

class LossEvaluatorTest {

    @Test
    void tokenWeightedMeanDoesNotDependOnMicroBatchSize() {
        LlamaModel model = TinyModels.model(3);
        Example shortOne = Example.promptMasked(TinyModels.tokens(5, 48, 1), 2);
        Example longOne = Example.unmasked(TinyModels.tokens(17, 48, 2));
        List<Example> data = List.of(shortOne, longOne);

        double nllShort = single(model, shortOne) * shortOne.supervisedTokens();
        double nllLong = single(model, longOne) * longOne.supervisedTokens();
        double expected = (nllShort + nllLong) / (shortOne.supervisedTokens() + longOne.supervisedTokens());

        LossEvaluator.LossResult one = LossEvaluator.evaluate(model, data, 1, 0);
        LossEvaluator.LossResult both = LossEvaluator.evaluate(model, data, 2, 0);
        assertEquals(expected, one.loss(), 1e-5);
        assertEquals(expected, both.loss(), 1e-5);
        assertEquals(Math.exp(expected), one.perplexity(), 1e-4);
        assertEquals(3 + 16, one.tokens()); // labels 2..4 of the short one, 1..16 of the long one
    }

    @Test
    void rejectsDataWithoutSupervisedTokens() {
        LlamaModel model = TinyModels.model(3);
        Example masked = Example.promptMasked(TinyModels.tokens(4, 48, 1), 4);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> LossEvaluator.evaluate(model, List.of(masked), 1, 0));
        assertEquals(true, e.getMessage().contains("-100"));
    }

    private static double single(LlamaModel model, Example e) {
        try (Autograd.Scope ignored = Autograd.noGrad()) {
            return CausalLmLoss.loss(model, CausalLmLoss.collate(List.of(e), 0)).toFloatArray()[0];
        }
    }
}
