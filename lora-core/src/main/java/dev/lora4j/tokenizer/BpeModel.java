package dev.lora4j.tokenizer;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The BPE model of Hugging Face {@code tokenizers} ({@code models/bpe}), for one pre-tokenized
 * word at a time.
 *
 * <p>A word starts as one symbol per code point (with {@code continuing_subword_prefix} on every
 * symbol but the first and {@code end_of_word_suffix} on the last). A code point with no token
 * becomes its UTF-8 bytes as {@code <0xNN>} tokens when {@code byte_fallback} is set and all of
 * them exist, else the unknown token (consecutive unknowns fused into one with
 * {@code fuse_unk}). Then, repeatedly, the adjacent pair whose merge has the lowest rank (its
 * index in {@code merges}; ties go to the leftmost pair) is replaced by the merged token, until
 * no adjacent pair has a merge. With {@code ignore_merges}, a word that is itself a token is
 * that token. Merging uses a priority queue of candidate pairs over a linked list of symbols,
 * O(n log n) per word; results of words are cached.
 */
final class BpeModel {
    private static final Logger LOG = LoggerFactory.getLogger(BpeModel.class);
    private static final int CACHE_CAPACITY = 10_000;
    private static final int MAX_CACHED_WORD_CHARS = 256;
    private static final char METASPACE = '\u2581';
    private static final String METASPACE_TOKEN = String.valueOf(METASPACE);

    private final Map<String, Integer> vocab;
    private final LongLongMap merges;
    private final int[] bmpIds;
    private final String prefix;
    private final String suffix;
    private final boolean byteFallback;
    private final int[] byteIds;
    private final boolean fuseUnk;
    private final boolean ignoreMerges;
    private final String unkToken;
    private final int unkId;
    private final String where;
    /** No token crosses a boundary between a non-{@code ▁} character and a {@code ▁}; see {@link #tokenize}. */
    private final boolean splitsBeforeMetaspace;
    private final ConcurrentHashMap<String, int[]> cache = new ConcurrentHashMap<>();

    /**
     * @param merges pairs in rank order; a pair listed twice keeps its later rank, as in HF. A
     *               merge whose parts or result are not tokens can never apply; it is skipped
     *               with a warning (HF refuses the file, but such files exist in the wild)
     * @param where  names the model in error messages, e.g. {@code "/a/tokenizer.json: model"}
     */
    BpeModel(Map<String, Integer> vocab, List<String[]> merges, String continuingSubwordPrefix,
             String endOfWordSuffix, boolean byteFallback, boolean fuseUnk, boolean ignoreMerges,
             String unkToken, String where) {
        this.vocab = vocab;
        this.where = where;
        this.prefix = continuingSubwordPrefix == null || continuingSubwordPrefix.isEmpty() ? null
                : continuingSubwordPrefix;
        this.suffix = endOfWordSuffix == null || endOfWordSuffix.isEmpty() ? null : endOfWordSuffix;
        this.byteFallback = byteFallback;
        this.fuseUnk = fuseUnk;
        this.ignoreMerges = ignoreMerges;
        this.unkToken = unkToken;
        Integer unk = unkToken == null ? null : vocab.get(unkToken);
        this.unkId = unk == null ? -1 : unk;

        this.merges = new LongLongMap(merges.size());
        int prefixLength = prefix == null ? 0 : prefix.length();
        int skipped = 0;
        String firstSkipped = null;
        for (int rank = 0; rank < merges.size(); rank++) {
            String[] pair = merges.get(rank);
            String mergedToken = pair[0] + pair[1].substring(Math.min(prefixLength, pair[1].length()));
            Integer left = vocab.get(pair[0]);
            Integer right = vocab.get(pair[1]);
            Integer merged = vocab.get(mergedToken);
            if (left == null || right == null || merged == null) {
                String missing = left == null ? pair[0] : right == null ? pair[1] : mergedToken;
                if (skipped++ == 0) {
                    firstSkipped = "merges[" + rank + "] (\"" + pair[0] + "\" + \"" + pair[1] + "\") needs \""
                            + missing + "\"";
                }
                continue;
            }
            this.merges.put(pairKey(left, right), ((long) rank << 32) | merged);
        }
        if (skipped > 0) {
            LOG.warn("{}.merges: {} of {} merges have a part or result missing from model.vocab, first {}; "
                    + "lora4j skips them (they can never apply), Hugging Face tokenizers would refuse the file",
                    where, skipped, merges.size(), firstSkipped);
        }

        this.splitsBeforeMetaspace = prefix == null && suffix == null && !ignoreMerges && vocab.containsKey(METASPACE_TOKEN)
                && vocab.keySet().stream().noneMatch(BpeModel::hasMetaspaceAfterOtherCharacter);

        this.bmpIds = new int[0x10000];
        Arrays.fill(bmpIds, -1);
        this.byteIds = new int[256];
        Arrays.fill(byteIds, -1);
        for (Map.Entry<String, Integer> e : vocab.entrySet()) {
            String token = e.getKey();
            if (token.length() == 1) {
                bmpIds[token.charAt(0)] = e.getValue();
            } else if (token.length() == 6 && token.startsWith("<0x") && token.endsWith(">")) {
                int hi = Character.digit(token.charAt(3), 16);
                int lo = Character.digit(token.charAt(4), 16);
                boolean upper = token.equals(String.format("<0x%02X>", (hi << 4) | lo));
                if (hi >= 0 && lo >= 0 && upper) {
                    byteIds[(hi << 4) | lo] = e.getValue();
                }
            }
        }
    }

    private static boolean hasMetaspaceAfterOtherCharacter(String token) {
        for (int i = token.indexOf(METASPACE, 1); i > 0; i = token.indexOf(METASPACE, i + 1)) {
            if (token.charAt(i - 1) != METASPACE) {
                return true;
            }
        }
        return false;
    }

    private static long pairKey(int left, int right) {
        return ((long) left << 32) | (right & 0xFFFFFFFFL);
    }

    /**
     * Appends the ids of {@code word} to {@code out}.
     *
     * <p>SentencePiece-style tokenizers (Llama-2, Mistral) have no pre-tokenizer, so the whole
     * normalized text is one "word", and merging it is O(n log n) over the text with no cache
     * hits. When no vocabulary entry contains {@code ▁} right after another character (checked
     * at construction), no merge can ever join the symbols on the two sides of such a boundary;
     * merges on the two sides are independent, so cutting the word there and merging each part
     * alone gives the same ids, and the parts ({@code ▁the}, {@code ▁cat}, ...) hit the cache.
     */
    void tokenize(String word, Ids out) {
        if (word.isEmpty()) {
            return;
        }
        if (ignoreMerges) {
            Integer whole = vocab.get(word);
            if (whole != null) {
                out.add(whole);
                return;
            }
        }
        if (splitsBeforeMetaspace) {
            int start = 0;
            for (int i = word.indexOf(METASPACE, 1); i > 0; i = word.indexOf(METASPACE, i + 1)) {
                if (word.charAt(i - 1) != METASPACE) {
                    tokenizePart(word.substring(start, i), out);
                    start = i;
                }
            }
            tokenizePart(start == 0 ? word : word.substring(start), out);
            return;
        }
        tokenizePart(word, out);
    }

    private void tokenizePart(String word, Ids out) {
        int[] cached = cache.get(word);
        if (cached == null) {
            cached = mergeWord(word);
            if (word.length() < MAX_CACHED_WORD_CHARS && cache.size() < CACHE_CAPACITY) {
                cache.put(word, cached);
            }
        }
        out.addAll(cached);
    }

    private int[] mergeWord(String word) {
        int n = word.length();
        int[] symbols = new int[3 * n];
        int count = 0;
        boolean pendingUnk = false;
        byte[] utf8 = new byte[4 * (1 + lengthOf(prefix) + lengthOf(suffix))];
        for (int i = 0; i < n; ) {
            int cp = word.codePointAt(i);
            int end = i + Character.charCount(cp);
            boolean first = i == 0;
            boolean last = end == n;
            String piece = null;
            int id;
            if (cp < 0x10000 && (prefix == null || first) && (suffix == null || !last)) {
                id = bmpIds[cp];
            } else {
                piece = word.substring(i, end);
                if (prefix != null && !first) {
                    piece = prefix + piece;
                }
                if (suffix != null && last) {
                    piece = piece + suffix;
                }
                Integer found = vocab.get(piece);
                id = found == null ? -1 : found;
            }
            i = end;
            if (id >= 0) {
                if (pendingUnk) {
                    symbols[count++] = unkId;
                    pendingUnk = false;
                }
                symbols[count++] = id;
                continue;
            }
            if (byteFallback) {
                int length = piece == null ? Utf8Bytes.encode(cp, utf8, 0) : encode(piece, utf8);
                boolean all = true;
                for (int k = 0; k < length && all; k++) {
                    all = byteIds[utf8[k] & 0xFF] >= 0;
                }
                if (all) {
                    if (count + length > symbols.length) {
                        symbols = Arrays.copyOf(symbols, Math.max(2 * symbols.length, count + length));
                    }
                    for (int k = 0; k < length; k++) {
                        symbols[count++] = byteIds[utf8[k] & 0xFF];
                    }
                    continue;
                }
            }
            if (unkToken != null) {
                if (unkId < 0) {
                    throw new IllegalStateException(where + ".unk_token \"" + unkToken
                            + "\" is not in model.vocab, but the text has a character without a token: U+"
                            + String.format("%04X", cp) + "; add the unknown token to the vocabulary");
                }
                if (pendingUnk && !fuseUnk) {
                    symbols[count++] = unkId;
                }
                pendingUnk = true;
            }
        }
        if (pendingUnk) {
            symbols[count++] = unkId;
        }
        return merge(symbols, count);
    }

    private static int lengthOf(String s) {
        return s == null ? 0 : s.length();
    }

    private static int encode(String piece, byte[] out) {
        int length = 0;
        for (int k = 0; k < piece.length(); ) {
            int cp = piece.codePointAt(k);
            length += Utf8Bytes.encode(cp, out, length);
            k += Character.charCount(cp);
        }
        return length;
    }

    private int[] merge(int[] symbols, int count) {
        if (count < 2) {
            return Arrays.copyOf(symbols, count);
        }
        int[] prev = new int[count];
        int[] next = new int[count];
        LongHeap queue = new LongHeap(count);
        for (int i = 0; i < count; i++) {
            prev[i] = i - 1;
            next[i] = i + 1 < count ? i + 1 : -1;
            if (i + 1 < count) {
                offer(queue, symbols[i], symbols[i + 1], i);
            }
        }
        int live = count;
        while (!queue.isEmpty()) {
            long top = queue.poll();
            int pos = (int) top;
            int right = next[pos];
            if (symbols[pos] < 0 || right < 0) {
                continue;
            }
            long merge = merges.get(pairKey(symbols[pos], symbols[right]));
            if (merge == LongLongMap.MISSING || (merge >>> 32) != (top >>> 32)) {
                continue;
            }
            symbols[pos] = (int) merge;
            symbols[right] = -1;
            live--;
            int after = next[right];
            next[pos] = after;
            if (after >= 0) {
                prev[after] = pos;
                offer(queue, symbols[pos], symbols[after], pos);
            }
            if (prev[pos] >= 0) {
                offer(queue, symbols[prev[pos]], symbols[pos], prev[pos]);
            }
        }
        int[] result = new int[live];
        for (int i = 0, k = 0; i >= 0; i = next[i]) {
            result[k++] = symbols[i];
        }
        return result;
    }

    private void offer(LongHeap queue, int left, int right, int pos) {
        long merge = merges.get(pairKey(left, right));
        if (merge != LongLongMap.MISSING) {
            queue.add((merge & 0xFFFFFFFF00000000L) | pos);
        }
    }

    /** Growable int array. */
    static final class Ids {
        private int[] data = new int[64];
        private int size;

        void add(int id) {
            if (size == data.length) {
                data = Arrays.copyOf(data, 2 * size);
            }
            data[size++] = id;
        }

        void addAll(int[] ids) {
            if (size + ids.length > data.length) {
                data = Arrays.copyOf(data, Math.max(2 * data.length, size + ids.length));
            }
            System.arraycopy(ids, 0, data, size, ids.length);
            size += ids.length;
        }

        int size() {
            return size;
        }

        int[] toArray() {
            return Arrays.copyOf(data, size);
        }
    }

    /** Min-heap of longs; entries are (rank << 32 | position), so rank orders first, then position. */
    private static final class LongHeap {
        private long[] heap;
        private int size;

        LongHeap(int capacity) {
            heap = new long[Math.max(4, capacity)];
        }

        boolean isEmpty() {
            return size == 0;
        }

        void add(long value) {
            if (size == heap.length) {
                heap = Arrays.copyOf(heap, 2 * size);
            }
            int i = size++;
            while (i > 0) {
                int parent = (i - 1) >>> 1;
                if (heap[parent] <= value) {
                    break;
                }
                heap[i] = heap[parent];
                i = parent;
            }
            heap[i] = value;
        }

        long poll() {
            long top = heap[0];
            long last = heap[--size];
            int i = 0;
            int half = size >>> 1;
            while (i < half) {
                int child = 2 * i + 1;
                if (child + 1 < size && heap[child + 1] < heap[child]) {
                    child++;
                }
                if (last <= heap[child]) {
                    break;
                }
                heap[i] = heap[child];
                i = child;
            }
            heap[i] = last;
            return top;
        }
    }

    /** Open-addressing long → long map with non-negative keys; key and value share a cache line. */
    private static final class LongLongMap {
        static final long MISSING = Long.MIN_VALUE;
        private static final long EMPTY = -1L;
        private final long[] table;
        private final int mask;

        LongLongMap(int expected) {
            int capacity = Integer.highestOneBit(Math.max(4, expected * 2 + 1)) << 1;
            table = new long[2 * capacity];
            for (int i = 0; i < table.length; i += 2) {
                table[i] = EMPTY;
            }
            mask = capacity - 1;
        }

        private int slot(long key) {
            long h = key * 0x9E3779B97F4A7C15L;
            return (int) (h ^ (h >>> 29)) & mask;
        }

        void put(long key, long value) {
            int i = slot(key);
            while (table[2 * i] != EMPTY && table[2 * i] != key) {
                i = (i + 1) & mask;
            }
            table[2 * i] = key;
            table[2 * i + 1] = value;
        }

        long get(long key) {
            int i = slot(key);
            while (true) {
                long k = table[2 * i];
                if (k == key) {
                    return table[2 * i + 1];
                }
                if (k == EMPTY) {
                    return MISSING;
                }
                i = (i + 1) & mask;
            }
        }
    }
}
