package dev.lora4j.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class PackingTest {
    private static final int I = Example.IGNORE;
    private static final int EOS = 2;

    @Test
    void blocksAreExactlyBlockSizeInOrderWithLabelsKept() {
        List<Example> examples = List.of(Example.promptMasked(new int[] {1, 5, 6, EOS}, 2), Example.promptMasked(new int[] {1, 7, EOS}, 1),
                Example.unmasked(new int[] {1, 8, 9, 10, EOS}));
        List<Example> blocks = Packing.pack(examples, 5, EOS);
        assertEquals(2, blocks.size());
        assertArrayEquals(new int[] {1, 5, 6, EOS, 1}, blocks.get(0).inputIds());
        assertArrayEquals(new int[] {I, I, 6, EOS, I}, blocks.get(0).labels());
        assertArrayEquals(new int[] {7, EOS, 1, 8, 9}, blocks.get(1).inputIds());
        assertArrayEquals(new int[] {7, EOS, 1, 8, 9}, blocks.get(1).labels());
        // The remaining 2 tokens (10, EOS) do not fill a block and are dropped (and logged).
    }

    @Test
    void exactFitKeepsEveryToken() {
        List<Example> blocks = Packing.pack(List.of(Example.unmasked(new int[] {1, 3, EOS}), Example.unmasked(new int[] {1, 4, EOS})), 3);
        assertEquals(2, blocks.size());
        assertArrayEquals(new int[] {1, 4, EOS}, blocks.get(1).inputIds());
    }

    @Test
    void blocksWithoutSupervisedTokensAreDropped() {
        // A long fully masked prompt fills the first block on its own.
        List<Example> examples = List.of(Example.promptMasked(new int[] {1, 3, 3, 3, 3, 3, 4, EOS}, 6));
        List<Example> blocks = Packing.pack(examples, 4);
        assertEquals(1, blocks.size());
        assertArrayEquals(new int[] {3, 3, 4, EOS}, blocks.get(0).inputIds());
        IllegalArgumentException none = assertThrows(IllegalArgumentException.class,
                () -> Packing.pack(List.of(Example.promptMasked(new int[] {1, 3, 3, 3, 4, EOS}, 6)), 3));
        assertTrue(none.getMessage().startsWith("packing left no block with a supervised token"), none.getMessage());
    }

    @Test
    void invalidArguments() {
        List<Example> one = List.of(Example.unmasked(new int[] {1, 3, EOS}));
        IllegalArgumentException small = assertThrows(IllegalArgumentException.class, () -> Packing.pack(one, 4));
        assertTrue(small.getMessage().contains("hold 3 tokens, fewer than one block of 4"), small.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Packing.pack(one, 1));
        assertThrows(IllegalArgumentException.class, () -> Packing.pack(List.of(), 4));
        IllegalArgumentException noEos = assertThrows(IllegalArgumentException.class,
                () -> Packing.pack(List.of(Example.unmasked(new int[] {1, 3, EOS}), Example.unmasked(new int[] {1, 3})), 2, EOS));
        assertTrue(noEos.getMessage().startsWith("example 2 of 2 ends with token 3, not EOS 2"), noEos.getMessage());
    }
}
