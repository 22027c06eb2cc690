package dev.lora4j.cuda;

import dev.lora4j.autograd.Rope;
import dev.lora4j.quant.QuantMaps;
import dev.lora4j.quant.QuantType;
import java.util.ArrayList;
import java.util.List;

/**
 * One LoRA or QLoRA training step of a Llama-style decoder that stays on the device, composed
 * only of {@link Kernels} launches: embedding, per layer RMSNorm → q/k/v (LoRA) → RoPE → causal
 * attention (grouped-query) → o (LoRA) + residual → RMSNorm → gate/up (LoRA) → SwiGLU → down (LoRA)
 * + residual; final RMSNorm, the frozen head and cross-entropy in chunks of rows (only chunk × V
 * logits exist at a time, recomputed in backward); the backward of all of it (no gradient for
 * frozen weights, norms or the embedding) and AdamW on every LoRA A and B. LoRA targets all seven
 * linear layers; W₀ is BF16 or NF4 with double quantization (blocksize 64), filled with
 * pseudo-random values on the device (a benchmark model: its loss is only meaningful relative to
 * later steps). Activations saved for backward are kept for all layers (no checkpointing).
 *
 * <p>This is the launch sequence the op-level device SPI will issue; the benchmark and the QLoRA
 * step tests run it through a {@link KernelLauncher}.
 */
public final class DecoderStep {

    /**
     * Model and batch shape. {@code tokens} is batch × sequence (one sequence here), {@code rank}
     * and {@code alpha} the LoRA settings (scale alpha/rank), {@code lossChunk} the rows of logits
     * materialized at once.
     */
    public record Shape(String name, int hidden, int intermediate, int layers, int heads, int kvHeads, int vocab, int tokens,
                        int rank, float alpha, boolean quantized, int lossChunk) {
        public Shape {
            if (hidden % heads != 0 || heads % kvHeads != 0 || (hidden / heads) % 2 != 0) {
                throw new IllegalArgumentException(name + ": hidden " + hidden + " must split into " + heads
                        + " heads of even size, and heads into " + kvHeads + " kv heads");
            }
        }

        public int headDim() {
            return hidden / heads;
        }

        /** SmolLM2-135M (Hugging Face config) with 512 tokens, r = 8, alpha = 16. */
        public static Shape smolLm2(boolean quantized) {
            return new Shape("SmolLM2-135M", 576, 1536, 30, 9, 3, 49152, 512, 8, 16, quantized, 128);
        }

        /** Llama-2-7B with 512 tokens, r = 8, alpha = 16 (the QLoRA paper's setting is r = 64 on all layers). */
        public static Shape llama2_7b(boolean quantized) {
            return new Shape("Llama-2-7B", 4096, 11008, 32, 32, 32, 32000, 512, 8, 16, quantized, 128);
        }
    }

    private static final float EPS = 1e-5f;
    private static final int QUANT_BLOCK = 64;
    private static final int NESTED_BLOCK = 256;

    /** A LoRA linear layer: frozen W₀ [out, in], A [r, in], B [out, r], their gradients and AdamW moments, and u = x·Aᵀ. */
    private final class Lora {
        final int in;
        final int out;
        final FrozenWeight w;
        final KernelBuffer a;
        final KernelBuffer b;
        final KernelBuffer da;
        final KernelBuffer db;
        final KernelBuffer ma;
        final KernelBuffer va;
        final KernelBuffer mb;
        final KernelBuffer vb;
        final KernelBuffer u;

        Lora(int in, int out) {
            this.in = in;
            this.out = out;
            this.w = frozen(out, in);
            int r = shape.rank();
            a = floats((long) r * in);
            b = floats((long) out * r);
            da = floats((long) r * in);
            db = floats((long) out * r);
            ma = floats((long) r * in);
            va = floats((long) r * in);
            mb = floats((long) out * r);
            vb = floats((long) out * r);
            u = floats((long) shape.tokens() * r);
            init.add(Kernels.random(a, false, (float) (1 / Math.sqrt(in)), seed++, (long) r * in)); // PEFT: Kaiming-uniform A
            for (KernelBuffer z : new KernelBuffer[] {b, ma, va, mb, vb}) {
                init.add(Kernels.fill(z, 0f, z.byteSize() / 4)); // B starts at zero
            }
        }

        void forward(KernelBuffer y, KernelBuffer x) {
            step.addAll(Kernels.loraForward(y, u, x, w, a, b, shape.tokens(), out, in, shape.rank(), scale));
        }

        /** dx += dy·W₀ + s·(dy·B)·A; dA, dB += their gradients. */
        void backward(KernelBuffer dx, KernelBuffer dy, KernelBuffer x) {
            step.addAll(Kernels.loraBackward(dx, da, db, vScratch, dy, x, u, w, a, b, shape.tokens(), out, in, shape.rank(), scale));
        }

        void zeroGrad() {
            step.add(Kernels.fill(da, 0f, (long) shape.rank() * in));
            step.add(Kernels.fill(db, 0f, (long) out * shape.rank()));
        }

        void update(double lr, long t) {
            step.add(Kernels.adamW(a, ma, va, da, (long) shape.rank() * in, lr, 0.9, 0.999, 1e-8, 0.0, t));
            step.add(Kernels.adamW(b, mb, vb, db, (long) out * shape.rank(), lr, 0.9, 0.999, 1e-8, 0.0, t));
        }
    }

    /** Saved activations of one layer. */
    private final class Layer {
        final Lora q;
        final Lora k;
        final Lora v;
        final Lora o;
        final Lora gate;
        final Lora up;
        final Lora down;
        final KernelBuffer hA;
        final KernelBuffer rstdA;
        final KernelBuffer qOut;
        final KernelBuffer kOut;
        final KernelBuffer vOut;
        final KernelBuffer att;
        final KernelBuffer lse;
        final KernelBuffer xMid;
        final KernelBuffer hM;
        final KernelBuffer rstdM;
        final KernelBuffer g;
        final KernelBuffer u;
        final KernelBuffer sw;

        Layer() {
            int c = shape.hidden();
            int kv = shape.kvHeads() * shape.headDim();
            int i = shape.intermediate();
            int t = shape.tokens();
            q = new Lora(c, c);
            k = new Lora(c, kv);
            v = new Lora(c, kv);
            o = new Lora(c, c);
            gate = new Lora(c, i);
            up = new Lora(c, i);
            down = new Lora(i, c);
            hA = floats((long) t * c);
            rstdA = floats(t);
            qOut = floats((long) t * c);
            kOut = floats((long) t * kv);
            vOut = floats((long) t * kv);
            att = floats((long) t * c);
            lse = floats((long) shape.heads() * t);
            xMid = floats((long) t * c);
            hM = floats((long) t * c);
            rstdM = floats(t);
            g = floats((long) t * i);
            u = floats((long) t * i);
            sw = floats((long) t * i);
        }

        List<Lora> loras() {
            return List.of(q, k, v, o, gate, up, down);
        }
    }

    private final Shape shape;
    private final DeviceMemory memory;
    private final float scale;
    private final List<Launch> init = new ArrayList<>();
    private final List<Launch> step = new ArrayList<>();
    private long seed = 1;
    private final KernelBuffer code;
    private final KernelBuffer nestedMap;
    private final KernelBuffer ones;
    private final KernelBuffer cos;
    private final KernelBuffer sin;
    private final KernelBuffer embedding;
    private final FrozenWeight head;
    private final KernelBuffer ids;
    private final KernelBuffer labels;
    private final KernelBuffer[] x;
    private final Layer[] layers;
    private final KernelBuffer hF;
    private final KernelBuffer rstdF;
    private final KernelBuffer logits;
    private final KernelBuffer lossRow;
    private final KernelBuffer lossLse;
    private final KernelBuffer loss;
    private final KernelBuffer count;
    private final KernelBuffer dLoss;
    // backward scratch, reused by every layer
    private final KernelBuffer vScratch;
    private final KernelBuffer tmpC;
    private final KernelBuffer dx;
    private final KernelBuffer dxMid;
    private final KernelBuffer dh;
    private final KernelBuffer dhM;
    private final KernelBuffer dAtt;
    private final KernelBuffer dq;
    private final KernelBuffer dk;
    private final KernelBuffer dv;
    private final KernelBuffer delta;
    private final KernelBuffer dsw;
    private final KernelBuffer dg;
    private final KernelBuffer du;
    private final KernelBuffer dhF;

    /**
     * Allocates the model (random frozen weights, LoRA A random and B zero) and the activations of
     * one step for {@code tokenIds} (length shape.tokens(); labels are the next token, the last ignored).
     * {@link #initLaunches()} fills the weights; {@link #stepLaunches} runs a step.
     */
    public DecoderStep(Shape shape, DeviceMemory memory, int[] tokenIds) {
        this.shape = shape;
        this.memory = memory;
        this.scale = shape.alpha() / shape.rank();
        int t = shape.tokens();
        int c = shape.hidden();
        if (tokenIds.length != t) {
            throw new IllegalArgumentException(shape.name() + ": " + tokenIds.length + " token ids for a step of " + t + " tokens");
        }
        Kernels.checkIds(tokenIds, shape.vocab());
        code = memory.upload(QuantType.NF4.code());
        nestedMap = memory.upload(QuantMaps.dynamicSigned());
        ones = floats(c);
        init.add(Kernels.fill(ones, 1f, c));
        int d = shape.headDim();
        double[] inv = Rope.inverseFrequencies(d, 10000.0, null, 1, 1, 1, 0);
        float[] cosH = new float[t * d / 2];
        float[] sinH = new float[t * d / 2];
        for (int p = 0; p < t; p++) {
            for (int i = 0; i < d / 2; i++) {
                float angle = (float) p * (float) inv[i];
                cosH[p * d / 2 + i] = (float) Math.cos(angle);
                sinH[p * d / 2 + i] = (float) Math.sin(angle);
            }
        }
        cos = memory.upload(cosH);
        sin = memory.upload(sinH);
        embedding = memory.allocate(2L * shape.vocab() * c);
        init.add(Kernels.random(embedding, true, 1f, seed++, (long) shape.vocab() * c));
        head = frozen(shape.vocab(), c);
        ids = memory.upload(tokenIds);
        int[] next = new int[t];
        for (int i = 0; i < t; i++) {
            next[i] = i + 1 < t ? tokenIds[i + 1] : Kernels.IGNORE_INDEX;
        }
        labels = memory.upload(next);
        x = new KernelBuffer[shape.layers() + 1];
        for (int l = 0; l <= shape.layers(); l++) {
            x[l] = floats((long) t * c);
        }
        layers = new Layer[shape.layers()];
        for (int l = 0; l < shape.layers(); l++) {
            layers[l] = new Layer();
        }
        hF = floats((long) t * c);
        rstdF = floats(t);
        logits = floats((long) Math.min(shape.lossChunk(), t) * shape.vocab());
        lossRow = floats(t);
        lossLse = floats(t);
        loss = floats(1);
        count = floats(1);
        dLoss = floats(1);
        int kv = shape.kvHeads() * d;
        int i = shape.intermediate();
        vScratch = floats((long) t * shape.rank());
        tmpC = floats((long) t * c);
        dx = floats((long) t * c);
        dxMid = floats((long) t * c);
        dh = floats((long) t * c);
        dhM = floats((long) t * c);
        dAtt = floats((long) t * c);
        dq = floats((long) t * c);
        dk = floats((long) t * kv);
        dv = floats((long) t * kv);
        delta = floats((long) shape.heads() * t);
        dsw = floats((long) t * i);
        dg = floats((long) t * i);
        du = floats((long) t * i);
        dhF = floats((long) t * c);
    }

    private KernelBuffer floats(long n) {
        return memory.allocate(4 * n);
    }

    /** A frozen [rows, cols] weight with pseudo-random values of scale 1/√cols. */
    private FrozenWeight frozen(int rows, int cols) {
        long n = (long) rows * cols;
        float std = (float) (1 / Math.sqrt(cols));
        if (!shape.quantized()) {
            KernelBuffer w = memory.allocate(2 * n);
            init.add(Kernels.random(w, true, std, seed++, n));
            return new FrozenWeight.Bf16(w, n);
        }
        long blocks = (n + QUANT_BLOCK - 1) / QUANT_BLOCK;
        long groups = (blocks + NESTED_BLOCK - 1) / NESTED_BLOCK;
        KernelBuffer packed = memory.allocate((n + 1) / 2);
        KernelBuffer codes = memory.allocate(blocks);
        KernelBuffer nested = floats(groups);
        init.add(Kernels.randomBytes(packed, seed++, (n + 1) / 2));
        init.add(Kernels.randomBytes(codes, seed++, blocks));
        init.add(Kernels.fill(nested, std, groups)); // absmax = map[code]·std + offset
        return new FrozenWeight.Quant4(packed, null, codes, nested, nestedMap, 1.5f * std, code, QUANT_BLOCK, NESTED_BLOCK, n);
    }

    /** Launches that fill the weights (run once). */
    public List<Launch> initLaunches() {
        return List.copyOf(init);
    }

    /** The F32 buffer that holds the step's loss after its launches ran (mean over the labelled tokens). */
    public KernelBuffer loss() {
        return loss;
    }

    /** Number of LoRA parameters (A and B of every target of every layer). */
    public long trainableParameters() {
        long n = 0;
        for (Layer layer : layers) {
            for (Lora l : layer.loras()) {
                n += (long) shape.rank() * (l.in + l.out);
            }
        }
        return n;
    }

    /** The launches of one training step (forward, backward, AdamW at step {@code t} with learning rate {@code lr}). */
    public List<Launch> stepLaunches(double lr, long t) {
        step.clear();
        int tokens = shape.tokens();
        int c = shape.hidden();
        int h = shape.heads();
        int g = shape.kvHeads();
        int d = shape.headDim();
        int inter = shape.intermediate();
        step.add(Kernels.embedding(x[0], embedding, true, ids, tokens, c, shape.vocab()));
        for (int l = 0; l < shape.layers(); l++) {
            Layer y = layers[l];
            step.add(Kernels.rmsNormForward(y.hA, y.rstdA, x[l], ones, tokens, c, EPS));
            y.q.forward(y.qOut, y.hA);
            y.k.forward(y.kOut, y.hA);
            y.v.forward(y.vOut, y.hA);
            step.add(Kernels.rope(y.qOut, y.qOut, cos, sin, 1, tokens, h, d, 0, false));
            step.add(Kernels.rope(y.kOut, y.kOut, cos, sin, 1, tokens, g, d, 0, false));
            step.add(Kernels.attentionForward(y.att, y.lse, y.qOut, y.kOut, y.vOut, 1, tokens, h, g, d, 0));
            y.o.forward(tmpC, y.att);
            step.add(Kernels.add(y.xMid, x[l], tmpC, (long) tokens * c));
            step.add(Kernels.rmsNormForward(y.hM, y.rstdM, y.xMid, ones, tokens, c, EPS));
            y.gate.forward(y.g, y.hM);
            y.up.forward(y.u, y.hM);
            step.add(Kernels.swigluForward(y.sw, y.g, y.u, (long) tokens * inter));
            y.down.forward(tmpC, y.sw);
            step.add(Kernels.add(x[l + 1], y.xMid, tmpC, (long) tokens * c));
        }
        KernelBuffer last = x[shape.layers()];
        step.add(Kernels.rmsNormForward(hF, rstdF, last, ones, tokens, c, EPS));
        int chunk = Math.min(shape.lossChunk(), tokens);
        for (int r0 = 0; r0 < tokens; r0 += chunk) {
            int rows = Math.min(chunk, tokens - r0);
            step.add(Kernels.frozenLinear(logits, BufferSlice.floats(hF, (long) r0 * c, (long) rows * c), head, rows, shape.vocab(), c,
                    true, 0f));
            step.add(Kernels.crossEntropyRows(BufferSlice.floats(lossRow, r0, rows), BufferSlice.floats(lossLse, r0, rows), logits,
                    BufferSlice.of(labels, 4L * r0, 4L * rows), rows, shape.vocab()));
        }
        step.add(Kernels.crossEntropyMean(loss, count, lossRow, labels, tokens));

        // backward
        for (Layer y : layers) {
            for (Lora lora : y.loras()) {
                lora.zeroGrad();
            }
        }
        step.add(Kernels.fill(dLoss, 1f, 1));
        for (int r0 = 0; r0 < tokens; r0 += chunk) {
            int rows = Math.min(chunk, tokens - r0);
            step.add(Kernels.frozenLinear(logits, BufferSlice.floats(hF, (long) r0 * c, (long) rows * c), head, rows, shape.vocab(), c,
                    true, 0f));
            step.add(Kernels.crossEntropyBackward(logits, logits, BufferSlice.floats(lossLse, r0, rows),
                    BufferSlice.of(labels, 4L * r0, 4L * rows), count, dLoss, rows, shape.vocab()));
            step.add(Kernels.frozenLinear(BufferSlice.floats(dhF, (long) r0 * c, (long) rows * c), logits, head, rows, c,
                    shape.vocab(), false, 0f));
        }
        long tc = (long) tokens * c;
        step.add(Kernels.fill(dx, 0f, tc));
        step.addAll(Kernels.rmsNormBackward(dx, null, dhF, last, ones, rstdF, tokens, c));
        for (int l = shape.layers() - 1; l >= 0; l--) {
            Layer y = layers[l];
            // dx holds the gradient of x[l + 1] = xMid + down(...)
            step.add(Kernels.fill(dxMid, 0f, tc));
            step.add(Kernels.add(dxMid, dxMid, dx, tc));
            step.add(Kernels.fill(dsw, 0f, (long) tokens * inter));
            y.down.backward(dsw, dx, y.sw);
            step.add(Kernels.fill(dg, 0f, (long) tokens * inter));
            step.add(Kernels.fill(du, 0f, (long) tokens * inter));
            step.add(Kernels.swigluBackward(dg, du, dsw, y.g, y.u, (long) tokens * inter));
            step.add(Kernels.fill(dhM, 0f, tc));
            y.gate.backward(dhM, dg, y.hM);
            y.up.backward(dhM, du, y.hM);
            step.addAll(Kernels.rmsNormBackward(dxMid, null, dhM, y.xMid, ones, y.rstdM, tokens, c));
            // dxMid holds the gradient of xMid = x[l] + o(...)
            step.add(Kernels.fill(dAtt, 0f, tc));
            y.o.backward(dAtt, dxMid, y.att);
            step.add(Kernels.fill(dq, 0f, tc));
            step.add(Kernels.fill(dk, 0f, (long) tokens * g * d));
            step.add(Kernels.fill(dv, 0f, (long) tokens * g * d));
            step.addAll(Kernels.attentionBackward(dq, dk, dv, delta, y.qOut, y.kOut, y.vOut, y.att, dAtt, y.lse, 1, tokens, h, g, d, 0));
            step.add(Kernels.rope(dq, dq, cos, sin, 1, tokens, h, d, 0, true));
            step.add(Kernels.rope(dk, dk, cos, sin, 1, tokens, g, d, 0, true));
            step.add(Kernels.fill(dh, 0f, tc));
            y.q.backward(dh, dq, y.hA);
            y.k.backward(dh, dk, y.hA);
            y.v.backward(dh, dv, y.hA);
            step.add(Kernels.fill(dx, 0f, tc));
            step.add(Kernels.add(dx, dx, dxMid, tc));
            step.addAll(Kernels.rmsNormBackward(dx, null, dh, x[l], ones, y.rstdA, tokens, c));
        }
        for (Layer y : layers) {
            for (Lora lora : y.loras()) {
                lora.update(lr, t);
            }
        }
        return List.copyOf(step);
    }
}
