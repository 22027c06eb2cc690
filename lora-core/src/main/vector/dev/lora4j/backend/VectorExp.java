package dev.lora4j.backend;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The vector twin of {@link Exp}: the same operations lane by lane, so results equal
 * {@link Exp#exp(float)} bit for bit, on the platform's preferred vector width. Array methods loop
 * inside, with the species a constant, so no vector ever crosses a call boundary (where C2 would box
 * it); {@link #exp(FloatVector)} is for kernels that fuse exp into a loop of their own and must be
 * inlined there.
 */
public final class VectorExp {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int L = F.length();

    private VectorExp() {
    }

    /** e^x lane by lane, as {@link Exp#exp(float)} computes it. */
    public static FloatVector exp(FloatVector x) {
        VectorMask<Float> low = x.compare(VectorOperators.LT, Exp.LOW);
        FloatVector v = x.blend(Exp.LOW, low);
        v = v.blend(Exp.HIGH, v.compare(VectorOperators.GT, Exp.HIGH));
        FloatVector t = v.fma(Exp.LOG2E, Exp.ROUND);
        FloatVector nf = t.sub(Exp.ROUND);
        IntVector n = t.reinterpretAsInts().sub(Float.floatToRawIntBits(Exp.ROUND));
        FloatVector r = nf.fma(x.broadcast(-Exp.LN2_HI), v);
        r = nf.fma(x.broadcast(-Exp.LN2_LO), r);
        FloatVector p = r.fma(Exp.P0, Exp.P1); // P0*r + P1, as Math.fma(P0, r, P1)
        p = p.fma(r, x.broadcast(Exp.P2));
        p = p.fma(r, x.broadcast(Exp.P3));
        p = p.fma(r, x.broadcast(Exp.P4));
        p = p.fma(r, x.broadcast(Exp.P5));
        FloatVector y = p.fma(r.mul(r), r).add(1f);
        IntVector n1 = n.lanewise(VectorOperators.ASHR, 1);
        FloatVector s1 = n1.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
        FloatVector s2 = n.sub(n1).add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
        return y.mul(s1).mul(s2);
    }

    /** {@code dst[dstOffset + i] = e^(src[srcOffset + i])} for i < n, equal to {@link Exp#exp(float[], int, float[], int, int)}. */
    public static void exp(float[] src, int srcOffset, float[] dst, int dstOffset, int n) {
        ScalarBackend.checkRange("exp", "src", src, srcOffset, n);
        ScalarBackend.checkRange("exp", "dst", dst, dstOffset, n);
        int i = 0;
        for (int bound = F.loopBound(n); i < bound; i += L) {
            exp(FloatVector.fromArray(F, src, srcOffset + i)).intoArray(dst, dstOffset + i);
        }
        for (; i < n; i++) {
            dst[dstOffset + i] = Exp.exp(src[srcOffset + i]);
        }
    }

    /**
     * The softmax numerator: {@code dst[dstOffset + i] = e^(src[srcOffset + i] - shift)}, returning
     * their sum. Terms equal {@link Exp#expShiftSum}'s bit for bit; the sum is taken lane-wise, then
     * over lanes in index order, then the tail: deterministic for a given vector width, but not the
     * scalar twin's order.
     */
    public static float expShiftSum(float[] src, int srcOffset, float shift, float[] dst, int dstOffset, int n) {
        ScalarBackend.checkRange("expShiftSum", "src", src, srcOffset, n);
        ScalarBackend.checkRange("expShiftSum", "dst", dst, dstOffset, n);
        FloatVector acc = FloatVector.zero(F);
        int i = 0;
        for (int bound = F.loopBound(n); i < bound; i += L) {
            FloatVector e = exp(FloatVector.fromArray(F, src, srcOffset + i).sub(shift));
            e.intoArray(dst, dstOffset + i);
            acc = acc.add(e);
        }
        float sum = 0f;
        for (int lane = 0; lane < L; lane++) {
            sum += acc.lane(lane);
        }
        for (; i < n; i++) {
            float e = Exp.exp(src[srcOffset + i] - shift);
            dst[dstOffset + i] = e;
            sum += e;
        }
        return sum;
    }
}
