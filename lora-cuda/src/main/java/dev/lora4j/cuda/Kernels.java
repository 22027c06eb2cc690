package dev.lora4j.cuda;

import java.util.List;

/**
 * Every lora4j kernel as {@link Launch}es: the launch geometry, the argument list in the order of
 * the kernel's C signature (src/main/cuda), and the checks that sizes are positive and buffers
 * large enough. A device backend calls these and hands the result to its {@link KernelLauncher};
 * the tests hand the same launches to the host emulation. Formulas are stated at each kernel in
 * its .cu file; all matrices are row-major F32 unless named BF16 or 4-bit. Methods named
 * {@code ...Backward} accumulate into gradient buffers (+=) unless stated otherwise.
 */
public final class Kernels {
    /** The ignore index of cross-entropy labels (as PyTorch's). */
    public static final int IGNORE_INDEX = -100;
    /** The largest head size the attention kernels hold in shared memory ({@code AT_DMAX}). */
    public static final int MAX_HEAD_SIZE = 128;

    private static final int GEMM_TILE = 64;
    private static final int GEMM_THREADS = 256;
    private static final int TC_THREADS = 128;
    private static final int THREADS = 256;
    private static final int ATTENTION_TILE = 16;
    private static final int ATTENTION_THREADS = 128;

    private Kernels() {
    }

    // ------------------------------------------------------------------ checks

    /** Throws unless {@code buffer} holds at least {@code bytes}. */
    static void need(String what, KernelBuffer buffer, long bytes) {
        if (buffer == null) {
            throw new IllegalArgumentException(what + ": buffer is null; " + bytes + " bytes are needed");
        }
        if (buffer.byteSize() < bytes) {
            throw new IllegalArgumentException(what + ": buffer holds " + buffer.byteSize() + " bytes but the launch reads or writes "
                    + bytes + "; allocate at least that much");
        }
    }

    private static void positive(String kernel, String name, long value) {
        if (value < 1) {
            throw new IllegalArgumentException(kernel + ": " + name + " must be ≥ 1, was " + value);
        }
    }

    private static int blocks(long n, int per) {
        long b = (n + per - 1) / per;
        if (b > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(n + " elements need " + b + " blocks, more than a grid holds");
        }
        return (int) b;
    }

    private static long f32(long n) {
        return 4L * n;
    }

    // ------------------------------------------------------------------ matrix products

    /**
     * C[m,n] = alpha·op(A)·op(B) + beta·C (BLAS semantics on row-major storage, as Backend.gemm;
     * beta 0 overwrites C), F32. op(A) is A [m,k] or with transA A stored [k,m]; op(B) is B [k,n]
     * or with transB B stored [n,k].
     */
    public static Launch matmulF32(KernelBuffer c, KernelBuffer a, KernelBuffer b, int m, int n, int k, int lda, int ldb,
                                   int ldc, boolean transA, boolean transB, float alpha, float beta) {
        checkGemm("matmul_f32", c, a, b, m, n, k, lda, ldb, ldc, transA, transB, 4);
        return new Launch("matmul", "matmul_f32", blocks(n, GEMM_TILE), blocks(m, GEMM_TILE), 1, GEMM_THREADS,
                new KernelArgs().ptr(c).ptr(a).ptr(b).i32(m).i32(n).i32(k).i32(lda).i32(ldb).i32(ldc).i32(transA)
                        .i32(transB).f32(alpha).f32(beta));
    }

    /** As {@link #matmulF32} with BF16 A and B, F32 accumulation on tensor cores, F32 C. */
    public static Launch matmulBf16(KernelBuffer c, KernelBuffer a, KernelBuffer b, int m, int n, int k, int lda, int ldb,
                                    int ldc, boolean transA, boolean transB, float alpha, float beta) {
        checkGemm("matmul_bf16_tc", c, a, b, m, n, k, lda, ldb, ldc, transA, transB, 2);
        return new Launch("matmul", "matmul_bf16_tc", blocks(n, GEMM_TILE), blocks(m, GEMM_TILE), 1, TC_THREADS,
                new KernelArgs().ptr(c).ptr(a).ptr(b).i32(m).i32(n).i32(k).i32(lda).i32(ldb).i32(ldc).i32(transA)
                        .i32(transB).f32(alpha).f32(beta));
    }

    private static void checkGemm(String kernel, KernelBuffer c, KernelBuffer a, KernelBuffer b, int m, int n, int k,
                                  int lda, int ldb, int ldc, boolean transA, boolean transB, int operandBytes) {
        positive(kernel, "m", m);
        positive(kernel, "n", n);
        positive(kernel, "k", k);
        int aCols = transA ? m : k;
        int bCols = transB ? k : n;
        if (lda < aCols || ldb < bCols || ldc < n) {
            throw new IllegalArgumentException(kernel + ": leading dimensions lda " + lda + ", ldb " + ldb + ", ldc " + ldc
                    + " must be at least the row lengths " + aCols + ", " + bCols + ", " + n);
        }
        need(kernel + " A", a, operandBytes * ((long) (transA ? k : m) * lda - lda + aCols));
        need(kernel + " B", b, operandBytes * ((long) (transB ? n : k) * ldb - ldb + bCols));
        need(kernel + " C", c, 4L * ((long) m * ldc - ldc + n));
    }

    // ------------------------------------------------------------------ 4-bit weights

    /** out = the decoded 4-bit weight, F32 ({@code bf16}: BF16, rounded to nearest even). */
    public static Launch dequant4(KernelBuffer out, FrozenWeight.Quant4 w, boolean bf16) {
        long n = w.elements();
        positive("dequant4", "elements", n);
        need("dequant4 out", out, (bf16 ? 2 : 4) * n);
        String name = bf16 ? "dequant4_bf16" : "dequant4_f32";
        return new Launch("quant4", name, blocks((n + 1) / 2, THREADS), 1, 1, THREADS,
                w.addTo(new KernelArgs().ptr(out)).i64(n).i32(w.blockShift()).i32(w.nestedShift()));
    }

    /**
     * C[m,n] = alpha·A[m,k]·op(W) + beta·C with a 4-bit W decoded in shared memory only: op(W) = Wᵀ
     * for W [n,k] (transW, the forward x·Wᵀ), else W [k,n].
     */
    public static Launch gemm4(KernelBuffer c, KernelBuffer a, FrozenWeight.Quant4 w, int m, int n, int k, boolean transW,
                               float alpha, float beta) {
        positive("gemm4_f32", "m", m);
        positive("gemm4_f32", "n", n);
        positive("gemm4_f32", "k", k);
        checkElements("gemm4_f32", w, (long) n * k);
        need("gemm4_f32 A", a, f32((long) m * k));
        need("gemm4_f32 C", c, f32((long) m * n));
        return new Launch("quant4", "gemm4_f32", blocks(n, GEMM_TILE), blocks(m, GEMM_TILE), 1, GEMM_THREADS,
                w.addTo(new KernelArgs().ptr(c).ptr(a)).i32(m).i32(n).i32(k).i32(transW).f32(alpha).f32(beta)
                        .i32(w.blockShift()).i32(w.nestedShift()));
    }

    private static void checkElements(String kernel, FrozenWeight w, long expected) {
        if (w.elements() != expected) {
            throw new IllegalArgumentException(kernel + ": the frozen weight has " + w.elements() + " elements but the product needs "
                    + expected);
        }
    }

    // ------------------------------------------------------------------ fused LoRA

    /**
     * The LoRA linear forward y[m,n] = x[m,k]·W₀ᵀ + s·(x·Aᵀ)·Bᵀ with W₀ [n,k] frozen (BF16 or 4-bit),
     * A [r,k], B [n,r], s = alpha/r. Writes u = x·Aᵀ [m,r] (saved for backward), then y in one pass.
     */
    public static List<Launch> loraForward(KernelBuffer y, KernelBuffer u, KernelBuffer x, FrozenWeight w, KernelBuffer a,
                                           KernelBuffer b, int m, int n, int k, int r, float s) {
        positive("lora", "r", r);
        checkElements("lora", w, (long) n * k);
        need("lora B", b, f32((long) n * r));
        Launch down = matmulF32(u, x, a, m, r, k, k, k, r, false, true, 1f, 0f);
        return List.of(down, loraBase(y, x, w, u, b, m, n, k, r, true, r, 1, s, 0f));
    }

    /**
     * The LoRA backward (W₀ gets no gradient), given dy [m,n] and the saved u = x·Aᵀ: with
     * v = dy·B [m,r] (written to {@code v}): dx += dy·W₀ + s·v·A, dB += s·dyᵀ·u, dA += s·vᵀ·x.
     */
    public static List<Launch> loraBackward(KernelBuffer dx, KernelBuffer dA, KernelBuffer dB, KernelBuffer v, KernelBuffer dy,
                                            KernelBuffer x, KernelBuffer u, FrozenWeight w, KernelBuffer a, KernelBuffer b,
                                            int m, int n, int k, int r, float s) {
        positive("lora", "r", r);
        checkElements("lora", w, (long) n * k);
        need("lora A", a, f32((long) r * k));
        Launch dyB = matmulF32(v, dy, b, m, r, n, n, r, r, false, false, 1f, 0f);
        Launch dxLaunch = loraBase(dx, dy, w, v, a, m, k, n, r, false, 1, k, s, 1f);
        Launch dBLaunch = matmulF32(dB, dy, u, n, r, m, n, r, r, true, false, s, 1f);
        Launch dALaunch = matmulF32(dA, v, x, r, k, m, r, k, k, true, false, s, 1f);
        return List.of(dyB, dxLaunch, dBLaunch, dALaunch);
    }

    /**
     * C[M,N] = X[M,K]·op(W₀) + s·Σ_r U[m,r]·E[n·eStrideN + r·eStrideR] + beta·C: the forward with
     * transW (W₀ [N,K], E = B) or the input gradient without (W₀ [K,N] = [out, in], E = A).
     */
    private static Launch loraBase(KernelBuffer c, KernelBuffer x, FrozenWeight w, KernelBuffer uu, KernelBuffer e, int bigM,
                                   int bigN, int bigK, int r, boolean transW, long eStrideN, long eStrideR, float s,
                                   float beta) {
        positive("lora", "m", bigM);
        positive("lora", "n", bigN);
        positive("lora", "k", bigK);
        need("lora X", x, f32((long) bigM * bigK));
        need("lora C", c, f32((long) bigM * bigN));
        if (r > 0) {
            need("lora U", uu, f32((long) bigM * r));
            need("lora E", e, f32((long) bigN * r));
        } else {
            uu = null; // no LoRA term: the kernels skip the epilogue
            e = null;
        }
        int gx = blocks(bigN, GEMM_TILE);
        int gy = blocks(bigM, GEMM_TILE);
        if (w instanceof FrozenWeight.Bf16 bw) {
            return new Launch("lora", "lora_bf16", gx, gy, 1, GEMM_THREADS, new KernelArgs().ptr(c).ptr(x).ptr(bw.data())
                    .ptr(uu).ptr(e).i32(bigM).i32(bigN).i32(bigK).i32(r).i32(transW).i64(eStrideN).i64(eStrideR).f32(s)
                    .f32(beta));
        }
        FrozenWeight.Quant4 q = (FrozenWeight.Quant4) w;
        return new Launch("lora", "lora_4bit", gx, gy, 1, GEMM_THREADS, q.addTo(new KernelArgs().ptr(c).ptr(x))
                .i32(q.blockShift()).i32(q.nestedShift()).ptr(uu).ptr(e).i32(bigM).i32(bigN).i32(bigK).i32(r).i32(transW)
                .i64(eStrideN).i64(eStrideR).f32(s).f32(beta));
    }

    /**
     * A frozen product without adapter: C[m,n] = x[m,k]·W₀ᵀ + beta·C (transW, W₀ [n,k]) or
     * x·W₀ + beta·C (W₀ [k,n]); the LoRA kernels with rank 0 (e.g. the language-model head).
     */
    public static Launch frozenLinear(KernelBuffer c, KernelBuffer x, FrozenWeight w, int m, int n, int k, boolean transW,
                                      float beta) {
        checkElements("frozen linear", w, (long) n * k);
        return loraBase(c, x, w, null, null, m, n, k, 0, transW, 0, 0, 0f, beta);
    }

    // ------------------------------------------------------------------ element-wise

    /** out = a + b over n floats (out may alias a or b). */
    public static Launch add(KernelBuffer out, KernelBuffer a, KernelBuffer b, long n) {
        positive("add", "n", n);
        need("add a", a, f32(n));
        need("add b", b, f32(n));
        need("add out", out, f32(n));
        return new Launch("elementwise", "add_f32", blocks(n, THREADS), 1, 1, THREADS, new KernelArgs().ptr(out).ptr(a).ptr(b).i64(n));
    }

    /** out = value over n floats. */
    public static Launch fill(KernelBuffer out, float value, long n) {
        positive("fill", "n", n);
        need("fill out", out, f32(n));
        return new Launch("elementwise", "fill_f32", blocks(n, THREADS), 1, 1, THREADS, new KernelArgs().ptr(out).f32(value).i64(n));
    }

    /** n pseudo-random values uniform in [−scale, scale) from (seed, index), F32 or BF16. */
    public static Launch random(KernelBuffer out, boolean bf16, float scale, long seed, long n) {
        positive("random", "n", n);
        need("random out", out, (bf16 ? 2 : 4) * n);
        return new Launch("elementwise", bf16 ? "random_bf16" : "random_f32", blocks(n, THREADS), 1, 1, THREADS,
                new KernelArgs().ptr(out).f32(scale).i64(seed).i64(n));
    }

    /** n pseudo-random bytes from (seed, index). */
    public static Launch randomBytes(KernelBuffer out, long seed, long n) {
        positive("random", "n", n);
        need("random out", out, n);
        return new Launch("elementwise", "random_u8", blocks(n, THREADS), 1, 1, THREADS, new KernelArgs().ptr(out).i64(seed).i64(n));
    }

    // ------------------------------------------------------------------ normalization, rotary, MLP gate

    /** y = x·r·w per row of c, r = 1/sqrt(mean(x²) + eps), saved to rstd [rows]. */
    public static Launch rmsNormForward(KernelBuffer y, KernelBuffer rstd, KernelBuffer x, KernelBuffer w, int rows, int c,
                                        float eps) {
        return rmsNormForward(y, rstd, x, w, rows, c, eps, 0f);
    }

    /** y = x·r·(w + weightOffset) per row (Gemma's (1 + w) norms use offset 1), r saved to rstd [rows]. */
    public static Launch rmsNormForward(KernelBuffer y, KernelBuffer rstd, KernelBuffer x, KernelBuffer w, int rows, int c,
                                        float eps, float weightOffset) {
        positive("rmsnorm", "rows", rows);
        positive("rmsnorm", "c", c);
        need("rmsnorm x", x, f32((long) rows * c));
        need("rmsnorm y", y, f32((long) rows * c));
        need("rmsnorm w", w, f32(c));
        need("rmsnorm rstd", rstd, f32(rows));
        return new Launch("norm", "rmsnorm_fwd", rows, 1, 1, THREADS,
                new KernelArgs().ptr(y).ptr(rstd).ptr(x).ptr(w).i32(rows).i32(c).f32(eps).f32(weightOffset));
    }

    /** dx += r·g − x·r³·mean(g ⊙ x) with g = dy ⊙ w; dw += Σ_rows dy ⊙ x·r (dw may be null: frozen). */
    public static List<Launch> rmsNormBackward(KernelBuffer dx, KernelBuffer dw, KernelBuffer dy, KernelBuffer x, KernelBuffer w,
                                               KernelBuffer rstd, int rows, int c) {
        return rmsNormBackward(dx, dw, dy, x, w, 0f, rstd, rows, c);
    }

    /** As above with w' = w + weightOffset in the dx term; dx or dw may be null (skipped). */
    public static List<Launch> rmsNormBackward(KernelBuffer dx, KernelBuffer dw, KernelBuffer dy, KernelBuffer x, KernelBuffer w,
                                               float weightOffset, KernelBuffer rstd, int rows, int c) {
        positive("rmsnorm", "rows", rows);
        positive("rmsnorm", "c", c);
        need("rmsnorm dy", dy, f32((long) rows * c));
        need("rmsnorm x", x, f32((long) rows * c));
        need("rmsnorm rstd", rstd, f32(rows));
        List<Launch> out = new java.util.ArrayList<>();
        if (dx != null) {
            need("rmsnorm dx", dx, f32((long) rows * c));
            need("rmsnorm w", w, f32(c));
            out.add(new Launch("norm", "rmsnorm_bwd_dx", rows, 1, 1, THREADS,
                    new KernelArgs().ptr(dx).ptr(dy).ptr(x).ptr(w).ptr(rstd).i32(rows).i32(c).f32(weightOffset)));
        }
        if (dw != null) {
            need("rmsnorm dw", dw, f32(c));
            out.add(new Launch("norm", "rmsnorm_bwd_dw", blocks(c, THREADS), 1, 1, THREADS,
                    new KernelArgs().ptr(dw).ptr(dy).ptr(x).ptr(rstd).i32(rows).i32(c)));
        }
        return out;
    }

    /**
     * Rotate-half RoPE of x [b,t,h,d] at positions pos0 + t with tables cos, sin [positions, d/2];
     * {@code inverse} rotates by −θ (the backward of the forward rotation). out may alias x.
     */
    public static Launch rope(KernelBuffer out, KernelBuffer x, KernelBuffer cos, KernelBuffer sin, int b, int t, int h, int d,
                              int pos0, boolean inverse) {
        if (d < 2 || d % 2 != 0) {
            throw new IllegalArgumentException("rope: head size must be even and ≥ 2, was " + d);
        }
        long n = (long) b * t * h * d;
        positive("rope", "elements", n);
        need("rope x", x, f32(n));
        need("rope out", out, f32(n));
        need("rope cos", cos, f32((long) (pos0 + t) * (d / 2)));
        need("rope sin", sin, f32((long) (pos0 + t) * (d / 2)));
        return new Launch("rope", "rope", blocks(n / 2, THREADS), 1, 1, THREADS, new KernelArgs().ptr(out).ptr(x).ptr(cos)
                .ptr(sin).i32(b).i32(t).i32(h).i32(d).i32(pos0).f32(inverse ? -1f : 1f));
    }

    /** h = silu(gate) ⊙ up over n elements. */
    public static Launch swigluForward(KernelBuffer h, KernelBuffer gate, KernelBuffer up, long n) {
        positive("swiglu", "n", n);
        need("swiglu gate", gate, f32(n));
        need("swiglu up", up, f32(n));
        need("swiglu h", h, f32(n));
        return new Launch("swiglu", "swiglu_fwd", blocks(n, THREADS), 1, 1, THREADS,
                new KernelArgs().ptr(h).ptr(gate).ptr(up).i64(n));
    }

    /** dup += dh ⊙ silu(gate), dgate += dh ⊙ up ⊙ silu'(gate). */
    public static Launch swigluBackward(KernelBuffer dgate, KernelBuffer dup, KernelBuffer dh, KernelBuffer gate, KernelBuffer up,
                                        long n) {
        positive("swiglu", "n", n);
        for (KernelBuffer buf : new KernelBuffer[] {dgate, dup, dh, gate, up}) {
            need("swiglu_bwd operand", buf, f32(n));
        }
        return new Launch("swiglu", "swiglu_bwd", blocks(n, THREADS), 1, 1, THREADS,
                new KernelArgs().ptr(dgate).ptr(dup).ptr(dh).ptr(gate).ptr(up).i64(n));
    }

    // ------------------------------------------------------------------ embedding

    /**
     * out[i] = table[ids[i]] for n ids into a table [vocab, c] (F32, or BF16 widened). The ids
     * must have been checked against [0, vocab) by the caller (see {@link #checkIds}).
     */
    public static Launch embedding(KernelBuffer out, KernelBuffer table, boolean bf16Table, KernelBuffer ids, int n, int c,
                                   int vocab) {
        positive("embedding", "n", n);
        positive("embedding", "c", c);
        need("embedding table", table, (bf16Table ? 2L : 4L) * vocab * c);
        need("embedding ids", ids, 4L * n);
        need("embedding out", out, f32((long) n * c));
        return new Launch("embedding", bf16Table ? "embedding_bf16" : "embedding_f32", blocks(c, THREADS), n, 1, THREADS,
                new KernelArgs().ptr(out).ptr(table).ptr(ids).i32(n).i32(c).i32(vocab));
    }

    /** dtable[ids[i]] += dout[i] (atomics: the order of additions to a repeated row is not fixed). */
    public static Launch embeddingBackward(KernelBuffer dtable, KernelBuffer dout, KernelBuffer ids, int n, int c, int vocab) {
        positive("embedding", "n", n);
        need("embedding dtable", dtable, f32((long) vocab * c));
        need("embedding dout", dout, f32((long) n * c));
        need("embedding ids", ids, 4L * n);
        return new Launch("embedding", "embedding_bwd", blocks(c, THREADS), n, 1, THREADS,
                new KernelArgs().ptr(dtable).ptr(dout).ptr(ids).i32(n).i32(c).i32(vocab));
    }

    /** Throws unless every id is in [0, vocab), naming the first that is not. */
    public static void checkIds(int[] ids, int vocab) {
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= vocab) {
                throw new IllegalArgumentException("embedding: token id " + ids[i] + " at position " + i
                        + " is outside the vocabulary [0, " + vocab + ")");
            }
        }
    }

    // ------------------------------------------------------------------ attention

    /**
     * Causal attention forward: q, out [b,t,h,d]; k, v [b,queryOffset+t,g,d]; saves lse [b,h,t].
     * Scale 1/√d; head h reads kv head h/(h/g).
     */
    public static Launch attentionForward(KernelBuffer out, KernelBuffer lse, KernelBuffer q, KernelBuffer k, KernelBuffer v,
                                          int b, int t, int h, int g, int d, int queryOffset) {
        return attentionForward(out, lse, q, k, v, b, t, h, g, d, queryOffset, (float) (1.0 / Math.sqrt(d)));
    }

    /** As above with the score scale given (Backend's AttentionMask.scale). */
    public static Launch attentionForward(KernelBuffer out, KernelBuffer lse, KernelBuffer q, KernelBuffer k, KernelBuffer v,
                                          int b, int t, int h, int g, int d, int queryOffset, float scale) {
        return attentionForward(out, lse, q, k, v, b, t, h, g, d, queryOffset, scale, 0, null, 0f);
    }

    /**
     * As above with the rest of Backend's AttentionMask: a sliding {@code window} (0: none), the
     * valid keys per batch row {@code keyLengths} (b ints, or null: all) and a score {@code softCap}
     * (0: none). A query that sees no key gets out 0 and lse −∞.
     */
    public static Launch attentionForward(KernelBuffer out, KernelBuffer lse, KernelBuffer q, KernelBuffer k, KernelBuffer v,
                                          int b, int t, int h, int g, int d, int queryOffset, float scale, int window,
                                          KernelBuffer keyLengths, float softCap) {
        checkMask(b, window, keyLengths, softCap);
        checkAttention(q, k, v, b, t, h, g, d, queryOffset);
        need("attention out", out, f32((long) b * t * h * d));
        need("attention lse", lse, f32((long) b * h * t));
        return new Launch("attention", "attn_fwd", blocks(t, ATTENTION_TILE), h, b, ATTENTION_THREADS, new KernelArgs()
                .ptr(out).ptr(lse).ptr(q).ptr(k).ptr(v).i32(b).i32(t).i32(h).i32(g).i32(d).i32(queryOffset)
                .f32(scale).i32(window).ptr(keyLengths).f32(softCap));
    }

    /**
     * Attention backward: writes delta [b,h,t] (scratch), then dq, dk, dv += their gradients
     * (recomputing P from lse; dk, dv summed over the query heads of each kv head without atomics).
     */
    public static List<Launch> attentionBackward(KernelBuffer dq, KernelBuffer dk, KernelBuffer dv, KernelBuffer delta,
                                                 KernelBuffer q, KernelBuffer k, KernelBuffer v, KernelBuffer out,
                                                 KernelBuffer dout, KernelBuffer lse, int b, int t, int h, int g, int d,
                                                 int queryOffset) {
        return attentionBackward(dq, dk, dv, delta, q, k, v, out, dout, lse, b, t, h, g, d, queryOffset,
                (float) (1.0 / Math.sqrt(d)));
    }

    /** As above with the score scale given. */
    public static List<Launch> attentionBackward(KernelBuffer dq, KernelBuffer dk, KernelBuffer dv, KernelBuffer delta,
                                                 KernelBuffer q, KernelBuffer k, KernelBuffer v, KernelBuffer out,
                                                 KernelBuffer dout, KernelBuffer lse, int b, int t, int h, int g, int d,
                                                 int queryOffset, float scale) {
        return attentionBackward(dq, dk, dv, delta, q, k, v, out, dout, lse, b, t, h, g, d, queryOffset, scale, 0, null, 0f);
    }

    /** As above with a sliding window, key lengths and a soft-cap (see {@link #attentionForward}). */
    public static List<Launch> attentionBackward(KernelBuffer dq, KernelBuffer dk, KernelBuffer dv, KernelBuffer delta,
                                                 KernelBuffer q, KernelBuffer k, KernelBuffer v, KernelBuffer out,
                                                 KernelBuffer dout, KernelBuffer lse, int b, int t, int h, int g, int d,
                                                 int queryOffset, float scale, int window, KernelBuffer keyLengths,
                                                 float softCap) {
        checkMask(b, window, keyLengths, softCap);
        checkAttention(q, k, v, b, t, h, g, d, queryOffset);
        long qn = (long) b * t * h * d;
        long kn = (long) b * (queryOffset + t) * g * d;
        need("attention out", out, f32(qn));
        need("attention dout", dout, f32(qn));
        need("attention dq", dq, f32(qn));
        need("attention dk", dk, f32(kn));
        need("attention dv", dv, f32(kn));
        need("attention lse", lse, f32((long) b * h * t));
        need("attention delta", delta, f32((long) b * h * t));
        Launch dl = new Launch("attention", "attn_bwd_delta", blocks((long) b * t * h, 8), 1, 1, 256,
                new KernelArgs().ptr(delta).ptr(out).ptr(dout).i32(b).i32(t).i32(h).i32(d));
        Launch dql = new Launch("attention", "attn_bwd_dq", blocks(t, ATTENTION_TILE), h, b, ATTENTION_THREADS,
                new KernelArgs().ptr(dq).ptr(q).ptr(k).ptr(v).ptr(dout).ptr(lse).ptr(delta).i32(b).i32(t).i32(h).i32(g)
                        .i32(d).i32(queryOffset).f32(scale).i32(window).ptr(keyLengths).f32(softCap));
        Launch dkv = new Launch("attention", "attn_bwd_dkdv", blocks(queryOffset + t, ATTENTION_TILE), g, b, ATTENTION_THREADS,
                new KernelArgs().ptr(dk).ptr(dv).ptr(q).ptr(k).ptr(v).ptr(dout).ptr(lse).ptr(delta).i32(b).i32(t).i32(h)
                        .i32(g).i32(d).i32(queryOffset).f32(scale).i32(window).ptr(keyLengths).f32(softCap));
        return List.of(dl, dql, dkv);
    }

    private static void checkMask(int b, int window, KernelBuffer keyLengths, float softCap) {
        if (window < 0) {
            throw new IllegalArgumentException("attention: window must be ≥ 0 (0 for none), was " + window);
        }
        if (!(softCap >= 0) || Float.isInfinite(softCap)) {
            throw new IllegalArgumentException("attention: softCap must be ≥ 0 (0 for none), was " + softCap);
        }
        if (keyLengths != null) {
            need("attention keyLengths", keyLengths, 4L * b);
        }
    }

    private static void checkAttention(KernelBuffer q, KernelBuffer k, KernelBuffer v, int b, int t, int h, int g, int d,
                                       int queryOffset) {
        positive("attention", "b", b);
        positive("attention", "t", t);
        positive("attention", "g", g);
        if (h < g || h % g != 0) {
            throw new IllegalArgumentException("attention: query heads " + h + " must be a multiple of kv heads " + g);
        }
        if (d < 1 || d > MAX_HEAD_SIZE) {
            throw new IllegalArgumentException("attention: head size " + d + " is outside [1, " + MAX_HEAD_SIZE
                    + "], the range the CUDA kernels hold in shared memory");
        }
        if (queryOffset < 0) {
            throw new IllegalArgumentException("attention: queryOffset must be ≥ 0, was " + queryOffset);
        }
        need("attention q", q, f32((long) b * t * h * d));
        need("attention k", k, f32((long) b * (queryOffset + t) * g * d));
        need("attention v", v, f32((long) b * (queryOffset + t) * g * d));
    }

    // ------------------------------------------------------------------ loss

    /**
     * Mean cross-entropy of logits z [rows, vocab] against labels (IGNORE_INDEX skipped): writes
     * lossRow and lse [rows], then loss[0] (NaN when every label is ignored) and count[0] (valid rows, F32).
     */
    public static List<Launch> crossEntropyForward(KernelBuffer loss, KernelBuffer count, KernelBuffer lossRow, KernelBuffer lse,
                                                   KernelBuffer z, KernelBuffer labels, int rows, int vocab) {
        positive("cross_entropy", "rows", rows);
        positive("cross_entropy", "vocab", vocab);
        need("cross_entropy z", z, f32((long) rows * vocab));
        need("cross_entropy labels", labels, 4L * rows);
        need("cross_entropy lossRow", lossRow, f32(rows));
        need("cross_entropy lse", lse, f32(rows));
        need("cross_entropy loss", loss, 4);
        need("cross_entropy count", count, 4);
        return List.of(new Launch("loss", "ce_fwd", rows, 1, 1, THREADS, new KernelArgs().ptr(lossRow).ptr(lse).ptr(z)
                        .ptr(labels).i32(rows).i32(vocab).i32(IGNORE_INDEX)),
                new Launch("loss", "ce_reduce", 1, 1, 1, THREADS, new KernelArgs().ptr(loss).ptr(count).ptr(lossRow)
                        .ptr(labels).i32(rows).i32(IGNORE_INDEX)));
    }

    /** lossRow[r] = lse_r − z_r[y_r] and lse[r] for a chunk of rows (ce_fwd alone; see {@link #crossEntropyMean}). */
    public static Launch crossEntropyRows(KernelBuffer lossRow, KernelBuffer lse, KernelBuffer z, KernelBuffer labels, int rows,
                                          int vocab) {
        return crossEntropyRows(lossRow, lse, z, labels, rows, vocab, IGNORE_INDEX);
    }

    /** As above with the ignored label given. */
    public static Launch crossEntropyRows(KernelBuffer lossRow, KernelBuffer lse, KernelBuffer z, KernelBuffer labels, int rows,
                                          int vocab, int ignoreIndex) {
        positive("cross_entropy", "rows", rows);
        need("cross_entropy z", z, f32((long) rows * vocab));
        need("cross_entropy labels", labels, 4L * rows);
        need("cross_entropy lossRow", lossRow, f32(rows));
        need("cross_entropy lse", lse, f32(rows));
        return new Launch("loss", "ce_fwd", rows, 1, 1, THREADS, new KernelArgs().ptr(lossRow).ptr(lse).ptr(z).ptr(labels).i32(rows)
                .i32(vocab).i32(ignoreIndex));
    }

    /** loss[0] = mean of lossRow over the rows whose label is not ignored (NaN if none), count[0] = their number. */
    public static Launch crossEntropyMean(KernelBuffer loss, KernelBuffer count, KernelBuffer lossRow, KernelBuffer labels, int rows) {
        positive("cross_entropy", "rows", rows);
        need("cross_entropy lossRow", lossRow, f32(rows));
        need("cross_entropy labels", labels, 4L * rows);
        need("cross_entropy loss", loss, 4);
        need("cross_entropy count", count, 4);
        return new Launch("loss", "ce_reduce", 1, 1, 1, THREADS, new KernelArgs().ptr(loss).ptr(count).ptr(lossRow).ptr(labels)
                .i32(rows).i32(IGNORE_INDEX));
    }

    /** dz = dloss[0]/count[0]·(softmax(z) − onehot(label)), 0 on ignored rows; overwrites dz, which may be z itself. */
    public static Launch crossEntropyBackward(KernelBuffer dz, KernelBuffer z, KernelBuffer lse, KernelBuffer labels,
                                              KernelBuffer count, KernelBuffer dloss, int rows, int vocab) {
        positive("cross_entropy", "rows", rows);
        need("cross_entropy dz", dz, f32((long) rows * vocab));
        need("cross_entropy z", z, f32((long) rows * vocab));
        need("cross_entropy dloss", dloss, 4);
        return new Launch("loss", "ce_bwd", blocks(vocab, THREADS), rows, 1, THREADS, new KernelArgs().ptr(dz).ptr(z)
                .ptr(lse).ptr(labels).ptr(count).ptr(dloss).i32(rows).i32(vocab).i32(IGNORE_INDEX));
    }

    // ------------------------------------------------------------------ optimizer

    /**
     * One AdamW update of n parameters at step {@code step} (1-based, per parameter as torch counts
     * it), with the constants lora4j's CPU AdamW derives: decay 1 − lr·λ, 1 − β rounded from double,
     * step size lr/(1 − β₁ᵗ), √(1 − β₂ᵗ) in double.
     */
    public static Launch adamW(KernelBuffer p, KernelBuffer m, KernelBuffer v, KernelBuffer g, long n, double lr, double beta1,
                               double beta2, double eps, double weightDecay, long step) {
        positive("adamw", "n", n);
        positive("adamw", "step", step);
        for (KernelBuffer buf : new KernelBuffer[] {p, m, v, g}) {
            need("adamw operand", buf, f32(n));
        }
        double bias1 = 1 - Math.pow(beta1, step);
        double bias2Sqrt = Math.sqrt(1 - Math.pow(beta2, step));
        return new Launch("adamw", "adamw", blocks(n, THREADS), 1, 1, THREADS, new KernelArgs().ptr(p).ptr(m).ptr(v).ptr(g)
                .i64(n).f32((float) (1 - lr * weightDecay)).f32((float) beta1).f32((float) beta2).f32((float) (1 - beta1))
                .f32((float) (1 - beta2)).f32((float) (lr / bias1)).f64(bias2Sqrt).f64(eps));
    }
    /** One AdamW update with the step's constants given as the CPU backend derives them (Backend.adamW's AdamWStep). */
    public static Launch adamW(KernelBuffer p, KernelBuffer m, KernelBuffer v, KernelBuffer g, long n, float decay, float beta1,
                               float beta2, float c1, float c2, float stepSize, double bias2Sqrt, double eps) {
        positive("adamw", "n", n);
        for (KernelBuffer buf : new KernelBuffer[] {p, m, v, g}) {
            need("adamw operand", buf, f32(n));
        }
        return new Launch("adamw", "adamw", blocks(n, THREADS), 1, 1, THREADS, new KernelArgs().ptr(p).ptr(m).ptr(v).ptr(g)
                .i64(n).f32(decay).f32(beta1).f32(beta2).f32(c1).f32(c2).f32(stepSize).f64(bias2Sqrt).f64(eps));
    }

    /** One SGD step (torch.optim.SGD) over n parameters; buf (the momentum buffer) may be null. */
    public static Launch sgd(KernelBuffer w, KernelBuffer g, KernelBuffer buf, long n, float lr, float momentum,
                             float dampeningComplement, float weightDecay, boolean nesterov, boolean firstStep) {
        positive("sgd", "n", n);
        need("sgd w", w, f32(n));
        need("sgd g", g, f32(n));
        if (buf != null) {
            need("sgd momentum buffer", buf, f32(n));
        }
        return new Launch("ops", "sgd_f32", blocks(n, THREADS), 1, 1, THREADS, new KernelArgs().ptr(w).ptr(g).ptr(buf).i64(n)
                .f32(lr).f32(momentum).f32(dampeningComplement).f32(weightDecay).i32(nesterov).i32(firstStep));
    }

    // ------------------------------------------------------------------ ops of the Backend SPI (ops.cu)

    /** The largest rank {@link #strided} handles (after dropping dimensions of size 1). */
    public static final int MAX_STRIDED_RANK = 4;

    /**
     * dst = src (F32, or BF16 widened) or, with src null, dst = value, over views of {@code shape}
     * (rank ≤ {@value #MAX_STRIDED_RANK}) with element strides; the buffers start at each view's
     * first element. {@code dstSpan}/{@code srcSpan} (elements reachable from the start) are checked.
     */
    public static Launch strided(KernelBuffer dst, int[] dstStrides, KernelBuffer src, boolean srcBf16, int[] srcStrides,
                                 float value, int[] shape) {
        if (shape.length > MAX_STRIDED_RANK) {
            throw new IllegalArgumentException("strided copy: rank " + shape.length + " is above " + MAX_STRIDED_RANK);
        }
        long n = 1;
        long dstSpan = 1;
        long srcSpan = 1;
        int pad = MAX_STRIDED_RANK - shape.length;
        int[] s = new int[MAX_STRIDED_RANK];
        long[] ds = new long[MAX_STRIDED_RANK];
        long[] ss = new long[MAX_STRIDED_RANK];
        java.util.Arrays.fill(s, 1);
        for (int d = 0; d < shape.length; d++) {
            s[pad + d] = shape[d];
            ds[pad + d] = dstStrides[d];
            ss[pad + d] = src == null ? 0 : srcStrides[d];
            n *= shape[d];
            dstSpan += (long) (shape[d] - 1) * dstStrides[d];
            srcSpan += src == null ? 0 : (long) (shape[d] - 1) * srcStrides[d];
        }
        positive("strided copy", "elements", n);
        need("strided dst", dst, f32(dstSpan));
        if (src != null) {
            need("strided src", src, (srcBf16 ? 2 : 4) * srcSpan);
        }
        return new Launch("ops", "strided_f32", blocks(n, THREADS), 1, 1, THREADS, new KernelArgs().ptr(dst).ptr(src)
                .i32(srcBf16).f32(value).i64(n).i32(s[1]).i32(s[2]).i32(s[3]).i64(ds[0]).i64(ds[1]).i64(ds[2]).i64(ds[3])
                .i64(ss[0]).i64(ss[1]).i64(ss[2]).i64(ss[3]));
    }

    /** Element-wise operations of {@code ew_f32} (ops.cu): the code of each is its ordinal. */
    public enum Ew {
        ADD, ADD_SCALED, MUL, ADD_PRODUCT, SCALE, SILU, SILU_BACKWARD, GELU, GELU_BACKWARD, SWIGLU, GEGLU, SOFT_CAP,
        SOFT_CAP_BACKWARD, DROPOUT
    }

    /** out = op(a, b) over n elements (see ops.cu for each op; b may be null when the op does not read it). */
    public static Launch elementwise(Ew op, KernelBuffer out, KernelBuffer a, KernelBuffer b, long n, float alpha, long aux) {
        positive("ew_f32", "n", n);
        need("ew_f32 out", out, f32(n));
        need("ew_f32 a", a, f32(n));
        boolean readsB = switch (op) {
            case ADD, MUL, ADD_PRODUCT, SILU_BACKWARD, GELU_BACKWARD, SWIGLU, GEGLU, SOFT_CAP_BACKWARD -> true;
            default -> false;
        };
        if (readsB) {
            need("ew_f32 b", b, f32(n));
        }
        return new Launch("ops", "ew_f32", blocks(n, THREADS), 1, 1, THREADS, new KernelArgs().ptr(out).ptr(a)
                .ptr(readsB ? b : null).i64(n).i32(op.ordinal()).f32(alpha).i64(aux));
    }

    /** dgate += dh ⊙ up ⊙ act'(gate), dup += dh ⊙ act(gate); act 0 silu, 1 gelu tanh, 2 gelu erf; either output may be null. */
    public static Launch gluBackward(KernelBuffer dgate, KernelBuffer dup, KernelBuffer dh, KernelBuffer gate, KernelBuffer up,
                                     long n, int act) {
        positive("glu_bwd", "n", n);
        for (KernelBuffer buf : new KernelBuffer[] {dh, gate, up}) {
            need("glu_bwd operand", buf, f32(n));
        }
        if (dgate != null) {
            need("glu_bwd dgate", dgate, f32(n));
        }
        if (dup != null) {
            need("glu_bwd dup", dup, f32(n));
        }
        return new Launch("ops", "glu_bwd", blocks(n, THREADS), 1, 1, THREADS, new KernelArgs().ptr(dgate).ptr(dup).ptr(dh)
                .ptr(gate).ptr(up).i64(n).i32(act));
    }

    /** out[r, c] = x[r, c] + bias[c]. */
    public static Launch addRow(KernelBuffer out, KernelBuffer x, KernelBuffer bias, long rows, int cols) {
        positive("add_row", "rows", rows);
        positive("add_row", "cols", cols);
        need("add_row x", x, f32(rows * cols));
        need("add_row out", out, f32(rows * cols));
        need("add_row bias", bias, f32(cols));
        return new Launch("ops", "add_row", blocks(rows * cols, THREADS), 1, 1, THREADS, new KernelArgs().ptr(out).ptr(x).ptr(bias)
                .i64(rows).i32(cols));
    }

    /** dst[c] += Σ_r x[r, c]. */
    public static Launch sumRows(KernelBuffer dst, KernelBuffer x, int rows, int cols) {
        positive("sum_rows", "rows", rows);
        positive("sum_rows", "cols", cols);
        need("sum_rows x", x, f32((long) rows * cols));
        need("sum_rows dst", dst, f32(cols));
        return new Launch("ops", "sum_rows", blocks(cols, THREADS), 1, 1, THREADS, new KernelArgs().ptr(dst).ptr(x).i32(rows)
                .i32(cols));
    }

    /** Blocks of the first pass of {@link #reduce}: partial needs 8 bytes for each. */
    public static final int REDUCE_BLOCKS = 256;

    /** Reductions to one double: Σx, Σx², Σx·w. */
    public enum Reduction {
        SUM, SUM_OF_SQUARES, WEIGHTED_SUM
    }

    /** out[0] (a double) = the reduction of x [n] (with weights w for WEIGHTED_SUM), through partial [REDUCE_BLOCKS doubles]. */
    public static List<Launch> reduce(KernelBuffer out, KernelBuffer partial, KernelBuffer x, KernelBuffer w, long n,
                                      Reduction op) {
        positive("reduce", "n", n);
        need("reduce x", x, f32(n));
        if (op == Reduction.WEIGHTED_SUM) {
            need("reduce w", w, f32(n));
        }
        int grid = (int) Math.min(REDUCE_BLOCKS, blocks(n, THREADS));
        need("reduce partial", partial, 8L * grid);
        need("reduce out", out, 8);
        return List.of(new Launch("ops", "reduce_f64", grid, 1, 1, THREADS, new KernelArgs().ptr(partial).ptr(x)
                        .ptr(op == Reduction.WEIGHTED_SUM ? w : null).i64(n).i32(op.ordinal())),
                new Launch("ops", "reduce_final", 1, 1, 1, THREADS, new KernelArgs().ptr(out).ptr(partial).i32(grid)));
    }

    /** y = softmax over each row of x [rows, v]. */
    public static Launch softmax(KernelBuffer y, KernelBuffer x, int rows, int v) {
        positive("softmax", "rows", rows);
        positive("softmax", "v", v);
        need("softmax x", x, f32((long) rows * v));
        need("softmax y", y, f32((long) rows * v));
        return new Launch("ops", "softmax_fwd", rows, 1, 1, THREADS, new KernelArgs().ptr(y).ptr(x).i32(rows).i32(v));
    }

    /** dx += y ⊙ (dy − Σ dy ⊙ y) per row. */
    public static Launch softmaxBackward(KernelBuffer dx, KernelBuffer dy, KernelBuffer y, int rows, int v) {
        positive("softmax", "rows", rows);
        positive("softmax", "v", v);
        for (KernelBuffer buf : new KernelBuffer[] {dx, dy, y}) {
            need("softmax_bwd operand", buf, f32((long) rows * v));
        }
        return new Launch("ops", "softmax_bwd", rows, 1, 1, THREADS, new KernelArgs().ptr(dx).ptr(dy).ptr(y).i32(rows).i32(v));
    }

    /** dz += scale·(softmax(z) − onehot(label)) on valid rows (overwrite: dz is z, set to the gradient, ignored rows 0). */
    public static Launch crossEntropyBackward(KernelBuffer dz, KernelBuffer z, KernelBuffer lse, KernelBuffer labels, int rows,
                                              int vocab, int ignoreIndex, float scale, boolean overwrite) {
        positive("cross_entropy", "rows", rows);
        positive("cross_entropy", "vocab", vocab);
        need("cross_entropy dz", dz, f32((long) rows * vocab));
        need("cross_entropy z", z, f32((long) rows * vocab));
        need("cross_entropy lse", lse, f32(rows));
        need("cross_entropy labels", labels, 4L * rows);
        return new Launch("ops", "ce_bwd_scaled", blocks(vocab, THREADS), rows, 1, THREADS, new KernelArgs().ptr(dz).ptr(z)
                .ptr(lse).ptr(labels).i32(rows).i32(vocab).i32(ignoreIndex).f32(scale).i32(overwrite));
    }

    /**
     * RoPE on the first {@code rotary} dimensions of each head of x [b, t, h, d] (the rest copied),
     * tables [positions, rotary/2]; {@code inverse} rotates by −θ.
     */
    public static Launch ropePartial(KernelBuffer out, KernelBuffer x, KernelBuffer cos, KernelBuffer sin, int b, int t, int h,
                                     int d, int rotary, int pos0, boolean inverse) {
        if (rotary < 2 || rotary % 2 != 0 || rotary > d) {
            throw new IllegalArgumentException("rope: rotary dimensions must be even, ≥ 2 and ≤ the head size " + d + ", was "
                    + rotary);
        }
        long n = (long) b * t * h * d;
        positive("rope", "elements", n);
        need("rope x", x, f32(n));
        need("rope out", out, f32(n));
        need("rope cos", cos, f32((long) (pos0 + t) * (rotary / 2)));
        need("rope sin", sin, f32((long) (pos0 + t) * (rotary / 2)));
        return new Launch("ops", "rope_partial", blocks((long) b * t * h * (d - rotary / 2), THREADS), 1, 1, THREADS,
                new KernelArgs().ptr(out).ptr(x).ptr(cos).ptr(sin).i32(b).i32(t).i32(h).i32(d).i32(rotary).i32(pos0)
                        .f32(inverse ? -1f : 1f));
    }

    /** LayerNorm forward: y, mean, rstd; b may be null. */
    public static Launch layerNormForward(KernelBuffer y, KernelBuffer mean, KernelBuffer rstd, KernelBuffer x, KernelBuffer w,
                                          KernelBuffer b, int rows, int c, float eps) {
        positive("layernorm", "rows", rows);
        positive("layernorm", "c", c);
        need("layernorm x", x, f32((long) rows * c));
        need("layernorm y", y, f32((long) rows * c));
        need("layernorm w", w, f32(c));
        if (b != null) {
            need("layernorm b", b, f32(c));
        }
        need("layernorm mean", mean, f32(rows));
        need("layernorm rstd", rstd, f32(rows));
        return new Launch("ops", "layernorm_fwd", rows, 1, 1, THREADS, new KernelArgs().ptr(y).ptr(mean).ptr(rstd).ptr(x).ptr(w)
                .ptr(b).i32(rows).i32(c).f32(eps));
    }

    /** LayerNorm backward: dx += …, dw += Σ dy ⊙ x̂, db += Σ dy; each may be null. */
    public static List<Launch> layerNormBackward(KernelBuffer dx, KernelBuffer dw, KernelBuffer db, KernelBuffer dy,
                                                 KernelBuffer x, KernelBuffer w, KernelBuffer mean, KernelBuffer rstd, int rows,
                                                 int c) {
        positive("layernorm", "rows", rows);
        positive("layernorm", "c", c);
        need("layernorm dy", dy, f32((long) rows * c));
        need("layernorm x", x, f32((long) rows * c));
        need("layernorm mean", mean, f32(rows));
        need("layernorm rstd", rstd, f32(rows));
        List<Launch> out = new java.util.ArrayList<>();
        if (dx != null) {
            need("layernorm dx", dx, f32((long) rows * c));
            need("layernorm w", w, f32(c));
            out.add(new Launch("ops", "layernorm_bwd_dx", rows, 1, 1, THREADS, new KernelArgs().ptr(dx).ptr(dy).ptr(x).ptr(w)
                    .ptr(mean).ptr(rstd).i32(rows).i32(c)));
        }
        if (dw != null || db != null) {
            if (dw != null) {
                need("layernorm dw", dw, f32(c));
            }
            if (db != null) {
                need("layernorm db", db, f32(c));
            }
            out.add(new Launch("ops", "layernorm_bwd_dwdb", blocks(c, THREADS), 1, 1, THREADS, new KernelArgs().ptr(dw).ptr(db)
                    .ptr(dy).ptr(x).ptr(mean).ptr(rstd).i32(rows).i32(c)));
        }
        return out;
    }
}
