package dev.lora4j.tokenizer;

import java.util.ArrayList;
import java.util.List;
import java.util.function.IntPredicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The normalizers, pre-tokenizers, post-processors and decoders of Hugging Face
 * {@code tokenizers} that lora4j supports, each reproducing that library's behaviour on the
 * produced strings and ids (offsets are not tracked).
 */
final class TokenizerPipeline {
    private TokenizerPipeline() {
    }

    /**
     * Compiles a pattern written for Oniguruma (the regex engine of {@code tokenizers}). With
     * UNICODE_CHARACTER_CLASS, Java's {@code \s}, {@code \w}, {@code \d} and case folding are
     * Unicode-aware as Oniguruma's are on UTF-8 text ({@code \s} = White_Space). General-category
     * classes ({@code \p{L}}, {@code \p{N}}, ...) are rewritten by {@link UnicodeCategories} to
     * follow the committed Unicode table, not the running JDK's (JDK 17 knows only Unicode 13).
     */
    static Pattern compileOniguruma(String regex) {
        return Pattern.compile(UnicodeCategories.rewrite(regex), Pattern.UNICODE_CHARACTER_CLASS);
    }

    /** GPT-2's pre-tokenization pattern, used by the ByteLevel pre-tokenizer with use_regex. */
    private static final WordSplitter GPT2_SPLITTER = WordSplitter.forRegex(WordSplitter.GPT2);

    // ---------------------------------------------------------------- normalizers

    interface Normalizer {
        String normalize(String text);
    }

    record SequenceNormalizer(List<Normalizer> normalizers) implements Normalizer {
        @Override
        public String normalize(String text) {
            for (Normalizer n : normalizers) {
                text = n.normalize(text);
            }
            return text;
        }
    }

    /** Prepends unless the text is empty. */
    record Prepend(String prefix) implements Normalizer {
        @Override
        public String normalize(String text) {
            return text.isEmpty() ? text : prefix + text;
        }
    }

    /** Replaces every non-overlapping match, leftmost first; {@code literal} is the pattern's text when it is a plain string. */
    record Replace(Pattern pattern, String literal, String content) implements Normalizer {
        static Replace literal(String target, String content) {
            return new Replace(Pattern.compile(Pattern.quote(target)), target, content);
        }

        /**
         * Equal to {@code pattern.matcher(text).replaceAll(content)} (empty matches included, as
         * {@code tokenizers} replaces them too), with each search bounded by {@link #REGEX_WINDOW}
         * as the pre-tokenizers' splits are.
         */
        @Override
        public String normalize(String text) {
            if (literal != null) {
                return text.replace(literal, content);
            }
            StringBuilder out = new StringBuilder(text.length());
            int[] copied = {0};
            forEachMatch(pattern, text, REGEX_WINDOW, true, (start, end) -> {
                out.append(text, copied[0], start).append(content);
                copied[0] = end;
            });
            return out.append(text, copied[0], text.length()).toString();
        }
    }

    record UnicodeNormalization(java.text.Normalizer.Form form) implements Normalizer {
        @Override
        public String normalize(String text) {
            return java.text.Normalizer.normalize(text, form);
        }
    }

    // ---------------------------------------------------------------- pre-tokenizers

    /** Receives the pieces of a split; {@code atStart}: the piece begins the original input. */
    interface PieceSink {
        void accept(String piece, boolean atStart);
    }

    /** Splits a piece into non-empty pieces, in order. */
    interface PreTokenizer {
        void split(String text, boolean atStart, PieceSink sink);
    }

    record SequencePreTokenizer(List<PreTokenizer> stages) implements PreTokenizer {
        @Override
        public void split(String text, boolean atStart, PieceSink sink) {
            run(0, text, atStart, sink);
        }

        private void run(int stage, String text, boolean atStart, PieceSink sink) {
            if (stage == stages.size()) {
                sink.accept(text, atStart);
            } else {
                stages.get(stage).split(text, atStart, (piece, start) -> run(stage + 1, piece, start, sink));
            }
        }
    }

    /** How a split keeps the delimiters it matched ({@code SplitDelimiterBehavior}). */
    enum Behavior {
        REMOVED, ISOLATED, MERGED_WITH_PREVIOUS, MERGED_WITH_NEXT, CONTIGUOUS
    }

    /**
     * Cuts {@code text} at the given matches (sorted, non-overlapping, as [start, end) pairs) and
     * emits the pieces as {@code NormalizedString::split} does for {@code behavior}.
     */
    static void emitSplits(String text, boolean atStart, int[] matches, int matchCount, Behavior behavior,
                           boolean invert, PieceSink sink) {
        // Spans cover the whole text: [start, end, isMatch] triples.
        int[] spans = new int[3 * (2 * matchCount + 1)];
        int count = 0;
        int previous = 0;
        for (int m = 0; m < matchCount; m++) {
            int start = matches[2 * m];
            int end = matches[2 * m + 1];
            if (start > previous) {
                count = putSpan(spans, count, previous, start, invert);
            }
            count = putSpan(spans, count, start, end, !invert);
            previous = end;
        }
        if (previous < text.length()) {
            count = putSpan(spans, count, previous, text.length(), invert);
        }
        int[] kept = new int[2 * count];
        int keptCount = 0;
        switch (behavior) {
            case ISOLATED -> {
                for (int s = 0; s < count; s++) {
                    keptCount = keep(kept, keptCount, spans[3 * s], spans[3 * s + 1]);
                }
            }
            case REMOVED -> {
                for (int s = 0; s < count; s++) {
                    if (spans[3 * s + 2] == 0) {
                        keptCount = keep(kept, keptCount, spans[3 * s], spans[3 * s + 1]);
                    }
                }
            }
            case CONTIGUOUS, MERGED_WITH_PREVIOUS -> {
                boolean previousMatch = false;
                for (int s = 0; s < count; s++) {
                    boolean match = spans[3 * s + 2] == 1;
                    boolean joins = behavior == Behavior.CONTIGUOUS ? match == previousMatch
                            : match && !previousMatch;
                    if (joins && keptCount > 0) {
                        kept[2 * keptCount - 1] = spans[3 * s + 1];
                    } else {
                        keptCount = keep(kept, keptCount, spans[3 * s], spans[3 * s + 1]);
                    }
                    previousMatch = match;
                }
            }
            case MERGED_WITH_NEXT -> {
                boolean nextMatch = false;
                int[] reversed = new int[2 * count];
                int reversedCount = 0;
                for (int s = count - 1; s >= 0; s--) {
                    boolean match = spans[3 * s + 2] == 1;
                    if (match && !nextMatch && reversedCount > 0) {
                        reversed[2 * reversedCount - 2] = spans[3 * s];
                    } else {
                        reversedCount = keep(reversed, reversedCount, spans[3 * s], spans[3 * s + 1]);
                    }
                    nextMatch = match;
                }
                for (int s = reversedCount - 1; s >= 0; s--) {
                    keptCount = keep(kept, keptCount, reversed[2 * s], reversed[2 * s + 1]);
                }
            }
        }
        for (int k = 0; k < keptCount; k++) {
            int start = kept[2 * k];
            int end = kept[2 * k + 1];
            if (end > start) {
                sink.accept(text.substring(start, end), atStart && start == 0);
            }
        }
    }

    private static int putSpan(int[] spans, int count, int start, int end, boolean match) {
        spans[3 * count] = start;
        spans[3 * count + 1] = end;
        spans[3 * count + 2] = match ? 1 : 0;
        return count + 1;
    }

    private static int keep(int[] kept, int count, int start, int end) {
        kept[2 * count] = start;
        kept[2 * count + 1] = end;
        return count + 1;
    }

    /** Most characters one {@link Matcher#find()} call sees, unless a match needs more (see {@link #forEachMatch}). */
    static final int REGEX_WINDOW = 1 << 16;

    /** Receives the [start, end) of each match (non-empty unless asked otherwise). */
    interface MatchSink {
        void accept(int start, int end);
    }

    /**
     * The non-empty matches of {@code pattern} in {@code text}, exactly as a plain
     * {@code while (m.find())} loop finds them, but with each {@code find} confined to a region of
     * {@code window} characters (transparent bounds, so lookaround still sees the whole text; no
     * anchoring bounds, so ^ and $ only match at the text's ends). A find whose search reached
     * the region's end ({@link Matcher#hitEnd()}: the result could depend on what follows, and
     * also the case of no match in the region) is repeated on a region twice as long. A find
     * that did not reach the end never looked past it, so its match is the one the whole text
     * gives. The bound keeps one call's work proportional to the window for the dense splits of
     * tokenizer regexes, whatever the text's length; results are unchanged by construction.
     */
    static void forEachMatch(Pattern pattern, String text, int window, MatchSink sink) {
        forEachMatch(pattern, text, window, false, sink);
    }

    /** As {@link #forEachMatch(Pattern, String, int, MatchSink)}; with {@code includeEmpty} empty matches are reported too. */
    static void forEachMatch(Pattern pattern, String text, int window, boolean includeEmpty, MatchSink sink) {
        Matcher m = pattern.matcher(text);
        m.useTransparentBounds(true);
        m.useAnchoringBounds(false);
        int n = text.length();
        int pos = 0;
        long size = window;
        while (pos <= n) {
            int end = (int) Math.min(n, pos + size);
            m.region(pos, end);
            boolean found = m.find();
            if (end < n && (m.hitEnd() || !found)) {
                size *= 2;
                continue;
            }
            size = window;
            if (!found) {
                return;
            }
            if (m.end() > m.start()) {
                sink.accept(m.start(), m.end());
                pos = m.end();
            } else {
                if (includeEmpty) {
                    sink.accept(m.start(), m.end());
                }
                pos = m.end() + 1; // as find() moves on after an empty match
            }
        }
    }

    /** Matches of a regex as [start, end) pairs; empty matches are skipped. */
    static int[] regexMatches(Pattern pattern, String text, int[] countOut) {
        int[][] matches = {new int[16]};
        int[] count = {0};
        forEachMatch(pattern, text, REGEX_WINDOW, (start, end) -> {
            if (2 * count[0] + 2 > matches[0].length) {
                matches[0] = java.util.Arrays.copyOf(matches[0], 2 * matches[0].length);
            }
            matches[0][2 * count[0]] = start;
            matches[0][2 * count[0] + 1] = end;
            count[0]++;
        });
        countOut[0] = count[0];
        return matches[0];
    }

    /** Every code point satisfying {@code predicate} as its own match. */
    static int[] codePointMatches(String text, IntPredicate predicate, int[] countOut) {
        int[] matches = new int[2 * text.length()];
        int count = 0;
        for (int i = 0; i < text.length(); ) {
            int cp = text.codePointAt(i);
            int end = i + Character.charCount(cp);
            if (predicate.test(cp)) {
                matches[2 * count] = i;
                matches[2 * count + 1] = end;
                count++;
            }
            i = end;
        }
        countOut[0] = count;
        return matches;
    }

    record Split(Pattern pattern, Behavior behavior, boolean invert) implements PreTokenizer {
        @Override
        public void split(String text, boolean atStart, PieceSink sink) {
            if (behavior == Behavior.ISOLATED) {
                isolate(pattern, text, atStart, sink);
                return;
            }
            int[] count = new int[1];
            int[] matches = regexMatches(pattern, text, count);
            emitSplits(text, atStart, matches, count[0], behavior, invert, sink);
        }
    }

    /** An Isolated, non-inverted Split whose regex has a hand-written equivalent. */
    record FastSplit(WordSplitter splitter) implements PreTokenizer {
        @Override
        public void split(String text, boolean atStart, PieceSink sink) {
            splitter.split(text, atStart, sink);
        }
    }

    /** Isolated split straight off the matcher: matches and the gaps between them. */
    static void isolate(Pattern pattern, String text, boolean atStart, PieceSink sink) {
        isolate(pattern, text, atStart, REGEX_WINDOW, sink);
    }

    static void isolate(Pattern pattern, String text, boolean atStart, int window, PieceSink sink) {
        int[] previous = {0};
        forEachMatch(pattern, text, window, (start, end) -> {
            if (start > previous[0]) {
                sink.accept(text.substring(previous[0], start), atStart && previous[0] == 0);
            }
            sink.accept(text.substring(start, end), atStart && start == 0);
            previous[0] = end;
        });
        if (previous[0] < text.length()) {
            sink.accept(text.substring(previous[0]), atStart && previous[0] == 0);
        }
    }

    /** {@code Digits}: numeric code points (Rust {@code char::is_numeric}) split from the rest. */
    record Digits(boolean individualDigits) implements PreTokenizer {
        @Override
        public void split(String text, boolean atStart, PieceSink sink) {
            int[] count = new int[1];
            int[] matches = codePointMatches(text, TokenizerPipeline::isNumeric, count);
            emitSplits(text, atStart, matches, count[0],
                    individualDigits ? Behavior.ISOLATED : Behavior.CONTIGUOUS, false, sink);
        }
    }

    static boolean isNumeric(int cp) {
        int type = UnicodeCategories.type(cp);
        return type == Character.DECIMAL_DIGIT_NUMBER || type == Character.LETTER_NUMBER
                || type == Character.OTHER_NUMBER;
    }

    enum PrependScheme {
        FIRST, NEVER, ALWAYS
    }

    /**
     * {@code Metaspace}: spaces become {@code replacement}; the replacement is prepended (always,
     * or only to the piece that begins the input) unless already there; then, with
     * {@code split}, each replacement starts a new piece.
     */
    record Metaspace(int replacement, PrependScheme prependScheme, boolean split) implements PreTokenizer {
        @Override
        public void split(String text, boolean atStart, PieceSink sink) {
            String rep = Character.toString(replacement);
            String replaced = text.replace(" ", rep);
            boolean prepend = switch (prependScheme) {
                case ALWAYS -> true;
                case FIRST -> atStart;
                case NEVER -> false;
            };
            if (prepend && !replaced.startsWith(rep)) {
                replaced = rep + replaced;
            }
            if (!split) {
                sink.accept(replaced, atStart);
                return;
            }
            int[] count = new int[1];
            int[] matches = codePointMatches(replaced, cp -> cp == replacement, count);
            emitSplits(replaced, atStart, matches, count[0], Behavior.MERGED_WITH_NEXT, false, sink);
        }
    }

    /**
     * {@code ByteLevel}: optionally prepends a space (unless present), optionally splits with
     * GPT-2's pattern, then spells each piece's UTF-8 bytes with GPT-2's byte characters.
     */
    record ByteLevel(boolean addPrefixSpace, boolean useRegex) implements PreTokenizer {
        @Override
        public void split(String text, boolean atStart, PieceSink sink) {
            String input = addPrefixSpace && !text.startsWith(" ") ? " " + text : text;
            if (useRegex) {
                GPT2_SPLITTER.split(input, atStart, (piece, start) -> sink.accept(toByteChars(piece), start));
            } else {
                sink.accept(toByteChars(input), atStart);
            }
        }
    }

    static String toByteChars(String text) {
        int n = text.length();
        boolean ascii = true;
        for (int i = 0; i < n && ascii; i++) {
            ascii = text.charAt(i) < 0x80;
        }
        char[] out;
        int length = 0;
        if (ascii) {
            out = new char[n];
            for (int i = 0; i < n; i++) {
                out[i] = Utf8Bytes.BYTE_TO_CHAR[text.charAt(i)];
            }
            length = n;
        } else {
            out = new char[3 * n];
            byte[] buffer = new byte[4];
            for (int i = 0; i < n; ) {
                int cp = text.codePointAt(i);
                i += Character.charCount(cp);
                int bytes = Utf8Bytes.encode(cp, buffer, 0);
                for (int b = 0; b < bytes; b++) {
                    out[length++] = Utf8Bytes.BYTE_TO_CHAR[buffer[b] & 0xFF];
                }
            }
        }
        return new String(out, 0, length);
    }

    // ---------------------------------------------------------------- post-processors

    /** Adds special tokens around the ids of one sequence. */
    interface PostProcessor {
        int[] process(int[] ids);
    }

    /** {@code TemplateProcessing} for a single sequence: {@code items} are id runs, null = $A. */
    record Template(List<int[]> items) implements PostProcessor {
        @Override
        public int[] process(int[] ids) {
            BpeModel.Ids out = new BpeModel.Ids();
            for (int[] item : items) {
                out.addAll(item == null ? ids : item);
            }
            return out.toArray();
        }
    }

    record SequenceProcessor(List<PostProcessor> processors) implements PostProcessor {
        @Override
        public int[] process(int[] ids) {
            for (PostProcessor p : processors) {
                ids = p.process(ids);
            }
            return ids;
        }
    }

    /** ByteLevel's post-processing only trims offsets, so ids pass through. */
    record Identity() implements PostProcessor {
        @Override
        public int[] process(int[] ids) {
            return ids;
        }
    }

    // ---------------------------------------------------------------- decoders

    /** {@code Decoder::decode_chain}: tokens in, tokens out; the final result is their concatenation. */
    interface Decoder {
        List<String> decodeChain(List<String> tokens);
    }

    record SequenceDecoder(List<Decoder> decoders) implements Decoder {
        @Override
        public List<String> decodeChain(List<String> tokens) {
            for (Decoder d : decoders) {
                tokens = d.decodeChain(tokens);
            }
            return tokens;
        }
    }

    record ReplaceDecoder(Replace replace) implements Decoder {
        @Override
        public List<String> decodeChain(List<String> tokens) {
            List<String> out = new ArrayList<>(tokens.size());
            for (String t : tokens) {
                out.add(replace.normalize(t));
            }
            return out;
        }
    }

    /**
     * {@code ByteFallback}: runs of {@code <0xNN>} tokens become the text their bytes spell, or
     * one U+FFFD per byte when the run is not valid UTF-8.
     */
    record ByteFallbackDecoder() implements Decoder {
        @Override
        public List<String> decodeChain(List<String> tokens) {
            List<String> out = new ArrayList<>(tokens.size());
            byte[] bytes = new byte[16];
            int pending = 0;
            for (String t : tokens) {
                int b = byteToken(t);
                if (b >= 0) {
                    if (pending == bytes.length) {
                        bytes = java.util.Arrays.copyOf(bytes, 2 * pending);
                    }
                    bytes[pending++] = (byte) b;
                    continue;
                }
                flush(bytes, pending, out);
                pending = 0;
                out.add(t);
            }
            flush(bytes, pending, out);
            return out;
        }

        private static void flush(byte[] bytes, int count, List<String> out) {
            if (count == 0) {
                return;
            }
            if (Utf8Bytes.isValid(bytes, count)) {
                out.add(Utf8Bytes.decodeLossy(bytes, count));
            } else {
                for (int i = 0; i < count; i++) {
                    out.add("\uFFFD");
                }
            }
        }

        private static int byteToken(String t) {
            if (t.length() != 6 || !t.startsWith("<0x") || t.charAt(5) != '>') {
                return -1;
            }
            int hi = Character.digit(t.charAt(3), 16);
            int lo = Character.digit(t.charAt(4), 16);
            boolean asciiHex = t.charAt(3) < 0x80 && t.charAt(4) < 0x80;
            return hi >= 0 && lo >= 0 && asciiHex ? (hi << 4) | lo : -1;
        }
    }

    record FuseDecoder() implements Decoder {
        @Override
        public List<String> decodeChain(List<String> tokens) {
            return List.of(String.join("", tokens));
        }
    }

    /** {@code Strip}: removes up to {@code start} leading and {@code stop} trailing {@code content} chars per token. */
    record StripDecoder(int content, int start, int stop) implements Decoder {
        @Override
        public List<String> decodeChain(List<String> tokens) {
            List<String> out = new ArrayList<>(tokens.size());
            for (String t : tokens) {
                int[] cps = t.codePoints().toArray();
                int from = 0;
                while (from < start && from < cps.length && cps[from] == content) {
                    from++;
                }
                int to = cps.length;
                for (int i = 0; i < stop && to > 0 && cps[to - 1] == content; i++) {
                    to--;
                }
                out.add(to > from ? new String(cps, from, to - from) : "");
            }
            return out;
        }
    }

    /**
     * {@code Metaspace} decoder: the replacement becomes a space, except in the first token, where
     * (unless the prepend scheme is never) every replacement is dropped.
     */
    record MetaspaceDecoder(int replacement, boolean dropInFirstToken) implements Decoder {
        @Override
        public List<String> decodeChain(List<String> tokens) {
            List<String> out = new ArrayList<>(tokens.size());
            String rep = Character.toString(replacement);
            for (int i = 0; i < tokens.size(); i++) {
                out.add(tokens.get(i).replace(rep, i == 0 && dropInFirstToken ? "" : " "));
            }
            return out;
        }
    }

    /**
     * {@code ByteLevel} decoder: every token made only of GPT-2 byte characters contributes those
     * bytes, any other token its own UTF-8; the bytes are decoded lossily into one token.
     */
    record ByteLevelDecoder() implements Decoder {
        @Override
        public List<String> decodeChain(List<String> tokens) {
            byte[] bytes = new byte[64];
            int length = 0;
            for (String t : tokens) {
                if (length + 4 * t.length() > bytes.length) {
                    bytes = java.util.Arrays.copyOf(bytes, Math.max(2 * bytes.length, length + 4 * t.length()));
                }
                int mark = length;
                boolean all = true;
                for (int i = 0; i < t.length() && all; i++) {
                    int b = Utf8Bytes.byteOf(t.charAt(i));
                    if (b < 0) {
                        all = false;
                    } else {
                        bytes[length++] = (byte) b;
                    }
                }
                if (!all) {
                    length = mark;
                    for (int i = 0; i < t.length(); ) {
                        int cp = t.codePointAt(i);
                        i += Character.charCount(cp);
                        length += Utf8Bytes.encode(cp, bytes, length);
                    }
                }
            }
            return List.of(Utf8Bytes.decodeLossy(bytes, length));
        }
    }
}
