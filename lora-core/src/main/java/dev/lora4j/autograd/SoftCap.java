package dev.lora4j.autograd;

import dev.lora4j.tensor.Tensor;

/**
 * Soft-capping (Gemma 2's attention and final logits): y = c·tanh(x/c), which bounds |y| below c
 * and is the identity near 0. Backward: dx += dy·(1 − (y/c)²); forward saves y only.
 * Kernels over flat arrays (outputs first, no allocation) and an autograd wrapper.
 */
public final class SoftCap {
    private SoftCap() {
    }

    /** y[yOff + i] = cap·tanh(x[xOff + i]/cap) for i in [0, n). */
    public static void forward(float[] y, int yOff, float[] x, int xOff, int n, float cap) {
        for (int i = 0; i < n; i++) {
            y[yOff + i] = (float) (cap * Math.tanh(x[xOff + i] / (double) cap));
        }
    }

    /** dx[dxOff + i] += dy[dyOff + i]·(1 − (y/cap)²), from the saved output y. */
    public static void backward(float[] dx, int dxOff, float[] dy, int dyOff, float[] y, int yOff, int n, float cap) {
        for (int i = 0; i < n; i++) {
            double t = y[yOff + i] / (double) cap;
            dx[dxOff + i] += (float) (dy[dyOff + i] * (1 - t * t));
        }
    }

    /** cap·tanh(x/cap), element-wise; cap must be positive. */
    public static Tensor apply(Tensor a, float cap) {
        if (!(cap > 0) || Float.isInfinite(cap)) {
            throw new IllegalArgumentException("softCap: cap must be a finite number > 0, was " + cap);
        }
        float[] x = a.contiguous().toFloatArray();
        float[] y = new float[x.length];
        forward(y, 0, x, 0, x.length, cap);
        return Autograd.record(Tensor.of(y, a.shape()), "softCap", new Tensor[] {a},
                dOut -> backward(a.gradBuffer().data(), 0, dOut.data(), dOut.intOffset(), y, 0, y.length, cap));
    }
}
