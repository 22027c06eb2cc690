package dev.lora4j.cuda;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The arguments of one kernel launch, in the order of the kernel's C parameters, each with the
 * width it has in C: a pointer (8 bytes, the device address of a {@link KernelBuffer} or null),
 * {@code int} (4), {@code long long} (8), {@code float} (4) or {@code double} (8). The CUDA launcher
 * copies each value into a host slot of that width and passes the slots' addresses to
 * {@code cuLaunchKernel}; the host emulation checks each kind against the C signature.
 */
public final class KernelArgs {

    /** Argument kinds, with the letter the emulation driver's scripts use. */
    public enum Kind {
        POINTER('p', 8), INT('i', 4), LONG('l', 8), FLOAT('f', 4), DOUBLE('d', 8);

        private final char letter;
        private final int bytes;

        Kind(char letter, int bytes) {
            this.letter = letter;
            this.bytes = bytes;
        }

        public char letter() {
            return letter;
        }

        /** Size of the parameter slot in bytes. */
        public int bytes() {
            return bytes;
        }
    }

    /** One argument: its kind and value (a {@link KernelBuffer} or null for pointers, else a boxed number). */
    public record Arg(Kind kind, Object value) {
    }

    private final List<Arg> args = new ArrayList<>();

    public KernelArgs ptr(KernelBuffer buffer) {
        args.add(new Arg(Kind.POINTER, buffer));
        return this;
    }

    public KernelArgs i32(int value) {
        args.add(new Arg(Kind.INT, value));
        return this;
    }

    public KernelArgs i32(boolean value) {
        return i32(value ? 1 : 0);
    }

    public KernelArgs i64(long value) {
        args.add(new Arg(Kind.LONG, value));
        return this;
    }

    public KernelArgs f32(float value) {
        args.add(new Arg(Kind.FLOAT, value));
        return this;
    }

    public KernelArgs f64(double value) {
        args.add(new Arg(Kind.DOUBLE, value));
        return this;
    }

    public List<Arg> list() {
        return Collections.unmodifiableList(args);
    }

    public int size() {
        return args.size();
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder("(");
        for (Arg a : args) {
            if (sb.length() > 1) {
                sb.append(", ");
            }
            sb.append(a.kind() == Kind.POINTER ? (a.value() == null ? "null" : "ptr") : String.valueOf(a.value()));
        }
        return sb.append(')').toString();
    }
}
