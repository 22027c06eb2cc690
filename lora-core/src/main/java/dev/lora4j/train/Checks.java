package dev.lora4j.train;

/** Argument checks whose messages name the parameter, the rule, the value and a fix. */
final class Checks {
    private Checks() {
    }

    static void positive(String name, double value, String example) {
        if (!(value > 0) || Double.isInfinite(value)) {
            throw new IllegalArgumentException(name + " must be > 0, was " + value + " (try " + example + ")");
        }
    }

    static void nonNegative(String name, double value) {
        if (!(value >= 0) || Double.isInfinite(value)) {
            throw new IllegalArgumentException(name + " must be >= 0, was " + value);
        }
    }

    static void inRange(String name, double value, double lowInclusive, double highExclusive) {
        if (!(value >= lowInclusive && value < highExclusive)) {
            throw new IllegalArgumentException(name + " must be in [" + lowInclusive + ", " + highExclusive + "), was " + value);
        }
    }

    static void atLeast(String name, long value, long min) {
        if (value < min) {
            throw new IllegalArgumentException(name + " must be >= " + min + ", was " + value);
        }
    }
}
