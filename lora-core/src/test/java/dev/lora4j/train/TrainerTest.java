package dev.lora4j.train;

import static dev.lora4j.testing.Fixtures.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.data.Example;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.lora.Target;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.testing.TinyModels;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The training loop (determinism, gradient accumulation, learning), the optimizers against
 * torch.optim's update formulas, the schedule, clipping, validation and listener callbacks.
 */
class TrainerTest {

    /** A tiny model with a LoRA adapter whose B is random too, so that A and B both get gradients. */
    private static LoraModel lora(double dropout, Target... targets) {
        LoraModel lora = LoraModel.wrap(TinyModels.model(5), LoraConfig.rank(4).alpha(8).dropout(dropout).targets(targets));
        long seed = 900;
        for (Map.Entry<String, Tensor> e : lora.peftTensors(LoraModel.DEFAULT_ADAPTER, t -> t).entrySet()) {
            if (e.getKey().contains("lora_B")) {
                TinyModels.randomize(e.getValue(), 0.05f, seed++);
            }
        }
        return lora;
    }

    /** Examples of varied lengths with their first tokens masked, as instruction data is. */
    private static List<Example> mixedData(int count) {
        SplittableRandom rng = new SplittableRandom(17);
        List<Example> data = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            int len = 5 + rng.nextInt(6);
            data.add(Example.promptMasked(TinyModels.tokens(len, 48, 100 + i), 2));
        }
        return data;
    }

    private static List<Example> equalLengthUnmasked(int count, int length) {
        List<Example> data = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            data.add(Example.unmasked(TinyModels.tokens(length, 48, 300 + i)));
        }
        return data;
    }

    private static float[] flatParameters(LlamaModel model) {
        List<Tensor> params = Trainer.trainableParameters(model);
        int n = params.stream().mapToInt(t -> Math.toIntExact(t.numel())).sum();
        float[] out = new float[n];
        int o = 0;
        for (Tensor t : params) {
            float[] v = t.toFloatArray();
            System.arraycopy(v, 0, out, o, v.length);
            o += v.length;
        }
        return out;
    }

    // ---------------------------------------------------------------- the loop

    private static double[] lossCurve(long seed, double dropout, boolean shuffle) {
        LoraModel lora = lora(dropout, Target.ALL);
        return Trainer.builder(lora.model()).learningRate(5e-3).warmupSteps(2).maxSteps(6).globalBatchSize(4)
                .microBatchSize(2).seed(seed).shuffle(shuffle).build().fit(mixedData(10)).lossPerStep();
    }

    @Test
    void sameSeedGivesBitIdenticalLosses() {
        double[] a = lossCurve(7, 0.1, true);
        double[] b = lossCurve(7, 0.1, true);
        assertEquals(6, a.length);
        assertArrayEquals(a, b);
        for (double l : a) {
            assertTrue(Double.isFinite(l) && l > 0, Arrays.toString(a));
        }
    }

    @Test
    void otherSeedChangesTheCurveThroughDropoutOrShuffling() {
        double[] dropoutOnly = lossCurve(7, 0.2, false);
        assertFalse(Arrays.equals(dropoutOnly, lossCurve(8, 0.2, false)), "dropout masks follow the seed");
        double[] shuffleOnly = lossCurve(7, 0, true);
        assertFalse(Arrays.equals(shuffleOnly, lossCurve(8, 0, true)), "the example order follows the seed");
        // with neither, the seed has nothing to change
        assertArrayEquals(lossCurve(7, 0, false), lossCurve(8, 0, false));
    }

    @Test
    void gradientAccumulationMatchesOneLargeBatch() {
        List<Example> data = equalLengthUnmasked(4, 9);
        List<float[]> sgd = new ArrayList<>();
        List<float[]> adamw = new ArrayList<>();
        List<Double> losses = new ArrayList<>();
        for (int micro : new int[] {1, 2, 4}) {
            for (Trainer.OptimizerKind kind : Trainer.OptimizerKind.values()) {
                LoraModel lora = lora(0, Target.ALL);
                TrainerListener.TrainingResult r = Trainer.builder(lora.model()).optimizer(kind).momentum(0).weightDecay(0)
                        .learningRate(kind == Trainer.OptimizerKind.SGD ? 1.0 : 1e-3).warmupSteps(0).maxSteps(1)
                        .maxGradNorm(0).globalBatchSize(4).microBatchSize(micro).shuffle(false).build().fit(data);
                (kind == Trainer.OptimizerKind.SGD ? sgd : adamw).add(flatParameters(lora.model()));
                losses.add(r.finalLoss());
            }
        }
        float[] before = flatParameters(lora(0, Target.ALL).model());
        assertTrue(TinyModels.maxAbsDiff(before, sgd.get(0)) > 1e-3, "the SGD step must move the parameters");
        for (int i = 1; i < 3; i++) {
            assertClose("SGD after one step, micro-batch " + (1 << i) + " vs 1", sgd.get(0), sgd.get(i), 0, 1e-5);
            assertClose("AdamW after one step, micro-batch " + (1 << i) + " vs 1", adamw.get(0), adamw.get(i), 0, 1e-5);
        }
        for (double l : losses) {
            assertEquals(losses.get(0), l, 1e-6, "step loss " + losses);
        }
    }

    @Test
    void lossDecreasesWhenMemorizingAFewSequences() {
        LoraModel lora = LoraModel.wrap(TinyModels.model(9), LoraConfig.rank(8).targets(Target.ALL));
        List<Example> data = equalLengthUnmasked(8, 12);
        List<Double> curve = new ArrayList<>();
        TrainerListener.TrainingResult r = Trainer.builder(lora.model()).learningRate(2e-2).warmupSteps(3).maxSteps(30)
                .globalBatchSize(8).microBatchSize(4).weightDecay(0).listener(new TrainerListener() {
                    @Override
                    public void onStep(StepMetrics m) {
                        curve.add(m.loss());
                    }
                }).build().fit(data);
        double first = r.lossPerStep()[0];
        assertEquals(Math.log(48), first, 0.1, "a fresh adapter starts from the base model's near-uniform loss");
        assertTrue(r.finalLoss() < 0.25 * first, "loss " + first + " → " + r.finalLoss() + ": " + curve);
        double firstFive = curve.subList(0, 5).stream().mapToDouble(Double::doubleValue).average().orElseThrow();
        double lastFive = curve.subList(25, 30).stream().mapToDouble(Double::doubleValue).average().orElseThrow();
        assertTrue(lastFive < firstFive, curve.toString());
    }

    @Test
    void listenerSeesEveryStepInOrder() {
        LoraModel lora = lora(0, Target.QUERY, Target.VALUE);
        List<TrainerListener.StepMetrics> steps = new ArrayList<>();
        List<TrainerListener.TrainingResult> ends = new ArrayList<>();
        Trainer trainer = Trainer.builder(lora.model()).learningRate(1e-3).minLearningRate(1e-4).warmupSteps(2).epochs(2)
                .shuffle(false).globalBatchSize(4).microBatchSize(2).listener(new TrainerListener() {
                    @Override
                    public void onStep(StepMetrics m) {
                        steps.add(m);
                    }

                    @Override
                    public void onEnd(TrainingResult result) {
                        ends.add(result);
                    }
                }).build();
        List<Example> data = mixedData(10);
        assertEquals(6, trainer.totalSteps(data.size()), "2 epochs of ceil(10 / 4) steps");
        TrainerListener.TrainingResult result = trainer.fit(data);
        assertEquals(6, steps.size());
        assertEquals(List.of(result), ends);
        LearningRateSchedule schedule = LearningRateSchedule.warmupCosine(1e-3, 2, 6, 1e-4);
        long tokens = 0;
        for (int i = 0; i < steps.size(); i++) {
            TrainerListener.StepMetrics m = steps.get(i);
            assertEquals(i + 1, m.step());
            assertEquals(6, m.totalSteps());
            assertEquals(result.lossPerStep()[i], m.loss());
            assertEquals(schedule.at(i), m.learningRate(), 1e-15);
            assertTrue(m.tokensSeen() > tokens, "tokens seen grows");
            tokens = m.tokensSeen();
            assertTrue(m.gradNorm() > 0 && Double.isFinite(m.gradNorm()));
            assertTrue(m.elapsedSeconds() >= 0);
        }
        assertEquals(tokens, result.tokensSeen());
        assertEquals(steps.get(5).loss(), result.finalLoss());
        assertEquals(6, trainer.optimizer().stepCount());
        // without shuffling the examples come in order, wrapping around: 6 steps × 4 = all 10 twice, then the first 4
        long all = data.stream().mapToLong(Example::length).sum();
        long firstFour = data.subList(0, 4).stream().mapToLong(Example::length).sum();
        assertEquals(2 * all + firstFour, result.tokensSeen());
    }

    // ---------------------------------------------------------------- validation

    private static void assertRejects(Executable call, String... fragments) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call::run);
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), "'" + e.getMessage() + "' should mention " + f);
        }
    }

    @FunctionalInterface
    private interface Executable {
        void run() throws Throwable;
    }

    @Test
    void builderValidatesWithHelpfulMessages() {
        LlamaModel model = lora(0, Target.QUERY).model();
        assertRejects(() -> Trainer.builder(model).globalBatchSize(6).microBatchSize(4).build(),
                "globalBatchSize (6)", "multiple of microBatchSize (4)");
        assertRejects(() -> Trainer.builder(model).learningRate(0), "learningRate", "> 0", "0.0");
        assertRejects(() -> Trainer.builder(model).learningRate(-1e-3), "learningRate", "-0.001");
        assertRejects(() -> Trainer.builder(model).learningRate(Double.NaN), "learningRate", "NaN");
        assertRejects(() -> Trainer.builder(model).microBatchSize(0), "microBatchSize", ">= 1", "0");
        assertRejects(() -> Trainer.builder(model).globalBatchSize(0), "globalBatchSize", ">= 1");
        assertRejects(() -> Trainer.builder(model).weightDecay(-0.1), "weightDecay", "-0.1");
        assertRejects(() -> Trainer.builder(model).betas(1.0, 0.999), "beta1", "1.0");
        assertRejects(() -> Trainer.builder(model).betas(0.9, -0.5), "beta2");
        assertRejects(() -> Trainer.builder(model).eps(0), "eps");
        assertRejects(() -> Trainer.builder(model).maxSteps(0), "maxSteps", ">= 1");
        assertRejects(() -> Trainer.builder(model).epochs(0), "epochs");
        assertRejects(() -> Trainer.builder(model).warmupSteps(-1), "warmupSteps");
        assertRejects(() -> Trainer.builder(model).maxGradNorm(-1), "maxGradNorm");
        assertRejects(() -> Trainer.builder(model).minLearningRate(-1), "minLearningRate");
        assertRejects(() -> Trainer.builder(null), "model");
        assertRejects(() -> Trainer.builder(model).parameters(List.of()), "parameters");
        // globalBatchSize is checked against the micro-batch size in build(), so the order of the calls does not matter
        Trainer.builder(model).microBatchSize(4).globalBatchSize(8).build();
    }

    @Test
    void fitRejectsUnusableData() {
        LoraModel lora = lora(0, Target.QUERY);
        Trainer trainer = Trainer.builder(lora.model()).maxSteps(1).globalBatchSize(1).build();
        assertRejects(() -> trainer.fit(List.of()), "empty");
        assertRejects(() -> trainer.fit(List.of(Example.unmasked(TinyModels.tokens(65, 48, 1)))),
                "example 0", "65 tokens", "max_position_embeddings 64");
        IllegalStateException nan = assertThrows(IllegalStateException.class,
                () -> trainer.fit(List.of(Example.promptMasked(TinyModels.tokens(6, 48, 1), 6))));
        assertTrue(nan.getMessage().contains("NaN") && nan.getMessage().contains("masked"), nan.getMessage());
        IllegalStateException frozen = assertThrows(IllegalStateException.class,
                () -> Trainer.builder(TinyModels.model(1)).build());
        assertTrue(frozen.getMessage().contains("no trainable parameter") && frozen.getMessage().contains("LoraModel.wrap"),
                frozen.getMessage());
    }

    // ---------------------------------------------------------------- optimizers against PyTorch's formulas

    private static Tensor param(double... values) {
        float[] f = new float[values.length];
        for (int i = 0; i < f.length; i++) {
            f[i] = (float) values[i];
        }
        return Tensor.of(f, f.length).requiresGrad(true);
    }

    private static void grad(Tensor p, double... values) {
        float[] f = new float[values.length];
        for (int i = 0; i < f.length; i++) {
            f[i] = (float) values[i];
        }
        p.setGrad(Tensor.of(f, f.length));
    }

    private static final double[] P0 = {0.5, -1.25, 2.0};
    private static final double[][] GRADS = {{0.3, -0.2, 1.5}, {-0.1, 0.4, 1.0}, {0.25, 0.05, -2.0}};

    private static float[] toFloats(double[] v) {
        float[] f = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            f[i] = (float) v[i];
        }
        return f;
    }

    @Test
    void adamWFollowsTorchOptimAdamW() {
        double lr = 0.01;
        double b1 = 0.9;
        double b2 = 0.999;
        double eps = 1e-8;
        double wd = 0.1;
        Tensor p = param(P0);
        AdamW opt = new AdamW(List.of(p), lr, b1, b2, eps, wd);
        double[] w = P0.clone();
        double[] m = new double[3];
        double[] v = new double[3];
        for (int t = 1; t <= GRADS.length; t++) {
            double[] g = GRADS[t - 1];
            grad(p, g);
            opt.step();
            // torch.optim.AdamW (decoupled weight decay, bias-corrected moments)
            for (int i = 0; i < 3; i++) {
                w[i] *= 1 - lr * wd;
                m[i] = b1 * m[i] + (1 - b1) * g[i];
                v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
                double stepSize = lr / (1 - Math.pow(b1, t));
                double denom = Math.sqrt(v[i]) / Math.sqrt(1 - Math.pow(b2, t)) + eps;
                w[i] -= stepSize * m[i] / denom;
            }
            assertClose("AdamW step " + t, toFloats(w), p.toFloatArray(), 1e-6, 1e-7);
            assertClose("m after step " + t, toFloats(m), opt.moments(0)[0], 1e-6, 1e-9);
            assertClose("v after step " + t, toFloats(v), opt.moments(0)[1], 2e-6, 1e-12);
        }
        assertEquals(3, opt.stepCount());
        assertEquals(3 * 8, opt.stateBytes());
        // hand values of step 1 for element 0: 0.5·(1 − 1e-3) − 0.01·sign(0.3) (Adam's first step is lr·g/|g|)
        Tensor q = param(0.5);
        AdamW one = new AdamW(List.of(q), lr, b1, b2, eps, wd);
        grad(q, 0.3);
        one.step();
        assertEquals(0.5 * 0.999 - 0.01 * 0.3 / (0.3 + 1e-8), q.toFloatArray()[0], 1e-7);
    }

    @Test
    void adamWCountsStepsPerParameterAsTorchDoes() {
        // torch keeps state["step"] per parameter: a parameter that first gets a gradient at the
        // optimizer's second step is bias-corrected as at its own first step
        Tensor early = param(1.0);
        Tensor late = param(1.0);
        AdamW opt = new AdamW(List.of(early, late), 0.01, 0.9, 0.999, 1e-8, 0.0);
        grad(early, 0.5);
        opt.step();
        assertEquals(1.0f, late.toFloatArray()[0], "a parameter without gradient is not touched (no decay either)");
        grad(early, 0.5);
        grad(late, 0.5);
        opt.step();
        assertEquals(1.0 - 0.01, late.toFloatArray()[0], 1e-7);
    }

    @Test
    void sgdFollowsTorchOptimSgd() {
        for (boolean nesterov : new boolean[] {false, true}) {
            double lr = 0.1;
            double mu = 0.9;
            double damp = nesterov ? 0 : 0.25;
            double wd = 0.01;
            Tensor p = param(P0);
            Sgd opt = new Sgd(List.of(p), lr, mu, damp, wd, nesterov);
            double[] w = P0.clone();
            double[] buf = new double[3];
            for (int t = 1; t <= GRADS.length; t++) {
                grad(p, GRADS[t - 1]);
                opt.step();
                // torch.optim.SGD: coupled weight decay, buffer = d on the first step, then μ·buf + (1 − dampening)·d
                for (int i = 0; i < 3; i++) {
                    double d = GRADS[t - 1][i] + wd * w[i];
                    buf[i] = t == 1 ? d : mu * buf[i] + (1 - damp) * d;
                    d = nesterov ? d + mu * buf[i] : buf[i];
                    w[i] -= lr * d;
                }
                assertClose("SGD nesterov=" + nesterov + " step " + t, toFloats(w), p.toFloatArray(), 1e-6, 1e-7);
            }
            assertEquals(3 * 4, opt.stateBytes());
        }
        // without momentum: p − lr·(g + λp), no state
        Tensor p = param(2.0);
        Sgd plain = new Sgd(List.of(p), 0.5, 0, 0.1);
        grad(p, 1.0);
        plain.step();
        assertEquals(2.0 - 0.5 * (1.0 + 0.1 * 2.0), p.toFloatArray()[0], 1e-7);
        assertEquals(0, plain.stateBytes());
        assertRejects(() -> new Sgd(List.of(p), 0.1, 0, 0, 0, true), "nesterov", "momentum");
    }

    // ---------------------------------------------------------------- schedule and clipping

    @Test
    void warmupCosineValues() {
        double peak = 1e-3;
        double min = 1e-5;
        LearningRateSchedule s = LearningRateSchedule.warmupCosine(peak, 10, 110, min);
        assertEquals(peak / 10, s.at(0), 1e-18, "warmup starts at peak/warmup");
        assertEquals(peak * 5 / 10, s.at(4), 1e-18);
        assertEquals(peak, s.at(9), 1e-18, "warmup ends at the peak");
        assertEquals(peak, s.at(10), 1e-18, "the decay starts from the peak");
        assertEquals(min + (peak - min) * 0.5 * (1 + Math.cos(Math.PI * 0.25)), s.at(35), 1e-15);
        assertEquals((peak + min) / 2, s.at(60), 1e-15, "halfway through the decay");
        assertEquals(min, s.at(110), 1e-18, "ends at the minimum");
        assertEquals(min, s.at(500), 1e-18, "and stays there");
        for (long step = 11; step <= 110; step++) {
            assertTrue(s.at(step) < s.at(step - 1), "decreasing at " + step);
        }
        LearningRateSchedule noWarmup = LearningRateSchedule.warmupCosine(peak, 0, 4, 0);
        assertEquals(peak, noWarmup.at(0), 0);
        assertEquals(peak / 2, noWarmup.at(2), 1e-18);
        assertEquals(0, noWarmup.at(4), 1e-18);
        assertEquals(3e-4, LearningRateSchedule.constant(3e-4).at(12345));
        assertRejects(() -> LearningRateSchedule.warmupCosine(1e-4, 10, 100, 1e-3), "minLr", "must not exceed");
        assertRejects(() -> LearningRateSchedule.warmupCosine(0, 10, 100, 0), "lr");
        assertRejects(() -> LearningRateSchedule.warmupCosine(1e-3, 10, 0, 0), "totalSteps");
    }

    @Test
    void clippingScalesToTheMaxNorm() {
        Tensor a = param(0, 0);
        Tensor b = param(0);
        Tensor untouched = param(0);
        grad(a, 3, 4);
        grad(b, 12);
        List<Tensor> params = List.of(a, b, untouched);
        assertEquals(13, GradientClipping.globalNorm(params), 1e-12);
        double before = GradientClipping.clip(params, 6.5);
        assertEquals(13, before, 1e-12, "returns the norm before clipping");
        double coef = 6.5 / (13 + 1e-6);
        assertArrayEquals(new float[] {(float) (3 * coef), (float) (4 * coef)}, a.grad().toFloatArray(), 1e-7f);
        assertArrayEquals(new float[] {(float) (12 * coef)}, b.grad().toFloatArray(), 1e-7f);
        assertEquals(6.5, GradientClipping.globalNorm(params), 1e-5);
        assertNull(untouched.grad());

        // below the limit nothing changes
        Tensor c = param(0, 0);
        grad(c, 0.3, 0.4);
        float[] g = c.grad().data();
        assertEquals(0.5, GradientClipping.clip(List.of(c), 1.0), 1e-7);
        assertSame(g, c.grad().data());
        assertArrayEquals(new float[] {0.3f, 0.4f}, c.grad().toFloatArray());
        assertRejects(() -> GradientClipping.clip(List.of(c), 0), "maxNorm");
    }
}
