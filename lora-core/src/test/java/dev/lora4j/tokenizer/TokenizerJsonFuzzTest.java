package dev.lora4j.tokenizer;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Fuzzes tokenizer.json + tokenizer_config.json: the input is tokenizer.json, then optionally a
 * NUL byte and tokenizer_config.json. Any input must load or fail with an
 * {@link IllegalArgumentException} or {@link IOException}; a tokenizer that loads must encode and
 * decode a few texts without throwing (except the named refusal of a character that has no token
 * when the vocabulary lacks its unk_token, as tokenizers refuses it), and every id it produces
 * must be in its vocabulary.
 * Seeds: {@code TokenizerJsonFuzzTestInputs/tokenizerJson/}.
 */
class TokenizerJsonFuzzTest {
    private static final String[] TEXTS = {"", "hello world", "Hello's 123 \u00e9\u4e2d\uD83D\uDE00\n\t  x", "<s>a</s>",
        "\u0000\uFFFF\uD800", " ".repeat(300)};

    @FuzzTest(maxDuration = "3m")
    void tokenizerJson(byte[] data) throws IOException {
        int nul = indexOf(data, (byte) 0);
        byte[] tokenizer = nul < 0 ? data : Arrays.copyOf(data, nul);
        byte[] config = nul < 0 ? null : Arrays.copyOfRange(data, nul + 1, data.length);
        Path dir = Files.createTempDirectory("fuzz-tokenizer");
        try {
            Files.write(dir.resolve("tokenizer.json"), tokenizer);
            if (config != null) {
                Files.write(dir.resolve("tokenizer_config.json"), config);
            }
            HfTokenizer hf;
            try {
                hf = HfTokenizer.load(dir);
            } catch (IllegalArgumentException | IOException expected) {
                return;
            }
            for (String text : TEXTS) {
                for (boolean special : new boolean[] {false, true}) {
                    int[] ids;
                    try {
                        ids = hf.encode(text, special);
                    } catch (IllegalStateException e) {
                        // tokenizers refuses such texts too (no unk_token in the vocabulary); the message must name the file
                        if (e.getMessage() == null || !e.getMessage().startsWith(dir.resolve("tokenizer.json").toString())) {
                            throw e;
                        }
                        continue;
                    }
                    for (int id : ids) {
                        if (id < 0 || id >= hf.vocabSize()) {
                            throw new AssertionError("id " + id + " outside the vocabulary of " + hf.vocabSize() + " for "
                                    + new String(tokenizer, StandardCharsets.UTF_8));
                        }
                    }
                    hf.decode(ids, false);
                    hf.decode(ids, true);
                }
            }
        } finally {
            Files.deleteIfExists(dir.resolve("tokenizer_config.json"));
            Files.deleteIfExists(dir.resolve("tokenizer.json"));
            Files.deleteIfExists(dir);
        }
    }

    private static int indexOf(byte[] data, byte b) {
        for (int i = 0; i < data.length; i++) {
            if (data[i] == b) {
                return i;
            }
        }
        return -1;
    }
}
