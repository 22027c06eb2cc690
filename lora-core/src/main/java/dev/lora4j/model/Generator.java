package dev.lora4j.model;

import dev.lora4j.autograd.Autograd;
import dev.lora4j.tokenizer.Tokenizer;
import dev.lora4j.nn.KvCache;
import dev.lora4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import java.util.function.IntConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Autoregressive decoding with a KV cache: the prompt is run once, then one token per step.
 * Greedy when temperature is 0; otherwise temperature, top-k and top-p (nucleus) sampling from a
 * seeded generator. Stops at any stop token (EOS), at a stop string (with a tokenizer), after
 * maxNewTokens, or when the context (max_position_embeddings) is full.
 *
 * <p>With a {@link #tokenizer(Tokenizer)}, {@link #generate(String, Consumer)} streams the new text
 * as it becomes final: a piece is handed out only when no later token can change it (no half
 * UTF-8 character from byte-fallback tokens) and when it cannot be the start of a stop string;
 * the pieces concatenate exactly to {@link Generation#text()}.
 *
 * <p>Thread safety: not thread-safe (its settings are plain fields; each call allocates its own
 * KV cache). Use a Generator, and its model, from one thread at a time (see {@link LlamaModel}).
 */
public final class Generator {
    private static final Logger LOG = LoggerFactory.getLogger(Generator.class);
    /** Prompt tokens decoded in front of the new ones, so SentencePiece keeps the continuation's leading space. */
    private static final int DECODE_CONTEXT_TOKENS = 3;

    /** Why generation ended. */
    public enum StopReason {
        /** A stop token (EOS) was generated; it is the last of {@link Generation#tokens()}, its text is not in the text. */
        EOS,
        /** The new text contains a stop string; the text ends right before it. */
        STOP_STRING,
        /** maxNewTokens tokens were generated. */
        MAX_NEW_TOKENS,
        /** The KV cache reached max_position_embeddings. */
        CONTEXT_FULL
    }

    /**
     * The result of a generation.
     *
     * @param tokens       the new tokens (a stop token, or the token that completed a stop string, included)
     * @param text         the new text: without the stop token's text, cut before a stop string
     * @param stopReason   why it ended
     * @param promptTokens the number of prompt tokens
     */
    public record Generation(int[] tokens, String text, StopReason stopReason, int promptTokens) {
    }

    private final LlamaModel model;
    private Tokenizer tokenizer;
    private List<String> stopStrings = List.of();
    private double temperature = 0;
    private int topK = 0;
    private double topP = 1.0;
    private int maxNewTokens = 128;
    private Set<Integer> stopTokens = Set.of();
    private long seed = 0;

    public Generator(LlamaModel model) {
        this.model = model;
    }

    /** 0 = greedy (argmax). */
    public Generator temperature(double value) {
        if (!(value >= 0)) {
            throw new IllegalArgumentException("temperature must be >= 0, was " + value);
        }
        temperature = value;
        return this;
    }

    /** Sample only among the k most likely tokens; 0 = no limit. */
    public Generator topK(int value) {
        if (value < 0) {
            throw new IllegalArgumentException("topK must be >= 0, was " + value);
        }
        topK = value;
        return this;
    }

    /** Sample from the smallest set of tokens whose probability reaches p; 1 = no limit. */
    public Generator topP(double value) {
        if (!(value > 0 && value <= 1)) {
            throw new IllegalArgumentException("topP must be in (0, 1], was " + value);
        }
        topP = value;
        return this;
    }

    public Generator maxNewTokens(int value) {
        if (value < 1) {
            throw new IllegalArgumentException("maxNewTokens must be >= 1, was " + value);
        }
        maxNewTokens = value;
        return this;
    }

    public Generator stopTokens(Set<Integer> value) {
        Objects.requireNonNull(value, "stopTokens");
        for (Integer id : value) {
            if (id == null || id < 0) {
                throw new IllegalArgumentException("stopTokens must be non-negative token ids, found " + id);
            }
        }
        stopTokens = Set.copyOf(value);
        return this;
    }

    /** Decodes new tokens for the text API and stop strings, and encodes text prompts. */
    public Generator tokenizer(Tokenizer value) {
        tokenizer = Objects.requireNonNull(value, "tokenizer");
        return this;
    }

    /**
     * Generation stops once the new text contains one of these (e.g. {@code ChatTemplate.stopStrings()});
     * needs a {@link #tokenizer(Tokenizer)}. An empty list turns stop strings off.
     */
    public Generator stopStrings(List<String> value) {
        Objects.requireNonNull(value, "stopStrings");
        for (int i = 0; i < value.size(); i++) {
            if (value.get(i) == null || value.get(i).isEmpty()) {
                throw new IllegalArgumentException("stopStrings[" + i + "] is " + (value.get(i) == null ? "null" : "empty")
                        + "; every stop string needs at least one character");
            }
        }
        stopStrings = List.copyOf(value);
        return this;
    }

    public Generator seed(long value) {
        seed = value;
        return this;
    }

    /** The new tokens after {@code prompt} (a stop token, if hit, is included as the last one). */
    public int[] generate(int[] prompt) {
        return generate(prompt, id -> { });
    }

    /**
     * As {@link #generate(int[])}, handing each new token to {@code onToken} as soon as it is chosen.
     * With stop strings set, the tokenizer decodes as generation goes and stops at a stop string.
     */
    public int[] generate(int[] prompt, IntConsumer onToken) {
        Objects.requireNonNull(onToken, "onToken");
        return run(prompt, onToken, null).tokens();
    }

    /**
     * Encodes {@code prompt} with the tokenizer (with its default special tokens, e.g. BOS) and
     * generates, streaming the new text to {@code onText}.
     */
    public Generation generate(String prompt, Consumer<String> onText) {
        Objects.requireNonNull(prompt, "prompt");
        requireTokenizer("generate(String, Consumer)");
        return generateText(tokenizer.encode(prompt), onText);
    }

    /**
     * Generates after the prompt ids, streaming the new text to {@code onText} in final pieces.
     * (Not an overload of {@code generate(int[], IntConsumer)}: a lambda argument would make calls
     * of either ambiguous.)
     */
    public Generation generateText(int[] prompt, Consumer<String> onText) {
        Objects.requireNonNull(onText, "onText");
        requireTokenizer("generateText(int[], Consumer)");
        return run(prompt, id -> { }, onText);
    }

    private void requireTokenizer(String what) {
        if (tokenizer == null) {
            throw new IllegalStateException(what + " decodes text and needs a tokenizer; call tokenizer(...) first");
        }
    }

    private Generation run(int[] prompt, IntConsumer onToken, Consumer<String> onText) {
        Objects.requireNonNull(prompt, "prompt");
        if (prompt.length == 0) {
            throw new IllegalArgumentException("generate: the prompt is empty; start it with the BOS token");
        }
        if (!stopStrings.isEmpty() && tokenizer == null) {
            throw new IllegalStateException("stopStrings " + stopStrings + " need a tokenizer to decode the new tokens; "
                    + "call tokenizer(...) or clear them with stopStrings(List.of())");
        }
        int capacity = Math.min(model.config().maxPositionEmbeddings(), prompt.length + maxNewTokens);
        if (prompt.length >= capacity) {
            throw new IllegalArgumentException("generate: prompt of " + prompt.length + " tokens leaves no room under "
                    + "max_position_embeddings " + model.config().maxPositionEmbeddings());
        }
        TextStream text = tokenizer != null && (onText != null || !stopStrings.isEmpty())
                ? new TextStream(prompt, onText == null ? piece -> { } : onText) : null;
        SplittableRandom rng = new SplittableRandom(seed);
        List<Integer> out = new ArrayList<>();
        StopReason reason;
        try (Autograd.Scope ignored = Autograd.noGrad()) {
            KvCache cache = model.newCache(1, capacity);
            float[] last = lastRow(model.forward(prompt, 1, cache));
            while (true) {
                int next = choose(last, rng);
                out.add(next);
                onToken.accept(next);
                if (stopTokens.contains(next)) {
                    reason = StopReason.EOS;
                    break;
                }
                if (text != null && text.update(out)) {
                    reason = StopReason.STOP_STRING;
                    break;
                }
                if (out.size() >= maxNewTokens) {
                    reason = StopReason.MAX_NEW_TOKENS;
                    break;
                }
                if (prompt.length + out.size() >= capacity) {
                    // the sequence fills max_position_embeddings: the last token could not be fed back
                    reason = StopReason.CONTEXT_FULL;
                    break;
                }
                last = lastRow(model.forward(new int[] {next}, 1, cache));
            }
        }
        int[] tokens = out.stream().mapToInt(Integer::intValue).toArray();
        String finalText = "";
        if (text != null) {
            if (reason != StopReason.STOP_STRING) {
                text.finish(reason == StopReason.EOS ? out.subList(0, out.size() - 1) : out);
            }
            finalText = text.emitted.toString();
        }
        return new Generation(tokens, finalText, reason, prompt.length);
    }

    /**
     * Incremental detokenization. Each step re-decodes the new tokens behind a few prompt tokens of
     * context (decoding the continuation alone would lose SentencePiece's leading space, which the
     * decoder strips at the start of a text) and hands out the part that is final: trailing U+FFFD
     * (an unfinished UTF-8 sequence of byte-fallback tokens) and any tail that could begin a stop
     * string are held back until later tokens settle them.
     */
    private final class TextStream {
        final int[] context;
        final String contextText;
        final Consumer<String> onText;
        final StringBuilder emitted = new StringBuilder();
        boolean warnedRewrite;

        TextStream(int[] prompt, Consumer<String> onText) {
            this.onText = onText;
            // context: the last few prompt tokens after the last special one (a decoder's start-of-text rules apply after specials)
            int from = Math.max(0, prompt.length - DECODE_CONTEXT_TOKENS);
            for (int i = prompt.length - 1; i >= from; i--) {
                if (tokenizer.decode(new int[] {prompt[i]}, true).isEmpty()) {
                    from = i + 1;
                    break;
                }
            }
            context = Arrays.copyOfRange(prompt, from, prompt.length);
            contextText = tokenizer.decode(context, false);
        }

        String decodeNew(List<Integer> tokens) {
            int[] ids = new int[context.length + tokens.size()];
            System.arraycopy(context, 0, ids, 0, context.length);
            for (int i = 0; i < tokens.size(); i++) {
                ids[context.length + i] = tokens.get(i);
            }
            String all = tokenizer.decode(ids, false);
            if (all.startsWith(contextText)) {
                return all.substring(contextText.length());
            }
            // the context ended inside a UTF-8 sequence or the decoder rewrote it: decode the new tokens alone
            return tokenizer.decode(tokens.stream().mapToInt(Integer::intValue).toArray(), false);
        }

        /** Emits what became final; true when a stop string appeared (its text is then emitted up to the stop string). */
        boolean update(List<Integer> tokens) {
            String full = decodeNew(tokens);
            int cut = -1;
            for (String stop : stopStrings) {
                int at = full.indexOf(stop);
                if (at >= 0 && (cut < 0 || at < cut)) {
                    cut = at;
                }
            }
            if (cut >= 0) {
                emitUpTo(full, cut);
                return true;
            }
            int stable = full.length();
            while (stable > 0 && full.charAt(stable - 1) == '\uFFFD') {
                stable--;
            }
            stable -= longestStopPrefixAtEnd(full, stable);
            emitUpTo(full, stable);
            return false;
        }

        /** The length of the longest tail of {@code full[0, end)} that is a proper prefix of a stop string. */
        int longestStopPrefixAtEnd(String full, int end) {
            int hold = 0;
            for (String stop : stopStrings) {
                for (int k = Math.min(stop.length() - 1, end); k > hold; k--) {
                    if (full.regionMatches(end - k, stop, 0, k)) {
                        hold = k;
                        break;
                    }
                }
            }
            return hold;
        }

        void finish(List<Integer> tokens) {
            String full = decodeNew(tokens);
            emitUpTo(full, full.length());
        }

        void emitUpTo(String full, int end) {
            if (end <= emitted.length()) {
                return;
            }
            if (!full.startsWith(emitted.toString())) {
                if (!warnedRewrite) {
                    LOG.warn("the tokenizer's decoding of the new tokens changed text already streamed (\"{}\" is no "
                            + "longer a prefix of \"{}\"); streaming continues from the changed position", emitted, full);
                    warnedRewrite = true;
                }
                return;
            }
            String piece = full.substring(emitted.length(), end);
            emitted.append(piece);
            onText.accept(piece);
        }
    }

    private static float[] lastRow(Tensor logits) {
        int v = logits.dim(-1);
        if (!(logits.storage() instanceof dev.lora4j.tensor.FloatStorage)) {
            // logits on a device: read back only the last row (V floats)
            float[] row = new float[v];
            logits.storage().decode(logits.offset() + logits.numel() - v, v, row, 0);
            return row;
        }
        float[] all = logits.data();
        int end = logits.intOffset() + Math.toIntExact(logits.numel());
        return Arrays.copyOfRange(all, end - v, end);
    }

    int choose(float[] logits, SplittableRandom rng) {
        if (temperature == 0) {
            int best = 0;
            for (int i = 1; i < logits.length; i++) {
                if (logits[i] > logits[best]) {
                    best = i;
                }
            }
            return best;
        }
        Integer[] order = new Integer[logits.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> Float.compare(logits[b], logits[a]));
        int keep = topK > 0 ? Math.min(topK, order.length) : order.length;
        double max = logits[order[0]];
        double[] p = new double[keep];
        double sum = 0;
        for (int i = 0; i < keep; i++) {
            p[i] = Math.exp((logits[order[i]] - max) / temperature);
            sum += p[i];
        }
        double cumulative = 0;
        int nucleus = keep;
        for (int i = 0; i < keep; i++) {
            p[i] /= sum;
            cumulative += p[i];
            if (cumulative >= topP) {
                nucleus = i + 1;
                break;
            }
        }
        double r = rng.nextDouble() * Math.min(1.0, cumulative);
        double acc = 0;
        for (int i = 0; i < nucleus; i++) {
            acc += p[i];
            if (r < acc) {
                return order[i];
            }
        }
        return order[nucleus - 1];
    }
}
