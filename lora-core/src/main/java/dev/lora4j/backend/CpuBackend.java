package dev.lora4j.backend;

import dev.lora4j.tensor.Device;
import dev.lora4j.tensor.FloatStorage;
import dev.lora4j.tensor.Storage;
import dev.lora4j.tensor.Tensor;
import java.util.Arrays;

/**
 * The operations of {@link Backend} over heap arrays, written as plain loops: the reference
 * implementation that {@link ScalarBackend} runs as is and the Vector API backend overrides op by
 * op where vectors pay. Matrix products go through {@link #gemm} (implemented by the subclasses).
 *
 * <p>Storage: tensors are {@link FloatStorage}s; inside an {@link #openArena() arena} they come
 * from the shared {@link HeapPool}. Rows are split over {@link Parallel} with each row written by
 * one task and reductions over rows done in row order, so every result is independent of the
 * thread count.
 */
public abstract class CpuBackend implements Backend {
    /** Vocabulary entries per chunk of the cross-entropy's one-pass log-sum-exp. */
    static final int VOCAB_CHUNK = 2048;

    private final ThreadLocal<float[][]> scratch = ThreadLocal.withInitial(() -> new float[4][0]);

    @Override
    public Device device() {
        return Device.CPU;
    }

    // ---------------------------------------------------------------- storage

    @Override
    public Tensor empty(int... shape) {
        int n = Math.toIntExact(Tensor.numel(shape));
        HeapPool.HeapArena arena = HeapPool.current();
        if (arena == null || n == 0) {
            return new Tensor(new FloatStorage(n), shape);
        }
        return new Tensor(new FloatStorage(arena.allocate(n), n), shape);
    }

    @Override
    public Tensor zeros(int... shape) {
        Tensor t = empty(shape);
        if (HeapPool.current() != null) {
            Arrays.fill(array(t), 0, Math.toIntExact(t.numel()), 0f);
        }
        return t;
    }

    @Override
    public void release(Tensor t) {
        HeapPool.HeapArena arena = HeapPool.current();
        if (arena != null && t.storage() instanceof FloatStorage fs) {
            arena.release(fs.array());
        }
    }

    @Override
    public Arena openArena() {
        return HeapPool.SHARED.open();
    }

    /** Idle bytes in the shared heap pool and its (created, reused) buffer counts, for tests and reports. */
    public static long[] poolStatistics() {
        long[] c = HeapPool.SHARED.counts();
        return new long[] {HeapPool.SHARED.idleBytes(), c[0], c[1]};
    }

    /**
     * The most bytes the open arenas of the shared heap pool have held at once since start or the
     * last {@link #resetArenaPeak()}: the activation high-water mark of the training steps run in
     * between (what {@code dev.lora4j.lora.MemoryPlan}'s activation row predicts).
     */
    public static long arenaPeakBytes() {
        return HeapPool.SHARED.peakLiveBytes();
    }

    /** Starts a new {@link #arenaPeakBytes()} high-water mark from the bytes held by open arenas now. */
    public static void resetArenaPeak() {
        HeapPool.SHARED.resetPeak();
    }

    @Override
    public Tensor fromHost(float[] values, int... shape) {
        return Tensor.of(values.clone(), shape);
    }

    @Override
    public void toHost(float[] dst, int dstOffset, Tensor src) {
        checkCpu("toHost", "src", src);
        int n = Math.toIntExact(src.numel());
        if (src.isContiguous()) {
            src.storage().decode(src.offset(), n, dst, dstOffset);
            return;
        }
        forEachIndex(src, (i, pos) -> dst[dstOffset + i] = src.storage().getFloat(pos));
    }

    @Override
    public void copy(Tensor dst, Tensor src) {
        if (!Arrays.equals(dst.shape(), src.shape())) {
            throw new IllegalArgumentException("copy: shape " + Arrays.toString(src.shape()) + " into "
                    + Arrays.toString(dst.shape()));
        }
        checkCpu("copy", "dst", dst);
        checkCpu("copy", "src", src);
        float[] d = heapArray("copy", "dst", dst);
        int n = Math.toIntExact(src.numel());
        if (dst.isContiguous() && src.isContiguous()) {
            src.storage().decode(src.offset(), n, d, dst.intOffset());
            return;
        }
        if (dst.isContiguous()) {
            int o = dst.intOffset();
            if (src.storage() instanceof FloatStorage fs) {
                float[] s = fs.array();
                forEachIndex(src, (i, pos) -> d[o + i] = s[(int) pos]);
            } else {
                forEachIndex(src, (i, pos) -> d[o + i] = src.storage().getFloat(pos));
            }
            return;
        }
        if (src.isContiguous() && src.storage() instanceof FloatStorage fs) {
            float[] s = fs.array();
            int o = src.intOffset();
            forEachIndex(dst, (i, pos) -> d[(int) pos] = s[o + i]);
            return;
        }
        float[] values = new float[n];
        toHost(values, 0, src);
        forEachIndex(dst, (i, pos) -> d[(int) pos] = values[i]);
    }

    @Override
    public void fill(Tensor dst, float value) {
        float[] d = heapArray("fill", "dst", dst);
        if (dst.isContiguous()) {
            Arrays.fill(d, dst.intOffset(), dst.intOffset() + Math.toIntExact(dst.numel()), value);
        } else {
            forEachIndex(dst, (i, pos) -> d[(int) pos] = value);
        }
    }

    @FunctionalInterface
    private interface IndexBody {
        void at(int i, long position);
    }

    /** Visits the elements of a strided view in row-major order with their storage positions. */
    private static void forEachIndex(Tensor t, IndexBody body) {
        int[] shape = t.shape();
        int[] strides = t.strides();
        int n = Math.toIntExact(t.numel());
        int[] idx = new int[shape.length];
        long pos = t.offset();
        for (int i = 0; i < n; i++) {
            body.at(i, pos);
            for (int d = shape.length - 1; d >= 0; d--) {
                if (++idx[d] < shape[d]) {
                    pos += strides[d];
                    break;
                }
                pos -= (long) (shape[d] - 1) * strides[d];
                idx[d] = 0;
            }
        }
    }

    // ---------------------------------------------------------------- matrix products

    @Override
    public void linear(Tensor y, Tensor x, Tensor w, Tensor bias) {
        int out = w.dim(0);
        int in = w.dim(1);
        int rows = rows(x, in);
        gemm(false, true, rows, out, in, 1f, x.storage(), x.offset(), in, w.storage(), w.offset(), in, 0f, y.storage(),
                y.offset(), out);
        if (bias != null) {
            addRowVector(y, y, bias);
        }
    }

    @Override
    public void linearBackwardInput(Tensor dX, Tensor dY, Tensor w) {
        int out = w.dim(0);
        int in = w.dim(1);
        int rows = rows(dY, out);
        gemm(false, false, rows, in, out, 1f, dY.storage(), dY.offset(), out, w.storage(), w.offset(), in, 1f,
                dX.storage(), dX.offset(), in);
    }

    @Override
    public void linearBackwardWeight(Tensor dW, Tensor dBias, Tensor dY, Tensor x) {
        int out = dW.dim(0);
        int in = dW.dim(1);
        int rows = rows(dY, out);
        gemm(true, false, out, in, rows, 1f, dY.storage(), dY.offset(), out, x.storage(), x.offset(), in, 1f,
                dW.storage(), dW.offset(), in);
        if (dBias != null) {
            sumRows(dBias, dY);
        }
    }

    @Override
    public void loraForward(Tensor y, Tensor xa, Tensor xd, Tensor a, Tensor b, float scaling) {
        int r = a.dim(0);
        int in = a.dim(1);
        int out = b.dim(0);
        int rows = rows(xd, in);
        gemm(false, true, rows, r, in, 1f, xd.storage(), xd.offset(), in, a.storage(), a.offset(), in, 0f,
                xa.storage(), xa.offset(), r);
        gemm(false, true, rows, out, r, scaling, xa.storage(), xa.offset(), r, b.storage(), b.offset(), r, 1f,
                y.storage(), y.offset(), out);
    }

    @Override
    public void loraBackward(Tensor dXd, Tensor dA, Tensor dB, Tensor u, Tensor dY, Tensor xd, Tensor xa, Tensor a,
                             Tensor b, float scaling) {
        int r = a.dim(0);
        int in = a.dim(1);
        int out = b.dim(0);
        int rows = rows(dY, out);
        if (dB != null) {
            gemm(true, false, out, r, rows, scaling, dY.storage(), dY.offset(), out, xa.storage(), xa.offset(), r, 1f,
                    dB.storage(), dB.offset(), r);
        }
        if (dA == null && dXd == null) {
            return;
        }
        gemm(false, false, rows, r, out, 1f, dY.storage(), dY.offset(), out, b.storage(), b.offset(), r, 0f,
                u.storage(), u.offset(), r);
        if (dA != null) {
            gemm(true, false, r, in, rows, scaling, u.storage(), u.offset(), r, xd.storage(), xd.offset(), in, 1f,
                    dA.storage(), dA.offset(), in);
        }
        if (dXd != null) {
            gemm(false, false, rows, in, r, scaling, u.storage(), u.offset(), r, a.storage(), a.offset(), in, 1f,
                    dXd.storage(), dXd.offset(), in);
        }
    }

    private static int rows(Tensor t, int cols) {
        long n = t.numel();
        if (cols == 0 || n % cols != 0) {
            throw new IllegalArgumentException("a tensor of shape " + Arrays.toString(t.shape()) + " does not split into rows of "
                    + cols);
        }
        return Math.toIntExact(n / cols);
    }

    // ---------------------------------------------------------------- elementwise

    @Override
    public void add(Tensor out, Tensor a, Tensor b) {
        int n = sameNumel("add", out, a, b);
        float[] o = array(out);
        float[] x = array(a);
        float[] y = array(b);
        int oo = out.intOffset(), xo = a.intOffset(), yo = b.intOffset();
        for (int i = 0; i < n; i++) {
            o[oo + i] = x[xo + i] + y[yo + i];
        }
    }

    @Override
    public void addRowVector(Tensor out, Tensor x, Tensor bias) {
        int c = Math.toIntExact(bias.numel());
        int n = sameNumel("addRowVector", out, x);
        float[] o = array(out);
        float[] xs = array(x);
        float[] bs = widened(bias, 0);
        int bo = bias.storage() instanceof FloatStorage ? bias.intOffset() : 0;
        int oo = out.intOffset(), xo = x.intOffset();
        for (int i = 0; i < n; i++) {
            o[oo + i] = xs[xo + i] + bs[bo + i % c];
        }
    }

    @Override
    public void addScaled(Tensor dst, Tensor src, float alpha) {
        int n = sameNumel("addScaled", dst, src);
        float[] d = array(dst);
        float[] s = array(src);
        int dOff = dst.intOffset(), sOff = src.intOffset();
        if (alpha == 1f) {
            for (int i = 0; i < n; i++) {
                d[dOff + i] += s[sOff + i];
            }
        } else {
            for (int i = 0; i < n; i++) {
                d[dOff + i] += alpha * s[sOff + i];
            }
        }
    }

    @Override
    public void mul(Tensor out, Tensor a, Tensor b) {
        int n = sameNumel("mul", out, a, b);
        float[] o = array(out);
        float[] x = array(a);
        float[] y = array(b);
        int oo = out.intOffset(), xo = a.intOffset(), yo = b.intOffset();
        for (int i = 0; i < n; i++) {
            o[oo + i] = x[xo + i] * y[yo + i];
        }
    }

    @Override
    public void addProduct(Tensor dst, Tensor a, Tensor b) {
        int n = sameNumel("addProduct", dst, a, b);
        float[] d = array(dst);
        float[] x = array(a);
        float[] y = array(b);
        int dOff = dst.intOffset(), xo = a.intOffset(), yo = b.intOffset();
        for (int i = 0; i < n; i++) {
            d[dOff + i] += x[xo + i] * y[yo + i];
        }
    }

    @Override
    public void scale(Tensor out, Tensor a, float s) {
        int n = sameNumel("scale", out, a);
        float[] o = array(out);
        float[] x = array(a);
        int oo = out.intOffset(), xo = a.intOffset();
        for (int i = 0; i < n; i++) {
            o[oo + i] = x[xo + i] * s;
        }
    }

    @Override
    public void sumRows(Tensor dst, Tensor x) {
        int c = Math.toIntExact(dst.numel());
        int rows = rows(x, c);
        float[] d = array(dst);
        float[] xs = array(x);
        int dOff = dst.intOffset(), xo = x.intOffset();
        for (int r = 0; r < rows; r++) {
            int o = xo + r * c;
            for (int i = 0; i < c; i++) {
                d[dOff + i] += xs[o + i];
            }
        }
    }

    @Override
    public double sum(Tensor x) {
        float[] xs = array(x);
        int o = x.intOffset();
        int n = Math.toIntExact(x.numel());
        double s = 0;
        for (int i = 0; i < n; i++) {
            s += xs[o + i];
        }
        return s;
    }

    @Override
    public double weightedSum(Tensor x, float[] w) {
        float[] xs = array(x);
        int o = x.intOffset();
        int n = Math.toIntExact(x.numel());
        if (w.length != n) {
            throw new IllegalArgumentException("weightedSum: " + w.length + " weights for " + n + " elements");
        }
        double s = 0;
        for (int i = 0; i < n; i++) {
            s += (double) xs[o + i] * w[i];
        }
        return s;
    }

    @Override
    public double sumOfSquares(Tensor x) {
        return sumOfSquares(array(x), x.intOffset(), Math.toIntExact(x.numel()));
    }

    @Override
    public void silu(Tensor out, Tensor x) {
        int n = sameNumel("silu", out, x);
        float[] o = array(out);
        float[] xs = array(x);
        int oo = out.intOffset(), xo = x.intOffset();
        for (int i = 0; i < n; i++) {
            float v = xs[xo + i];
            o[oo + i] = v * sigmoid(v);
        }
    }

    @Override
    public void siluBackward(Tensor dX, Tensor dY, Tensor x) {
        int n = sameNumel("siluBackward", dX, dY, x);
        float[] dx = array(dX);
        float[] dy = array(dY);
        float[] xs = array(x);
        int dxo = dX.intOffset(), dyo = dY.intOffset(), xo = x.intOffset();
        for (int i = 0; i < n; i++) {
            float v = xs[xo + i];
            float s = sigmoid(v);
            dx[dxo + i] += dy[dyo + i] * s * (1f + v * (1f - s));
        }
    }

    @Override
    public void swiglu(Tensor h, Tensor gate, Tensor up) {
        int n = sameNumel("swiglu", h, gate, up);
        float[] hs = array(h);
        float[] g = array(gate);
        float[] u = array(up);
        int ho = h.intOffset(), go = gate.intOffset(), uo = up.intOffset();
        Parallel.forRange(n, 1 << 14, (i0, i1) -> {
            for (int i = i0; i < i1; i++) {
                float v = g[go + i];
                hs[ho + i] = v / (1f + Exp.exp(-v)) * u[uo + i]; // the vector kernel's operations, in its order
            }
        });
    }

    @Override
    public void swigluBackward(Tensor dGate, Tensor dUp, Tensor dH, Tensor gate, Tensor up) {
        int n = sameNumel("swigluBackward", dH, gate, up);
        float[] d = array(dH);
        float[] g = array(gate);
        float[] u = array(up);
        float[] dg = dGate == null ? null : array(dGate);
        float[] du = dUp == null ? null : array(dUp);
        int dOff = dH.intOffset(), go = gate.intOffset(), uo = up.intOffset();
        int dgo = dGate == null ? 0 : dGate.intOffset();
        int duo = dUp == null ? 0 : dUp.intOffset();
        Parallel.forRange(n, 1 << 14, (i0, i1) -> {
            for (int i = i0; i < i1; i++) {
                float gv = g[go + i];
                float s = sigmoid(gv);
                float dv = d[dOff + i];
                if (du != null) {
                    du[duo + i] += dv * gv * s;
                }
                if (dg != null) {
                    dg[dgo + i] += dv * u[uo + i] * s * (1f + gv * (1f - s));
                }
            }
        });
    }

    /** √(2/π), the constant of GELU's tanh approximation. */
    static final float GELU_C = 0.7978845608028654f;
    /** The cubic coefficient of GELU's tanh approximation. */
    static final float GELU_CUBIC = 0.044715f;
    private static final double INV_SQRT_2 = 1.0 / Math.sqrt(2.0);
    private static final double INV_SQRT_2PI = 1.0 / Math.sqrt(2.0 * Math.PI);

    /**
     * σ(2u) = ½(1 + tanh u) of GELU's tanh form, u = √(2/π)(x + 0.044715x³), as 1/(1 + e^(−2u))
     * with {@link Exp}: no cancellation near 0, and 0 or 1 (never NaN) when e^(−2u) overflows or
     * vanishes. The Vector API backend performs the same float operations in the same order.
     */
    static float geluTanhGate(float x) {
        float u2 = (2f * GELU_C) * (x + GELU_CUBIC * (x * x * x));
        return 1f / (1f + Exp.exp(-u2));
    }

    /** gelu'(x) of the tanh form from s = {@link #geluTanhGate}(x): s + x·s(1 − s)·2√(2/π)(1 + 3·0.044715x²). */
    static float geluTanhSlope(float x, float s) {
        return s + x * (s * (1f - s)) * ((2f * GELU_C) * (1f + (3f * GELU_CUBIC) * (x * x)));
    }

    /** gelu(x) in the given form; the erf form in double (commons-math's erf), rounded once. */
    static float geluValue(float x, Gelu kind) {
        if (kind == Gelu.TANH) {
            return x * geluTanhGate(x);
        }
        return (float) (0.5 * x * (1 + org.apache.commons.math3.special.Erf.erf(x * INV_SQRT_2)));
    }

    /** gelu'(x) in the given form. */
    static float geluDerivative(float x, Gelu kind) {
        if (kind == Gelu.TANH) {
            return geluTanhSlope(x, geluTanhGate(x));
        }
        double xd = x;
        return (float) (0.5 * (1 + org.apache.commons.math3.special.Erf.erf(xd * INV_SQRT_2))
                + xd * INV_SQRT_2PI * Math.exp(-0.5 * xd * xd));
    }

    @Override
    public void gelu(Tensor out, Tensor x, Gelu kind) {
        int n = sameNumel("gelu", out, x);
        float[] o = array(out);
        float[] xs = array(x);
        int oo = out.intOffset(), xo = x.intOffset();
        Parallel.forRange(n, 1 << 14, (i0, i1) -> {
            for (int i = i0; i < i1; i++) {
                o[oo + i] = geluValue(xs[xo + i], kind);
            }
        });
    }

    @Override
    public void geluBackward(Tensor dX, Tensor dY, Tensor x, Gelu kind) {
        int n = sameNumel("geluBackward", dX, dY, x);
        float[] dx = array(dX);
        float[] dy = array(dY);
        float[] xs = array(x);
        int dxo = dX.intOffset(), dyo = dY.intOffset(), xo = x.intOffset();
        Parallel.forRange(n, 1 << 14, (i0, i1) -> {
            for (int i = i0; i < i1; i++) {
                dx[dxo + i] += dy[dyo + i] * geluDerivative(xs[xo + i], kind);
            }
        });
    }

    @Override
    public void geglu(Tensor h, Tensor gate, Tensor up, Gelu kind) {
        int n = sameNumel("geglu", h, gate, up);
        float[] hs = array(h);
        float[] g = array(gate);
        float[] u = array(up);
        int ho = h.intOffset(), go = gate.intOffset(), uo = up.intOffset();
        Parallel.forRange(n, 1 << 14, (i0, i1) -> {
            for (int i = i0; i < i1; i++) {
                hs[ho + i] = geluValue(g[go + i], kind) * u[uo + i];
            }
        });
    }

    @Override
    public void gegluBackward(Tensor dGate, Tensor dUp, Tensor dH, Tensor gate, Tensor up, Gelu kind) {
        int n = sameNumel("gegluBackward", dH, gate, up);
        float[] d = array(dH);
        float[] g = array(gate);
        float[] u = array(up);
        float[] dg = dGate == null ? null : array(dGate);
        float[] du = dUp == null ? null : array(dUp);
        int dOff = dH.intOffset(), go = gate.intOffset(), uo = up.intOffset();
        int dgo = dGate == null ? 0 : dGate.intOffset();
        int duo = dUp == null ? 0 : dUp.intOffset();
        Parallel.forRange(n, 1 << 14, (i0, i1) -> {
            for (int i = i0; i < i1; i++) {
                float x = g[go + i];
                float dv = d[dOff + i];
                if (du != null) {
                    du[duo + i] += dv * geluValue(x, kind);
                }
                if (dg != null) {
                    dg[dgo + i] += dv * u[uo + i] * geluDerivative(x, kind);
                }
            }
        });
    }

    @Override
    public void softCap(Tensor y, Tensor x, float cap) {
        checkCap("softCap", cap);
        int n = sameNumel("softCap", y, x);
        float[] ys = array(y);
        float[] xs = array(x);
        int yo = y.intOffset(), xo = x.intOffset();
        double c = cap;
        Parallel.forRange(n, 1 << 14, (i0, i1) -> {
            for (int i = i0; i < i1; i++) {
                ys[yo + i] = (float) (c * Math.tanh(xs[xo + i] / c));
            }
        });
    }

    @Override
    public void softCapBackward(Tensor dX, Tensor dY, Tensor y, float cap) {
        checkCap("softCapBackward", cap);
        int n = sameNumel("softCapBackward", dX, dY, y);
        float[] dx = array(dX);
        float[] dy = array(dY);
        float[] ys = array(y);
        int dxo = dX.intOffset(), dyo = dY.intOffset(), yo = y.intOffset();
        double c = cap;
        Parallel.forRange(n, 1 << 14, (i0, i1) -> {
            for (int i = i0; i < i1; i++) {
                double t = ys[yo + i] / c;
                dx[dxo + i] += (float) (dy[dyo + i] * (1 - t * t));
            }
        });
    }

    private static void checkCap(String op, float cap) {
        if (!(cap > 0) || Float.isInfinite(cap)) {
            throw new IllegalArgumentException(op + ": cap must be a finite number > 0, was " + cap);
        }
    }

    @Override
    public void dropout(Tensor out, Tensor x, float p, long seed) {
        int n = sameNumel("dropout", out, x);
        float[] o = array(out);
        float[] xs = array(x);
        int oo = out.intOffset(), xo = x.intOffset();
        float keepScale = 1f / (1f - p);
        for (int i = 0; i < n; i++) {
            o[oo + i] = keep(seed, i, p) ? xs[xo + i] * keepScale : 0f;
        }
    }

    /** Whether element i survives dropout with probability p under this seed (see {@link Backend#dropout}). */
    static boolean keep(long seed, long i, float p) {
        return uniform(seed, i) >= p;
    }

    /** A uniform float in [0, 1) with 24 random bits: SplitMix64's finalizer of seed + (i + 1)·golden gamma. */
    static float uniform(long seed, long i) {
        long z = seed + (i + 1) * 0x9E3779B97F4A7C15L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        z ^= z >>> 31;
        return (z >>> 40) * 0x1p-24f;
    }

    /** σ(x) = 1/(1 + e^(−x)) with {@link Exp}, as the Vector API backend computes it lane by lane. */
    static float sigmoid(float x) {
        return 1f / (1f + Exp.exp(-x));
    }

    // ---------------------------------------------------------------- normalization

    @Override
    public void rmsNorm(Tensor y, Tensor rstd, Tensor x, Tensor w, float weightOffset, float eps) {
        int c = Math.toIntExact(w.numel());
        int rows = rows(x, c);
        float[] xs = array(x);
        float[] ys = array(y);
        float[] rs = array(rstd);
        float[] ws = widened(w, 0);
        int wo = w.storage() instanceof FloatStorage ? w.intOffset() : 0;
        int xo = x.intOffset(), yo = y.intOffset(), ro = rstd.intOffset();
        Parallel.forRange(rows, 16, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int o = r * c;
                float inv = (float) (1.0 / Math.sqrt(sumOfSquares(xs, xo + o, c) / c + eps));
                rs[ro + r] = inv;
                rmsNormRow(ys, yo + o, xs, xo + o, ws, wo, weightOffset, inv, c);
            }
        });
    }

    /** y[i] = x[i]·inv·(w[i] + off) for one row (w[i] itself when off is 0, so a −0 weight stays −0). */
    void rmsNormRow(float[] y, int yo, float[] x, int xo, float[] w, int wo, float off, float inv, int c) {
        if (off == 0f) {
            for (int i = 0; i < c; i++) {
                y[yo + i] = x[xo + i] * inv * w[wo + i];
            }
        } else {
            for (int i = 0; i < c; i++) {
                y[yo + i] = x[xo + i] * inv * (w[wo + i] + off);
            }
        }
    }

    @Override
    public void rmsNormBackward(Tensor dX, Tensor dW, Tensor dY, Tensor x, Tensor w, float weightOffset, Tensor rstd) {
        int c = Math.toIntExact(w.numel());
        int rows = rows(x, c);
        float[] xs = array(x);
        float[] dy = array(dY);
        float[] rs = array(rstd);
        float[] ws = widened(w, 0);
        int wo = w.storage() instanceof FloatStorage ? w.intOffset() : 0;
        int xo = x.intOffset(), dyo = dY.intOffset(), ro = rstd.intOffset();
        if (dX != null) {
            float[] dx = array(dX);
            int dxo = dX.intOffset();
            Parallel.forRange(rows, 16, (r0, r1) -> {
                for (int r = r0; r < r1; r++) {
                    int o = r * c;
                    float inv = rs[ro + r];
                    double gx = 0;
                    for (int i = 0; i < c; i++) {
                        gx += (double) dy[dyo + o + i] * (ws[wo + i] + weightOffset) * xs[xo + o + i];
                    }
                    float k = (float) (gx / c) * inv * inv * inv;
                    for (int i = 0; i < c; i++) {
                        dx[dxo + o + i] += dy[dyo + o + i] * (ws[wo + i] + weightOffset) * inv - xs[xo + o + i] * k;
                    }
                }
            });
        }
        if (dW != null) {
            float[] dw = array(dW);
            int dwo = dW.intOffset();
            for (int r = 0; r < rows; r++) {
                int o = r * c;
                float inv = rs[ro + r];
                for (int i = 0; i < c; i++) {
                    dw[dwo + i] += dy[dyo + o + i] * xs[xo + o + i] * inv;
                }
            }
        }
    }

    @Override
    public void layerNorm(Tensor y, Tensor mean, Tensor rstd, Tensor x, Tensor w, Tensor b, float eps) {
        int c = Math.toIntExact(w.numel());
        int rows = rows(x, c);
        float[] xs = array(x);
        float[] ys = array(y);
        float[] ms = array(mean);
        float[] rs = array(rstd);
        float[] ws = widened(w, 0);
        int wo = w.storage() instanceof FloatStorage ? w.intOffset() : 0;
        float[] bs = b == null ? null : widened(b, 1);
        int bo = b != null && b.storage() instanceof FloatStorage ? b.intOffset() : 0;
        int xo = x.intOffset(), yo = y.intOffset(), mo = mean.intOffset(), ro = rstd.intOffset();
        Parallel.forRange(rows, 16, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int o = xo + r * c;
                double s = 0;
                for (int i = 0; i < c; i++) {
                    s += xs[o + i];
                }
                float mu = (float) (s / c);
                double v = 0;
                for (int i = 0; i < c; i++) {
                    double dv = xs[o + i] - mu;
                    v += dv * dv;
                }
                float inv = (float) (1.0 / Math.sqrt(v / c + eps));
                ms[mo + r] = mu;
                rs[ro + r] = inv;
                int yr = yo + r * c;
                for (int i = 0; i < c; i++) {
                    float val = (xs[o + i] - mu) * inv * ws[wo + i];
                    ys[yr + i] = bs == null ? val : val + bs[bo + i];
                }
            }
        });
    }

    @Override
    public void layerNormBackward(Tensor dX, Tensor dW, Tensor dB, Tensor dY, Tensor x, Tensor w, Tensor mean,
                                  Tensor rstd) {
        int c = Math.toIntExact(w.numel());
        int rows = rows(x, c);
        float[] xs = array(x);
        float[] dy = array(dY);
        float[] ms = array(mean);
        float[] rs = array(rstd);
        float[] ws = widened(w, 0);
        int wo = w.storage() instanceof FloatStorage ? w.intOffset() : 0;
        int xo = x.intOffset(), dyo = dY.intOffset(), mo = mean.intOffset(), ro = rstd.intOffset();
        if (dX != null) {
            float[] dx = array(dX);
            int dxo = dX.intOffset();
            Parallel.forRange(rows, 16, (r0, r1) -> {
                for (int r = r0; r < r1; r++) {
                    int o = r * c;
                    float mu = ms[mo + r];
                    float inv = rs[ro + r];
                    double sg = 0;
                    double sgx = 0;
                    for (int i = 0; i < c; i++) {
                        float g = dy[dyo + o + i] * ws[wo + i];
                        float xh = (xs[xo + o + i] - mu) * inv;
                        sg += g;
                        sgx += (double) g * xh;
                    }
                    float mg = (float) (sg / c);
                    float mgx = (float) (sgx / c);
                    for (int i = 0; i < c; i++) {
                        float g = dy[dyo + o + i] * ws[wo + i];
                        float xh = (xs[xo + o + i] - mu) * inv;
                        dx[dxo + o + i] += inv * (g - mg - xh * mgx);
                    }
                }
            });
        }
        if (dW != null || dB != null) {
            float[] dw = dW == null ? null : array(dW);
            float[] db = dB == null ? null : array(dB);
            int dwo = dW == null ? 0 : dW.intOffset();
            int dbo = dB == null ? 0 : dB.intOffset();
            for (int r = 0; r < rows; r++) {
                int o = r * c;
                float mu = ms[mo + r];
                float inv = rs[ro + r];
                for (int i = 0; i < c; i++) {
                    float d = dy[dyo + o + i];
                    if (dw != null) {
                        dw[dwo + i] += d * (xs[xo + o + i] - mu) * inv;
                    }
                    if (db != null) {
                        db[dbo + i] += d;
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------- rope and attention

    @Override
    public void rope(Tensor out, Tensor x, Tensor cos, Tensor sin, int rotary, int positionOffset, boolean inverse) {
        if (x.rank() != 4) {
            throw new IllegalArgumentException("rope: x must be [B, T, H, D], got " + Arrays.toString(x.shape()));
        }
        int t = x.dim(1);
        int h = x.dim(2);
        int d = x.dim(3);
        int half = rotary / 2;
        if (rotary % 2 != 0 || rotary > d || rotary < 0) {
            throw new IllegalArgumentException("rope: rotary dimensions must be even and at most the head size " + d + ", was "
                    + rotary);
        }
        if (cos.numel() < (long) (positionOffset + t) * half) {
            throw new IllegalArgumentException("rope: positions up to " + (positionOffset + t - 1) + " need a table of "
                    + (positionOffset + t) + " rows, it has " + (half == 0 ? 0 : cos.numel() / half));
        }
        sameNumel("rope", out, x);
        float[] in = array(x);
        float[] o = array(out);
        float[] cs = array(cos);
        float[] sn = array(sin);
        int io = x.intOffset(), oo = out.intOffset(), co = cos.intOffset(), so = sin.intOffset();
        float sign = inverse ? -1f : 1f;
        int rows = x.dim(0) * t;
        Parallel.forRange(rows, 8, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int pos = positionOffset + r % t;
                int table = pos * half;
                for (int head = 0; head < h; head++) {
                    int base = (r * h + head) * d;
                    ropeHead(o, oo + base, in, io + base, cs, co + table, sn, so + table, half, sign);
                    if (rotary < d) {
                        System.arraycopy(in, io + base + rotary, o, oo + base + rotary, d - rotary);
                    }
                }
            }
        });
    }

    /** One head's rotation: pairs (i, i + half) for i < half, with cos/sin rows at co and so. */
    void ropeHead(float[] out, int oo, float[] in, int io, float[] cos, int co, float[] sin, int so, int half,
                  float sign) {
        for (int i = 0; i < half; i++) {
            float c = cos[co + i];
            float s = sign * sin[so + i];
            float x1 = in[io + i];
            float x2 = in[io + i + half];
            out[oo + i] = x1 * c - x2 * s;
            out[oo + i + half] = x2 * c + x1 * s;
        }
    }

    @Override
    public void attention(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, AttentionMask mask) {
        new CpuAttention(this, q, k, v, mask).forward(out, lse);
    }

    @Override
    public void attentionBackward(Tensor dQ, Tensor dK, Tensor dV, Tensor dOut, Tensor q, Tensor k, Tensor v,
                                  Tensor out, Tensor lse, AttentionMask mask) {
        new CpuAttention(this, q, k, v, mask).backward(dQ, dK, dV, dOut, out, lse);
    }

    // ---------------------------------------------------------------- embedding

    @Override
    public void gather(Tensor out, Tensor table, int[] ids) {
        int c = table.dim(1);
        float[] o = array(out);
        int oo = out.intOffset();
        Storage s = table.storage();
        for (int n = 0; n < ids.length; n++) {
            s.decode(table.offset() + (long) ids[n] * c, c, o, oo + n * c);
        }
    }

    @Override
    public void scatterAdd(Tensor dTable, Tensor dOut, int[] ids) {
        int c = dTable.dim(1);
        float[] dt = array(dTable);
        float[] d = array(dOut);
        int dto = dTable.intOffset(), dOff = dOut.intOffset();
        for (int n = 0; n < ids.length; n++) {
            int o = dto + ids[n] * c;
            int src = dOff + n * c;
            for (int i = 0; i < c; i++) {
                dt[o + i] += d[src + i];
            }
        }
    }

    // ---------------------------------------------------------------- softmax and loss

    /**
     * The exponential of every softmax, attention and cross-entropy kernel of the plain-Java
     * path: {@link Exp}, whose vector twin gives the Vector API backend the same bits per element.
     */
    private static float exp(float x) {
        return Exp.exp(x);
    }

    /** exp for the kernels that this class shares with its subclasses (attention). */
    float expf(float x) {
        return exp(x);
    }

    /**
     * x[off + i] = exp(x[off + i] − shift) for i &lt; n, in place (attention's probabilities); the
     * Vector API backend computes the same bits with {@code VectorExp}.
     */
    void expShifted(float[] x, int off, int n, float shift) {
        for (int i = off; i < off + n; i++) {
            x[i] = exp(x[i] - shift);
        }
    }

    /**
     * x[off + i] = exp(x[off + i] − shift) for i &lt; n, in place, returning their sum (in float,
     * in index order; the Vector API backend gives the same bits).
     * Attention's online softmax: each key tile's numerators against the running maximum.
     */
    float expShiftedSum(float[] x, int off, int n, float shift) {
        return Exp.expShiftSum(x, off, shift, x, off, n);
    }

    @Override
    public void softmax(Tensor y, Tensor x) {
        int v = x.dim(-1);
        int rows = rows(x, v);
        sameNumel("softmax", y, x);
        float[] xs = array(x);
        float[] ys = array(y);
        int xo = x.intOffset(), yo = y.intOffset();
        for (int r = 0; r < rows; r++) {
            float l = logSumExp(xs, xo + r * v, v);
            for (int i = 0; i < v; i++) {
                ys[yo + r * v + i] = exp(xs[xo + r * v + i] - l);
            }
        }
    }

    @Override
    public void softmaxBackward(Tensor dX, Tensor dY, Tensor y) {
        int v = y.dim(-1);
        int rows = rows(y, v);
        float[] dy = array(dY);
        float[] ys = array(y);
        float[] dx = array(dX);
        int dyo = dY.intOffset(), yo = y.intOffset(), dxo = dX.intOffset();
        for (int r = 0; r < rows; r++) {
            double dotp = 0;
            for (int i = 0; i < v; i++) {
                dotp += (double) dy[dyo + r * v + i] * ys[yo + r * v + i];
            }
            for (int i = 0; i < v; i++) {
                dx[dxo + r * v + i] += ys[yo + r * v + i] * (dy[dyo + r * v + i] - (float) dotp);
            }
        }
    }

    /**
     * log Σ exp(x[o..o+n)) in one pass over chunks of {@value #VOCAB_CHUNK}: each chunk's maximum
     * rescales the running sum (in double) when it raises the running maximum.
     */
    float logSumExp(float[] x, int o, int n) {
        float max = Float.NEGATIVE_INFINITY;
        double sum = 0;
        for (int c0 = 0; c0 < n; c0 += VOCAB_CHUNK) {
            int c1 = Math.min(n, c0 + VOCAB_CHUNK);
            float chunkMax = Float.NEGATIVE_INFINITY;
            for (int i = c0; i < c1; i++) {
                chunkMax = Math.max(chunkMax, x[o + i]);
            }
            if (chunkMax > max) {
                if (max != Float.NEGATIVE_INFINITY) {
                    sum *= Math.exp((double) max - chunkMax);
                }
                max = chunkMax;
            }
            if (max == Float.NEGATIVE_INFINITY) {
                continue;
            }
            sum += sumExp(x, o + c0, c1 - c0, max);
        }
        return (float) (max + Math.log(sum));
    }

    /** Σ exp(x[o + i] − max) for i < n, in double. */
    double sumExp(float[] x, int o, int n, float max) {
        double s = 0;
        for (int i = 0; i < n; i++) {
            s += exp(x[o + i] - max);
        }
        return s;
    }

    @Override
    public double crossEntropy(Tensor lse, Tensor logits, int[] labels, int ignoreIndex) {
        int v = logits.dim(-1);
        int rows = rows(logits, v);
        float[] z = array(logits);
        float[] l = array(lse);
        int zo = logits.intOffset(), lo = lse.intOffset();
        Parallel.forRange(rows, 4, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                if (labels[r] != ignoreIndex) {
                    l[lo + r] = logSumExp(z, zo + r * v, v);
                }
            }
        });
        double total = 0;
        for (int r = 0; r < rows; r++) {
            if (labels[r] != ignoreIndex) {
                total += l[lo + r] - z[zo + r * v + labels[r]];
            }
        }
        return total;
    }

    @Override
    public void crossEntropyBackward(Tensor dLogits, Tensor logits, Tensor lse, int[] labels, int ignoreIndex,
                                     float scale) {
        int v = logits.dim(-1);
        int rows = rows(logits, v);
        float[] z = array(logits);
        float[] l = array(lse);
        float[] dz = array(dLogits);
        int zo = logits.intOffset(), lo = lse.intOffset(), dzo = dLogits.intOffset();
        Parallel.forRange(rows, 4, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                if (labels[r] == ignoreIndex) {
                    continue;
                }
                crossEntropyRow(dz, dzo + r * v, z, zo + r * v, l[lo + r], scale, v);
                dz[dzo + r * v + labels[r]] -= scale;
            }
        });
    }

    /** dz[i] += g·exp(z[i] − lse) for one row. */
    void crossEntropyRow(float[] dz, int dzo, float[] z, int zo, float lse, float g, int v) {
        for (int i = 0; i < v; i++) {
            dz[dzo + i] += g * exp(z[zo + i] - lse);
        }
    }

    // ---------------------------------------------------------------- optimizers

    @Override
    public void adamW(Tensor w, Tensor g, Tensor m, Tensor v, AdamWStep s) {
        int n = sameNumel("adamW", w, g, m, v);
        adamWRange(array(w), w.intOffset(), array(g), g.intOffset(), array(m), m.intOffset(), array(v), v.intOffset(),
                0, n, s);
    }

    /** The AdamW update of elements [from, to). */
    void adamWRange(float[] w, int wo, float[] g, int go, float[] m, int mo, float[] v, int vo, int from, int to,
                    AdamWStep s) {
        for (int j = from; j < to; j++) {
            float gj = g[go + j];
            w[wo + j] *= s.decay();
            float mj = s.beta1() * m[mo + j] + s.c1() * gj;
            float vj = s.beta2() * v[vo + j] + s.c2() * gj * gj;
            m[mo + j] = mj;
            v[vo + j] = vj;
            float denom = (float) (Math.sqrt(vj) / s.bias2Sqrt() + s.eps());
            w[wo + j] -= s.stepSize() * mj / denom;
        }
    }

    @Override
    public void sgd(Tensor w, Tensor g, Tensor buf, float lr, float momentum, float dampeningComplement,
                    float weightDecay, boolean nesterov, boolean firstStep) {
        int n = sameNumel("sgd", w, g);
        float[] ws = array(w);
        float[] gs = array(g);
        float[] bs = buf == null ? null : array(buf);
        int wo = w.intOffset(), go = g.intOffset(), bo = buf == null ? 0 : buf.intOffset();
        for (int j = 0; j < n; j++) {
            float d = gs[go + j] + weightDecay * ws[wo + j];
            if (bs != null) {
                bs[bo + j] = firstStep ? d : momentum * bs[bo + j] + dampeningComplement * d;
                d = nesterov ? d + momentum * bs[bo + j] : bs[bo + j];
            }
            ws[wo + j] -= lr * d;
        }
    }

    // ---------------------------------------------------------------- helpers

    /** The heap array of a contiguous F32 CPU tensor (read with {@link Tensor#intOffset()}). */
    static float[] array(Tensor t) {
        if (t.storage() instanceof FloatStorage fs) {
            return fs.array();
        }
        throw new IllegalArgumentException("tensor " + t + " is " + t.dtype() + " in " + t.storage().getClass().getSimpleName()
                + " on " + t.storage().device() + "; this operation of the CPU backends needs heap F32 (Tensor.contiguous())");
    }

    private static float[] heapArray(String op, String name, Tensor t) {
        if (t.storage() instanceof FloatStorage fs) {
            return fs.array();
        }
        throw new IllegalArgumentException(op + ": " + name + " must be heap F32 on the CPU, got " + t.dtype() + " in "
                + t.storage().getClass().getSimpleName() + " on " + t.storage().device());
    }

    private static void checkCpu(String op, String name, Tensor t) {
        if (t.storage().device() != Device.CPU) {
            throw new IllegalArgumentException(op + ": " + name + " is on " + t.storage().device()
                    + " but this backend computes on CPU; move it with Tensor.to(Device.CPU)");
        }
    }

    /**
     * A small parameter vector (norm weight, bias) as floats: its own array when it is heap F32,
     * else widened into this thread's scratch slot (offset 0). Read-only for the duration of one call.
     */
    float[] widened(Tensor t, int slot) {
        if (t.storage() instanceof FloatStorage fs && t.isContiguous()) {
            return fs.array();
        }
        int n = Math.toIntExact(t.numel());
        float[][] slots = scratch.get();
        if (slots[slot].length < n) {
            slots[slot] = new float[n];
        }
        toHost(slots[slot], 0, t);
        return slots[slot];
    }

    private static int sameNumel(String op, Tensor first, Tensor... others) {
        long n = first.numel();
        for (Tensor t : others) {
            if (t.numel() != n) {
                throw new IllegalArgumentException(op + ": operands have " + n + " and " + t.numel() + " elements ("
                        + Arrays.toString(first.shape()) + " vs " + Arrays.toString(t.shape()) + ")");
            }
        }
        return Math.toIntExact(n);
    }
}
