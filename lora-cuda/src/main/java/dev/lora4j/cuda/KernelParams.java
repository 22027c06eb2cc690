package dev.lora4j.cuda;

import java.util.ArrayList;
import java.util.List;
import java.util.function.ToLongFunction;
import org.bytedeco.javacpp.DoublePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;

/**
 * The {@code kernelParams} array of {@code cuLaunchKernel}: entry i points to a host slot holding
 * argument i with the width of the kernel's C parameter. A device address is copied into its own
 * 8-byte slot (the kernel reads the address from the slot); passing the address itself as the
 * entry would make the driver read the argument from device memory as if it were host memory.
 * The driver copies the values during the call, so the slots are freed right after it ({@link #close()}).
 */
final class KernelParams implements AutoCloseable {
    private final List<Pointer> slots = new ArrayList<>();
    private final PointerPointer<Pointer> array;

    /** @param addressOf the device address of a non-null pointer argument */
    KernelParams(KernelArgs args, ToLongFunction<KernelBuffer> addressOf) {
        array = new PointerPointer<>(Math.max(1, args.size()));
        int i = 0;
        for (KernelArgs.Arg a : args.list()) {
            Pointer slot = switch (a.kind()) {
                case POINTER -> new LongPointer(1).put(0, a.value() == null ? 0L : addressOf.applyAsLong((KernelBuffer) a.value()));
                case INT -> new IntPointer(1).put(0, (Integer) a.value());
                case LONG -> new LongPointer(1).put(0, (Long) a.value());
                case FLOAT -> new FloatPointer(1).put(0, (Float) a.value());
                case DOUBLE -> new DoublePointer(1).put(0, (Double) a.value());
            };
            slots.add(slot);
            array.put(i++, slot);
        }
    }

    /** The array to pass as {@code kernelParams}. */
    PointerPointer<Pointer> array() {
        return array;
    }

    /** Host address of slot i (for tests). */
    long slotAddress(int i) {
        return slots.get(i).address();
    }

    @Override
    public void close() {
        for (Pointer p : slots) {
            p.close();
        }
        array.close();
    }
}
