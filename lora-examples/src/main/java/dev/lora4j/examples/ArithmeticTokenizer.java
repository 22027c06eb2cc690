package dev.lora4j.examples;

import dev.lora4j.tokenizer.TokenizerJsonWriter;
import dev.lora4j.tokenizer.TokenizerJsonWriter.Merge;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * The quickstart model's tokenizer: SentencePiece-style BPE over single characters (every digit
 * is its own token, which arithmetic needs) plus whole-word merges for the few words of the
 * task, written as a standard Hugging Face tokenizer.json.
 */
final class ArithmeticTokenizer {
    private static final String SPACE = TokenizerJsonWriter.SPACE_MARK;
    private static final List<String> WORDS = List.of("What", "is", "plus", "minus", "Answer", "equals", "makes", "gives",
            "we", "know", "that", "so", "equal", "to", "of", "course");

    private ArithmeticTokenizer() {
    }

    static void write(Path folder) throws IOException {
        Set<String> pieces = new LinkedHashSet<>();
        pieces.add(SPACE);
        pieces.add("\n");
        for (char c = '0'; c <= '9'; c++) {
            pieces.add(String.valueOf(c));
        }
        for (char c : "+-=?:.,!'\"()".toCharArray()) {
            pieces.add(String.valueOf(c));
        }
        for (char c = 'a'; c <= 'z'; c++) {
            pieces.add(String.valueOf(c));
            pieces.add(String.valueOf(Character.toUpperCase(c)));
        }
        List<Merge> merges = new ArrayList<>();
        for (String word : WORDS) {
            addWordMerges(SPACE + word, pieces, merges);
            addWordMerges(word, pieces, merges);
        }
        TokenizerJsonWriter.writeFolder(folder, new ArrayList<>(pieces), merges);
    }

    /** Left-to-right merges that build {@code word} from its characters, adding each intermediate piece. */
    private static void addWordMerges(String word, Set<String> pieces, List<Merge> merges) {
        String acc = word.substring(0, 1);
        for (int i = 1; i < word.length(); i++) {
            String next = word.substring(i, i + 1);
            Merge m = new Merge(acc, next);
            acc = acc + next;
            if (!merges.contains(m)) {
                merges.add(m);
            }
            pieces.add(acc);
        }
    }
}
