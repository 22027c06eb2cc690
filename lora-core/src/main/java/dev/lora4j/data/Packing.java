package dev.lora4j.data;

import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Sequence packing: examples laid end to end and cut into blocks of exactly {@code blockSize}
 * tokens, so no compute is spent on padding.
 *
 * <p>Attention is not reset at example boundaries: inside a block, the tokens of one example
 * attend to the examples before it (as in TRL's {@code ConstantLengthDataset} and LitGPT's
 * pretraining data). Each example must therefore end with EOS, which tells the model where one
 * example stops. Labels are kept per token, so a masked prompt stays masked after packing; an
 * example may be split across two blocks, and the first label of each block is never scored
 * (nothing precedes it). Tokens left over after the last full block are dropped and their count
 * is logged, as are blocks with no supervised token (a block of masked prompt only), which are
 * dropped too.
 */
public final class Packing {
    private static final Logger LOG = LoggerFactory.getLogger(Packing.class);

    private Packing() {
    }

    /** Packs {@code examples}, in order, into blocks of {@code blockSize} tokens. */
    public static List<Example> pack(List<Example> examples, int blockSize) {
        if (blockSize < 2) {
            throw new IllegalArgumentException("blockSize must be at least 2 tokens, was " + blockSize);
        }
        if (examples == null || examples.isEmpty()) {
            throw new IllegalArgumentException("no examples to pack (the list is " + (examples == null ? "null" : "empty") + ")");
        }
        long total = 0;
        for (Example e : examples) {
            total += e.length();
        }
        if (total < blockSize) {
            throw new IllegalArgumentException("the " + examples.size() + " examples hold " + total + " tokens, fewer than one block of "
                    + blockSize + "; lower blockSize or do not pack");
        }
        List<Example> blocks = new ArrayList<>((int) (total / blockSize));
        int[] ids = new int[blockSize];
        int[] labels = new int[blockSize];
        int filled = 0;
        int unsupervised = 0;
        for (Example e : examples) {
            int offset = 0;
            while (offset < e.length()) {
                int n = Math.min(blockSize - filled, e.length() - offset);
                System.arraycopy(e.inputIds(), offset, ids, filled, n);
                System.arraycopy(e.labels(), offset, labels, filled, n);
                filled += n;
                offset += n;
                if (filled == blockSize) {
                    Example block = new Example(ids.clone(), labels.clone());
                    if (block.supervisedTokens() > 0) {
                        blocks.add(block);
                    } else {
                        unsupervised++;
                    }
                    filled = 0;
                }
            }
        }
        LOG.info("Packed {} examples ({} tokens) into {} blocks of {} tokens", examples.size(), total, blocks.size(), blockSize);
        if (filled > 0) {
            LOG.info("Packing dropped the last {} tokens ({} of {}), which do not fill a block of {}", filled,
                    String.format(java.util.Locale.ROOT, "%.2f%%", 100.0 * filled / total), total, blockSize);
        }
        if (unsupervised > 0) {
            LOG.warn("Packing dropped {} blocks with no supervised token (masked prompt only)", unsupervised);
        }
        if (blocks.isEmpty()) {
            throw new IllegalArgumentException("packing left no block with a supervised token (all " + unsupervised
                    + " blocks are masked prompt only); use a larger blockSize or do not mask the prompt");
        }
        return blocks;
    }

    /** As {@link #pack(List, int)}, first checking that every example ends with {@code eosId}. */
    public static List<Example> pack(List<Example> examples, int blockSize, int eosId) {
        if (examples != null) {
            for (int i = 0; i < examples.size(); i++) {
                int[] ids = examples.get(i).inputIds();
                if (ids[ids.length - 1] != eosId) {
                    throw new IllegalArgumentException("example " + (i + 1) + " of " + examples.size() + " ends with token " + ids[ids.length - 1]
                            + ", not EOS " + eosId + "; packed examples must end with EOS (encode with appendEos(true) and without "
                            + "truncation, e.g. Overlength.SKIP)");
                }
            }
        }
        return pack(examples, blockSize);
    }
}
