package dev.lora4j.examples;

import dev.lora4j.data.ArithmeticTasks.Problem;
import dev.lora4j.data.Example;
import dev.lora4j.tokenizer.HfTokenizer;
import dev.lora4j.tokenizer.Tokenizer;
import dev.lora4j.model.Generator;
import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.model.ModelLoader;
import dev.lora4j.tensor.DType;
import dev.lora4j.train.Trainer;
import dev.lora4j.train.TrainerListener;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Reproduces the quickstart's base model, {@code models/arith-tiny}: a small Llama pretrained from
 * scratch with lora4j itself on two-digit arithmetic facts in eight phrasings ("59-38=21",
 * "59 minus 38 is 21", "we know that 59 minus 38 is 21", ...). It never sees a question, nor the
 * "What is 59 minus 38?\nAnswer: 21" form that the quickstart teaches with LoRA.
 *
 * <pre>mvn -q -pl lora-examples -am install -DskipTests
 * mvn -q -pl lora-examples exec:exec -Dexec.mainClass=dev.lora4j.examples.PretrainArithmeticBase -Dexec.args="models/arith-tiny"</pre>
 *
 * Arguments: output folder (default models/arith-tiny), steps (default 3000), seed (default 1).
 */
public final class PretrainArithmeticBase {
    private PretrainArithmeticBase() {
    }

    public static void main(String[] args) throws Exception {
        List<String> a = Quickstart.nonBlank(args);
        Path out = Path.of(a.size() > 0 ? a.get(0) : "models/arith-tiny");
        int steps = a.size() > 1 ? Integer.parseInt(a.get(1)) : 3000;
        long seed = a.size() > 2 ? Long.parseLong(a.get(2)) : 1;
        Files.createDirectories(out);

        ArithmeticTokenizer.write(out);
        Tokenizer tok = HfTokenizer.load(out);
        LlamaConfig config = LlamaConfig.builder()
                .modelType("llama").vocabSize(tok.vocabSize()).hiddenSize(128).intermediateSize(352)
                .numHiddenLayers(4).numAttentionHeads(4).numKeyValueHeads(2).maxPositionEmbeddings(128)
                .rmsNormEps(1e-5).ropeTheta(10000).tieWordEmbeddings(true).torchDtype("bfloat16")
                .bosTokenId(tok.bosId().orElseThrow()).eosTokenIds(List.of(tok.eosId().orElseThrow()))
                .build();
        LlamaModel model = LlamaModel.initialize(config, seed);
        model.setBaseTrainable(true);
        System.out.printf("pretraining %,d parameters for %d steps -> %s%n", model.baseParameterCount(), steps, out);

        SplittableRandom rng = new SplittableRandom(seed);
        List<Example> data = new ArrayList<>();
        for (int i = 0; i < steps * 32; i++) {
            data.add(ArithmeticText.pretrainingSequence(tok, rng, 48));
        }
        Trainer trainer = Trainer.builder(model)
                .learningRate(3e-3).minLearningRate(3e-4).weightDecay(0.1).warmupSteps(100)
                .globalBatchSize(32).microBatchSize(32).maxSteps(steps).maxGradNorm(1.0).seed(seed)
                .padTokenId(tok.eosId().orElseThrow())
                .listener(TrainerListener.onEachStep(m -> {
                    if (m.step() % 50 == 0 || m.step() == m.totalSteps()) {
                        System.out.printf("step %5d/%d  loss %.4f  lr %.2e  %.0f tok/s  eta %.0fs%n", m.step(),
                                m.totalSteps(), m.loss(), m.learningRate(), m.tokensPerSecond(), m.etaSeconds());
                    }
                }))
                .build();
        trainer.fit(data);

        ModelLoader.save(model, out, DType.BF16);
        // evaluate what was saved (BF16), not the F32 weights in memory
        LlamaModel saved = LlamaModel.load(out);
        int right = 0;
        int n = 300;
        SplittableRandom evalRng = new SplittableRandom(seed + 1000);
        Generator gen = new Generator(saved).maxNewTokens(5).stopTokens(ArithmeticText.stopTokens(tok));
        for (int i = 0; i < n; i++) {
            Problem p = ArithmeticText.randomProblem(evalRng);
            String answer = tok.decode(gen.generate(tok.encode(p.equation(), true))).trim();
            right += answer.equals(p.answerText()) ? 1 : 0;
        }
        System.out.printf("equation accuracy (\"a-b=\" -> c) of the saved model on %d random problems: %.1f%%%n", n,
                100.0 * right / n);
        System.out.println("saved " + out.toAbsolutePath());
    }
}
