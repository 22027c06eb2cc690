package dev.lora4j.backend;

import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Storage;
import dev.lora4j.tensor.Tensor;
import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * CPU kernels on the Vector API ({@code jdk.incubator.vector}, JEP 338 and successors), using the
 * platform's preferred vector width. Matrix products go to {@link VectorGemm} (packed panels, a
 * register-blocked fused multiply-add micro-kernel, vectorized BF16/F16 widening); the row and
 * element kernels of {@link CpuBackend} that pay for it are replaced with vector loops (dot, axpy,
 * sum of squares, RMSNorm rows, RoPE, SwiGLU, GELU/GeGLU, the softmax and cross-entropy
 * exponentials through {@link VectorExp}, AdamW); everything else is inherited.
 *
 * <p>This class is compiled separately with {@code --add-modules jdk.incubator.vector} and is only
 * ever loaded by name ({@link Backends}), so the rest of lora4j runs without the module. Every
 * horizontal sum is done in a fixed lane order, never with {@code reduceLanes}, whose order the
 * API leaves open: results are bit-identical from run to run and between interpreted and compiled
 * code.
 */
public class VectorBackend extends ScalarBackend {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int L = F.length();
    private static final VectorSpecies<Integer> I = F.withLanes(int.class);
    /** Shorts with as many lanes as {@link #F}, for BF16/F16 widening (null if no such shape). */
    private static final VectorSpecies<Short> S = speciesOrNull(short.class, L * Short.SIZE);
    /**
     * Doubles of the preferred width: half as many lanes as {@link #F}, so a float vector widens
     * into two of them (parts 0 and 1 of an F2D conversion).
     *
     * <p>No other float shape than {@link #F} is ever used here, on purpose. The Vector API's
     * methods are shared by every caller, and so are their type profiles: once a second
     * {@code FloatVector} class (say 256-bit next to 512-bit) has gone through
     * {@code FloatVector.intoArray} (the Java fallback of a conversion does so before C2 compiles
     * it), C2 inlines that method bimorphically wherever the receiver's exact class is unknown to
     * it, which is the case for loop-carried accumulators. The species is then no longer a
     * constant, the store intrinsic fails ("missing constant" under -XX:+PrintIntrinsics) and the
     * loop-carried accumulators (those of the former gemm row kernel here) are boxed on the heap: 5.1 GB instead of 166 MB allocated
     * per step of the benchmark LoraTrainingStep (F32 base, rank 8), about 4 times the time, in a
     * JVM run or not depending on what the profile had seen when C2 compiled the kernel.
     */
    private static final VectorSpecies<Double> D = DoubleVector.SPECIES_PREFERRED;

    /**
     * @throws UnsupportedOperationException when the preferred vector holds fewer than 4 floats,
     *     where the scalar backend is as fast
     */
    public VectorBackend() {
        requireUsefulWidth();
    }

    private static void requireUsefulWidth() {
        if (L < 4 || S == null || D.length() * 2 != L) {
            throw new UnsupportedOperationException("the preferred vector species " + F + " holds " + L
                    + " floats; the vector backend needs at least 4, with a matching short shape and a preferred"
                    + " double shape of half as many lanes (" + D + "), to pay off");
        }
    }

    private static <E> VectorSpecies<E> speciesOrNull(Class<E> type, int bits) {
        try {
            return VectorSpecies.of(type, VectorShape.forBitSize(bits));
        } catch (IllegalArgumentException e) {
            return null;
        }
    }

    @Override
    public String name() {
        return "vector";
    }

    @Override
    public String toString() {
        return name() + " backend (" + F.vectorBitSize() + "-bit vectors, gemm: "
                + (GEMM == null ? "the scalar backend's packed product" : GEMM) + ")";
    }

    // ---------------------------------------------------------------- gemm

    /** The matrix product at the preferred width (null for a width it has no kernel for). */
    private static final GemmKernel GEMM = switch (F.vectorBitSize()) {
        case 128, 256, 512 -> VectorGemm.preferred();
        default -> null;
    };

    /**
     * Delegates to {@link VectorGemm}; the inherited scalar packed product is the fallback for
     * widths it has no kernel for (wider than 512 bits).
     */
    @Override
    public void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                     Storage a, long aOffset, int lda,
                     Storage b, long bOffset, int ldb,
                     float beta, Storage c, long cOffset, int ldc) {
        if (GEMM == null) {
            super.gemm(transA, transB, m, n, k, alpha, a, aOffset, lda, b, bOffset, ldb, beta, c, cOffset, ldc);
        } else {
            GEMM.gemm(transA, transB, m, n, k, alpha, a, aOffset, lda, b, bOffset, ldb, beta, c, cOffset, ldc);
        }
    }

    private static IntVector intLanes(short[] src, int i) {
        return (IntVector) ShortVector.fromArray(S, src, i).convertShape(VectorOperators.S2I, I, 0);
    }

    /** bfloat16 is the upper half of a float32: sign-extend to int lanes, shift left 16, reinterpret. */
    static void widenBf16(short[] src, int count, float[] dst, int dstOffset) {
        int i = 0;
        for (int bound = S.loopBound(count); i < bound; i += L) {
            intLanes(src, i).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().intoArray(dst, dstOffset + i);
        }
        for (; i < count; i++) {
            dst[dstOffset + i] = Float.intBitsToFloat(src[i] << 16);
        }
    }

    /**
     * IEEE half to float, exactly: exponent and mantissa shifted into a float's low exponent bits
     * give 2^-112 times the value, also for subnormals, so one multiply by 2^112 rebases it;
     * infinities and NaNs (exponent 31) get the float exponent 255 instead.
     */
    static void widenF16(short[] src, int count, float[] dst, int dstOffset) {
        FloatVector rebase = FloatVector.broadcast(F, 0x1p112f);
        int i = 0;
        for (int bound = S.loopBound(count); i < bound; i += L) {
            IntVector h = intLanes(src, i);
            IntVector magnitude = h.and(0x7fff);
            IntVector sign = h.and(0x8000).lanewise(VectorOperators.LSHL, 16);
            IntVector shifted = magnitude.lanewise(VectorOperators.LSHL, 13);
            IntVector finite = shifted.reinterpretAsFloats().mul(rebase).reinterpretAsInts();
            IntVector bits = finite.blend(shifted.or(0x7f800000), magnitude.compare(VectorOperators.GE, 0x7c00));
            bits.or(sign).reinterpretAsFloats().intoArray(dst, dstOffset + i);
        }
        for (; i < count; i++) {
            dst[dstOffset + i] = DType.f16ToFloat(src[i]);
        }
    }

    // ---------------------------------------------------------------- vector primitives

    @Override
    public float dot(float[] x, int xOffset, float[] y, int yOffset, int n) {
        checkRange("dot", "x", x, xOffset, n);
        checkRange("dot", "y", y, yOffset, n);
        FloatVector s0 = FloatVector.zero(F), s1 = s0, s2 = s0, s3 = s0;
        int i = 0;
        for (int bound = n - 4 * L; i <= bound; i += 4 * L) {
            s0 = FloatVector.fromArray(F, x, xOffset + i).fma(FloatVector.fromArray(F, y, yOffset + i), s0);
            s1 = FloatVector.fromArray(F, x, xOffset + i + L).fma(FloatVector.fromArray(F, y, yOffset + i + L), s1);
            s2 = FloatVector.fromArray(F, x, xOffset + i + 2 * L)
                    .fma(FloatVector.fromArray(F, y, yOffset + i + 2 * L), s2);
            s3 = FloatVector.fromArray(F, x, xOffset + i + 3 * L)
                    .fma(FloatVector.fromArray(F, y, yOffset + i + 3 * L), s3);
        }
        for (int bound = F.loopBound(n); i < bound; i += L) {
            s0 = FloatVector.fromArray(F, x, xOffset + i).fma(FloatVector.fromArray(F, y, yOffset + i), s0);
        }
        float sum = sumLanes(s0.add(s1).add(s2.add(s3)));
        for (; i < n; i++) {
            sum = Math.fma(x[xOffset + i], y[yOffset + i], sum);
        }
        return sum;
    }

    @Override
    public void axpy(float alpha, float[] x, int xOffset, float[] y, int yOffset, int n) {
        checkRange("axpy", "x", x, xOffset, n);
        checkRange("axpy", "y", y, yOffset, n);
        FloatVector a = FloatVector.broadcast(F, alpha);
        int i = 0;
        for (int bound = F.loopBound(n); i < bound; i += L) {
            a.fma(FloatVector.fromArray(F, x, xOffset + i), FloatVector.fromArray(F, y, yOffset + i))
                    .intoArray(y, yOffset + i);
        }
        for (; i < n; i++) {
            y[yOffset + i] = Math.fma(alpha, x[xOffset + i], y[yOffset + i]);
        }
    }

    @Override
    public double sumOfSquares(float[] x, int offset, int n) {
        checkRange("sumOfSquares", "x", x, offset, n);
        DoubleVector s0 = DoubleVector.zero(D), s1 = s0;
        int i = 0;
        for (int bound = n - L; i <= bound; i += L) {
            // the low and high halves of one float vector (see D for why not two half-width loads)
            FloatVector v = FloatVector.fromArray(F, x, offset + i);
            DoubleVector v0 = (DoubleVector) v.convertShape(VectorOperators.F2D, D, 0);
            DoubleVector v1 = (DoubleVector) v.convertShape(VectorOperators.F2D, D, 1);
            s0 = v0.fma(v0, s0);
            s1 = v1.fma(v1, s1);
        }
        DoubleVector total = s0.add(s1);
        double sum = 0;
        for (int lane = 0; lane < total.length(); lane++) {
            sum += total.lane(lane);
        }
        for (; i < n; i++) {
            double v = x[offset + i];
            sum = Math.fma(v, v, sum);
        }
        return sum;
    }

    /**
     * Lanes summed in index order (reduceLanes leaves its order open, and results must be
     * deterministic). lane(i) instead of toArray(): no allocation in this per-dot-product path,
     * whose cost otherwise depended on whether the JIT's escape analysis removed the array.
     */
    private static float sumLanes(FloatVector v) {
        float sum = 0f;
        for (int i = 0; i < v.length(); i++) {
            sum += v.lane(i);
        }
        return sum;
    }

    // ---------------------------------------------------------------- fused row kernels (norms, rope, activations, loss, AdamW)

    // Every exponential below is VectorExp's, inlined into loops over the constant species F (a
    // vector passed through a call that is not inlined would be boxed), with Exp's scalar twin for
    // the tails: per element the same bits as the scalar backend, whatever the JIT state.

    private final ThreadLocal<float[]> rowScratch = ThreadLocal.withInitial(() -> new float[0]);

    private float[] rowScratch(int n) {
        float[] a = rowScratch.get();
        if (a.length < n) {
            a = new float[n];
            rowScratch.set(a);
        }
        return a;
    }

    /** y = (x·inv)·(w + off), the scalar kernel's order of operations, so both backends give the same bits. */
    @Override
    void rmsNormRow(float[] y, int yo, float[] x, int xo, float[] w, int wo, float off, float inv, int c) {
        if (off != 0f) {
            int i = 0;
            for (int bound = F.loopBound(c); i < bound; i += L) {
                FloatVector.fromArray(F, x, xo + i).mul(inv).mul(FloatVector.fromArray(F, w, wo + i).add(off))
                        .intoArray(y, yo + i);
            }
            for (; i < c; i++) {
                y[yo + i] = x[xo + i] * inv * (w[wo + i] + off);
            }
            return;
        }
        int i = 0;
        for (int bound = F.loopBound(c); i < bound; i += L) {
            FloatVector.fromArray(F, x, xo + i).mul(inv).mul(FloatVector.fromArray(F, w, wo + i)).intoArray(y, yo + i);
        }
        for (; i < c; i++) {
            y[yo + i] = x[xo + i] * inv * w[wo + i];
        }
    }

    @Override
    void ropeHead(float[] out, int oo, float[] in, int io, float[] cos, int co, float[] sin, int so, int half,
                  float sign) {
        int i = 0;
        for (int bound = F.loopBound(half); i < bound; i += L) {
            FloatVector c = FloatVector.fromArray(F, cos, co + i);
            FloatVector s = FloatVector.fromArray(F, sin, so + i).mul(sign);
            FloatVector x1 = FloatVector.fromArray(F, in, io + i);
            FloatVector x2 = FloatVector.fromArray(F, in, io + i + half);
            x1.mul(c).sub(x2.mul(s)).intoArray(out, oo + i);
            x2.mul(c).add(x1.mul(s)).intoArray(out, oo + i + half);
        }
        for (; i < half; i++) {
            float c = cos[co + i];
            float s = sign * sin[so + i];
            float x1 = in[io + i];
            float x2 = in[io + i + half];
            out[oo + i] = x1 * c - x2 * s;
            out[oo + i + half] = x2 * c + x1 * s;
        }
    }

    @Override
    void expShifted(float[] x, int off, int n, float shift) {
        int i = 0;
        for (int bound = F.loopBound(n); i < bound; i += L) {
            VectorExp.exp(FloatVector.fromArray(F, x, off + i).sub(shift)).intoArray(x, off + i);
        }
        for (; i < n; i++) {
            x[off + i] = Exp.exp(x[off + i] - shift);
        }
    }

    /**
     * The numerators with vectors ({@link #expShifted}), then their sum in float in index order,
     * as the scalar kernel sums: the same bits as {@link CpuBackend#expShiftedSum}. A vector
     * accumulator carried through the loop (as {@link VectorExp#expShiftSum} has) was boxed on the
     * heap by C2 in some JVM runs, megabytes per attention call.
     */
    @Override
    float expShiftedSum(float[] x, int off, int n, float shift) {
        expShifted(x, off, n, shift);
        float sum = 0f;
        for (int i = off; i < off + n; i++) {
            sum += x[i];
        }
        return sum;
    }

    /** Σ exp(x − max) over a chunk: the terms with vectors, summed in double in index order as the scalar kernel sums. */
    @Override
    double sumExp(float[] x, int o, int n, float max) {
        float[] t = rowScratch(n);
        int i = 0;
        for (int bound = F.loopBound(n); i < bound; i += L) {
            VectorExp.exp(FloatVector.fromArray(F, x, o + i).sub(max)).intoArray(t, i);
        }
        for (; i < n; i++) {
            t[i] = Exp.exp(x[o + i] - max);
        }
        double s = 0;
        for (int j = 0; j < n; j++) {
            s += t[j];
        }
        return s;
    }

    /** dz += g·exp(z − lse) for one row of logits. */
    @Override
    void crossEntropyRow(float[] dz, int dzo, float[] z, int zo, float lse, float g, int v) {
        int i = 0;
        for (int bound = F.loopBound(v); i < bound; i += L) {
            VectorExp.exp(FloatVector.fromArray(F, z, zo + i).sub(lse)).mul(g).add(FloatVector.fromArray(F, dz, dzo + i))
                    .intoArray(dz, dzo + i);
        }
        for (; i < v; i++) {
            dz[dzo + i] += g * Exp.exp(z[zo + i] - lse);
        }
    }

    /** h = gate / (1 + exp(−gate))·up, as the scalar kernel computes it. */
    @Override
    public void swiglu(Tensor h, Tensor gate, Tensor up) {
        int n = Math.toIntExact(h.numel());
        if (gate.numel() != n || up.numel() != n) {
            super.swiglu(h, gate, up);
            return;
        }
        float[] hs = array(h);
        float[] g = array(gate);
        float[] u = array(up);
        int ho = h.intOffset(), go = gate.intOffset(), uo = up.intOffset();
        Parallel.forRange(n, 1 << 14, (i0, i1) -> {
            int i = i0;
            for (int bound = i0 + F.loopBound(i1 - i0); i < bound; i += L) {
                FloatVector gv = FloatVector.fromArray(F, g, go + i);
                gv.div(VectorExp.exp(gv.neg()).add(1f)).mul(FloatVector.fromArray(F, u, uo + i)).intoArray(hs, ho + i);
            }
            for (; i < i1; i++) {
                float v = g[go + i];
                hs[ho + i] = v / (1f + Exp.exp(-v)) * u[uo + i];
            }
        });
    }

    /** The scalar kernel's swigluBackward with σ from {@link VectorExp}, in its order of operations. */
    @Override
    public void swigluBackward(Tensor dGate, Tensor dUp, Tensor dH, Tensor gate, Tensor up) {
        int n = Math.toIntExact(dH.numel());
        if (gate.numel() != n || up.numel() != n || dGate == null || dUp == null || dGate.numel() != n
                || dUp.numel() != n) {
            super.swigluBackward(dGate, dUp, dH, gate, up);
            return;
        }
        float[] d = array(dH);
        float[] g = array(gate);
        float[] u = array(up);
        float[] dg = array(dGate);
        float[] du = array(dUp);
        int dOff = dH.intOffset(), go = gate.intOffset(), uo = up.intOffset(), dgo = dGate.intOffset();
        int duo = dUp.intOffset();
        Parallel.forRange(n, 1 << 14, (i0, i1) -> {
            float[] sig = rowScratch(SWIGLU_CHUNK);
            for (int c0 = i0; c0 < i1; c0 += SWIGLU_CHUNK) {
                int len = Math.min(SWIGLU_CHUNK, i1 - c0);
                sigmoids(g, go + c0, sig, len);
                swigluGrads(d, dOff + c0, g, go + c0, u, uo + c0, sig, du, duo + c0, dg, dgo + c0, len);
            }
        });
    }

    /**
     * Elements per pass of {@link #swigluBackward}: σ of a chunk with vectors first (the
     * exponential), then the two gradients in a plain loop that C2 vectorizes itself. Written with
     * vector operations, that second loop (and the fused loop before it) was compiled in some JVM
     * runs without intrinsifying some of its operations, which then boxed every intermediate
     * vector: about 200 MB per step of the SmolLM2-135M shape, depending on what the type profiles
     * of the shared Vector API methods held when C2 compiled it.
     */
    private static final int SWIGLU_CHUNK = 1024;

    /** sig[i] = 1 / (1 + e^(−g[go + i])) for i &lt; n, bit for bit as {@link CpuBackend#sigmoid}. */
    private static void sigmoids(float[] g, int go, float[] sig, int n) {
        FloatVector one = FloatVector.broadcast(F, 1f);
        int i = 0;
        for (int bound = F.loopBound(n); i < bound; i += L) {
            one.div(VectorExp.exp(FloatVector.fromArray(F, g, go + i).neg()).add(1f)).intoArray(sig, i);
        }
        for (; i < n; i++) {
            sig[i] = sigmoid(g[go + i]);
        }
    }

    /** du += d·g·σ, dg += d·u·σ·(1 + g·(1 − σ)): the scalar kernel's operations in its order. */
    private static void swigluGrads(float[] d, int dOff, float[] g, int go, float[] u, int uo, float[] sig, float[] du,
                                    int duo, float[] dg, int dgo, int n) {
        for (int i = 0; i < n; i++) {
            float gv = g[go + i];
            float s = sig[i];
            float dv = d[dOff + i];
            du[duo + i] += dv * gv * s;
            dg[dgo + i] += dv * u[uo + i] * s * (1f + gv * (1f - s));
        }
    }

    private static final float GELU_2C = 2f * GELU_C;
    private static final float GELU_3CUBIC = 3f * GELU_CUBIC;

    /** σ(2u) of GELU's tanh form, lane by lane as {@link CpuBackend#geluTanhGate} computes it. */
    private static FloatVector geluTanhGate(FloatVector x, FloatVector one) {
        FloatVector u2 = x.mul(x).mul(x).mul(GELU_CUBIC).add(x).mul(GELU_2C);
        return one.div(VectorExp.exp(u2.neg()).add(1f));
    }

    /** gelu'(x) from the gate s, lane by lane as {@link CpuBackend#geluTanhSlope} computes it. */
    private static FloatVector geluTanhSlope(FloatVector x, FloatVector s, FloatVector one) {
        FloatVector k = x.mul(x).mul(GELU_3CUBIC).add(1f).mul(GELU_2C);
        return s.add(x.mul(one.sub(s).mul(s)).mul(k));
    }

    @Override
    public void gelu(Tensor out, Tensor x, Gelu kind) {
        int n = Math.toIntExact(out.numel());
        if (kind != Gelu.TANH || x.numel() != n) {
            super.gelu(out, x, kind);
            return;
        }
        float[] o = array(out);
        float[] xs = array(x);
        int oo = out.intOffset(), xo = x.intOffset();
        Parallel.forRange(n, 1 << 14, (i0, i1) -> {
            FloatVector one = FloatVector.broadcast(F, 1f);
            int i = i0;
            for (int bound = i0 + F.loopBound(i1 - i0); i < bound; i += L) {
                FloatVector xv = FloatVector.fromArray(F, xs, xo + i);
                xv.mul(geluTanhGate(xv, one)).intoArray(o, oo + i);
            }
            for (; i < i1; i++) {
                o[oo + i] = geluValue(xs[xo + i], kind);
            }
        });
    }

    @Override
    public void geluBackward(Tensor dX, Tensor dY, Tensor x, Gelu kind) {
        int n = Math.toIntExact(dX.numel());
        if (kind != Gelu.TANH || dY.numel() != n || x.numel() != n) {
            super.geluBackward(dX, dY, x, kind);
            return;
        }
        float[] dx = array(dX);
        float[] dy = array(dY);
        float[] xs = array(x);
        int dxo = dX.intOffset(), dyo = dY.intOffset(), xo = x.intOffset();
        Parallel.forRange(n, 1 << 14, (i0, i1) -> {
            FloatVector one = FloatVector.broadcast(F, 1f);
            int i = i0;
            for (int bound = i0 + F.loopBound(i1 - i0); i < bound; i += L) {
                FloatVector xv = FloatVector.fromArray(F, xs, xo + i);
                FloatVector slope = geluTanhSlope(xv, geluTanhGate(xv, one), one);
                FloatVector.fromArray(F, dy, dyo + i).mul(slope).add(FloatVector.fromArray(F, dx, dxo + i))
                        .intoArray(dx, dxo + i);
            }
            for (; i < i1; i++) {
                dx[dxo + i] += dy[dyo + i] * geluDerivative(xs[xo + i], kind);
            }
        });
    }

    @Override
    public void geglu(Tensor h, Tensor gate, Tensor up, Gelu kind) {
        int n = Math.toIntExact(h.numel());
        if (kind != Gelu.TANH || gate.numel() != n || up.numel() != n) {
            super.geglu(h, gate, up, kind);
            return;
        }
        float[] hs = array(h);
        float[] g = array(gate);
        float[] u = array(up);
        int ho = h.intOffset(), go = gate.intOffset(), uo = up.intOffset();
        Parallel.forRange(n, 1 << 14, (i0, i1) -> {
            FloatVector one = FloatVector.broadcast(F, 1f);
            int i = i0;
            for (int bound = i0 + F.loopBound(i1 - i0); i < bound; i += L) {
                FloatVector xv = FloatVector.fromArray(F, g, go + i);
                xv.mul(geluTanhGate(xv, one)).mul(FloatVector.fromArray(F, u, uo + i)).intoArray(hs, ho + i);
            }
            for (; i < i1; i++) {
                hs[ho + i] = geluValue(g[go + i], kind) * u[uo + i];
            }
        });
    }

    @Override
    public void gegluBackward(Tensor dGate, Tensor dUp, Tensor dH, Tensor gate, Tensor up, Gelu kind) {
        int n = Math.toIntExact(dH.numel());
        if (kind != Gelu.TANH || gate.numel() != n || up.numel() != n || dGate == null || dUp == null
                || dGate.numel() != n || dUp.numel() != n) {
            super.gegluBackward(dGate, dUp, dH, gate, up, kind);
            return;
        }
        float[] d = array(dH);
        float[] g = array(gate);
        float[] u = array(up);
        float[] dg = array(dGate);
        float[] du = array(dUp);
        int dOff = dH.intOffset(), go = gate.intOffset(), uo = up.intOffset(), dgo = dGate.intOffset();
        int duo = dUp.intOffset();
        Parallel.forRange(n, 1 << 14, (i0, i1) -> {
            FloatVector one = FloatVector.broadcast(F, 1f);
            int i = i0;
            for (int bound = i0 + F.loopBound(i1 - i0); i < bound; i += L) {
                FloatVector xv = FloatVector.fromArray(F, g, go + i);
                FloatVector s = geluTanhGate(xv, one);
                FloatVector dv = FloatVector.fromArray(F, d, dOff + i);
                dv.mul(xv.mul(s)).add(FloatVector.fromArray(F, du, duo + i)).intoArray(du, duo + i);
                dv.mul(FloatVector.fromArray(F, u, uo + i)).mul(geluTanhSlope(xv, s, one))
                        .add(FloatVector.fromArray(F, dg, dgo + i)).intoArray(dg, dgo + i);
            }
            for (; i < i1; i++) {
                float x = g[go + i];
                float dv = d[dOff + i];
                du[duo + i] += dv * geluValue(x, kind);
                dg[dgo + i] += dv * u[uo + i] * geluDerivative(x, kind);
            }
        });
    }

    /**
     * The AdamW update with vectors, in the scalar kernel's order of operations; the denominator
     * √v / √(1 − β₂ᵗ) + ε is formed in double as torch does (both halves of a float vector widened).
     */
    @Override
    void adamWRange(float[] w, int wo, float[] g, int go, float[] m, int mo, float[] v, int vo, int from, int to,
                    dev.lora4j.backend.AdamWStep s) {
        FloatVector b1 = FloatVector.broadcast(F, s.beta1());
        FloatVector b2 = FloatVector.broadcast(F, s.beta2());
        FloatVector c1 = FloatVector.broadcast(F, s.c1());
        FloatVector c2 = FloatVector.broadcast(F, s.c2());
        DoubleVector bias2 = DoubleVector.broadcast(D, s.bias2Sqrt());
        DoubleVector eps = DoubleVector.broadcast(D, s.eps());
        int j = from;
        for (int bound = from + F.loopBound(to - from); j < bound; j += L) {
            FloatVector gj = FloatVector.fromArray(F, g, go + j);
            FloatVector wj = FloatVector.fromArray(F, w, wo + j).mul(s.decay());
            FloatVector mj = b1.mul(FloatVector.fromArray(F, m, mo + j)).add(c1.mul(gj));
            FloatVector vj = b2.mul(FloatVector.fromArray(F, v, vo + j)).add(c2.mul(gj).mul(gj));
            mj.intoArray(m, mo + j);
            vj.intoArray(v, vo + j);
            DoubleVector lo = (DoubleVector) vj.convertShape(VectorOperators.F2D, D, 0);
            DoubleVector hi = (DoubleVector) vj.convertShape(VectorOperators.F2D, D, 1);
            FloatVector denomLo = (FloatVector) lo.sqrt().div(bias2).add(eps).convertShape(VectorOperators.D2F, F, 0);
            FloatVector denomHi = (FloatVector) hi.sqrt().div(bias2).add(eps).convertShape(VectorOperators.D2F, F, -1);
            FloatVector denom = denomLo.add(denomHi); // each half is zero where the other holds its lanes
            wj.sub(mj.mul(s.stepSize()).div(denom)).intoArray(w, wo + j);
        }
        super.adamWRange(w, wo, g, go, m, mo, v, vo, j, to, s);
    }
}
