package dev.lora4j.tokenizer;

/**
 * Hand-written matchers for the pre-tokenization regexes of GPT-2 and of Llama-3 (and its
 * one-digit variant used by Qwen2), several times faster than {@link java.util.regex}. Each
 * returns, for a start position, the end of the match that the regex's leftmost-first
 * alternation would find there; both regexes match at every position, so consecutive matches
 * tile the text. Classes: letters {@code \p{L}}, numbers {@code \p{N}}, whitespace {@code \s} =
 * Unicode White_Space (as in Oniguruma on UTF-8 text). Categories come from {@link UnicodeCategories}
 * (the committed Unicode table), not the running JDK. Tested against the regexes themselves.
 */
abstract class WordSplitter {
    static final String GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
    static final String LLAMA3 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
            + "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    static final String QWEN2 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
            + "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

    /** A hand-written splitter for exactly this regex, or null. */
    static WordSplitter forRegex(String regex) {
        return switch (regex) {
            case GPT2 -> new Gpt2();
            case LLAMA3 -> new Llama3(3);
            case QWEN2 -> new Llama3(1);
            default -> null;
        };
    }

    /** End of the match starting at {@code i} (&gt; i). */
    abstract int matchEnd(String s, int i);

    /** Emits the matches, which tile {@code text}, as an Isolated split does. */
    final void split(String text, boolean atStart, TokenizerPipeline.PieceSink sink) {
        for (int i = 0; i < text.length(); ) {
            int end = matchEnd(text, i);
            sink.accept(text.substring(i, end), atStart && i == 0);
            i = end;
        }
    }

    static final int LETTER = 1;
    static final int NUMBER = 2;
    static final int SPACE = 3;
    static final int OTHER = 0;

    static int classOf(int cp) {
        if (cp < 0x80) {
            if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') {
                return LETTER;
            }
            if (cp >= '0' && cp <= '9') {
                return NUMBER;
            }
            return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) ? SPACE : OTHER;
        }
        if (HfTokenizer.isWhiteSpace(cp)) {
            return SPACE;
        }
        return switch (UnicodeCategories.type(cp)) {
            case Character.UPPERCASE_LETTER, Character.LOWERCASE_LETTER, Character.TITLECASE_LETTER,
                    Character.MODIFIER_LETTER, Character.OTHER_LETTER -> LETTER;
            case Character.DECIMAL_DIGIT_NUMBER, Character.LETTER_NUMBER, Character.OTHER_NUMBER -> NUMBER;
            default -> OTHER;
        };
    }

    static int classAt(String s, int i) {
        return i < s.length() ? classOf(s.codePointAt(i)) : -1;
    }

    static int next(String s, int i) {
        return i + (Character.isHighSurrogate(s.charAt(i)) && i + 1 < s.length()
                && Character.isLowSurrogate(s.charAt(i + 1)) ? 2 : 1);
    }

    /** End of the run of code points of class {@code cls} starting at {@code i} (at most {@code max} of them). */
    static int run(String s, int i, int cls, int max) {
        int n = 0;
        while (i < s.length() && n < max && classOf(s.codePointAt(i)) == cls) {
            i = next(s, i);
            n++;
        }
        return i;
    }

    /**
     * Contractions {@code 's 't 're 've 'm 'll 'd} at {@code i} (which holds an apostrophe); with
     * {@code ignoreCase} matched as Java's Unicode case-insensitive matching does (so U+017F long
     * s also matches s). Returns the end, or -1.
     */
    static int contraction(String s, int i, boolean ignoreCase) {
        int a = i + 1 < s.length() ? fold(s.charAt(i + 1), ignoreCase) : -1;
        int b = i + 2 < s.length() ? fold(s.charAt(i + 2), ignoreCase) : -1;
        switch (a) {
            case 's', 't', 'm', 'd':
                return i + 2;
            case 'r', 'v':
                return b == 'e' ? i + 3 : -1;
            case 'l':
                return b == 'l' ? i + 3 : -1;
            default:
                return -1;
        }
    }

    private static int fold(char c, boolean ignoreCase) {
        if (!ignoreCase) {
            return c;
        }
        if (c == '\u017F') {
            return 's';
        }
        return c < 0x80 ? (c | 0x20) : c;
    }

    /** End of the whitespace run at {@code i}. */
    static int spaceRun(String s, int i) {
        return run(s, i, SPACE, Integer.MAX_VALUE);
    }

    /** {@code \s+(?!\S)} else {@code \s+}, for a whitespace run [i, end) (whitespace is all BMP). */
    static int trailingSpaces(String s, int i, int end) {
        if (end == s.length()) {
            return end;
        }
        return end - 1 > i ? end - 1 : end;
    }

    private static final class Gpt2 extends WordSplitter {
        @Override
        int matchEnd(String s, int i) {
            char c = s.charAt(i);
            if (c == '\'') {
                int end = contraction(s, i, false);
                if (end > 0) {
                    return end;
                }
            }
            int start = i;
            int cls = classOf(s.codePointAt(i));
            if (c == ' ') {
                int following = classAt(s, i + 1);
                if (following == LETTER || following == NUMBER || following == OTHER) {
                    start = i + 1;
                    cls = following;
                }
            }
            if (cls == LETTER || cls == NUMBER || cls == OTHER) {
                return run(s, start, cls, Integer.MAX_VALUE);
            }
            return trailingSpaces(s, i, spaceRun(s, i));
        }
    }

    private static final class Llama3 extends WordSplitter {
        private final int maxDigits;

        Llama3(int maxDigits) {
            this.maxDigits = maxDigits;
        }

        @Override
        int matchEnd(String s, int i) {
            char c = s.charAt(i);
            if (c == '\'') {
                int end = contraction(s, i, true);
                if (end > 0) {
                    return end;
                }
            }
            int cls = classOf(s.codePointAt(i));
            int after = next(s, i);
            if (cls == LETTER) {
                return run(s, i, LETTER, Integer.MAX_VALUE);
            }
            if (c != '\r' && c != '\n' && cls != NUMBER && classAt(s, after) == LETTER) {
                return run(s, after, LETTER, Integer.MAX_VALUE);
            }
            if (cls == NUMBER) {
                return run(s, i, NUMBER, maxDigits);
            }
            int otherStart = c == ' ' && classAt(s, after) == OTHER ? after : cls == OTHER ? i : -1;
            if (otherStart >= 0) {
                int end = run(s, otherStart, OTHER, Integer.MAX_VALUE);
                while (end < s.length() && (s.charAt(end) == '\r' || s.charAt(end) == '\n')) {
                    end++;
                }
                return end;
            }
            int end = spaceRun(s, i);
            for (int k = end - 1; k >= i; k--) {
                char w = s.charAt(k);
                if (w == '\r' || w == '\n') {
                    return k + 1;
                }
            }
            return trailingSpaces(s, i, end);
        }
    }
}
