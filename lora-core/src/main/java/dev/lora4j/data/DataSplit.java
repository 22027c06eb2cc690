package dev.lora4j.data;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Seeded shuffling and train/validation splits. The permutation depends only on the seed and the
 * number of items (Fisher–Yates driven by {@link SplittableRandom}, whose output is specified), so
 * a split is reproducible across runs, machines and JDKs.
 */
public final class DataSplit {
    private DataSplit() {
    }

    /** A partition of the items; both lists are unmodifiable. */
    public record Split<T>(List<T> train, List<T> validation) {
        public Split {
            train = List.copyOf(train);
            validation = List.copyOf(validation);
        }
    }

    /** A new list with the items in a seeded random order; {@code items} is not changed. */
    public static <T> List<T> shuffled(List<T> items, long seed) {
        if (items == null) {
            throw new IllegalArgumentException("items must not be null");
        }
        List<T> copy = new ArrayList<>(items);
        SplittableRandom random = new SplittableRandom(seed);
        for (int i = copy.size() - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            T swap = copy.get(i);
            copy.set(i, copy.get(j));
            copy.set(j, swap);
        }
        return copy;
    }

    /**
     * Shuffles with {@code seed} and puts the first round(n · validationFraction) items into the
     * validation part, the rest into the training part. A fraction of 0 gives every item, shuffled,
     * to training and an empty validation list; a fraction above 0 must leave both parts
     * non-empty.
     */
    public static <T> Split<T> split(List<T> items, double validationFraction, long seed) {
        if (items == null || items.isEmpty()) {
            throw new IllegalArgumentException("cannot split " + (items == null ? "null" : "an empty list") + ": there are no items");
        }
        if (!(validationFraction >= 0 && validationFraction < 1)) {
            throw new IllegalArgumentException("validationFraction must be in [0, 1) (e.g. 0.05 for 5%), was " + validationFraction);
        }
        List<T> order = shuffled(items, seed);
        int validation = (int) Math.round(order.size() * validationFraction);
        if (validationFraction > 0 && (validation == 0 || validation == order.size())) {
            throw new IllegalArgumentException("validationFraction " + validationFraction + " of " + order.size() + " items gives "
                    + validation + " validation and " + (order.size() - validation) + " training items; both must be non-empty: "
                    + (validation == 0 ? "raise the fraction to at least " + minimumFraction(order.size()) + " or use 0 for no validation"
                            : "lower the fraction"));
        }
        return new Split<>(order.subList(validation, order.size()), order.subList(0, validation));
    }

    /** The smallest fraction that rounds to one validation item. */
    private static String minimumFraction(int n) {
        return String.valueOf(Math.ceil(0.5 / n * 1e4) / 1e4);
    }
}
