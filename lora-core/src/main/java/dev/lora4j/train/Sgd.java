package dev.lora4j.train;

import dev.lora4j.io.SafetensorsWriter;
import dev.lora4j.tensor.Tensor;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * SGD with momentum exactly as torch.optim.SGD: g ← g + λp (weight decay is coupled, PyTorch's
 * semantics for SGD); b ← g on the first step, then b ← μb + (1 − dampening)g; with Nesterov
 * g ← g + μb, else g ← b; p ← p − lr·g. State: one buffer (4 bytes per parameter) when μ > 0,
 * none otherwise — the memory difference from AdamW that matters at large rank.
 */
public final class Sgd extends BaseOptimizer {
    private final float[][] buffers;
    private final double momentum;
    private final double dampening;
    private final double weightDecay;
    private final boolean nesterov;

    public Sgd(List<Tensor> params, double lr, double momentum, double dampening, double weightDecay, boolean nesterov) {
        super(params, lr, "a learning rate such as 0.1");
        Checks.nonNegative("momentum", momentum);
        Checks.nonNegative("weightDecay", weightDecay);
        if (nesterov && (momentum <= 0 || dampening != 0)) {
            throw new IllegalArgumentException("nesterov requires momentum > 0 and dampening 0, was momentum " + momentum
                    + ", dampening " + dampening);
        }
        this.buffers = new float[params.size()][];
        this.momentum = momentum;
        this.dampening = dampening;
        this.weightDecay = weightDecay;
        this.nesterov = nesterov;
    }

    public Sgd(List<Tensor> params, double lr, double momentum, double weightDecay) {
        this(params, lr, momentum, 0, weightDecay, false);
    }

    @Override
    protected void update() {
        float mu = (float) momentum;
        float damp = (float) (1 - dampening);
        float wd = (float) weightDecay;
        float rate = (float) lr;
        for (int i = 0; i < params.size(); i++) {
            Tensor p = params.get(i);
            if (p.grad() == null) {
                continue;
            }
            float[] w = p.data();
            float[] g = p.grad().data();
            boolean first = buffers[i] == null && momentum != 0;
            if (first) {
                buffers[i] = new float[w.length];
            }
            float[] buf = buffers[i];
            for (int j = 0; j < w.length; j++) {
                float d = g[j] + wd * w[j];
                if (buf != null) {
                    buf[j] = first ? d : mu * buf[j] + damp * d;
                    d = nesterov ? d + mu * buf[j] : buf[j];
                }
                w[j] -= rate * d;
            }
        }
    }

    @Override
    public long stateBytes() {
        long n = 0;
        for (float[] b : buffers) {
            n += b == null ? 0 : 4L * b.length;
        }
        return n;
    }

    @Override
    String kind() {
        return "SGD";
    }

    @Override
    Map<String, String> hyperParameters() {
        Map<String, String> hp = new LinkedHashMap<>();
        hp.put("momentum", Double.toString(momentum));
        hp.put("dampening", Double.toString(dampening));
        hp.put("weight_decay", Double.toString(weightDecay));
        hp.put("nesterov", Boolean.toString(nesterov));
        return hp;
    }

    /** A parameter that has not had a gradient yet has no buffer, as in torch, and none is written. */
    @Override
    void exportState(int i, String prefix, SafetensorsWriter out) {
        if (buffers[i] != null) {
            out.add(prefix + "momentum_buffer", Tensor.of(buffers[i], params.get(i).shape()));
        }
    }

    @Override
    Runnable importState(int i, String prefix, StateFile in, Set<String> used) {
        String name = prefix + "momentum_buffer";
        float[] buffer = in.contains(name) ? in.floats(name, params.get(i)) : null;
        if (buffer != null) {
            used.add(name); // with momentum 0 no file has buffers: the hyper-parameter check rejects it first
        }
        return () -> buffers[i] = buffer;
    }

    @Override
    public String toString() {
        return "SGD(lr=" + lr + ", momentum=" + momentum + ", dampening=" + dampening + ", weightDecay=" + weightDecay
                + ", nesterov=" + nesterov + ")";
    }
}
