package dev.lora4j.eval;

import dev.lora4j.data.ArithmeticTasks;
import dev.lora4j.data.ArithmeticTasks.Problem;
import dev.lora4j.tokenizer.Tokenizer;
import dev.lora4j.model.Generator;
import dev.lora4j.model.LlamaModel;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.function.Function;

/**
 * The arithmetic tasks of the GPT-3 paper (§3.9.1) as lm-evaluation-harness runs them
 * ({@code arithmetic_2da}, {@code arithmetic_2ds}, {@code arithmetic_4da}, {@code arithmetic_4ds}, ...),
 * which Raschka's LoRA experiments with LitGPT reported.
 *
 * <p><b>Data.</b> lm-eval reads a fixed, downloaded set (EleutherAI/arithmetic, 2000 problems per
 * task). lora4j <i>generates</i> the same kind of problems instead, seeded: both operands uniform in
 * [0, 10<sup>n</sup>) for n-digit tasks, as the paper describes, so subtraction answers may be
 * negative. Scores are therefore comparable in expectation, not problem for problem.
 *
 * <p><b>Prompt.</b> By default the dataset's text: context {@code "Question: What is 98 plus 45?\nAnswer:"}
 * and continuation {@code " 143"} ({@code " -19"} for a negative answer). A model fine-tuned with
 * its own template (e.g. Alpaca) is evaluated through it with {@link #promptFormat(Function)},
 * which maps the question "What is 98 plus 45?" to the whole prompt, and
 * {@link #answerDelimiter(String)}, the text between prompt and answer (lm-eval: one space).
 *
 * <p><b>Metrics</b> per task:
 * <ul>
 *   <li>{@code acc}, as lm-eval: the answer continuation is the model's greedy continuation
 *       ({@link LogLikelihood.Result#isGreedy()}), one forward pass per problem (batched).
 *   <li>{@code exact_match}: greedy generation from the prompt up to a newline or EOS (or
 *       {@link #maxNewTokens(int)}), trimmed, equals the answer.
 * </ul>
 *
 * <p>Immutable: every setter returns a validated copy.
 */
public final class ArithmeticEvaluation {
    /** lm-eval's (the GPT-3 data's) prompt: {@code "Question: " + question + "\nAnswer:"}. */
    public static final String LM_EVAL_TEMPLATE = "Question: {question}\nAnswer:";
    /** Problems per task in lm-eval's data; the default here too (about 1% standard error). */
    public static final int DEFAULT_COUNT = 2000;
    public static final long DEFAULT_SEED = 1234;
    /** Enough for " -9999" plus a newline even with one token per character. */
    public static final int DEFAULT_MAX_NEW_TOKENS = 10;

    /** lm-eval's arithmetic tasks with addition and subtraction. */
    public enum Task {
        ARITHMETIC_2DA("arithmetic_2da", 2, "plus"),
        ARITHMETIC_2DS("arithmetic_2ds", 2, "minus"),
        ARITHMETIC_3DA("arithmetic_3da", 3, "plus"),
        ARITHMETIC_3DS("arithmetic_3ds", 3, "minus"),
        ARITHMETIC_4DA("arithmetic_4da", 4, "plus"),
        ARITHMETIC_4DS("arithmetic_4ds", 4, "minus"),
        ARITHMETIC_5DA("arithmetic_5da", 5, "plus"),
        ARITHMETIC_5DS("arithmetic_5ds", 5, "minus");

        private final String taskName;
        private final int digits;
        private final String operator;

        Task(String taskName, int digits, String operator) {
            this.taskName = taskName;
            this.digits = digits;
            this.operator = operator;
        }

        /** lm-eval's name, e.g. "arithmetic_2da". */
        public String taskName() {
            return taskName;
        }

        public int digits() {
            return digits;
        }

        /** "plus" or "minus". */
        public String operator() {
            return operator;
        }

        /** The task called {@code name} ("arithmetic_2da" or "2da", any case). */
        public static Task fromName(String name) {
            String wanted = name.toLowerCase(Locale.ROOT);
            for (Task t : values()) {
                if (t.taskName.equals(wanted) || t.taskName.equals("arithmetic_" + wanted)) {
                    return t;
                }
            }
            throw new IllegalArgumentException("unknown arithmetic task \"" + name + "\"; use one of "
                    + Arrays.stream(values()).map(Task::taskName).toList());
        }
    }

    /** The tasks of Raschka's experiments: two- and four-digit addition and subtraction. */
    public static final List<Task> DEFAULT_TASKS = List.of(Task.ARITHMETIC_2DA, Task.ARITHMETIC_2DS, Task.ARITHMETIC_4DA,
            Task.ARITHMETIC_4DS);

    private final List<Task> tasks;
    private final int count;
    private final long seed;
    private final Function<String, String> promptFormat;
    private final String promptDescription;
    private final String answerDelimiter;
    private final int batchSize;
    private final int maxNewTokens;
    private final boolean addSpecialTokens;

    private ArithmeticEvaluation(List<Task> tasks, int count, long seed, Function<String, String> promptFormat,
            String promptDescription, String answerDelimiter, int batchSize, int maxNewTokens, boolean addSpecialTokens) {
        this.tasks = tasks;
        this.count = count;
        this.seed = seed;
        this.promptFormat = promptFormat;
        this.promptDescription = promptDescription;
        this.answerDelimiter = answerDelimiter;
        this.batchSize = batchSize;
        this.maxNewTokens = maxNewTokens;
        this.addSpecialTokens = addSpecialTokens;
    }

    /**
     * {@link #DEFAULT_TASKS}, {@link #DEFAULT_COUNT} problems each, seed {@link #DEFAULT_SEED},
     * lm-eval's prompt and " " delimiter, batch size {@link LogLikelihood#DEFAULT_BATCH_SIZE},
     * {@link #DEFAULT_MAX_NEW_TOKENS}, and the tokenizer's special tokens (BOS) added.
     */
    public static ArithmeticEvaluation defaults() {
        return new ArithmeticEvaluation(DEFAULT_TASKS, DEFAULT_COUNT, DEFAULT_SEED, templateFunction(LM_EVAL_TEMPLATE),
                "template " + quote(LM_EVAL_TEMPLATE), " ", LogLikelihood.DEFAULT_BATCH_SIZE, DEFAULT_MAX_NEW_TOKENS, true);
    }

    public ArithmeticEvaluation tasks(List<Task> value) {
        Objects.requireNonNull(value, "tasks");
        if (value.isEmpty()) {
            throw new IllegalArgumentException("ArithmeticEvaluation.tasks is empty; name at least one, e.g. "
                    + DEFAULT_TASKS.stream().map(Task::taskName).toList());
        }
        List<Task> distinct = List.copyOf(new LinkedHashSet<>(value));
        return new ArithmeticEvaluation(distinct, count, seed, promptFormat, promptDescription, answerDelimiter, batchSize,
                maxNewTokens, addSpecialTokens);
    }

    /** Problems per task (lm-eval: 2000). */
    public ArithmeticEvaluation count(int value) {
        if (value < 1) {
            throw new IllegalArgumentException("ArithmeticEvaluation.count must be >= 1, was " + value);
        }
        return new ArithmeticEvaluation(tasks, value, seed, promptFormat, promptDescription, answerDelimiter, batchSize,
                maxNewTokens, addSpecialTokens);
    }

    /** Seed of the generated problems; each task draws from its own stream derived from it. */
    public ArithmeticEvaluation seed(long value) {
        return new ArithmeticEvaluation(tasks, count, value, promptFormat, promptDescription, answerDelimiter, batchSize,
                maxNewTokens, addSpecialTokens);
    }

    /** Maps the question ("What is 98 plus 45?") to the whole prompt. Shown as "custom function". */
    public ArithmeticEvaluation promptFormat(Function<String, String> value) {
        Objects.requireNonNull(value, "promptFormat");
        return new ArithmeticEvaluation(tasks, count, seed, value, "custom function", answerDelimiter, batchSize, maxNewTokens,
                addSpecialTokens);
    }

    /** A prompt template with a {@code {question}} placeholder, e.g. {@link #LM_EVAL_TEMPLATE}. */
    public ArithmeticEvaluation promptTemplate(String template) {
        Objects.requireNonNull(template, "promptTemplate");
        if (!template.contains("{question}")) {
            throw new IllegalArgumentException("ArithmeticEvaluation.promptTemplate " + quote(template) + " has no {question} "
                    + "placeholder; write e.g. " + quote(LM_EVAL_TEMPLATE));
        }
        return new ArithmeticEvaluation(tasks, count, seed, templateFunction(template), "template " + quote(template),
                answerDelimiter, batchSize, maxNewTokens, addSpecialTokens);
    }

    /** Text between prompt and answer in the scored continuation (lm-eval: " "; "" after a template ending in "\n"). */
    public ArithmeticEvaluation answerDelimiter(String value) {
        Objects.requireNonNull(value, "answerDelimiter");
        return new ArithmeticEvaluation(tasks, count, seed, promptFormat, promptDescription, value, batchSize, maxNewTokens,
                addSpecialTokens);
    }

    /** Log-likelihood requests per forward pass. */
    public ArithmeticEvaluation batchSize(int value) {
        if (value < 1) {
            throw new IllegalArgumentException("ArithmeticEvaluation.batchSize must be >= 1, was " + value);
        }
        return new ArithmeticEvaluation(tasks, count, seed, promptFormat, promptDescription, answerDelimiter, value,
                maxNewTokens, addSpecialTokens);
    }

    /** Generation limit for exact_match. */
    public ArithmeticEvaluation maxNewTokens(int value) {
        if (value < 1) {
            throw new IllegalArgumentException("ArithmeticEvaluation.maxNewTokens must be >= 1, was " + value);
        }
        return new ArithmeticEvaluation(tasks, count, seed, promptFormat, promptDescription, answerDelimiter, batchSize, value,
                addSpecialTokens);
    }

    /**
     * Whether prompts are encoded with the tokenizer's special tokens (a Llama BOS); default true.
     * lm-eval's HF backend leaves them out ({@code add_bos_token=False}): false reproduces that.
     */
    public ArithmeticEvaluation addSpecialTokens(boolean value) {
        return new ArithmeticEvaluation(tasks, count, seed, promptFormat, promptDescription, answerDelimiter, batchSize,
                maxNewTokens, value);
    }

    public List<Task> tasks() {
        return tasks;
    }

    public int count() {
        return count;
    }

    public long seed() {
        return seed;
    }

    /** The seeded problems of {@code task}: {@link #count()} draws, operands uniform in [0, 10^digits). */
    public List<Problem> problems(Task task) {
        long taskSeed = seed ^ (0x9E3779B97F4A7C15L * (task.ordinal() + 1));
        return ArithmeticTasks.sample(count, task.operator(), 0, (int) Math.pow(10, task.digits()), taskSeed);
    }

    /** The prompt (context) of {@code problem}: the format applied to its question. */
    public String prompt(Problem problem) {
        String prompt = promptFormat.apply(problem.question());
        if (prompt == null) {
            throw new IllegalArgumentException("ArithmeticEvaluation: the prompt format (" + promptDescription + ") returned "
                    + "null for " + quote(problem.question()));
        }
        return prompt;
    }

    /** The scored continuation: delimiter + answer, e.g. " 143" or " -19". */
    public String target(Problem problem) {
        return answerDelimiter + problem.answerText();
    }

    /** One problem's outcome: its answer, log-likelihood, whether it was greedy, and the generated text. */
    public record Sample(Problem problem, double logLikelihood, boolean isGreedy, String generated, boolean exactMatch) {
    }

    /** One task's scores over {@code n} problems. */
    public record TaskResult(Task task, List<Sample> samples) {
        public TaskResult {
            samples = List.copyOf(samples);
        }

        public int n() {
            return samples.size();
        }

        public int greedyCount() {
            return (int) samples.stream().filter(Sample::isGreedy).count();
        }

        public int exactMatchCount() {
            return (int) samples.stream().filter(Sample::exactMatch).count();
        }

        /** lm-eval's acc: fraction whose answer is the greedy continuation. */
        public double acc() {
            return (double) greedyCount() / n();
        }

        public double accStderr() {
            return MeanStderr.of(samples.stream().mapToDouble(s -> s.isGreedy() ? 1 : 0).toArray());
        }

        /** Fraction whose generated answer, trimmed, equals the answer. */
        public double exactMatch() {
            return (double) exactMatchCount() / n();
        }

        public double exactMatchStderr() {
            return MeanStderr.of(samples.stream().mapToDouble(s -> s.exactMatch() ? 1 : 0).toArray());
        }
    }

    /** All tasks' scores and the settings that produced them. */
    public record Result(List<TaskResult> tasks, Map<String, Object> settings) {
        public Result {
            tasks = List.copyOf(tasks);
            settings = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(settings));
        }
    }

    /** Scores {@code model} on every task; see the class comment for the two metrics. */
    public Result evaluate(LlamaModel model, Tokenizer tokenizer) {
        LogLikelihood.Scorer scorer = LogLikelihood.of(model).batchSize(batchSize).scorer(tokenizer, addSpecialTokens);
        Set<Integer> stops = newlineAndEosTokens(tokenizer, model);
        Generator generator = new Generator(model).maxNewTokens(maxNewTokens).stopTokens(stops);
        List<TaskResult> results = new ArrayList<>();
        for (Task task : tasks) {
            List<Problem> problems = problems(task);
            List<LogLikelihood.TextRequest> requests = new ArrayList<>(problems.size());
            for (Problem p : problems) {
                requests.add(new LogLikelihood.TextRequest(prompt(p), target(p)));
            }
            List<LogLikelihood.Result> scored = scorer.score(requests);
            List<Sample> samples = new ArrayList<>(problems.size());
            for (int i = 0; i < problems.size(); i++) {
                Problem p = problems.get(i);
                String generated = generateAnswer(generator, tokenizer, prompt(p));
                samples.add(new Sample(p, scored.get(i).logLikelihood(), scored.get(i).isGreedy(), generated,
                        generated.equals(p.answerText())));
            }
            results.add(new TaskResult(task, samples));
        }
        return new Result(results, settings());
    }

    /** Greedy text after {@code prompt}, cut at the first newline and trimmed. */
    private String generateAnswer(Generator generator, Tokenizer tokenizer, String prompt) {
        int[] ids = tokenizer.encode(prompt, addSpecialTokens);
        if (ids.length == 0) {
            throw new IllegalArgumentException("ArithmeticEvaluation: the prompt " + quote(prompt) + " encodes to no tokens; "
                    + "give a non-empty prompt format or add special tokens (BOS)");
        }
        String text = tokenizer.decode(generator.generate(ids), true);
        int newline = text.indexOf('\n');
        return (newline >= 0 ? text.substring(0, newline) : text).trim();
    }

    /**
     * Ends of an answer: the model's and tokenizer's EOS tokens and every token whose text holds a
     * newline (a "\n" piece, a byte-fallback {@code <0x0A>}, or a merge like ".\n").
     */
    static Set<Integer> newlineAndEosTokens(Tokenizer tokenizer, LlamaModel model) {
        Set<Integer> stops = new LinkedHashSet<>(model.config().eosTokenIds());
        tokenizer.eosId().ifPresent(stops::add);
        int vocab = Math.min(tokenizer.vocabSize(), model.config().vocabSize());
        for (int id = 0; id < vocab; id++) {
            String text;
            try {
                text = tokenizer.decode(new int[] {id}, false);
            } catch (IllegalArgumentException noSuchToken) {
                continue; // a gap in the vocabulary: the model can produce it, but it decodes to nothing
            }
            if (text.indexOf('\n') >= 0) {
                stops.add(id);
            }
        }
        return stops;
    }

    /** The effective settings, for reports. */
    public Map<String, Object> settings() {
        Map<String, Object> s = new LinkedHashMap<>();
        s.put("tasks", String.join(",", tasks.stream().map(Task::taskName).toList()));
        s.put("count", count);
        s.put("seed", seed);
        s.put("prompt", promptDescription);
        s.put("answer_delimiter", answerDelimiter);
        s.put("batch_size", batchSize);
        s.put("max_new_tokens", maxNewTokens);
        s.put("add_special_tokens", addSpecialTokens);
        return s;
    }

    private static Function<String, String> templateFunction(String template) {
        return question -> template.replace("{question}", question);
    }

    private static String quote(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\n", "\\n").replace("\"", "\\\"") + "\"";
    }

    @Override
    public String toString() {
        return "ArithmeticEvaluation" + settings();
    }
}
