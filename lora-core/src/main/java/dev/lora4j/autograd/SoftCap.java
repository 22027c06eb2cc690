package dev.lora4j.autograd;

import dev.lora4j.backend.Backend;
import dev.lora4j.tensor.Tensor;

/**
 * Soft-capping (Gemma 2's final logits): y = c·tanh(x/c), which bounds |y| below c and is the
 * identity near 0. Backward: dx += dy·(1 − (y/c)²); forward saves y only
 * ({@link Backend#softCap}, {@link Backend#softCapBackward}).
 */
public final class SoftCap {
    private SoftCap() {
    }

    /** cap·tanh(x/cap), element-wise; cap must be a finite number &gt; 0. */
    public static Tensor apply(Tensor a, float cap) {
        if (!(cap > 0) || Float.isInfinite(cap)) {
            throw new IllegalArgumentException("softCap: cap must be a finite number > 0, was " + cap);
        }
        Backend be = Autograd.backendFor("softCap", a);
        Tensor y = be.empty(a.shape());
        be.softCap(y, a.contiguous(), cap);
        Tensor saved = y.detach();
        return Autograd.record(y, "softCap", new Tensor[] {a}, dOut -> be.softCapBackward(a.gradBuffer(), dOut, saved, cap));
    }
}
