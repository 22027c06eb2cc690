package dev.lora4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.lora4j.tokenizer.HfTokenizer;
import dev.lora4j.data.PromptStyle;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.lora.MemoryPlan;
import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.train.Trainer;
import dev.lora4j.train.TrainerListener;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Spec;

/**
 * {@code lora4j finetune}: LoRA (QLoRA with --quantize) fine-tuning on instruction data, LitGPT's
 * {@code litgpt finetune lora} with its defaults written out. Writes into --out:
 * <ul>
 *   <li>{@code adapter/}: the trained adapter in PEFT format (when the run completes);</li>
 *   <li>{@code metrics.jsonl}: one line per optimizer step and per validation;</li>
 *   <li>{@code loss.png}: training and validation loss, redrawn at each validation and at the end;</li>
 *   <li>{@code checkpoints/step-NNNNNN/}: adapter, optimizer state and run position every
 *       --save-interval steps and at the end, from which {@code --resume} continues so that the
 *       loss curve equals an uninterrupted run's;</li>
 *   <li>{@code finetune.json}: the effective settings (and, at the end, the results).</li>
 * </ul>
 */
@Command(name = "finetune", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Fine-tune a LoRA adapter on instruction data (QLoRA with --quantize).",
        footer = {"", "Example: lora4j finetune models/arith-tiny --data arith-train.json "
                + "--prompt-template '{instruction}\\nAnswer:' --targets all --lr 3e-3 --batch-size 16 "
                + "--micro-batch-size 16 --warmup-steps 10 --out runs/arith"})
public final class FinetuneCommand implements Callable<Integer> {
    private static final Logger LOG = LoggerFactory.getLogger(FinetuneCommand.class);
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /** Files and folders of --out. */
    static final String ADAPTER_DIR = "adapter";
    static final String CHECKPOINT_DIR = "checkpoints";
    static final String METRICS_FILE = "metrics.jsonl";
    static final String PLOT_FILE = "loss.png";
    static final String SETTINGS_FILE = "finetune.json";
    /** The file whose presence marks a complete checkpoint folder (the Trainer's). */
    static final String CHECKPOINT_STATE = "trainer_state.json";

    /** Sections of finetune.json that a resumed run must repeat. */
    private static final List<String> RUN_DEFINING = List.of("model", "lora", "data", "train");

    @Spec
    private CommandSpec spec;

    @ParentCommand
    private Lora4j root;

    @Mixin
    ModelOptions modelOptions;

    @Mixin
    DeviceOptions deviceOptions;

    @Mixin
    DataOptions dataOptions;

    @Mixin
    LoraOptions loraOptions;

    @Mixin
    TrainOptions trainOptions;

    @Option(names = {"-o", "--out"}, required = true, paramLabel = "DIR",
            description = "Output folder: adapter/, metrics.jsonl, loss.png, checkpoints/, finetune.json.")
    Path out;

    @Option(names = "--eval-interval", defaultValue = "100", paramLabel = "N",
            description = "Validation loss every N optimizer steps, and after the last (default: ${DEFAULT-VALUE}, "
                    + "as LitGPT).")
    long evalInterval;

    @Option(names = "--save-interval", defaultValue = "1000", paramLabel = "N",
            description = "Checkpoint into DIR/checkpoints every N steps, and after the last (default: ${DEFAULT-VALUE}, "
                    + "as LitGPT).")
    long saveInterval;

    @Option(names = "--keep-checkpoints", paramLabel = "N",
            description = "Keep only the newest N checkpoints (default: all).")
    Integer keepCheckpoints;

    @Option(names = "--resume",
            description = "Continue the run in --out from its newest complete checkpoint, with the same settings.")
    boolean resume;

    @Option(names = "--resume-from", paramLabel = "PATH",
            description = "Continue from this checkpoint (a step-NNNNNN folder, or a checkpoints folder: its newest).")
    Path resumeFrom;

    @Option(names = "--force", description = "Start a new run in a non-empty --out, deleting its adapter/ and checkpoints/.")
    boolean force;

    @Option(names = "--stop-after-steps", paramLabel = "N", hidden = true,
            description = "Stop after optimizer step N (counted from the start of the run) and checkpoint, as an "
                    + "interrupted run would; --resume continues it.")
    Long stopAfterSteps;

    @Option(names = "--dry-run",
            description = "Print the run's memory plan (predicted peak heap and resident memory, from the config: no "
                    + "weights loaded) and exit without training: exit code 0 if it fits the JVM's maximum heap and the "
                    + "machine's memory, 1 if not.")
    boolean dryRun;

    @Option(names = "--assume-max-heap", paramLabel = "BYTES", hidden = true,
            description = "Check the memory plan against this maximum heap instead of the JVM's (for tests).")
    Long assumeMaxHeap;

    @Override
    public Integer call() {
        dev.lora4j.tensor.Device computeDevice = deviceOptions.resolve(spec);
        Path folder = modelOptions.folder();
        if (!modelOptions.adapters().isEmpty()) {
            throw OptionErrors.usage(spec, "finetune trains a new adapter on the base model; --adapter is not supported "
                    + "here (merge an earlier adapter into the base first with 'lora4j merge')");
        }
        checkIntervals();
        LlamaConfig modelConfig = modelOptions.config();
        // every option is checked before any data is read or written: a typo fails in a second
        LoraConfig loraConfig = loraOptions.toLoraConfig().seed(trainOptions.seed());
        trainOptions.configure(Trainer.builder(LlamaModel.meta(modelConfig)));
        Path resumePoint = dryRun ? null : checkOut();
        HfTokenizer tokenizer = modelOptions.tokenizer();
        PromptStyle style = dataOptions.promptStyle(PromptStyle.alpaca());
        DataOptions.Prepared data = dataOptions.prepareForTraining(tokenizer, modelConfig.maxPositionEmbeddings());
        if (root == null || !root.quiet()) {
            PrintWriter err = spec.commandLine().getErr();
            err.println(data.summary());
            err.flush();
        }
        int padId = tokenizer.padId().orElse(tokenizer.eosId().orElse(0));
        Path checkpoints = out.resolve(CHECKPOINT_DIR);

        if (dryRun) {
            return dryRun(modelConfig, loraConfig, data);
        }
        Map<String, Object> settings = settings(folder, style, modelConfig, loraConfig, padId, data);
        if (resumePoint != null) {
            checkSameRun(settings, resumePoint);
        }
        ModelOptions.LoadedModel loaded = modelOptions.load(computeDevice);
        LoraModel lora = LoraModel.wrap(loaded.model(), loraConfig).baseModel(folder.toString());
        LOG.info(String.format(Locale.ROOT, "LoRA r=%d alpha=%s on %s%s: %,d trainable of %,d parameters (%.3f%%)",
                loraConfig.rank(), loraConfig.alpha(), loraConfig.targetModules(), loaded.quantizedBase()
                        ? " of a 4-bit base (QLoRA)" : "", lora.trainableParameterCount(), lora.totalParameterCount(),
                100.0 * lora.trainableParameterCount() / lora.totalParameterCount()));

        Trainer.Builder builder = trainOptions.configure(Trainer.builder(lora.model()))
                .padTokenId(padId)
                .adapterFolders(lora)
                .checkpointDir(checkpoints)
                .checkpointEvery(saveInterval);
        if (keepCheckpoints != null) {
            OptionErrors.check(spec, "--keep-checkpoints", keepCheckpoints, () -> builder.keepLastCheckpoints(keepCheckpoints));
        }
        if (!data.validation().isEmpty()) {
            builder.validation(data.validation(), evalInterval);
        }
        if (stopAfterSteps != null) {
            OptionErrors.check(spec, "--stop-after-steps", stopAfterSteps, () -> builder.stopAfterSteps(stopAfterSteps));
        }
        long resumedStep = 0;
        if (resumePoint != null) {
            builder.resumeFrom(resumePoint);
            resumedStep = checkpointStep(resumePoint);
        }

        Path metricsFile = out.resolve(METRICS_FILE);
        Path plotFile = out.resolve(PLOT_FILE);
        LossPlot plot;
        MetricsJsonlWriter metrics;
        if (resumePoint != null && Files.isRegularFile(metricsFile)) {
            // a run killed after its last checkpoint wrote steps that the resumed run repeats
            int dropped = truncateMetrics(metricsFile, resumedStep);
            if (dropped > 0) {
                LOG.info("{}: dropped {} record(s) after step {}, which the resumed run writes again", metricsFile, dropped,
                        resumedStep);
            }
            plot = LossPlot.fromJsonl(metricsFile, plotTitle(folder));
            metrics = MetricsJsonlWriter.append(metricsFile);
        } else {
            plot = new LossPlot(plotTitle(folder));
            metrics = MetricsJsonlWriter.create(metricsFile);
        }
        FinalValues last = new FinalValues();
        builder.listener(metrics).listener(plot).listener(last).listener(new TrainerListener() {
            @Override
            public void onValidation(ValidationMetrics m) {
                plot.writePng(plotFile);
            }
        });
        writeSettings(settings, null);

        // on the command line's error writer (standard error unless the caller set another), as the data summary
        ProgressBarListener bar = root != null && root.quiet() ? null
                : ProgressBarListener.toWriter("finetune", spec.commandLine().getErr());
        if (bar != null) {
            builder.listener(bar).progressLogging(false); // the bar shows the progress
        }
        Trainer trainer = builder.build();
        LOG.info("{} training examples, {} optimizer steps; {}", data.train().size(), trainer.totalSteps(data.train().size()),
                trainOptions);
        TrainerListener.TrainingResult result;
        try {
            result = trainer.fit(data.train());
        } finally {
            if (bar != null) {
                bar.close();
            }
            metrics.close();
        }
        if (plot.size() > 0) {
            plot.writePng(plotFile);
        }
        Path adapterDir = out.resolve(ADAPTER_DIR);
        if (result.completed()) {
            lora.saveAdapter(adapterDir);
        }
        writeSettings(settings, resultSection(result, last));
        printSummary(result, last, adapterDir, checkpoints, metricsFile, plotFile);
        return 0;
    }

    /**
     * Prints the memory plan of this run, from the config alone, at the length of its longest
     * training example; 0 if it fits, 1 (and why, with the settings to change) if it does not.
     */
    private int dryRun(LlamaConfig modelConfig, LoraConfig loraConfig, DataOptions.Prepared data) {
        int longest = 1;
        for (dev.lora4j.data.Example e : data.train()) {
            longest = Math.max(longest, e.length());
        }
        MemoryPlan plan;
        try {
            plan = MemoryPlan.of(modelConfig, loraConfig, planWeights(modelConfig), trainOptions.planShape(longest));
        } catch (IllegalArgumentException e) {
            throw OptionErrors.usage(spec, "the LoRA targets do not fit the model: " + e.getMessage());
        }
        PrintWriter stdout = spec.commandLine().getOut();
        stdout.println(plan.format());
        stdout.flush();
        long maxHeap = assumeMaxHeap != null ? assumeMaxHeap : Runtime.getRuntime().maxMemory();
        try {
            plan.check(maxHeap == Long.MAX_VALUE ? -1 : maxHeap, MemoryPlan.physicalMemory().orElse(-1));
        } catch (MemoryPlan.DoesNotFitException e) {
            PrintWriter err = spec.commandLine().getErr();
            err.println("lora4j finetune: " + e.getMessage().substring(0, e.getMessage().indexOf('\n')));
            err.flush();
            return 1;
        }
        stdout.printf(Locale.ROOT, "fits: peak heap %s of the JVM's %s maximum; dry run, nothing trained%n",
                MemoryPlan.size(plan.predictedPeakHeap()), maxHeap == Long.MAX_VALUE ? "unlimited" : MemoryPlan.size(maxHeap));
        stdout.flush();
        return 0;
    }

    /** How the loader will hold the base: as stored (memory-mapped), with --quantize's 4-bit projections. */
    private MemoryPlan.Weights planWeights(LlamaConfig c) {
        String dtype = c.torchDtype();
        int bytes = "bfloat16".equals(dtype) || "float16".equals(dtype) ? 2 : 4;
        MemoryPlan.Weights stored = MemoryPlan.Weights.stored(bytes, true);
        dev.lora4j.quant.QuantConfig q = modelOptions.quantize();
        return q == null ? stored : stored.quantized(q.blocksize(), q.doubleQuant());
    }

    private void checkIntervals() {
        if (evalInterval < 1) {
            throw OptionErrors.invalid(spec, "--eval-interval", evalInterval, "must be at least 1 step");
        }
        if (saveInterval < 1) {
            throw OptionErrors.invalid(spec, "--save-interval", saveInterval, "must be at least 1 step");
        }
    }

    /**
     * Checks --out against --resume / --resume-from / --force; returns the checkpoint to resume
     * from, or null for a new run.
     */
    private Path checkOut() {
        if (resume && resumeFrom != null) {
            throw OptionErrors.usage(spec, "--resume and --resume-from exclude each other: --resume continues from the newest "
                    + "checkpoint in --out, --resume-from from the one you name; give one");
        }
        if (force && (resume || resumeFrom != null)) {
            throw OptionErrors.usage(spec, "--force starts a new run, --resume continues one; give one");
        }
        if (Files.exists(out) && !Files.isDirectory(out)) {
            throw OptionErrors.invalid(spec, "--out", out, "is a file; give a folder");
        }
        Path checkpoints = out.resolve(CHECKPOINT_DIR);
        if (resume) {
            Optional<Path> latest = Files.isDirectory(checkpoints) ? Trainer.latestCheckpoint(checkpoints) : Optional.empty();
            return latest.orElseThrow(() -> OptionErrors.invalid(spec, "--out", out, "--resume found no complete checkpoint "
                    + "in " + checkpoints + "; start the run without --resume, or name one with --resume-from"));
        }
        if (resumeFrom != null) {
            if (!Files.isDirectory(resumeFrom)) {
                throw OptionErrors.invalid(spec, "--resume-from", resumeFrom, "no such folder; give a step-NNNNNN checkpoint "
                        + "folder or a checkpoints folder");
            }
            if (Files.isRegularFile(resumeFrom.resolve(CHECKPOINT_STATE))) {
                return resumeFrom;
            }
            return Trainer.latestCheckpoint(resumeFrom).orElseThrow(() -> OptionErrors.invalid(spec, "--resume-from",
                    resumeFrom, "holds no complete checkpoint (a step-NNNNNN folder with trainer_state.json)"));
        }
        if (Files.isDirectory(out) && !isEmpty(out)) {
            if (!force) {
                throw OptionErrors.invalid(spec, "--out", out, "the folder is not empty; continue its run with --resume, "
                        + "choose a new folder, or add --force to start over (deleting its adapter/ and checkpoints/)");
            }
            deleteTree(out.resolve(ADAPTER_DIR));
            deleteTree(checkpoints);
        }
        return null;
    }

    /** The step of a checkpoint folder, from its state. */
    private static long checkpointStep(Path checkpoint) {
        try {
            return JSON.readTree(checkpoint.resolve(CHECKPOINT_STATE).toFile()).path("step").asLong();
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + checkpoint.resolve(CHECKPOINT_STATE) + ": " + e.getMessage(), e);
        }
    }

    /** A resumed run must repeat the settings of the run it continues; the Trainer checks its own, this the rest. */
    private void checkSameRun(Map<String, Object> settings, Path checkpoint) {
        Path file = out.resolve(SETTINGS_FILE);
        if (!Files.isRegularFile(file)) {
            LOG.warn("{} is missing, so the LoRA, model and data settings cannot be compared with the run being resumed; "
                    + "the trainer still checks its own settings and the data", file);
            return;
        }
        JsonNode saved;
        try {
            saved = JSON.readTree(file.toFile());
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + file + ": " + e.getMessage(), e);
        }
        JsonNode now = JSON.valueToTree(settings);
        List<String> differences = new ArrayList<>();
        for (String section : RUN_DEFINING) {
            JsonNode a = saved.path(section);
            JsonNode b = now.path(section);
            Iterator<String> names = b.fieldNames();
            while (names.hasNext()) {
                String name = names.next();
                if (!a.path(name).equals(b.path(name)) && !(a.path(name).isNumber() && b.path(name).isNumber()
                        && a.path(name).asDouble() == b.path(name).asDouble())) {
                    differences.add(section + "." + name + " (was " + a.path(name) + ", now " + b.path(name) + ")");
                }
            }
        }
        if (!differences.isEmpty()) {
            throw OptionErrors.usage(spec, "cannot resume from " + checkpoint + ": the options differ from the run's ("
                    + file + ") in " + String.join(", ", differences) + "; repeat the run's options, or start a new run "
                    + "in another --out");
        }
    }

    private Map<String, Object> settings(Path folder, PromptStyle style, LlamaConfig modelConfig, LoraConfig loraConfig,
            int padId, DataOptions.Prepared data) {
        Map<String, Object> model = new LinkedHashMap<>();
        model.put("folder", folder.toAbsolutePath().normalize().toString());
        model.put("quantize", modelOptions.quantize() == null ? null : modelOptions.quantize().toString());
        model.put("max_position_embeddings", modelConfig.maxPositionEmbeddings());
        Map<String, Object> loraSection = new LinkedHashMap<>();
        loraSection.put("rank", loraConfig.rank());
        loraSection.put("alpha", loraConfig.alpha());
        loraSection.put("dropout", loraConfig.dropout());
        loraSection.put("target_modules", loraConfig.targetModules());
        loraSection.put("rslora", loraOptions.useRslora);
        loraSection.put("init_seed", trainOptions.seed());
        Map<String, Object> dataSection = dataOptions.settings(style, modelConfig.maxPositionEmbeddings());
        dataSection.putAll(data.stats());
        Map<String, Object> train = new LinkedHashMap<>();
        train.put("optimizer", trainOptions.optimizer.name());
        train.put("lr", trainOptions.learningRate);
        train.put("weight_decay", trainOptions.weightDecay);
        train.put("warmup_steps", trainOptions.warmupSteps);
        train.put("batch_size", trainOptions.batchSize);
        train.put("micro_batch_size", trainOptions.microBatchSize);
        train.put("epochs", trainOptions.epochs);
        train.put("max_steps", trainOptions.maxSteps);
        train.put("seed", trainOptions.seed);
        train.put("max_grad_norm", trainOptions.maxGradNorm);
        train.put("pad_token_id", padId);
        Map<String, Object> run = new LinkedHashMap<>();
        run.put("eval_interval", evalInterval);
        run.put("save_interval", saveInterval);
        run.put("keep_checkpoints", keepCheckpoints);
        run.put("stop_after_steps", stopAfterSteps);
        run.put("resumed_from", resume || resumeFrom != null ? String.valueOf(resumeFrom != null ? resumeFrom
                : out.resolve(CHECKPOINT_DIR)) : null);
        Map<String, Object> s = new LinkedHashMap<>();
        s.put("lora4j_version", Lora4j.version());
        s.put("model", model);
        s.put("lora", loraSection);
        s.put("data", dataSection);
        s.put("train", train);
        s.put("run", run);
        return s;
    }

    private void writeSettings(Map<String, Object> settings, Map<String, Object> result) {
        Map<String, Object> s = new LinkedHashMap<>(settings);
        if (result != null) {
            s.put("result", result);
        }
        Path file = out.resolve(SETTINGS_FILE);
        try {
            Files.createDirectories(out);
            JSON.writeValue(file.toFile(), s);
        } catch (IOException e) {
            throw new UncheckedIOException("writing " + file + ": " + e.getMessage(), e);
        }
    }

    private static Map<String, Object> resultSection(TrainerListener.TrainingResult result, FinalValues last) {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("steps", result.steps());
        r.put("total_steps", result.totalSteps());
        r.put("completed", result.completed());
        r.put("final_loss", finite(result.finalLoss()));
        r.put("val_loss", last.validation == null ? null : finite(last.validation.loss()));
        r.put("val_ppl", last.validation == null ? null : finite(last.validation.perplexity()));
        r.put("tokens", result.tokensSeen());
        r.put("seconds", result.seconds());
        return r;
    }

    private void printSummary(TrainerListener.TrainingResult result, FinalValues last, Path adapterDir, Path checkpoints,
            Path metricsFile, Path plotFile) {
        PrintWriter stdout = spec.commandLine().getOut();
        stdout.printf(Locale.ROOT, "%s %d of %d steps in %s: final training loss %.4f%s, %,.0f tokens/s%n",
                result.completed() ? "finished" : "stopped after", result.steps(), result.totalSteps(),
                duration(result.seconds()), result.finalLoss(),
                last.validation == null ? "" : String.format(Locale.ROOT, ", validation loss %.4f (perplexity %.3f) at "
                        + "step %d", last.validation.loss(), last.validation.perplexity(), last.validation.step()),
                result.tokensSeen() / Math.max(result.seconds(), 1e-9));
        if (result.completed()) {
            stdout.println("adapter (PEFT): " + adapterDir);
        } else {
            stdout.println("continue with the same options and --resume; checkpoint: "
                    + (last.checkpoint != null ? last.checkpoint : checkpoints));
        }
        stdout.println("metrics: " + metricsFile + (Files.isRegularFile(plotFile) ? ", plot: " + plotFile : "")
                + ", checkpoints: " + checkpoints + ", settings: " + out.resolve(SETTINGS_FILE));
        stdout.flush();
    }

    /** The last validation and checkpoint seen in this process. */
    private static final class FinalValues implements TrainerListener {
        ValidationMetrics validation;
        Path checkpoint;

        @Override
        public void onValidation(ValidationMetrics m) {
            validation = m;
        }

        @Override
        public void onCheckpoint(Path dir, long step) {
            checkpoint = dir;
        }
    }

    /** Keeps the records of steps up to {@code step}; returns how many later ones were dropped. */
    static int truncateMetrics(Path file, long step) {
        List<String> kept = new ArrayList<>();
        int dropped = 0;
        try (BufferedReader reader = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            String line;
            while ((line = reader.readLine()) != null) {
                if (line.isBlank()) {
                    continue;
                }
                JsonNode o;
                try {
                    o = JSON.readTree(line);
                } catch (IOException e) {
                    dropped++; // a line cut short by the interruption
                    continue;
                }
                if (o.path("step").asLong(Long.MAX_VALUE) <= step) {
                    kept.add(line);
                } else {
                    dropped++;
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + file + ": " + e.getMessage(), e);
        }
        if (dropped > 0) {
            try {
                Files.write(file, kept, StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new UncheckedIOException("rewriting " + file + ": " + e.getMessage(), e);
            }
        }
        return dropped;
    }

    private static String plotTitle(Path folder) {
        Path name = folder.toAbsolutePath().normalize().getFileName();
        return "lora4j finetune " + (name == null ? folder : name);
    }

    private static boolean isEmpty(Path dir) {
        try (Stream<Path> entries = Files.list(dir)) {
            return entries.findAny().isEmpty();
        } catch (IOException e) {
            throw new UncheckedIOException("listing " + dir + ": " + e.getMessage(), e);
        }
    }

    private static void deleteTree(Path dir) {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("--force: deleting " + dir + ": " + e.getMessage(), e);
        }
        LOG.info("--force: deleted {}", dir);
    }

    private static Double finite(double value) {
        return Double.isFinite(value) ? value : null;
    }

    private static String duration(double seconds) {
        long s = Math.round(seconds);
        return s < 60 ? String.format(Locale.ROOT, "%.1f s", seconds)
                : String.format(Locale.ROOT, "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60);
    }
}
