package dev.lora4j.cli;

import dev.lora4j.data.ColumnMapping;
import dev.lora4j.data.DataSplit;
import dev.lora4j.data.Example;
import dev.lora4j.data.InstructionDataset;
import dev.lora4j.data.InstructionDataset.Overlength;
import dev.lora4j.data.InstructionDatasets;
import dev.lora4j.data.InstructionRecord;
import dev.lora4j.data.Packing;
import dev.lora4j.data.PromptStyle;
import dev.lora4j.tokenizer.Tokenizer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * The instruction data of {@code lora4j finetune} and {@code lora4j evaluate}
 * ({@code @Mixin DataOptions data;}): which file, how its records become prompts and token ids,
 * and how it is split into training and validation sets.
 *
 * <ul>
 *   <li>{@code --data FILE}: .json (array), .jsonl or .csv; the layout (Alpaca, Dolly, LIMA) is
 *       detected unless {@code --column-mapping instruction=q,input=ctx,output=a} names the keys;
 *       {@code --multi-turn} makes every (user, assistant) pair of a LIMA conversation a record.</li>
 *   <li>The prompt: {@code --prompt-style alpaca|stanford-alpaca|plain}, or a template of your own
 *       with {@code {instruction}} (and {@code {input}}) placeholders: {@code --prompt-template TEXT}
 *       or {@code --prompt-template-file FILE}, plus {@code --prompt-template-no-input TEXT} for
 *       records without input when the template has {@code {input}}.</li>
 *   <li>Validation: {@code --val-split FRACTION} of --data, drawn with {@code --data-seed} (finetune's
 *       default {@value #DEFAULT_VAL_SPLIT}), or a separate {@code --val-data FILE}.</li>
 *   <li>Length: {@code --max-seq-length N}, never more than the model's max_position_embeddings;
 *       {@code --overlength truncate|skip|fail}; {@code --packing BLOCK} packs training examples.</li>
 * </ul>
 */
public final class DataOptions {
    private static final Logger LOG = LoggerFactory.getLogger(DataOptions.class);

    /**
     * finetune's default validation fraction: 5%, rounded. LitGPT's Alpaca module holds out
     * 0.03865 (2,000 of 51,759 records); 5% is a round number that still leaves small datasets a
     * validation set of a few dozen examples.
     */
    public static final double DEFAULT_VAL_SPLIT = 0.05;

    /** The seed of the train/validation split, as LitGPT's data modules use (separate from the training seed). */
    public static final long DEFAULT_DATA_SEED = 42;

    @Spec(Spec.Target.MIXEE)
    private CommandSpec spec;

    @Option(names = "--data", paramLabel = "FILE",
            description = "Instruction data: .json (array of objects), .jsonl or .csv, in Alpaca, Dolly or LIMA layout "
                    + "(detected) or any layout with --column-mapping.")
    Path data;

    @Option(names = "--val-data", paramLabel = "FILE",
            description = "Validation data in a file of its own (instead of --val-split).")
    Path valData;

    @Option(names = "--column-mapping", paramLabel = "SPEC",
            description = "Which keys or CSV columns hold the fields, e.g. instruction=question,input=context,output=answer "
                    + "(input optional).")
    String columnMapping;

    @Option(names = "--multi-turn",
            description = "LIMA conversations: one record per (user, assistant) pair instead of the first pair only.")
    boolean multiTurn;

    @Option(names = "--prompt-style", paramLabel = "NAME",
            description = "Built-in prompt template: alpaca (LitGPT's, the default for finetune), stanford-alpaca, plain.")
    String promptStyle;

    @Option(names = "--prompt-template", paramLabel = "TEXT",
            description = "Your own prompt template with {instruction} and optionally {input} ({{ and }} are literal braces; "
                    + "\\n, \\t and \\\\ are unescaped). The output follows the template directly.")
    String promptTemplate;

    @Option(names = "--prompt-template-file", paramLabel = "FILE",
            description = "As --prompt-template, read verbatim (UTF-8, a final newline included) from a file.")
    Path promptTemplateFile;

    @Option(names = "--prompt-template-no-input", paramLabel = "TEXT",
            description = "With a template that has {input}: the template for records whose input is empty "
                    + "(with {instruction} only).")
    String promptTemplateNoInput;

    @Option(names = "--mask-prompt", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "Leave prompt tokens out of the loss so only the response is learned (default: on; "
                    + "--no-mask-prompt learns the prompt too).")
    boolean maskPrompt = true;

    @Option(names = "--max-seq-length", paramLabel = "N",
            description = "Longest example in tokens, prompt included (default and upper bound: the model's "
                    + "max_position_embeddings).")
    Integer maxSeqLength;

    @Option(names = "--overlength", defaultValue = "truncate", paramLabel = "POLICY",
            description = "Examples longer than the maximum length: truncate (LitGPT's), skip or fail "
                    + "(default: ${DEFAULT-VALUE}).")
    Overlength overlength = Overlength.TRUNCATE;

    @Option(names = "--val-split", paramLabel = "FRACTION",
            description = "Fraction of --data held out for validation, 0 for none (finetune's default: "
                    + DEFAULT_VAL_SPLIT + "; evaluate scores the whole file unless it is given).")
    Double valSplit;

    @Option(names = "--data-seed", defaultValue = "42", paramLabel = "SEED",
            description = "Seed of the train/validation split (default: ${DEFAULT-VALUE}).")
    long dataSeed = DEFAULT_DATA_SEED;

    @Option(names = "--packing", paramLabel = "BLOCK",
            description = "Pack training examples end to end into blocks of BLOCK tokens (no padding); each example "
                    + "must end with EOS, so combine with --overlength skip if any is too long.")
    Integer packing;

    /**
     * The data a command trains or evaluates on, and a one-paragraph account of it;
     * {@code validationRecords} are the records behind {@code validation} (before encoding, for
     * answering them), {@code dataset} the encoding both went through.
     */
    public record Prepared(List<Example> train, List<Example> validation, List<InstructionRecord> validationRecords,
                           InstructionDataset dataset, String summary, Map<String, Object> stats) {
        public Prepared {
            train = List.copyOf(train);
            validation = List.copyOf(validation);
            validationRecords = List.copyOf(validationRecords);
            stats = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(stats));
        }
    }

    /** True when --data or --val-data was given. */
    public boolean hasData() {
        return data != null || valData != null;
    }

    /**
     * The prompt style of the options: --prompt-style, --prompt-template(-file), or
     * {@code fallback} (which may be null) when neither is given.
     *
     * @throws picocli.CommandLine.ParameterException naming the option that is contradictory or invalid
     */
    public PromptStyle promptStyle(PromptStyle fallback) {
        int given = (promptStyle != null ? 1 : 0) + (promptTemplate != null ? 1 : 0) + (promptTemplateFile != null ? 1 : 0);
        if (given > 1) {
            throw OptionErrors.usage(spec, "--prompt-style, --prompt-template and --prompt-template-file exclude each other; "
                    + "give one");
        }
        if (promptTemplateNoInput != null && promptTemplate == null && promptTemplateFile == null) {
            throw OptionErrors.usage(spec, "--prompt-template-no-input goes with --prompt-template or --prompt-template-file "
                    + "(the form for records with an input); give one of them too");
        }
        if (promptStyle != null) {
            return OptionErrors.check(spec, "--prompt-style", promptStyle, () -> PromptStyle.named(promptStyle));
        }
        if (promptTemplate == null && promptTemplateFile == null) {
            return fallback;
        }
        String option = promptTemplate != null ? "--prompt-template" : "--prompt-template-file";
        String template = promptTemplate != null ? unescape(promptTemplate) : readTemplate(promptTemplateFile);
        if (mentionsInput(template)) {
            if (promptTemplateNoInput == null) {
                throw OptionErrors.invalid(spec, option, promptTemplate != null ? promptTemplate : promptTemplateFile,
                        "the template has {input}; give --prompt-template-no-input TEXT for records whose input is empty");
            }
            String noInput = unescape(promptTemplateNoInput);
            // each form checked on its own, so that an error names the option it came from
            OptionErrors.check(spec, option, template, () -> PromptStyle.custom(template, "{instruction}"));
            OptionErrors.check(spec, "--prompt-template-no-input", promptTemplateNoInput,
                    () -> PromptStyle.custom("{instruction}{input}", noInput));
            return new TemplateStyle(template, noInput, PromptStyle.custom(template, noInput));
        }
        if (promptTemplateNoInput != null) {
            throw OptionErrors.invalid(spec, "--prompt-template-no-input", promptTemplateNoInput, "the " + option
                    + " has no {input}, so it serves every record already; drop --prompt-template-no-input or add {input} "
                    + "to the template");
        }
        PromptStyle style = OptionErrors.check(spec, option, template, () -> PromptStyle.custom(template + "{input}", template));
        return new TemplateStyle(null, template, style);
    }

    /**
     * A template given on the command line or in a file. With {@code withInput} null the template
     * has no {input}: a record with an input is an error (checked up front by
     * {@link DataOptions#checkInputs}) rather than having its input dropped.
     */
    record TemplateStyle(String withInput, String withoutInput, PromptStyle delegate) implements PromptStyle {
        @Override
        public String prompt(InstructionRecord record) {
            if (withInput == null && record.hasInput()) {
                throw new IllegalArgumentException("the prompt template has no {input} but the record has input \""
                        + abbreviate(record.input()) + "\"");
            }
            return delegate.prompt(record);
        }

        @Override
        public String toString() {
            return "custom(" + (withInput == null ? "" : "withInput=" + quote(withInput) + ", ") + "withoutInput="
                    + quote(withoutInput) + ")";
        }
    }

    /**
     * The training and validation examples: --data split by --val-split (or all of it, with
     * --val-data as the validation set), encoded, the training part packed with --packing. The
     * summary paragraph is also logged.
     *
     * @param maxPositions the model's max_position_embeddings, the upper bound of the example length
     */
    public Prepared prepareForTraining(Tokenizer tokenizer, int maxPositions) {
        if (data == null) {
            throw OptionErrors.usage(spec, "Missing required option: '--data=FILE' (the instruction data to train on, "
                    + ".json, .jsonl or .csv)");
        }
        if (valData != null && valSplit != null) {
            throw OptionErrors.usage(spec, "--val-split and --val-data exclude each other: the validation set comes from "
                    + "--data or from its own file; give one");
        }
        PromptStyle style = promptStyle(PromptStyle.alpaca());
        InstructionDataset dataset = dataset(tokenizer, style, maxPositions);
        List<InstructionRecord> records = load(data, "--data");
        checkInputs(style, records, data);
        List<InstructionRecord> trainRecords;
        List<InstructionRecord> validationRecords;
        String splitText;
        double fraction = valSplit != null ? valSplit : DEFAULT_VAL_SPLIT;
        if (valData != null) {
            trainRecords = records;
            validationRecords = load(valData, "--val-data");
            checkInputs(style, validationRecords, valData);
            splitText = "validation from --val-data " + valData;
        } else {
            DataSplit.Split<InstructionRecord> split = OptionErrors.check(spec, "--val-split", fraction,
                    () -> DataSplit.split(records, fraction, dataSeed));
            trainRecords = split.train();
            validationRecords = split.validation();
            splitText = fraction == 0 ? "no validation (--val-split 0)"
                    : "--val-split " + fraction + " with --data-seed " + dataSeed;
        }
        InstructionDataset.Encoded train = encode(dataset, trainRecords, data);
        InstructionDataset.Encoded validation = validationRecords.isEmpty() ? null
                : encode(dataset, validationRecords, valData != null ? valData : data);
        List<Example> trainExamples = train.examples();
        String packingText = "";
        if (packing != null) {
            if (packing < 2 || packing > maxPositions) {
                throw OptionErrors.invalid(spec, "--packing", packing, "the block size must be in [2, " + maxPositions
                        + "] (the model's max_position_embeddings)");
            }
            int eos = tokenizer.eosId().orElseThrow(() -> OptionErrors.invalid(spec, "--packing", packing,
                    "the tokenizer has no EOS token to end each packed example with; do not pack"));
            int examples = trainExamples.size();
            trainExamples = OptionErrors.check(spec, "--packing", packing, () -> Packing.pack(train.examples(), packing, eos));
            packingText = String.format(Locale.ROOT, " Packed the %,d training examples into %,d blocks of %d tokens.",
                    examples, trainExamples.size(), packing);
        }
        Map<String, Object> stats = new LinkedHashMap<>();
        stats.put("records", records.size());
        stats.put("train_examples", trainExamples.size());
        stats.put("validation_examples", validation == null ? 0 : validation.examples().size());
        stats.put("truncated", train.truncated() + (validation == null ? 0 : validation.truncated()));
        stats.put("skipped", train.skipped() + (validation == null ? 0 : validation.skipped()));
        stats.put("train_tokens", tokens(trainExamples));
        stats.put("train_supervised_tokens", supervised(trainExamples));
        String summary = String.format(Locale.ROOT, "Data: %,d records from %s; %s: %,d training examples (%,d tokens, "
                        + "%,d of them learned) and %,d validation examples%s. Prompt style %s, prompt %s; %s; "
                        + "%,d truncated, %,d skipped.%s",
                records.size(), data, splitText, train.examples().size(), tokens(train.examples()),
                supervised(train.examples()), validation == null ? 0 : validation.examples().size(),
                validation == null ? "" : String.format(Locale.ROOT, " (%,d tokens, %,d learned)",
                        tokens(validation.examples()), supervised(validation.examples())),
                style, maskPrompt ? "masked" : "learned too", lengthText(maxPositions), stats.get("truncated"),
                stats.get("skipped"), packingText);
        LOG.debug("{}", dataset);
        return new Prepared(trainExamples, validation == null ? List.of() : validation.examples(), validationRecords, dataset,
                summary, stats);
    }

    /**
     * The examples {@code evaluate}'s val_loss scores: all of --val-data; or all of --data, or
     * only its validation part when --val-split is given (the same examples finetune held out
     * with that fraction and --data-seed). The prompt style defaults to alpaca, as in finetune.
     */
    public Prepared prepareForEvaluation(Tokenizer tokenizer, int maxPositions) {
        if (data == null && valData == null) {
            throw OptionErrors.usage(spec, "the tasks val_loss and exact_match need data: give --data FILE (the whole file, or its "
                    + "--val-split part) or --val-data FILE");
        }
        if (data != null && valData != null) {
            throw OptionErrors.usage(spec, "evaluate scores one file: give --data FILE (with --val-split for its validation "
                    + "part) or --val-data FILE, not both");
        }
        if (valData != null && valSplit != null) {
            throw OptionErrors.usage(spec, "--val-split splits --data; --val-data is scored whole; drop --val-split");
        }
        if (packing != null) {
            throw OptionErrors.invalid(spec, "--packing", packing, "evaluate scores each example on its own; drop --packing");
        }
        Path file = valData != null ? valData : data;
        String option = valData != null ? "--val-data" : "--data";
        PromptStyle style = promptStyle(PromptStyle.alpaca());
        InstructionDataset dataset = dataset(tokenizer, style, maxPositions);
        List<InstructionRecord> records = load(file, option);
        checkInputs(style, records, file);
        List<InstructionRecord> scored = records;
        String part = "all of it";
        if (valSplit != null && valSplit > 0) {
            scored = OptionErrors.check(spec, "--val-split", valSplit, () -> DataSplit.split(records, valSplit, dataSeed))
                    .validation();
            part = "its validation part (--val-split " + valSplit + ", --data-seed " + dataSeed + ")";
        }
        InstructionDataset.Encoded encoded = encode(dataset, scored, file);
        Map<String, Object> stats = new LinkedHashMap<>();
        stats.put("records", records.size());
        stats.put("validation_examples", encoded.examples().size());
        stats.put("truncated", encoded.truncated());
        stats.put("skipped", encoded.skipped());
        String summary = String.format(Locale.ROOT, "Data: %,d records from %s, scoring %s: %,d examples (%,d tokens, %,d "
                        + "scored). Prompt style %s, prompt %s; %s; %,d truncated, %,d skipped.",
                records.size(), file, part, encoded.examples().size(), tokens(encoded.examples()),
                supervised(encoded.examples()), style, maskPrompt ? "masked" : "scored too", lengthText(maxPositions),
                encoded.truncated(), encoded.skipped());
        return new Prepared(List.of(), encoded.examples(), scored, dataset, summary, stats);
    }

    /** The effective data settings, for finetune.json (paths absolute, so a resumed run compares equal). */
    public Map<String, Object> settings(PromptStyle style, int maxPositions) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("data", data == null ? null : data.toAbsolutePath().normalize().toString());
        m.put("val_data", valData == null ? null : valData.toAbsolutePath().normalize().toString());
        m.put("column_mapping", columnMapping);
        m.put("multi_turn", multiTurn);
        m.put("prompt_style", String.valueOf(style));
        m.put("mask_prompt", maskPrompt);
        m.put("max_seq_length", effectiveMaxLength(maxPositions));
        m.put("overlength", overlength.name().toLowerCase(Locale.ROOT));
        m.put("val_split", valData != null ? null : valSplit != null ? valSplit : DEFAULT_VAL_SPLIT);
        m.put("data_seed", dataSeed);
        m.put("packing", packing);
        return m;
    }

    private InstructionDataset dataset(Tokenizer tokenizer, PromptStyle style, int maxPositions) {
        if (maxSeqLength != null && maxSeqLength < 2) {
            throw OptionErrors.invalid(spec, "--max-seq-length", maxSeqLength, "must be at least 2 tokens");
        }
        if (maxSeqLength != null && maxSeqLength > maxPositions) {
            LOG.warn("--max-seq-length {} is more than the model's max_position_embeddings {}; using {}", maxSeqLength,
                    maxPositions, maxPositions);
        }
        return InstructionDataset.builder(tokenizer).promptStyle(style).maskPrompt(maskPrompt)
                .maxLength(effectiveMaxLength(maxPositions)).overlength(overlength).appendEos(true).build();
    }

    private int effectiveMaxLength(int maxPositions) {
        return maxSeqLength == null ? maxPositions : Math.min(maxSeqLength, maxPositions);
    }

    private String lengthText(int maxPositions) {
        int length = effectiveMaxLength(maxPositions);
        String why = maxSeqLength == null ? "the model's max_position_embeddings, as no --max-seq-length is given"
                : maxSeqLength > maxPositions ? "--max-seq-length " + maxSeqLength + " capped at the model's "
                        + "max_position_embeddings" : "--max-seq-length";
        return String.format(Locale.ROOT, "at most %,d tokens (%s), longer ones: %s", length, why,
                overlength.name().toLowerCase(Locale.ROOT));
    }

    private List<InstructionRecord> load(Path file, String option) {
        if (!Files.isRegularFile(file)) {
            throw OptionErrors.invalid(spec, option, file, Files.exists(file) ? "not a regular file; give a .json, .jsonl or "
                    + ".csv file" : "no such file (working directory " + Path.of("").toAbsolutePath() + ")");
        }
        if (columnMapping != null && multiTurn) {
            throw OptionErrors.usage(spec, "--column-mapping and --multi-turn exclude each other: --multi-turn reads LIMA "
                    + "conversations, whose layout is fixed; drop one");
        }
        try {
            if (columnMapping != null) {
                ColumnMapping mapping = OptionErrors.check(spec, "--column-mapping", columnMapping,
                        () -> ColumnMapping.parse(columnMapping));
                return InstructionDatasets.load(file, mapping);
            }
            return InstructionDatasets.load(file, multiTurn ? InstructionDatasets.Conversations.ALL_TURNS
                    : InstructionDatasets.Conversations.FIRST_TURN);
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + option + " " + file + ": " + e.getMessage(), e);
        }
    }

    /** A template without {input} must not meet a record with one: its input would be silently dropped. */
    private void checkInputs(PromptStyle style, List<InstructionRecord> records, Path file) {
        if (style instanceof TemplateStyle t && t.withInput() == null) {
            for (int i = 0; i < records.size(); i++) {
                if (records.get(i).hasInput()) {
                    String option = promptTemplate != null ? "--prompt-template" : "--prompt-template-file";
                    throw OptionErrors.invalid(spec, option, promptTemplate != null ? promptTemplate : promptTemplateFile,
                            "record " + (i + 1) + " of " + file + " has an input (\"" + abbreviate(records.get(i).input())
                                    + "\") but the template has no {input}; add {input} to the template and give "
                                    + "--prompt-template-no-input for records without one");
                }
            }
        }
    }

    private static InstructionDataset.Encoded encode(InstructionDataset dataset, List<InstructionRecord> records, Path file) {
        try {
            return dataset.encode(records);
        } catch (RuntimeException e) {
            String hint = e.getMessage() != null && e.getMessage().startsWith("all ") && e.getMessage().contains("skipped")
                    ? "; the prompts are too long for the sequence length: shorten them with --prompt-style plain or a "
                    + "--prompt-template of your own, or allow longer sequences with --max-seq-length (at most the "
                    + "model's max_position_embeddings)" : "";
            throw new dev.lora4j.data.DatasetException(file + ": " + e.getMessage() + hint, e);
        }
    }

    private String readTemplate(Path file) {
        if (!Files.isRegularFile(file)) {
            throw OptionErrors.invalid(spec, "--prompt-template-file", file, "no such file");
        }
        try {
            return Files.readString(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("reading --prompt-template-file " + file + ": " + e.getMessage(), e);
        }
    }

    /** \n, \t and \\ as the escapes they stand for: a shell passes "\n" as two characters. */
    static String unescape(String text) {
        StringBuilder out = new StringBuilder(text.length());
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == '\\' && i + 1 < text.length()) {
                char next = text.charAt(i + 1);
                switch (next) {
                    case 'n' -> out.append('\n');
                    case 't' -> out.append('\t');
                    case '\\' -> out.append('\\');
                    default -> {
                        out.append(c);
                        continue;
                    }
                }
                i++;
            } else {
                out.append(c);
            }
        }
        return out.toString();
    }

    /** Whether the template has an {input} placeholder ({{ and }} being literal braces). */
    static boolean mentionsInput(String template) {
        for (int i = 0; i < template.length(); i++) {
            if (template.startsWith("{{", i) || template.startsWith("}}", i)) {
                i++;
            } else if (template.startsWith("{input}", i)) {
                return true;
            }
        }
        return false;
    }

    private static long tokens(List<Example> examples) {
        long n = 0;
        for (Example e : examples) {
            n += e.length();
        }
        return n;
    }

    private static long supervised(List<Example> examples) {
        long n = 0;
        for (Example e : examples) {
            n += e.supervisedTokens();
        }
        return n;
    }

    private static String abbreviate(String s) {
        String line = s.replace('\n', ' ');
        return line.length() <= 40 ? line : line.substring(0, 37) + "...";
    }

    private static String quote(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\"", "\\\"") + "\"";
    }

    @Override
    public String toString() {
        List<String> parts = new ArrayList<>();
        parts.add("data=" + data);
        parts.add("valData=" + valData);
        parts.add("columnMapping=" + columnMapping);
        parts.add("multiTurn=" + multiTurn);
        parts.add("promptStyle=" + promptStyle);
        parts.add("promptTemplate=" + (promptTemplate != null ? quote(promptTemplate) : promptTemplateFile));
        parts.add("promptTemplateNoInput=" + (promptTemplateNoInput == null ? null : quote(promptTemplateNoInput)));
        parts.add("maskPrompt=" + maskPrompt);
        parts.add("maxSeqLength=" + maxSeqLength);
        parts.add("overlength=" + overlength);
        parts.add("valSplit=" + valSplit);
        parts.add("dataSeed=" + dataSeed);
        parts.add("packing=" + packing);
        return "DataOptions(" + String.join(", ", parts) + ")";
    }
}
