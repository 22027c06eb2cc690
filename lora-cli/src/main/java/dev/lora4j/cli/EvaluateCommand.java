package dev.lora4j.cli;

import dev.lora4j.tokenizer.HfTokenizer;
import dev.lora4j.data.InstructionRecord;
import dev.lora4j.data.PromptStyle;
import dev.lora4j.eval.ArithmeticEvaluation;
import dev.lora4j.eval.EvaluationReport;
import dev.lora4j.eval.LogLikelihood;
import dev.lora4j.eval.LossEvaluator;
import dev.lora4j.eval.MultipleChoiceEvaluation;
import dev.lora4j.eval.ResponseEvaluation;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Spec;
import picocli.CommandLine.TypeConversionException;

/**
 * {@code lora4j evaluate}: scores a model (with adapters, optionally on a 4-bit base) on
 * <ul>
 *   <li>{@code val_loss}: loss and perplexity on instruction data, encoded as finetune encodes it
 *       (the same --data options): all of --val-data, or all of --data, or with --val-split only the
 *       validation part finetune held out (same fraction and --data-seed);</li>
 *   <li>{@code exact_match}: the same records answered greedily (prompt as in training, until EOS),
 *       an answer counting when it equals the record's output (white space stripped at both ends);</li>
 *   <li>{@code arithmetic_2da ... arithmetic_5ds} (or {@code arithmetic} for 2da, 2ds, 4da, 4ds):
 *       generated GPT-3 arithmetic problems, acc by log-likelihood and exact_match by greedy
 *       generation; the prompt is the question through the --prompt-style/--prompt-template given
 *       (the question as {instruction}), else lm-eval's "Question: {question}\nAnswer:";</li>
 *   <li>{@code truthfulqa_mc1}, {@code truthfulqa_mc2} (or {@code truthfulqa}): multiple choice by
 *       log-likelihood over --mc-file, in Hugging Face truthful_qa's layout.</li>
 * </ul>
 * A table goes to standard output ({@code --json}: the JSON report instead); {@code --out FILE}
 * writes the JSON report (lm-eval's shape, {@link EvaluationReport}).
 */
@Command(name = "evaluate", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Evaluate a model and its adapters: validation loss, arithmetic, multiple choice.",
        footer = {"", "Tasks: val_loss, exact_match (on --data/--val-data); arithmetic_2da, _2ds, _3da, _3ds, _4da, _4ds, _5da, _5ds (arithmetic: 2da, 2ds, "
                + "4da, 4ds); truthfulqa_mc1, truthfulqa_mc2 (truthfulqa: both).", "",
            "Example: lora4j evaluate models/arith-tiny --adapter runs/arith/adapter --tasks val_loss,arithmetic_2da "
                    + "--val-data arith-test.json --prompt-template '{instruction}\\nAnswer:' --out results.json"})
public final class EvaluateCommand implements Callable<Integer> {
    private static final Logger LOG = LoggerFactory.getLogger(EvaluateCommand.class);

    static final String VAL_LOSS = "val_loss";
    static final String EXACT_MATCH = "exact_match";
    static final String MC1 = "truthfulqa_mc1";
    static final String MC2 = "truthfulqa_mc2";

    /** Every --tasks name, and what the group names expand to. */
    static final Map<String, List<String>> TASK_NAMES = taskNames();
    static final String TASK_LIST = String.join(", ", TASK_NAMES.keySet());

    @Spec
    private CommandSpec spec;

    @ParentCommand
    private Lora4j root;

    @Mixin
    ModelOptions modelOptions;

    @Mixin
    DeviceOptions deviceOptions;

    @Option(names = {"-t", "--tasks"}, required = true, split = ",", paramLabel = "TASK", converter = TaskConverter.class,
            description = "Comma-separated tasks: val_loss, exact_match (both on --data/--val-data), arithmetic_2da ... arithmetic_5ds (arithmetic: 2da,2ds,4da,4ds), "
                    + "truthfulqa_mc1, truthfulqa_mc2 (truthfulqa: both).")
    List<String> taskNames = new ArrayList<>();

    @Option(names = {"-o", "--out"}, paramLabel = "FILE",
            description = "Write the JSON report here (default: none; the table goes to standard output).")
    Path out;

    @Option(names = "--json", description = "Print the JSON report to standard output instead of the table.")
    boolean json;

    @Option(names = "--batch-size", defaultValue = "" + LogLikelihood.DEFAULT_BATCH_SIZE, paramLabel = "N",
            description = "Sequences per forward pass (default: ${DEFAULT-VALUE}).")
    int batchSize;

    @Option(names = "--count", defaultValue = "" + ArithmeticEvaluation.DEFAULT_COUNT, paramLabel = "N",
            description = "Problems per arithmetic task (lm-eval's data has 2000; default: ${DEFAULT-VALUE}).")
    int count;

    @Option(names = "--seed", defaultValue = "" + ArithmeticEvaluation.DEFAULT_SEED, paramLabel = "SEED",
            description = "Seed of the generated arithmetic problems (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--answer-delimiter", defaultValue = " ", paramLabel = "TEXT",
            description = "Text between the arithmetic prompt and the answer (lm-eval: one space, the default; \\n is "
                    + "unescaped).")
    String answerDelimiter;

    @Option(names = "--max-new-tokens", defaultValue = "" + ArithmeticEvaluation.DEFAULT_MAX_NEW_TOKENS, paramLabel = "N",
            description = "Token limit of the generated arithmetic answers (default: ${DEFAULT-VALUE}).")
    int maxNewTokens;

    @Option(names = "--mc-file", paramLabel = "FILE",
            description = "Multiple-choice questions for truthfulqa_mc1/mc2: a JSON array of {question, mc1_targets: "
                    + "{choices, labels}, mc2_targets: {choices, labels}}.")
    Path mcFile;

    @Option(names = "--mc-preamble-file", paramLabel = "FILE",
            description = "Few-shot text before each multiple-choice question (default: lm-eval's six TruthfulQA "
                    + "question/answer pairs; an empty file for none).")
    Path mcPreambleFile;

    @Mixin
    DataOptions dataOptions;

    @Override
    public Integer call() throws IOException {
        dev.lora4j.tensor.Device computeDevice = deviceOptions.resolve(spec);
        Set<String> tasks = new LinkedHashSet<>();
        taskNames.forEach(name -> tasks.addAll(TASK_NAMES.get(name)));
        List<ArithmeticEvaluation.Task> arithmetic = tasks.stream().filter(t -> t.startsWith("arithmetic_"))
                .map(ArithmeticEvaluation.Task::fromName).toList();
        boolean mc1 = tasks.contains(MC1);
        boolean mc2 = tasks.contains(MC2);
        checkOptions(arithmetic, mc1 || mc2);
        modelOptions.folder();
        HfTokenizer tokenizer = modelOptions.tokenizer();
        PrintWriter err = spec.commandLine().getErr();

        // everything that reads user files first, so that a bad file fails before the model loads
        DataOptions.Prepared validation = null;
        boolean answers = tasks.contains(EXACT_MATCH);
        if (tasks.contains(VAL_LOSS) || answers) {
            int maxPositions = modelOptions.config().maxPositionEmbeddings();
            validation = dataOptions.prepareForEvaluation(tokenizer, maxPositions);
            if (root == null || !root.quiet()) {
                err.println(validation.summary());
                err.flush();
            }
        }
        List<MultipleChoiceEvaluation.Item> mcItems = null;
        MultipleChoiceEvaluation mcEvaluation = null;
        if (mc1 || mc2) {
            mcItems = MultipleChoiceEvaluation.read(mcFile);
            checkTargets(mcItems, mc1, mc2);
            mcEvaluation = OptionErrors.check(spec, "--batch-size", batchSize,
                    () -> MultipleChoiceEvaluation.defaults().batchSize(batchSize));
            if (mcPreambleFile != null) {
                mcEvaluation = mcEvaluation.preamble(Files.readString(mcPreambleFile, StandardCharsets.UTF_8));
            }
        }
        ArithmeticEvaluation arithmeticEvaluation = arithmetic.isEmpty() ? null : arithmeticEvaluation(arithmetic);

        ModelOptions.LoadedModel loaded = modelOptions.load(computeDevice);
        EvaluationReport report = EvaluationReport.empty().model(loaded.folder().toString())
                .config("lora4j_version", Lora4j.version())
                .config("tasks", String.join(",", tasks));
        if (loaded.hasAdapters()) {
            report = report.adapter(String.join(",", modelOptions.adapters().stream().map(a -> a.dir().toString()).toList()));
        }
        if (modelOptions.quantize() != null) {
            report = report.config("quantize", modelOptions.quantize().toString());
        }
        if (validation != null) {
            report = report.config("validation", validationConfig(validation));
        }
        List<Row> rows = new ArrayList<>();
        if (validation != null && tasks.contains(VAL_LOSS)) {
            long start = System.nanoTime();
            int padId = tokenizer.padId().orElse(tokenizer.eosId().orElse(0));
            LossEvaluator.LossResult r = LossEvaluator.evaluate(loaded.model(), validation.validation(), batchSize, padId);
            LOG.info(String.format(Locale.ROOT, "val_loss: %d examples in %.1f s", r.examples(), seconds(start)));
            report = report.validation(r);
            rows.add(new Row(VAL_LOSS, "loss", r.loss(), Double.NaN, r.examples()));
            rows.add(new Row(VAL_LOSS, "perplexity", r.perplexity(), Double.NaN, r.examples()));
        }
        if (answers) {
            long start = System.nanoTime();
            ResponseEvaluation.Result r = ResponseEvaluation.evaluate(loaded.model(), validation.dataset(),
                    validation.validationRecords(), ModelOptions.stopTokens(loaded, tokenizer));
            LOG.info(String.format(Locale.ROOT, "exact_match: %d records answered in %.1f s (%d skipped)", r.n(),
                    seconds(start), r.skipped()));
            report = report.responses(EXACT_MATCH, r);
            rows.add(new Row(EXACT_MATCH, "exact_match", r.exactMatch(), r.exactMatchStderr(), r.n()));
        }
        if (arithmeticEvaluation != null) {
            long start = System.nanoTime();
            ArithmeticEvaluation.Result r = arithmeticEvaluation.evaluate(loaded.model(), tokenizer);
            LOG.info(String.format(Locale.ROOT, "arithmetic: %d task(s) of %d problems in %.1f s", r.tasks().size(), count,
                    seconds(start)));
            report = report.arithmetic(r).config("arithmetic_prompt", String.valueOf(arithmeticPromptStyle()));
            for (ArithmeticEvaluation.TaskResult t : r.tasks()) {
                rows.add(new Row(t.task().taskName(), "acc", t.acc(), t.accStderr(), t.n()));
                rows.add(new Row(t.task().taskName(), "exact_match", t.exactMatch(), t.exactMatchStderr(), t.n()));
            }
        }
        if (mcEvaluation != null) {
            long start = System.nanoTime();
            MultipleChoiceEvaluation.Result r = mcEvaluation.evaluate(loaded.model(), tokenizer, mcItems);
            LOG.info(String.format(Locale.ROOT, "multiple choice: %d questions in %.1f s", mcItems.size(), seconds(start)));
            // only the metrics asked for: MC1 and MC2 are computed together
            r = new MultipleChoiceEvaluation.Result(mc1 ? r.mc1() : null, mc2 ? r.mc2() : null, r.settings());
            report = report.multipleChoice(r).config("mc_file", mcFile.toString());
            for (MultipleChoiceEvaluation.TaskScore s : new MultipleChoiceEvaluation.TaskScore[] {r.mc1(), r.mc2()}) {
                if (s != null) {
                    rows.add(new Row(s.task(), "acc", s.acc(), s.accStderr(), s.n()));
                }
            }
        }

        PrintWriter stdout = spec.commandLine().getOut();
        if (json) {
            stdout.println(report.toJson());
        } else {
            printTable(stdout, rows);
        }
        stdout.flush();
        if (out != null) {
            report.write(out);
            LOG.info("wrote {}", out);
        }
        return 0;
    }

    private void checkOptions(List<ArithmeticEvaluation.Task> arithmetic, boolean multipleChoice) {
        if ((multipleChoice) != (mcFile != null)) {
            throw multipleChoice
                    ? OptionErrors.usage(spec, "the tasks truthfulqa_mc1/truthfulqa_mc2 need --mc-file FILE (a JSON array of "
                            + "questions with mc1_targets/mc2_targets)")
                    : OptionErrors.usage(spec, "--mc-file is only read by the tasks truthfulqa_mc1 and truthfulqa_mc2; add "
                            + "one to --tasks or drop --mc-file");
        }
        if (mcPreambleFile != null && !multipleChoice) {
            throw OptionErrors.usage(spec, "--mc-preamble-file is only read by the tasks truthfulqa_mc1 and truthfulqa_mc2");
        }
        if (mcFile != null && !Files.isRegularFile(mcFile)) {
            throw OptionErrors.invalid(spec, "--mc-file", mcFile, "no such file");
        }
        if (mcPreambleFile != null && !Files.isRegularFile(mcPreambleFile)) {
            throw OptionErrors.invalid(spec, "--mc-preamble-file", mcPreambleFile, "no such file");
        }
        if (batchSize < 1) {
            throw OptionErrors.invalid(spec, "--batch-size", batchSize, "must be at least 1");
        }
        if (dataOptions.hasData() && taskNames.stream().noneMatch(t -> t.equals(VAL_LOSS) || t.equals(EXACT_MATCH))) {
            throw OptionErrors.usage(spec, "--data/--val-data are only read by the tasks val_loss and exact_match; add one "
                    + "to --tasks or drop the data options");
        }
    }

    /** Each requested metric needs its targets in the file. */
    private void checkTargets(List<MultipleChoiceEvaluation.Item> items, boolean mc1, boolean mc2) {
        if (mc1 && items.stream().noneMatch(i -> i.mc1Targets() != null)) {
            throw OptionErrors.invalid(spec, "--mc-file", mcFile, "no question has mc1_targets, which truthfulqa_mc1 scores; "
                    + "drop the task or add the targets");
        }
        if (mc2 && items.stream().noneMatch(i -> i.mc2Targets() != null)) {
            throw OptionErrors.invalid(spec, "--mc-file", mcFile, "no question has mc2_targets, which truthfulqa_mc2 scores; "
                    + "drop the task or add the targets");
        }
    }

    /** The prompt style given with the data options, through which arithmetic questions are asked (null: lm-eval's). */
    private PromptStyle arithmeticPromptStyle() {
        return dataOptions.promptStyle(null);
    }

    private ArithmeticEvaluation arithmeticEvaluation(List<ArithmeticEvaluation.Task> tasks) {
        ArithmeticEvaluation e = ArithmeticEvaluation.defaults().tasks(tasks);
        ArithmeticEvaluation withTasks = e;
        e = OptionErrors.check(spec, "--count", count, () -> withTasks.count(count)).seed(seed);
        ArithmeticEvaluation withCount = e;
        e = OptionErrors.check(spec, "--batch-size", batchSize, () -> withCount.batchSize(batchSize));
        ArithmeticEvaluation withBatch = e;
        e = OptionErrors.check(spec, "--max-new-tokens", maxNewTokens, () -> withBatch.maxNewTokens(maxNewTokens));
        String delimiter = DataOptions.unescape(answerDelimiter);
        ArithmeticEvaluation withLimit = e;
        e = OptionErrors.check(spec, "--answer-delimiter", answerDelimiter, () -> withLimit.answerDelimiter(delimiter));
        PromptStyle style = arithmeticPromptStyle();
        if (style != null) {
            e = e.promptFormat(question -> style.prompt(InstructionRecord.of(question, "")));
        }
        return e;
    }

    private static Map<String, Object> validationConfig(DataOptions.Prepared validation) {
        return new LinkedHashMap<>(validation.stats());
    }

    /** One line of the table. */
    record Row(String task, String metric, double value, double stderr, long n) {
    }

    static void printTable(PrintWriter out, List<Row> rows) {
        int width = Math.max(4, rows.stream().mapToInt(r -> r.task().length()).max().orElse(4));
        String format = "%-" + width + "s  %-11s  %10s  %10s  %7s%n";
        out.printf(Locale.ROOT, format, "task", "metric", "value", "± stderr", "n");
        for (Row r : rows) {
            out.printf(Locale.ROOT, format, r.task(), r.metric(), String.format(Locale.ROOT, "%.4f", r.value()),
                    Double.isFinite(r.stderr()) ? String.format(Locale.ROOT, "%.4f", r.stderr()) : "",
                    String.format(Locale.ROOT, "%,d", r.n()));
        }
    }

    private static double seconds(long startNanos) {
        return (System.nanoTime() - startNanos) / 1e9;
    }

    private static Map<String, List<String>> taskNames() {
        Map<String, List<String>> names = new LinkedHashMap<>();
        names.put(VAL_LOSS, List.of(VAL_LOSS));
        names.put(EXACT_MATCH, List.of(EXACT_MATCH));
        names.put("arithmetic", ArithmeticEvaluation.DEFAULT_TASKS.stream().map(ArithmeticEvaluation.Task::taskName).toList());
        for (ArithmeticEvaluation.Task t : ArithmeticEvaluation.Task.values()) {
            names.put(t.taskName(), List.of(t.taskName()));
        }
        names.put("truthfulqa", List.of(MC1, MC2));
        names.put(MC1, List.of(MC1));
        names.put(MC2, List.of(MC2));
        return names;
    }

    /** One --tasks name, checked and in lower case (a key of {@link #TASK_NAMES}). */
    static final class TaskConverter implements ITypeConverter<String> {
        @Override
        public String convert(String value) {
            String name = value.trim().toLowerCase(Locale.ROOT);
            if (!TASK_NAMES.containsKey(name)) {
                throw new TypeConversionException("'" + value + "' is not a task; use " + TASK_LIST);
            }
            return name;
        }
    }

    @Override
    public String toString() {
        return "EvaluateCommand(tasks=" + taskNames + ", out=" + out + ", batchSize=" + batchSize + ", count=" + count
                + ", seed=" + seed + ", answerDelimiter=" + answerDelimiter + ", maxNewTokens=" + maxNewTokens + ", mcFile="
                + mcFile + ", mcPreambleFile=" + mcPreambleFile + ", " + modelOptions + ", " + dataOptions + ")";
    }
}
