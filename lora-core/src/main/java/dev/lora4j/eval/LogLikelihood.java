package dev.lora4j.eval;

import dev.lora4j.autograd.Autograd;
import dev.lora4j.tokenizer.Tokenizer;
import dev.lora4j.model.LlamaModel;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Log-likelihood of a continuation given a context, with lm-evaluation-harness's "loglikelihood"
 * request semantics: one forward pass over {@code (context + continuation)[:-1]}; the logits at
 * the last {@code len(continuation)} positions are log-softmaxed, the continuation tokens'
 * log-probabilities are summed, and the request is <i>greedy</i> when every continuation token is
 * the argmax at its position (ties resolve to the lowest id, as torch's argmax does).
 *
 * <p>Several requests share a forward pass: they are sorted by length (longest first, so each
 * batch pads to its first row) and right-padded; causal attention keeps the padding from
 * influencing any scored position. Log-softmax is computed in double with the max subtracted.
 *
 * <p>Sequences longer than the model's context ({@code max_position_embeddings}, or the sliding
 * window if smaller) plus one are cut from the left, as lm-eval does; the number of cut requests
 * is logged. A continuation longer than the context is an error.
 *
 * <p>Immutable: {@link #batchSize(int)} returns a copy.
 */
public final class LogLikelihood {
    private static final Logger LOG = LoggerFactory.getLogger(LogLikelihood.class);
    /** Requests per forward pass unless {@link #batchSize(int)} says otherwise. */
    public static final int DEFAULT_BATCH_SIZE = 8;

    private final LlamaModel model;
    private final int batchSize;

    private LogLikelihood(LlamaModel model, int batchSize) {
        this.model = Objects.requireNonNull(model, "model");
        this.batchSize = batchSize;
    }

    /** A scorer for {@code model} with {@link #DEFAULT_BATCH_SIZE} requests per forward pass. */
    public static LogLikelihood of(LlamaModel model) {
        return new LogLikelihood(model, DEFAULT_BATCH_SIZE);
    }

    /** Requests per forward pass (memory grows with batch × longest sequence × vocabulary). */
    public LogLikelihood batchSize(int value) {
        if (value < 1) {
            throw new IllegalArgumentException("LogLikelihood.batchSize must be >= 1, was " + value);
        }
        return new LogLikelihood(model, value);
    }

    public int batchSize() {
        return batchSize;
    }

    /** Context and continuation as token ids; both non-empty (the context holds at least a BOS/EOS). */
    public record Request(int[] context, int[] continuation) {
        public Request {
            Objects.requireNonNull(context, "context");
            Objects.requireNonNull(continuation, "continuation");
            if (context.length == 0) {
                throw new IllegalArgumentException("LogLikelihood.Request: the context is empty; start it with the BOS (or EOS) "
                        + "token so the first continuation token has a position to be predicted from");
            }
            if (continuation.length == 0) {
                throw new IllegalArgumentException("LogLikelihood.Request: the continuation is empty; there is nothing to score");
            }
            context = context.clone();
            continuation = continuation.clone();
        }

        @Override
        public int[] context() {
            return context.clone();
        }

        @Override
        public int[] continuation() {
            return continuation.clone();
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Request r && Arrays.equals(context, r.context) && Arrays.equals(continuation, r.continuation);
        }

        @Override
        public int hashCode() {
            return 31 * Arrays.hashCode(context) + Arrays.hashCode(continuation);
        }

        @Override
        public String toString() {
            return "Request[context=" + Arrays.toString(context) + ", continuation=" + Arrays.toString(continuation) + "]";
        }
    }

    /** A context and a continuation as text, split by {@link #encode}. */
    public record TextRequest(String context, String continuation) {
        public TextRequest {
            Objects.requireNonNull(context, "context");
            Objects.requireNonNull(continuation, "continuation");
        }
    }

    /**
     * Σ log p(continuation token | everything before it), whether every continuation token was the
     * argmax, and how many continuation tokens were scored.
     */
    public record Result(double logLikelihood, boolean isGreedy, int continuationTokens) {
    }

    /** Text in, results out: what the evaluations need, and what tests replace with fixed numbers. */
    @FunctionalInterface
    public interface Scorer {
        /** One result per request, in the order of {@code requests}. */
        List<Result> score(List<TextRequest> requests);
    }

    /**
     * Splits a (context, continuation) text pair into token ids the way lm-eval's {@code _encode_pair}
     * does: trailing whitespace of the context moves to the front of the continuation (so " 143"
     * carries its space), then {@code context + continuation} and {@code context} are encoded whole
     * and the continuation is the tokens past the context's length, which keeps the tokenizer's
     * merges across the boundary. An empty context becomes the BOS token (lm-eval uses its
     * end-of-text token; EOS here when the tokenizer has no BOS).
     *
     * @param addSpecialTokens whether the tokenizer adds its special tokens (a Llama BOS). lm-eval's
     *     HF backend encodes without them by default ({@code add_bos_token=False}); pass false to
     *     reproduce that.
     */
    public static Request encode(Tokenizer tokenizer, String context, String continuation, boolean addSpecialTokens) {
        String trimmed = context.stripTrailing();
        String cont = context.substring(trimmed.length()) + continuation;
        if (context.isEmpty()) {
            int start = tokenizer.bosId().isPresent() ? tokenizer.bosId().getAsInt() : tokenizer.eosId().orElseThrow(
                    () -> new IllegalArgumentException("LogLikelihood.encode: the context is empty and the tokenizer has neither "
                            + "a BOS nor an EOS token to stand for the start of text; give a non-empty context"));
            int[] contIds = tokenizer.encode(continuation, false);
            if (contIds.length == 0) {
                throw new IllegalArgumentException("LogLikelihood.encode: the continuation \"" + continuation
                        + "\" encodes to no tokens; there is nothing to score");
            }
            return new Request(new int[] {start}, contIds);
        }
        int[] whole = tokenizer.encode(trimmed + cont, addSpecialTokens);
        int[] ctx = tokenizer.encode(trimmed, addSpecialTokens);
        if (whole.length <= ctx.length) {
            throw new IllegalArgumentException("LogLikelihood.encode: the continuation \"" + continuation + "\" adds no tokens "
                    + "after the context (" + ctx.length + " tokens, whole text " + whole.length + "); give a non-empty "
                    + "continuation");
        }
        if (ctx.length == 0) {
            // the tokenizer adds no BOS and the context was all whitespace: fall back as for an empty context
            return encode(tokenizer, "", cont, addSpecialTokens);
        }
        return new Request(ctx, Arrays.copyOfRange(whole, ctx.length, whole.length));
    }

    /** A {@link Scorer} that encodes with {@code tokenizer} ({@link #encode}) and scores with this model. */
    public Scorer scorer(Tokenizer tokenizer, boolean addSpecialTokens) {
        Objects.requireNonNull(tokenizer, "tokenizer");
        return requests -> {
            List<Request> encoded = new ArrayList<>(requests.size());
            for (TextRequest r : requests) {
                encoded.add(encode(tokenizer, r.context(), r.continuation(), addSpecialTokens));
            }
            return score(encoded);
        };
    }

    /** One request. */
    public Result score(Request request) {
        return score(List.of(request)).get(0);
    }

    /** All requests, {@link #batchSize()} per forward pass; results in the order of {@code requests}. */
    public List<Result> score(List<Request> requests) {
        int maxLength = maxLength();
        int n = requests.size();
        int[][] inputs = new int[n][];
        int truncated = 0;
        for (int i = 0; i < n; i++) {
            Request r = requests.get(i);
            int[] cont = r.continuation;
            if (cont.length > maxLength) {
                throw new IllegalArgumentException("LogLikelihood: request " + i + " has a continuation of " + cont.length
                        + " tokens, more than the model's context of " + maxLength + " tokens; shorten the continuation");
            }
            int total = r.context.length + cont.length;
            int keep = Math.min(total, maxLength + 1); // the last token is only predicted, never fed
            truncated += keep < total ? 1 : 0;
            int[] full = new int[total];
            System.arraycopy(r.context, 0, full, 0, r.context.length);
            System.arraycopy(cont, 0, full, r.context.length, cont.length);
            inputs[i] = Arrays.copyOfRange(full, total - keep, total - 1);
        }
        if (truncated > 0) {
            LOG.warn("LogLikelihood: {} of {} requests were longer than the model's context of {} tokens and lost their "
                    + "leftmost context tokens (as lm-eval does)", truncated, n, maxLength);
        }
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        // longest first: each batch pads to its first row, and similar lengths share a batch
        Arrays.sort(order, Comparator.comparingInt((Integer i) -> -inputs[i].length).thenComparingInt(i -> i));
        Result[] results = new Result[n];
        int vocab = model.config().vocabSize();
        try (Autograd.Scope ignored = Autograd.noGrad()) {
            for (int start = 0; start < n; start += batchSize) {
                int rows = Math.min(batchSize, n - start);
                int width = inputs[order[start]].length;
                int[] batch = new int[rows * width]; // right padding with id 0: never seen by a scored position
                for (int b = 0; b < rows; b++) {
                    int[] in = inputs[order[start + b]];
                    System.arraycopy(in, 0, batch, b * width, in.length);
                }
                float[] logits = model.forward(batch, rows).toFloatArray();
                for (int b = 0; b < rows; b++) {
                    int index = order[start + b];
                    int[] cont = requests.get(index).continuation;
                    int length = inputs[index].length;
                    results[index] = scoreRow(logits, (long) b * width * vocab, length, cont, vocab);
                }
            }
        }
        return List.of(results);
    }

    /** Scores {@code cont} against the last cont.length positions of a row of {@code length} positions. */
    private static Result scoreRow(float[] logits, long rowOffset, int length, int[] cont, int vocab) {
        double sum = 0;
        boolean greedy = true;
        int first = length - cont.length;
        for (int j = 0; j < cont.length; j++) {
            int base = Math.toIntExact(rowOffset + (long) (first + j) * vocab);
            int argmax = 0;
            float max = logits[base];
            for (int v = 1; v < vocab; v++) {
                if (logits[base + v] > max) {
                    max = logits[base + v];
                    argmax = v;
                }
            }
            double expSum = 0;
            for (int v = 0; v < vocab; v++) {
                expSum += Math.exp((double) logits[base + v] - max);
            }
            sum += (double) logits[base + cont[j]] - max - Math.log(expSum);
            greedy &= argmax == cont[j];
        }
        return new Result(sum, greedy, cont.length);
    }

    /** Positions the model scores: its context (sliding-window layers mask beyond their window themselves). */
    private int maxLength() {
        return model.config().maxPositionEmbeddings();
    }

    @Override
    public String toString() {
        return "LogLikelihood{batchSize=" + batchSize + ", maxLength=" + maxLength() + "}";
    }
}
