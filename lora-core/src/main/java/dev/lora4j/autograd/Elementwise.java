package dev.lora4j.autograd;

import dev.lora4j.tensor.Tensor;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Pointwise ops and their backward rules: add, mul, scale, SiLU, SwiGLU, dropout, and the sums
 * that turn a tensor into a scalar loss.
 */
public final class Elementwise {
    private Elementwise() {
    }

    /** a + b (same shape, or b of a's last dimension broadcast over the rows). */
    public static Tensor add(Tensor a, Tensor b) {
        boolean broadcast = !Arrays.equals(a.shape(), b.shape());
        int n = Math.toIntExact(a.numel());
        int cols = a.dim(-1);
        if (broadcast && (b.rank() != 1 || b.dim(0) != cols)) {
            throw new IllegalArgumentException("add: shapes " + Arrays.toString(a.shape()) + " and " + Arrays.toString(b.shape())
                    + " differ; b must have a's shape or be [" + cols + "]");
        }
        float[] x = a.contiguous().toFloatArray();
        float[] y = b.contiguous().toFloatArray();
        for (int i = 0; i < n; i++) {
            x[i] += y[broadcast ? i % cols : i];
        }
        Tensor out = Tensor.of(x, a.shape());
        return Autograd.record(out, "add", new Tensor[] {a, b}, dOut -> {
            Autograd.accumulate(a, dOut);
            if (b.requiresGrad()) {
                if (!broadcast) {
                    Autograd.accumulate(b, dOut);
                } else {
                    float[] db = b.gradBuffer().data();
                    float[] d = dOut.data();
                    for (int i = 0; i < n; i++) {
                        db[i % cols] += d[i];
                    }
                }
            }
        });
    }

    /** a ⊙ b (same shape). Saves both inputs. */
    public static Tensor mul(Tensor a, Tensor b) {
        requireSameShape("mul", a, b);
        float[] x = a.contiguous().toFloatArray();
        float[] y = b.contiguous().toFloatArray();
        float[] z = new float[x.length];
        for (int i = 0; i < z.length; i++) {
            z[i] = x[i] * y[i];
        }
        return Autograd.record(Tensor.of(z, a.shape()), "mul", new Tensor[] {a, b}, dOut -> {
            float[] d = dOut.data();
            if (a.requiresGrad()) {
                float[] da = a.gradBuffer().data();
                for (int i = 0; i < d.length; i++) {
                    da[i] += d[i] * y[i];
                }
            }
            if (b.requiresGrad()) {
                float[] db = b.gradBuffer().data();
                for (int i = 0; i < d.length; i++) {
                    db[i] += d[i] * x[i];
                }
            }
        });
    }

    /** s · a. */
    public static Tensor scale(Tensor a, float s) {
        float[] x = a.contiguous().toFloatArray();
        for (int i = 0; i < x.length; i++) {
            x[i] *= s;
        }
        return Autograd.record(Tensor.of(x, a.shape()), "scale", new Tensor[] {a}, dOut -> {
            float[] d = dOut.data();
            float[] da = a.gradBuffer().data();
            for (int i = 0; i < d.length; i++) {
                da[i] += s * d[i];
            }
        });
    }

    /** silu(x) = x·σ(x). Backward: σ(x)·(1 + x·(1 − σ(x))). Saves x. */
    public static Tensor silu(Tensor a) {
        float[] x = a.contiguous().toFloatArray();
        float[] y = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            y[i] = x[i] * sigmoid(x[i]);
        }
        return Autograd.record(Tensor.of(y, a.shape()), "silu", new Tensor[] {a}, dOut -> {
            float[] d = dOut.data();
            float[] da = a.gradBuffer().data();
            for (int i = 0; i < d.length; i++) {
                float s = sigmoid(x[i]);
                da[i] += d[i] * s * (1f + x[i] * (1f - s));
            }
        });
    }

    /**
     * SwiGLU gate of the Llama MLP, fused: h = silu(gate) ⊙ up. Backward: dup = dh ⊙ silu(gate),
     * dgate = dh ⊙ up ⊙ silu'(gate). Saves gate and up.
     */
    public static Tensor swiglu(Tensor gate, Tensor up) {
        requireSameShape("swiglu", gate, up);
        float[] g = gate.contiguous().toFloatArray();
        float[] u = up.contiguous().toFloatArray();
        float[] h = new float[g.length];
        for (int i = 0; i < h.length; i++) {
            h[i] = g[i] * sigmoid(g[i]) * u[i];
        }
        return Autograd.record(Tensor.of(h, gate.shape()), "swiglu", new Tensor[] {gate, up}, dOut -> {
            float[] d = dOut.data();
            float[] dg = gate.requiresGrad() ? gate.gradBuffer().data() : null;
            float[] du = up.requiresGrad() ? up.gradBuffer().data() : null;
            for (int i = 0; i < d.length; i++) {
                float s = sigmoid(g[i]);
                if (du != null) {
                    du[i] += d[i] * g[i] * s;
                }
                if (dg != null) {
                    dg[i] += d[i] * u[i] * s * (1f + g[i] * (1f - s));
                }
            }
        });
    }

    /**
     * Inverted dropout (PyTorch semantics): each element is zeroed with probability p and the
     * survivors are scaled by 1/(1−p), so the expectation is unchanged. p = 0 returns x itself.
     * The mask is drawn from {@code rng}, so a seeded run is reproducible. Saves the mask.
     */
    public static Tensor dropout(Tensor a, float p, SplittableRandom rng) {
        if (!(p >= 0f && p < 1f)) {
            throw new IllegalArgumentException("dropout: p must be in [0, 1), was " + p);
        }
        if (p == 0f) {
            return a;
        }
        float keepScale = 1f / (1f - p);
        float[] x = a.contiguous().toFloatArray();
        float[] mask = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            mask[i] = rng.nextDouble() < p ? 0f : keepScale;
            x[i] *= mask[i];
        }
        return Autograd.record(Tensor.of(x, a.shape()), "dropout", new Tensor[] {a}, dOut -> {
            float[] d = dOut.data();
            float[] da = a.gradBuffer().data();
            for (int i = 0; i < d.length; i++) {
                da[i] += d[i] * mask[i];
            }
        });
    }

    /** Σ a (a scalar). */
    public static Tensor sum(Tensor a) {
        float[] x = a.contiguous().toFloatArray();
        double s = 0;
        for (float v : x) {
            s += v;
        }
        return Autograd.record(Tensor.scalar((float) s), "sum", new Tensor[] {a}, dOut -> {
            float g = dOut.data()[dOut.intOffset()];
            float[] da = a.gradBuffer().data();
            for (int i = 0; i < da.length; i++) {
                da[i] += g;
            }
        });
    }

    /** Σ a ⊙ w for a constant w of a's shape (a scalar); handy as a test loss. */
    public static Tensor weightedSum(Tensor a, float[] w) {
        float[] x = a.contiguous().toFloatArray();
        if (w.length != x.length) {
            throw new IllegalArgumentException("weightedSum: " + w.length + " weights for " + x.length + " elements");
        }
        double s = 0;
        for (int i = 0; i < x.length; i++) {
            s += (double) x[i] * w[i];
        }
        return Autograd.record(Tensor.scalar((float) s), "weightedSum", new Tensor[] {a}, dOut -> {
            float g = dOut.data()[dOut.intOffset()];
            float[] da = a.gradBuffer().data();
            for (int i = 0; i < da.length; i++) {
                da[i] += g * w[i];
            }
        });
    }

    static float sigmoid(float x) {
        return (float) (1.0 / (1.0 + Math.exp(-x)));
    }

    private static void requireSameShape(String op, Tensor a, Tensor b) {
        if (!Arrays.equals(a.shape(), b.shape())) {
            throw new IllegalArgumentException(op + ": shapes differ, " + Arrays.toString(a.shape()) + " vs "
                    + Arrays.toString(b.shape()));
        }
    }
}
