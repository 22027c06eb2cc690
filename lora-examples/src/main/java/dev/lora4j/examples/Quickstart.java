package dev.lora4j.examples;

import dev.lora4j.data.ArithmeticTasks;
import dev.lora4j.data.ArithmeticTasks.Problem;
import dev.lora4j.data.Example;
import dev.lora4j.tokenizer.HfTokenizer;
import dev.lora4j.data.InstructionDataset;
import dev.lora4j.data.InstructionRecord;
import dev.lora4j.tokenizer.Tokenizer;
import dev.lora4j.eval.ResponseEvaluation;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.lora.Target;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.model.ModelLoader;
import dev.lora4j.tensor.DType;
import dev.lora4j.train.Trainer;
import dev.lora4j.train.TrainerListener;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;

/**
 * The README's main job: LoRA-fine-tune a small pretrained Llama (shipped in models/arith-tiny,
 * reproduced by {@link PretrainArithmeticBase}) to answer the arithmetic questions of Raschka's
 * LoRA experiments ("What is 59 minus 38?" → "21"), a question form the base model never saw.
 * Prints held-out accuracy before and after, a few generations, writes the adapter in PEFT's
 * format, reloads it, and merges it into the base.
 *
 * <p>Arguments (all optional): model folder (default models/arith-tiny), output folder (default
 * target/quickstart), optimizer steps (default 450), learning rate (default 3e-3), LoRA rank (default 8;
 * alpha = 2·rank).
 */
public final class Quickstart {
    private Quickstart() {
    }

    public static void main(String[] args) throws Exception {
        List<String> a = nonBlank(args);
        Path modelDir = Path.of(a.size() > 0 ? a.get(0) : "models/arith-tiny");
        Path outDir = Path.of(a.size() > 1 ? a.get(1) : "target/quickstart");
        int steps = a.size() > 2 ? Integer.parseInt(a.get(2)) : 450;
        double lr = a.size() > 3 ? Double.parseDouble(a.get(3)) : 3e-3;
        int rank = a.size() > 4 ? Integer.parseInt(a.get(4)) : 8;
        int batch = 16;
        long start = System.nanoTime();

        System.out.println("== lora4j quickstart: teach a pretrained model a new question format with LoRA");
        LlamaModel base = ModelLoader.load(modelDir, ModelLoader.Options.defaults().frozenDType(DType.BF16));
        Tokenizer tok = HfTokenizer.load(modelDir);
        System.out.printf("base model %s: %,d parameters, frozen weights %s (%,d bytes)%n", modelDir,
                base.baseParameterCount(), base.embedTokens().dtype(), base.baseByteSize());

        // Disjoint train and held-out questions: the held-out ones are never trained on. One pass
        // over distinct questions (each is seen once), as one epoch beat several in those experiments.
        int trainCount = Math.min(steps * batch, 7800);
        List<Problem> all = ArithmeticTasks.generate(trainCount + 200, ArithmeticText.DIGITS, false, 7);
        List<Problem> train = all.subList(0, trainCount);
        List<Problem> heldOut = all.subList(trainCount, trainCount + 200);
        List<Problem> showcase = heldOut.subList(0, 4);

        // Instruction data as LitGPT prepares it: prompt and answer tokenized separately, the
        // prompt masked out of the loss, EOS after the answer.
        InstructionDataset dataset = InstructionDataset.builder(tok).promptStyle(ArithmeticText.PROMPT_STYLE).build();
        List<InstructionRecord> heldOutRecords = ArithmeticText.records(heldOut);
        Set<Integer> stops = ArithmeticText.stopTokens(tok);

        ResponseEvaluation.Result before = ResponseEvaluation.evaluate(base, dataset, heldOutRecords, stops);
        System.out.printf("before LoRA: held-out accuracy %.1f%% (%d questions)%n", 100 * before.exactMatch(), before.n());
        printAnswers(before, showcase);

        LoraConfig config = LoraConfig.rank(rank).alpha(2 * rank).targets(Target.ALL).seed(42);
        LoraModel lora = LoraModel.wrap(base, config).baseModel(modelDir.toString()); // adapter_config's base_model_name_or_path
        LlamaModel model = lora.model();
        System.out.printf("LoRA r=%d, alpha=%.0f on %s: %,d trainable of %,d parameters (%.2f%%)%n", config.rank(),
                config.alpha(), config.targetModules(), lora.trainableParameterCount(),
                lora.totalParameterCount(), 100.0 * lora.trainableParameterCount() / lora.totalParameterCount());

        List<Example> examples = dataset.encode(ArithmeticText.records(train)).examples();
        Trainer trainer = Trainer.builder(model)
                .learningRate(lr).weightDecay(0.01).warmupSteps(10).maxSteps(steps)
                .globalBatchSize(batch).microBatchSize(batch).seed(42).padTokenId(tok.eosId().orElseThrow())
                .progressLogging(false) // the listener below prints the progress on standard output instead
                .listener(TrainerListener.onEachStep(m -> {
                    if (m.step() % 25 == 0 || m.step() == m.totalSteps()) {
                        System.out.printf("  step %3d/%d  loss %.4f  lr %.2e  %,.0f tok/s  eta %.0fs%n", m.step(),
                                m.totalSteps(), m.loss(), m.learningRate(), m.tokensPerSecond(), m.etaSeconds());
                    }
                }))
                .build();
        trainer.fit(examples);

        ResponseEvaluation.Result after = ResponseEvaluation.evaluate(model, dataset, heldOutRecords, stops);
        System.out.printf("after LoRA: held-out accuracy %.1f%% (was %.1f%%)%n", 100 * after.exactMatch(),
                100 * before.exactMatch());
        printAnswers(after, showcase);

        Path adapterDir = outDir.resolve("adapter");
        lora.saveAdapter(adapterDir);
        System.out.println("adapter written in PEFT format: " + adapterDir.toAbsolutePath() + " "
                + Arrays.toString(adapterDir.toFile().list()));

        LoraModel reloaded = LoraModel.load(ModelLoader.load(modelDir, ModelLoader.Options.defaults().frozenDType(DType.BF16)),
                adapterDir);
        double reloadedAccuracy = ResponseEvaluation.evaluate(reloaded.model(), dataset, heldOutRecords, stops).exactMatch();
        LlamaModel merged = reloaded.mergeAndUnload();
        double mergedAccuracy = ResponseEvaluation.evaluate(merged, dataset, heldOutRecords, stops).exactMatch();
        Path mergedDir = outDir.resolve("merged");
        ModelLoader.saveFolder(merged, mergedDir, DType.BF16, modelDir); // config, weights, tokenizer, generation config
        System.out.printf("reloaded adapter: %.1f%%; merged into the base (no adapter cost): %.1f%%; merged model: %s%n",
                100 * reloadedAccuracy, 100 * mergedAccuracy, mergedDir.toAbsolutePath());
        System.out.printf("done in %.0f s%n", (System.nanoTime() - start) / 1e9);
    }

    /** The answers to the first {@code showcase.size()} held-out questions. */
    private static void printAnswers(ResponseEvaluation.Result result, List<Problem> showcase) {
        for (int i = 0; i < showcase.size(); i++) {
            Problem p = showcase.get(i);
            String answer = result.samples().get(i).answer().strip();
            System.out.printf("    %-26s -> %-8s (expected %s)%n", p.question(), "\"" + answer + "\"", p.answerText());
        }
    }

    /** Maven's exec plugin passes an empty argument when none is given. */
    static List<String> nonBlank(String[] args) {
        List<String> out = new ArrayList<>();
        for (String s : args) {
            if (!s.isBlank()) {
                out.addAll(Arrays.asList(s.trim().split("\\s+")));
            }
        }
        return out;
    }

}
