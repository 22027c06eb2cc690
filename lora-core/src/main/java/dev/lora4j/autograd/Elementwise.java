package dev.lora4j.autograd;

import dev.lora4j.backend.Backend;
import dev.lora4j.tensor.Tensor;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Pointwise ops and their backward rules: add, mul, scale, SiLU, SwiGLU, dropout, and the sums
 * that turn a tensor into a scalar loss. Each computes through the backend of its inputs' device.
 */
public final class Elementwise {
    private Elementwise() {
    }

    /** a + b (same shape, or b of a's last dimension broadcast over the rows). */
    public static Tensor add(Tensor a, Tensor b) {
        boolean broadcast = !Arrays.equals(a.shape(), b.shape());
        int cols = a.dim(-1);
        if (broadcast && (b.rank() != 1 || b.dim(0) != cols)) {
            throw new IllegalArgumentException("add: shapes " + Arrays.toString(a.shape()) + " and " + Arrays.toString(b.shape())
                    + " differ; b must have a's shape or be [" + cols + "]");
        }
        Backend be = Autograd.backendFor("add", a, b);
        Tensor x = a.contiguous().detach();
        Tensor y = b.contiguous().detach();
        Tensor out = be.empty(a.shape());
        if (broadcast) {
            be.addRowVector(out, x, y);
        } else {
            be.add(out, x, y);
        }
        return Autograd.record(out, "add", new Tensor[] {a, b}, dOut -> {
            // b's share is copied (or summed) before a may take dOut over as its own gradient
            if (b.requiresGrad()) {
                if (!broadcast) {
                    Autograd.accumulate(b, dOut);
                } else {
                    be.sumRows(b.gradBuffer(), dOut);
                }
            }
            Autograd.accumulateOwned(a, dOut);
        });
    }

    /** a ⊙ b (same shape). Saves both inputs. */
    public static Tensor mul(Tensor a, Tensor b) {
        requireSameShape("mul", a, b);
        Backend be = Autograd.backendFor("mul", a, b);
        Tensor x = a.contiguous().detach();
        Tensor y = b.contiguous().detach();
        Tensor out = be.empty(a.shape());
        be.mul(out, x, y);
        return Autograd.record(out, "mul", new Tensor[] {a, b}, dOut -> {
            if (a.requiresGrad()) {
                be.addProduct(a.gradBuffer(), dOut, y);
            }
            if (b.requiresGrad()) {
                be.addProduct(b.gradBuffer(), dOut, x);
            }
        });
    }

    /** s · a. */
    public static Tensor scale(Tensor a, float s) {
        Backend be = Autograd.backendFor("scale", a);
        Tensor out = be.empty(a.shape());
        be.scale(out, a.contiguous().detach(), s);
        return Autograd.record(out, "scale", new Tensor[] {a}, dOut -> be.addScaled(a.gradBuffer(), dOut, s));
    }

    /** silu(x) = x·σ(x). Backward: σ(x)·(1 + x·(1 − σ(x))). Saves x. */
    public static Tensor silu(Tensor a) {
        Backend be = Autograd.backendFor("silu", a);
        Tensor x = a.contiguous().detach();
        Tensor out = be.empty(a.shape());
        be.silu(out, x);
        return Autograd.record(out, "silu", new Tensor[] {a}, dOut -> be.siluBackward(a.gradBuffer(), dOut, x));
    }

    /**
     * SwiGLU gate of the Llama MLP, fused: h = silu(gate) ⊙ up. Backward: dup = dh ⊙ silu(gate),
     * dgate = dh ⊙ up ⊙ silu'(gate). Saves gate and up.
     */
    public static Tensor swiglu(Tensor gate, Tensor up) {
        requireSameShape("swiglu", gate, up);
        Backend be = Autograd.backendFor("swiglu", gate, up);
        Tensor g = gate.contiguous().detach();
        Tensor u = up.contiguous().detach();
        Tensor h = be.empty(gate.shape());
        be.swiglu(h, g, u);
        return Autograd.record(h, "swiglu", new Tensor[] {gate, up}, dOut -> be.swigluBackward(
                gate.requiresGrad() ? gate.gradBuffer() : null, up.requiresGrad() ? up.gradBuffer() : null, dOut, g, u));
    }

    /**
     * Inverted dropout (PyTorch semantics): each element is zeroed with probability p and the
     * survivors are scaled by 1/(1−p), so the expectation is unchanged. p = 0 returns x itself.
     * One seed is drawn from {@code rng} per call and the mask is a function of (seed, element)
     * ({@link Backend#dropout}), so a seeded run is reproducible and backward recomputes the mask
     * instead of saving it.
     */
    public static Tensor dropout(Tensor a, float p, SplittableRandom rng) {
        if (!(p >= 0f && p < 1f)) {
            throw new IllegalArgumentException("dropout: p must be in [0, 1), was " + p);
        }
        if (p == 0f) {
            return a;
        }
        long seed = Autograd.nextSeed(rng);
        Backend be = Autograd.backendFor("dropout", a);
        Tensor out = be.empty(a.shape());
        be.dropout(out, a.contiguous().detach(), p, seed);
        return Autograd.record(out, "dropout", new Tensor[] {a}, dOut -> {
            Tensor g = be.empty(a.shape());
            be.dropout(g, dOut, p, seed);
            Autograd.accumulateOwned(a, g);
        });
    }

    /** Σ a (a scalar). */
    public static Tensor sum(Tensor a) {
        Backend be = Autograd.backendFor("sum", a);
        Tensor x = a.contiguous().detach();
        Tensor out = be.fromHost(new float[] {(float) be.sum(x)});
        return Autograd.record(out, "sum", new Tensor[] {a}, dOut -> {
            Tensor ones = be.empty(a.shape());
            be.fill(ones, scalarOf(dOut));
            Autograd.accumulateOwned(a, ones);
        });
    }

    /** Σ a ⊙ w for a constant w of a's shape (a scalar); handy as a test loss. */
    public static Tensor weightedSum(Tensor a, float[] w) {
        Backend be = Autograd.backendFor("weightedSum", a);
        Tensor x = a.contiguous().detach();
        Tensor out = be.fromHost(new float[] {(float) be.weightedSum(x, w)});
        return Autograd.record(out, "weightedSum", new Tensor[] {a}, dOut -> {
            Tensor weights = be.fromHost(w, a.shape());
            be.addScaled(a.gradBuffer(), weights, scalarOf(dOut));
        });
    }

    /** The value of a one-element tensor (a host read of one float). */
    static float scalarOf(Tensor t) {
        float[] one = new float[1];
        t.backend().toHost(one, 0, t);
        return one[0];
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
