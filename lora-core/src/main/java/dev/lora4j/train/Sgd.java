package dev.lora4j.train;

import dev.lora4j.tensor.Tensor;
import java.util.List;

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
    public String toString() {
        return "SGD(lr=" + lr + ", momentum=" + momentum + ", dampening=" + dampening + ", weightDecay=" + weightDecay
                + ", nesterov=" + nesterov + ")";
    }
}
