package dev.lora4j.eval;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.tokenizer.HfTokenizer;
import dev.lora4j.model.Generator;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.testing.Fixtures;
import dev.lora4j.testing.TinyModels;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

class LogLikelihoodTest {
    private static final int VOCAB = 48;

    @Test
    void matchesLogSoftmaxOfTheFullSequenceLogits() {
        LlamaModel model = TinyModels.model(3);
        int[] context = TinyModels.tokens(6, VOCAB, 11);
        int[] continuation = TinyModels.tokens(3, VOCAB, 12);
        int[] full = concat(context, continuation);
        float[] logits = TinyModels.logits(model, full, 1); // [T, V]

        double expected = 0;
        boolean expectedGreedy = true;
        for (int j = 0; j < continuation.length; j++) {
            int row = (context.length - 1 + j) * VOCAB; // position t predicts token t + 1
            double sumExp = 0;
            int argmax = 0;
            for (int v = 0; v < VOCAB; v++) {
                sumExp += Math.exp(logits[row + v]);
                argmax = logits[row + v] > logits[row + argmax] ? v : argmax;
            }
            expected += logits[row + continuation[j]] - Math.log(sumExp);
            expectedGreedy &= argmax == continuation[j];
        }

        LogLikelihood.Result r = LogLikelihood.of(model).score(new LogLikelihood.Request(context, continuation));
        assertEquals(expected, r.logLikelihood(), 1e-4);
        assertEquals(expectedGreedy, r.isGreedy());
        assertEquals(3, r.continuationTokens());
        assertTrue(r.logLikelihood() < 0);
    }

    @Test
    void batchedEqualsOneAtATime() {
        LlamaModel model = TinyModels.model(5);
        List<LogLikelihood.Request> requests = new ArrayList<>();
        int[][] shapes = {{4, 2}, {9, 1}, {1, 5}, {7, 3}, {2, 2}, {12, 4}, {3, 1}};
        for (int i = 0; i < shapes.length; i++) {
            requests.add(new LogLikelihood.Request(TinyModels.tokens(shapes[i][0], VOCAB, 100 + i),
                    TinyModels.tokens(shapes[i][1], VOCAB, 200 + i)));
        }
        List<LogLikelihood.Result> single = LogLikelihood.of(model).batchSize(1).score(requests);
        for (int batch : new int[] {2, 3, 8}) {
            List<LogLikelihood.Result> batched = LogLikelihood.of(model).batchSize(batch).score(requests);
            for (int i = 0; i < requests.size(); i++) {
                assertEquals(single.get(i).logLikelihood(), batched.get(i).logLikelihood(), 1e-5, "batch " + batch + " request " + i);
                assertEquals(single.get(i).isGreedy(), batched.get(i).isGreedy(), "batch " + batch + " request " + i);
                assertEquals(requests.get(i).continuation().length, batched.get(i).continuationTokens());
            }
        }
    }

    @Test
    void theGreedyGenerationIsGreedyAndAChangedTokenIsNot() {
        LlamaModel model = TinyModels.model(7);
        int[] context = TinyModels.tokens(5, VOCAB, 31);
        int[] greedy = new Generator(model).maxNewTokens(4).generate(context);
        assertEquals(4, greedy.length);
        LogLikelihood scorer = LogLikelihood.of(model);
        assertTrue(scorer.score(new LogLikelihood.Request(context, greedy)).isGreedy());

        int[] changed = greedy.clone();
        changed[2] = (changed[2] + 1) % VOCAB;
        LogLikelihood.Result other = scorer.score(new LogLikelihood.Request(context, changed));
        assertFalse(other.isGreedy());
        // the greedy path is the most likely continuation token by token, so it beats one changed token
        assertTrue(scorer.score(new LogLikelihood.Request(context, greedy)).logLikelihood() > other.logLikelihood());
    }

    @Test
    void overlongRequestsLoseTheirLeftmostContextAsInLmEval() {
        LlamaModel model = TinyModels.model(3); // max_position_embeddings 64
        int[] context = TinyModels.tokens(80, VOCAB, 41);
        int[] continuation = TinyModels.tokens(3, VOCAB, 42);
        // 83 tokens; the model sees the last 65 minus the final one: context[18:] + continuation[:-1]
        LogLikelihood scorer = LogLikelihood.of(model);
        LogLikelihood.Result cut = scorer.score(new LogLikelihood.Request(context, continuation));
        LogLikelihood.Result fitted = scorer.score(new LogLikelihood.Request(Arrays.copyOfRange(context, 18, 80), continuation));
        assertEquals(fitted.logLikelihood(), cut.logLikelihood(), 1e-6);

        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> scorer.score(new LogLikelihood.Request(new int[] {1}, TinyModels.tokens(65, VOCAB, 43))));
        assertTrue(e.getMessage().contains("continuation of 65 tokens"), e.getMessage());
    }

    @Test
    void rejectsEmptyPartsAndBadBatchSize() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new LogLikelihood.Request(new int[0], new int[] {3}))
                .getMessage().contains("context is empty"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new LogLikelihood.Request(new int[] {1}, new int[0]))
                .getMessage().contains("continuation is empty"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> LogLikelihood.of(TinyModels.model(1)).batchSize(0))
                .getMessage().contains("batchSize must be >= 1, was 0"));
    }

    @Test
    void encodeSplitsLikeLmEvalEncodePair() throws Exception {
        HfTokenizer tok = HfTokenizer.load(Fixtures.require("stories260K").resolve("hf"));
        String context = "Question: What is 98 plus 45?\nAnswer:";
        LogLikelihood.Request r = LogLikelihood.encode(tok, context, " 143", true);
        int[] whole = tok.encode(context + " 143", true);
        int[] ctx = tok.encode(context, true);
        assertArrayEquals(ctx, r.context());
        assertEquals(tok.bosId().getAsInt(), r.context()[0]);
        assertArrayEquals(Arrays.copyOfRange(whole, ctx.length, whole.length), r.continuation());
        assertEquals(" 143", tok.decode(concat(new int[] {tok.id("A").orElseThrow()}, r.continuation()), true).substring(1));

        // trailing whitespace of the context belongs to the continuation
        assertEquals(r, LogLikelihood.encode(tok, context + " ", "143", true));
        // without special tokens there is no BOS
        assertFalse(LogLikelihood.encode(tok, context, " 143", false).context()[0] == tok.bosId().getAsInt());
        // an empty context stands for the start of text
        LogLikelihood.Request fromStart = LogLikelihood.encode(tok, "", "Once", false);
        assertArrayEquals(new int[] {tok.bosId().getAsInt()}, fromStart.context());
        assertArrayEquals(tok.encode("Once", false), fromStart.continuation());

        assertTrue(assertThrows(IllegalArgumentException.class, () -> LogLikelihood.encode(tok, context, "", true))
                .getMessage().contains("adds no tokens"));
    }

    private static int[] concat(int[] a, int[] b) {
        int[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
