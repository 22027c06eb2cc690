package dev.lora4j.autograd;

import dev.lora4j.tensor.Tensor;
import java.util.Arrays;
import org.apache.commons.math3.special.Erf;

/**
 * The GELU activations of the non-Llama families and the gated GeGLU MLP, each as a
 * forward/backward pair of kernels over flat arrays (outputs first, offsets and sizes as
 * arguments, no allocation) plus a thin autograd wrapper.
 *
 * <ul>
 *   <li>GELU, tanh form (transformers' {@code gelu_new}, {@code gelu_pytorch_tanh}; phi-1.5, Gemma):
 *       gelu(x) = ½x(1 + tanh(u)), u = √(2/π)(x + 0.044715x³);
 *       gelu'(x) = ½(1 + tanh u) + ½x(1 − tanh²u)·√(2/π)(1 + 3·0.044715x²).</li>
 *   <li>GELU, exact form ({@code gelu}; Falcon): gelu(x) = x·Φ(x) = ½x(1 + erf(x/√2));
 *       gelu'(x) = Φ(x) + x·φ(x), φ the standard normal density.</li>
 *   <li>GeGLU (Gemma): h = gelu_tanh(gate) ⊙ up; dgate = dh ⊙ up ⊙ gelu'(gate), dup = dh ⊙ gelu(gate).</li>
 * </ul>
 * Forward saves its inputs; the arithmetic is in double and rounded once.
 */
public final class Activations {
    private static final double SQRT_2_OVER_PI = Math.sqrt(2.0 / Math.PI);
    private static final double GELU_CUBIC = 0.044715;
    private static final double INV_SQRT_2 = 1.0 / Math.sqrt(2.0);
    private static final double INV_SQRT_2PI = 1.0 / Math.sqrt(2.0 * Math.PI);

    /** Which GELU: the tanh approximation or the exact erf form. */
    public enum Gelu {
        TANH, ERF;

        double value(double x) {
            return this == TANH ? 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x)))
                    : 0.5 * x * (1 + Erf.erf(x * INV_SQRT_2));
        }

        double derivative(double x) {
            if (this == TANH) {
                double t = Math.tanh(SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x));
                return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * GELU_CUBIC * x * x);
            }
            return 0.5 * (1 + Erf.erf(x * INV_SQRT_2)) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
        }
    }

    private Activations() {
    }

    /** y[yOff + i] = gelu(x[xOff + i]) for i in [0, n). */
    public static void geluForward(float[] y, int yOff, float[] x, int xOff, int n, Gelu kind) {
        for (int i = 0; i < n; i++) {
            y[yOff + i] = (float) kind.value(x[xOff + i]);
        }
    }

    /** dx[dxOff + i] += dy[dyOff + i]·gelu'(x[xOff + i]) for i in [0, n). */
    public static void geluBackward(float[] dx, int dxOff, float[] dy, int dyOff, float[] x, int xOff, int n, Gelu kind) {
        for (int i = 0; i < n; i++) {
            dx[dxOff + i] += (float) (dy[dyOff + i] * kind.derivative(x[xOff + i]));
        }
    }

    /** h[hOff + i] = gelu(gate[gOff + i])·up[uOff + i] for i in [0, n). */
    public static void gegluForward(float[] h, int hOff, float[] gate, int gOff, float[] up, int uOff, int n, Gelu kind) {
        for (int i = 0; i < n; i++) {
            h[hOff + i] = (float) (kind.value(gate[gOff + i]) * up[uOff + i]);
        }
    }

    /** Accumulates dgate and dup (either may be null) of {@link #gegluForward}. */
    public static void gegluBackward(float[] dGate, int dgOff, float[] dUp, int duOff, float[] dh, int dhOff, float[] gate,
                                     int gOff, float[] up, int uOff, int n, Gelu kind) {
        for (int i = 0; i < n; i++) {
            double g = gate[gOff + i];
            double d = dh[dhOff + i];
            if (dUp != null) {
                dUp[duOff + i] += (float) (d * kind.value(g));
            }
            if (dGate != null) {
                dGate[dgOff + i] += (float) (d * up[uOff + i] * kind.derivative(g));
            }
        }
    }

    /** gelu(x), element-wise. */
    public static Tensor gelu(Tensor a, Gelu kind) {
        float[] x = a.contiguous().toFloatArray();
        float[] y = new float[x.length];
        geluForward(y, 0, x, 0, x.length, kind);
        return Autograd.record(Tensor.of(y, a.shape()), "gelu_" + kind.name().toLowerCase(), new Tensor[] {a},
                dOut -> geluBackward(a.gradBuffer().data(), 0, dOut.data(), dOut.intOffset(), x, 0, x.length, kind));
    }

    /** gelu(gate) ⊙ up (same shapes): Gemma's gated MLP. */
    public static Tensor geglu(Tensor gate, Tensor up, Gelu kind) {
        if (!Arrays.equals(gate.shape(), up.shape())) {
            throw new IllegalArgumentException("geglu: shapes differ, gate " + Arrays.toString(gate.shape()) + " vs up "
                    + Arrays.toString(up.shape()));
        }
        float[] g = gate.contiguous().toFloatArray();
        float[] u = up.contiguous().toFloatArray();
        float[] h = new float[g.length];
        gegluForward(h, 0, g, 0, u, 0, g.length, kind);
        return Autograd.record(Tensor.of(h, gate.shape()), "geglu", new Tensor[] {gate, up}, dOut -> gegluBackward(
                gate.requiresGrad() ? gate.gradBuffer().data() : null, 0, up.requiresGrad() ? up.gradBuffer().data() : null, 0,
                dOut.data(), dOut.intOffset(), g, 0, u, 0, g.length, kind));
    }
}
