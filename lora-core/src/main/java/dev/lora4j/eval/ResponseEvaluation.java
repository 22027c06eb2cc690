package dev.lora4j.eval;

import dev.lora4j.data.InstructionDataset;
import dev.lora4j.data.InstructionRecord;
import dev.lora4j.model.Generator;
import dev.lora4j.model.LlamaModel;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Exact-match accuracy of greedy answers on held-out instruction records: each record's prompt is
 * encoded exactly as {@link InstructionDataset} encodes it for training (same prompt style, BOS),
 * the model answers greedily until a stop token (EOS), and the answer counts when it equals the
 * record's output, both with surrounding white space stripped. This is the held-out accuracy a
 * fine-tuned model is usually judged by (e.g. "What is 59 minus 38?" → "21").
 *
 * <p>An answer is generated for at most the reference response's token count (with EOS) plus
 * {@link #SLACK_TOKENS}: a longer one cannot match, so it is cut to save time.
 */
public final class ResponseEvaluation {
    private static final Logger LOG = LoggerFactory.getLogger(ResponseEvaluation.class);
    /** Extra tokens allowed beyond the reference's length (a different tokenization of the same text). */
    public static final int SLACK_TOKENS = 4;

    private ResponseEvaluation() {
    }

    /** One record: what was asked, expected and answered. */
    public record Sample(InstructionRecord record, String answer, boolean exactMatch) {
    }

    /**
     * The samples in record order, with their mean and lm-eval-style standard error;
     * {@code skipped} records had a prompt that leaves no room for an answer in the context.
     */
    public record Result(List<Sample> samples, int skipped) {
        public Result {
            samples = List.copyOf(samples);
            if (skipped < 0) {
                throw new IllegalArgumentException("skipped must be >= 0, was " + skipped);
            }
        }

        public int n() {
            return samples.size();
        }

        public long matches() {
            return samples.stream().filter(Sample::exactMatch).count();
        }

        public double exactMatch() {
            return MeanStderr.mean(values());
        }

        public double exactMatchStderr() {
            return MeanStderr.of(values());
        }

        private double[] values() {
            return samples.stream().mapToDouble(s -> s.exactMatch() ? 1 : 0).toArray();
        }
    }

    /**
     * Answers every record greedily and compares.
     *
     * @param dataset    encodes the prompts (and measures the reference responses) as in training
     * @param stopTokens the ids that end an answer (EOS of the model and tokenizer)
     */
    public static Result evaluate(LlamaModel model, InstructionDataset dataset, List<InstructionRecord> records,
                                  Set<Integer> stopTokens) {
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(dataset, "dataset");
        Objects.requireNonNull(stopTokens, "stopTokens");
        if (records.isEmpty()) {
            throw new IllegalArgumentException("ResponseEvaluation: no records to answer");
        }
        if (stopTokens.isEmpty()) {
            throw new IllegalArgumentException("ResponseEvaluation: stopTokens is empty; pass the EOS id(s), or every "
                    + "answer runs to its token limit");
        }
        int context = model.config().maxPositionEmbeddings();
        List<Sample> samples = new ArrayList<>(records.size());
        int skipped = 0;
        for (int i = 0; i < records.size(); i++) {
            InstructionRecord record = records.get(i);
            int[] prompt = dataset.encodePrompt(record);
            if (prompt.length >= context) {
                skipped++;
                continue;
            }
            int limit = dataset.encodeResponse(record).length + SLACK_TOKENS;
            Generator generator = new Generator(model).temperature(0).tokenizer(dataset.tokenizer()).stopTokens(stopTokens)
                    .maxNewTokens(limit);
            String answer = generator.generateText(prompt, piece -> { }).text();
            samples.add(new Sample(record, answer, answer.strip().equals(record.output().strip())));
        }
        if (skipped > 0) {
            LOG.warn("ResponseEvaluation: skipped {} of {} records whose prompt fills the context of {} tokens, leaving no "
                    + "room for an answer", skipped, records.size(), context);
        }
        if (samples.isEmpty()) {
            throw new IllegalArgumentException("ResponseEvaluation: every one of the " + records.size() + " records has a "
                    + "prompt of at least max_position_embeddings " + context + " tokens; nothing to answer");
        }
        return new Result(samples, skipped);
    }
}
