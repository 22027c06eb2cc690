package dev.lora4j.cli;

import dev.lora4j.data.Tokenizer;
import java.io.PrintWriter;
import java.util.Arrays;
import java.util.Set;
import java.util.function.IntConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Prints generated text as token ids arrive ({@code generator.generate(prompt, streamer)}), the
 * way transformers' TextStreamer does: the ids so far are decoded together (a token alone may be
 * half a character or lose its leading space) and only whole words are printed, so that what
 * decoding the last token changes (an incomplete UTF-8 sequence, spaces cleaned before
 * punctuation) is not printed yet. Stop tokens are not printed. {@link #finish()} prints the rest.
 */
public final class TextStreamer implements IntConsumer {
    private static final Logger LOG = LoggerFactory.getLogger(TextStreamer.class);

    private final Tokenizer tokenizer;
    private final Set<Integer> stopTokens;
    private final PrintWriter out;
    private int[] ids = new int[16];
    private int count;
    private String printed = "";

    /**
     * @param stopTokens ids that end generation; they are left out of the text
     * @param out where the text goes; flushed after each printed piece
     */
    public TextStreamer(Tokenizer tokenizer, Set<Integer> stopTokens, PrintWriter out) {
        this.tokenizer = tokenizer;
        this.stopTokens = Set.copyOf(stopTokens);
        this.out = out;
    }

    @Override
    public void accept(int id) {
        if (stopTokens.contains(id)) {
            return;
        }
        if (count == ids.length) {
            ids = Arrays.copyOf(ids, 2 * count);
        }
        ids[count++] = id;
        String text = decoded();
        int end;
        if (text.endsWith("\n")) {
            end = text.length();
        } else {
            // hold back the last word and the space before it
            end = Math.max(text.lastIndexOf(' '), text.lastIndexOf('\n') + 1);
        }
        emit(text, end);
    }

    /** Prints what is still held back; returns the whole text printed. */
    public String finish() {
        String text = decoded();
        emit(text, text.length());
        return printed;
    }

    /** The text printed so far. */
    public String text() {
        return printed;
    }

    private String decoded() {
        return tokenizer.decode(Arrays.copyOf(ids, count), true);
    }

    private void emit(String text, int end) {
        if (!text.startsWith(printed)) {
            // decoding one more token changed text printed already; print on from the same length
            LOG.debug("streamed text {} is no prefix of the decoded text {}", printed, text);
        }
        if (end > printed.length()) {
            out.print(text.substring(printed.length(), end));
            out.flush();
            printed = printed + text.substring(printed.length(), end);
        }
    }
}
