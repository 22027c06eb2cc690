package dev.lora4j.data;

import dev.lora4j.tokenizer.Tokenizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalInt;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Tokenizes {@link InstructionRecord}s into training {@link Example}s the way LitGPT's
 * {@code SFTDataset} does: the prompt (from the {@link PromptStyle}) is encoded with the
 * tokenizer's default special tokens (a leading BOS for Llama), the output is encoded on its own
 * without special tokens and followed by EOS, the two are concatenated and cut to the maximum
 * length, and the labels are a copy of the ids with the prompt part set to -100 when the prompt
 * is masked.
 *
 * <p>Because the output is encoded separately, a SentencePiece tokenizer that prepends a space to
 * its input (Llama-2's Metaspace) starts the response with "▁"; this is what LitGPT trains on, and
 * it keeps the prompt/response boundary exact for any tokenizer.
 *
 * <p>Nothing is dropped silently: {@link Encoded} counts truncated and skipped records and the
 * counts, with their reasons, are logged. A record is skipped when it is longer than the maximum
 * length under {@link Overlength#SKIP}, or when it would have no supervised token (with the prompt
 * masked and the response cut off entirely by truncation, or an empty output without EOS): such
 * an example contributes nothing to the loss, and a batch of only such examples has a loss of
 * 0/0.
 *
 * <p>Micro-batches are padded by {@code dev.lora4j.train.CausalLmLoss.collate}; to fill
 * fixed-length blocks instead, see {@link Packing}.
 */
public final class InstructionDataset {
    private static final Logger LOG = LoggerFactory.getLogger(InstructionDataset.class);
    private static final int NO_LIMIT = -1;

    /** What to do with a record whose prompt and response together exceed the maximum length. */
    public enum Overlength {
        /** Keep the first maxLength tokens (LitGPT's behaviour); the end of the response, and its EOS, are lost. */
        TRUNCATE,
        /** Leave the record out, counted in {@link Encoded#skipped()}. */
        SKIP,
        /** Throw, naming the record and its length. */
        FAIL
    }

    /**
     * The encoded examples, in record order, and how many records were truncated or skipped.
     *
     * @param examples one example per record kept
     * @param truncated records cut to the maximum length (and kept)
     * @param skipped records left out (too long under SKIP, or without a supervised token)
     */
    public record Encoded(List<Example> examples, int truncated, int skipped) {
        public Encoded {
            examples = List.copyOf(examples);
        }
    }

    private final Tokenizer tokenizer;
    private final PromptStyle promptStyle;
    private final boolean maskPrompt;
    private final int maxLength;
    private final Overlength overlength;
    private final boolean appendEos;

    private InstructionDataset(Builder b) {
        this.tokenizer = b.tokenizer;
        this.promptStyle = b.promptStyle;
        this.maskPrompt = b.maskPrompt;
        this.maxLength = b.maxLength;
        this.overlength = b.overlength;
        this.appendEos = b.appendEos;
    }

    /**
     * A builder with LitGPT's defaults: the Alpaca prompt style, prompt masked, no maximum length,
     * overlong records truncated, EOS appended.
     */
    public static Builder builder(Tokenizer tokenizer) {
        if (tokenizer == null) {
            throw new IllegalArgumentException("tokenizer must not be null");
        }
        return new Builder(tokenizer, PromptStyle.alpaca(), true, NO_LIMIT, Overlength.TRUNCATE, true);
    }

    /** A builder holding this dataset's settings. */
    public Builder toBuilder() {
        return new Builder(tokenizer, promptStyle, maskPrompt, maxLength, overlength, appendEos);
    }

    /** Encodes every record; throws if {@code records} is empty or if no record survives. */
    public Encoded encode(List<InstructionRecord> records) {
        if (records == null || records.isEmpty()) {
            throw new DatasetException("no instruction records to encode (the list is " + (records == null ? "null" : "empty") + ")");
        }
        List<Example> examples = new ArrayList<>(records.size());
        int truncated = 0;
        int tooLong = 0;
        int cutOff = 0;
        int noTarget = 0;
        int longest = 0;
        for (int i = 0; i < records.size(); i++) {
            InstructionRecord record = records.get(i);
            if (record == null) {
                throw new DatasetException("record " + (i + 1) + " of " + records.size() + " is null");
            }
            int[] prompt = encodePrompt(record);
            int[] response = encodeResponse(record);
            int length = prompt.length + response.length;
            longest = Math.max(longest, length);
            boolean cut = false;
            if (maxLength != NO_LIMIT && length > maxLength) {
                switch (overlength) {
                    case FAIL -> throw new DatasetException("record " + (i + 1) + " of " + records.size() + " is " + length
                            + " tokens long (prompt " + prompt.length + " + response " + response.length + "), more than maxLength "
                            + maxLength + "; raise maxLength or choose Overlength.TRUNCATE or SKIP (instruction starts \""
                            + abbreviate(record.instruction()) + "\")");
                    case SKIP -> {
                        tooLong++;
                        continue;
                    }
                    case TRUNCATE -> cut = true;
                }
            }
            int kept = cut ? maxLength : length;
            if (kept == 0) {
                noTarget++;
                continue;
            }
            int[] ids = Arrays.copyOf(prompt, kept);
            if (kept > prompt.length) {
                System.arraycopy(response, 0, ids, prompt.length, kept - prompt.length);
            }
            Example example = maskPrompt ? Example.promptMasked(ids, prompt.length) : Example.unmasked(ids);
            if (example.supervisedTokens() == 0) {
                if (cut) {
                    cutOff++;
                } else {
                    noTarget++;
                }
                continue;
            }
            truncated += cut ? 1 : 0;
            examples.add(example);
        }
        int skipped = tooLong + cutOff + noTarget;
        String limit = maxLength == NO_LIMIT ? "none" : Integer.toString(maxLength);
        LOG.info("Encoded {} examples from {} records (prompt style {}, longest {} tokens, maxLength {}, {} truncated, {} skipped)",
                examples.size(), records.size(), promptStyle, longest, limit, truncated, skipped);
        if (truncated > 0) {
            LOG.warn("{} of {} records were longer than maxLength {} and were truncated: the end of their response{} is not learned",
                    truncated, records.size(), maxLength, appendEos ? " (and the EOS)" : "");
        }
        if (skipped > 0) {
            LOG.warn("{} of {} records were skipped: {}", skipped, records.size(), skipReasons(tooLong, cutOff, noTarget, limit));
        }
        if (examples.isEmpty()) {
            throw new DatasetException("all " + records.size() + " records were skipped (" + skipReasons(tooLong, cutOff, noTarget, limit)
                    + "); the longest record has " + longest + " tokens" + (maxLength == NO_LIMIT ? "" : ", maxLength is " + limit));
        }
        return new Encoded(examples, truncated, skipped);
    }

    /**
     * The prompt's token ids exactly as training sees them (with the tokenizer's default special
     * tokens, e.g. BOS): what a model fine-tuned on this dataset should be given at inference.
     */
    public int[] encodePrompt(InstructionRecord record) {
        return tokenizer.encode(promptStyle.prompt(record), true);
    }

    /** The output's ids without special tokens, followed by EOS when {@link #appendEos()}. */
    public int[] encodeResponse(InstructionRecord record) {
        int[] output = tokenizer.encode(record.output(), false);
        if (!appendEos) {
            return output;
        }
        int[] withEos = Arrays.copyOf(output, output.length + 1);
        withEos[output.length] = tokenizer.eosId().orElseThrow();
        return withEos;
    }

    public Tokenizer tokenizer() {
        return tokenizer;
    }

    public PromptStyle promptStyle() {
        return promptStyle;
    }

    public boolean maskPrompt() {
        return maskPrompt;
    }

    /** The maximum example length in tokens, if one is set. */
    public OptionalInt maxLength() {
        return maxLength == NO_LIMIT ? OptionalInt.empty() : OptionalInt.of(maxLength);
    }

    public Overlength overlength() {
        return overlength;
    }

    public boolean appendEos() {
        return appendEos;
    }

    @Override
    public String toString() {
        return "InstructionDataset" + settings(tokenizer, promptStyle, maskPrompt, maxLength, overlength, appendEos);
    }

    private static String settings(Tokenizer tokenizer, PromptStyle promptStyle, boolean maskPrompt, int maxLength, Overlength overlength,
            boolean appendEos) {
        return "{tokenizer=" + tokenizer.getClass().getSimpleName() + "(vocab " + tokenizer.vocabSize() + "), promptStyle=" + promptStyle
                + ", maskPrompt=" + maskPrompt + ", maxLength=" + (maxLength == NO_LIMIT ? "none" : maxLength) + ", overlength="
                + overlength + ", appendEos=" + appendEos + "}";
    }

    private static String skipReasons(int tooLong, int cutOff, int noTarget, String limit) {
        List<String> reasons = new ArrayList<>();
        if (tooLong > 0) {
            reasons.add(tooLong + " longer than maxLength " + limit + " (Overlength.SKIP)");
        }
        if (cutOff > 0) {
            reasons.add(cutOff + " whose prompt alone fills maxLength " + limit + ", so truncation left no response token to learn");
        }
        if (noTarget > 0) {
            reasons.add(noTarget + " without any token to learn (e.g. an empty output with appendEos(false))");
        }
        return String.join("; ", reasons);
    }

    private static String abbreviate(String s) {
        String line = s.replace('\n', ' ');
        return line.length() <= 60 ? line : line.substring(0, 57) + "...";
    }

    /** Immutable: every setter validates its argument and returns a new builder. */
    public static final class Builder {
        private final Tokenizer tokenizer;
        private final PromptStyle promptStyle;
        private final boolean maskPrompt;
        private final int maxLength;
        private final Overlength overlength;
        private final boolean appendEos;

        private Builder(Tokenizer tokenizer, PromptStyle promptStyle, boolean maskPrompt, int maxLength, Overlength overlength,
                boolean appendEos) {
            this.tokenizer = tokenizer;
            this.promptStyle = promptStyle;
            this.maskPrompt = maskPrompt;
            this.maxLength = maxLength;
            this.overlength = overlength;
            this.appendEos = appendEos;
        }

        /** The prompt template (default {@link PromptStyle#alpaca()}). */
        public Builder promptStyle(PromptStyle style) {
            if (style == null) {
                throw new IllegalArgumentException("promptStyle must not be null; the built-in styles are " + PromptStyle.names());
            }
            return new Builder(tokenizer, style, maskPrompt, maxLength, overlength, appendEos);
        }

        /** Whether prompt tokens get label -100 so only the response is learned (default true). */
        public Builder maskPrompt(boolean mask) {
            return new Builder(tokenizer, promptStyle, mask, maxLength, overlength, appendEos);
        }

        /** The longest example in tokens, prompt included (default: no limit); at least 2. */
        public Builder maxLength(int tokens) {
            if (tokens < 2) {
                throw new IllegalArgumentException("maxLength must be at least 2 tokens (one to read, one to predict), was " + tokens);
            }
            return new Builder(tokenizer, promptStyle, maskPrompt, tokens, overlength, appendEos);
        }

        /** Removes the maximum length. */
        public Builder noMaxLength() {
            return new Builder(tokenizer, promptStyle, maskPrompt, NO_LIMIT, overlength, appendEos);
        }

        /** What to do with records longer than maxLength (default {@link Overlength#TRUNCATE}). */
        public Builder overlength(Overlength policy) {
            if (policy == null) {
                throw new IllegalArgumentException("overlength must be TRUNCATE, SKIP or FAIL, was null");
            }
            return new Builder(tokenizer, promptStyle, maskPrompt, maxLength, policy, appendEos);
        }

        /** Whether each response ends with the tokenizer's EOS, so the model learns to stop (default true). */
        public Builder appendEos(boolean append) {
            if (append && tokenizer.eosId().isEmpty()) {
                throw new IllegalArgumentException("appendEos(true): the tokenizer has no EOS token; use appendEos(false)");
            }
            return new Builder(tokenizer, promptStyle, maskPrompt, maxLength, overlength, append);
        }

        public InstructionDataset build() {
            if (appendEos && tokenizer.eosId().isEmpty()) {
                throw new IllegalStateException("appendEos is on (the default) but the tokenizer has no EOS token; set appendEos(false)");
            }
            return new InstructionDataset(this);
        }

        @Override
        public String toString() {
            return "InstructionDataset.Builder" + settings(tokenizer, promptStyle, maskPrompt, maxLength, overlength, appendEos);
        }
    }
}
