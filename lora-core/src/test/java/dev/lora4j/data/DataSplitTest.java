package dev.lora4j.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

class DataSplitTest {
    private static final List<Integer> TEN = IntStream.range(0, 10).boxed().collect(Collectors.toList());
    private static final List<Integer> THOUSAND = IntStream.range(0, 999).boxed().collect(Collectors.toList());

    @Test
    void shuffleIsAPermutationFixedBySeed() {
        List<Integer> a = DataSplit.shuffled(TEN, 42);
        assertEquals(a, DataSplit.shuffled(TEN, 42));
        assertEquals(new HashSet<>(TEN), new HashSet<>(a));
        assertNotEquals(TEN, a);
        assertNotEquals(a, DataSplit.shuffled(TEN, 43));
        assertEquals(IntStream.range(0, 10).boxed().collect(Collectors.toList()), TEN, "the input list is not changed");
        // Fisher-Yates over SplittableRandom(42), recomputed outside Java from SplitMix64's published
        // constants; pinned so that a change of algorithm, which would silently change every split, is noticed.
        assertEquals(List.of(3, 4, 7, 0, 8, 5, 9, 2, 6, 1), a);
    }

    @Test
    void splitIsDisjointCompleteAndReproducible() {
        DataSplit.Split<Integer> split = DataSplit.split(THOUSAND, 0.1, 7);
        assertEquals(100, split.validation().size());
        assertEquals(899, split.train().size());
        Set<Integer> all = new HashSet<>(split.train());
        all.addAll(split.validation());
        assertEquals(999, all.size());
        assertEquals(split, DataSplit.split(THOUSAND, 0.1, 7));
        assertNotEquals(split.validation(), DataSplit.split(THOUSAND, 0.1, 8).validation());
        List<Integer> order = DataSplit.shuffled(THOUSAND, 7);
        assertEquals(order.subList(0, 100), split.validation());
        assertThrows(UnsupportedOperationException.class, () -> split.train().add(1));
    }

    @Test
    void zeroFractionGivesEverythingToTraining() {
        DataSplit.Split<Integer> split = DataSplit.split(TEN, 0.0, 1);
        assertEquals(DataSplit.shuffled(TEN, 1), split.train());
        assertTrue(split.validation().isEmpty());
    }

    @Test
    void invalidFractionsAndSizes() {
        for (double bad : new double[] {1.0, -0.1, Double.NaN, 1.5}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DataSplit.split(TEN, bad, 1));
            assertTrue(e.getMessage().startsWith("validationFraction must be in [0, 1)"), e.getMessage());
        }
        IllegalArgumentException tooSmall = assertThrows(IllegalArgumentException.class, () -> DataSplit.split(TEN, 0.01, 1));
        assertTrue(tooSmall.getMessage().contains("gives 0 validation and 10 training items") && tooSmall.getMessage().contains("0.05"),
                tooSmall.getMessage());
        IllegalArgumentException tooLarge = assertThrows(IllegalArgumentException.class, () -> DataSplit.split(List.of(1), 0.9, 1));
        assertTrue(tooLarge.getMessage().contains("gives 1 validation and 0 training items"), tooLarge.getMessage());
        assertThrows(IllegalArgumentException.class, () -> DataSplit.split(new ArrayList<Integer>(), 0.1, 1));
    }
}
