package dev.lora4j.tokenizer;

import java.util.OptionalInt;

/**
 * Text ↔ token ids. Implementations are immutable and safe to share between threads.
 */
public interface Tokenizer {

    /** Encodes {@code text} adding the tokenizer's default special tokens (e.g. a leading BOS). */
    default int[] encode(String text) {
        return encode(text, true);
    }

    /**
     * Encodes {@code text}; with {@code addSpecialTokens} the tokenizer's post-processing adds its
     * special tokens (BOS/EOS), without it only the text's own tokens are returned.
     */
    int[] encode(String text, boolean addSpecialTokens);

    /** Decodes ids back to text, keeping special tokens. */
    default String decode(int[] ids) {
        return decode(ids, false);
    }

    /** Decodes ids back to text, dropping special tokens (BOS, EOS, ...) when asked. */
    String decode(int[] ids, boolean skipSpecialTokens);

    /** The vocabulary entry of {@code id}; throws IllegalArgumentException for an id with none. */
    String token(int id);

    /** The id of the vocabulary entry {@code token}, if present. */
    OptionalInt id(String token);

    /** One more than the largest id: the number of rows an embedding table needs. */
    int vocabSize();

    OptionalInt bosId();

    OptionalInt eosId();

    OptionalInt padId();
}
