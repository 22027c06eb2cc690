package dev.lora4j.train;

import dev.lora4j.autograd.Autograd;
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
    private final Tensor[] buffers;
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
        this.buffers = new Tensor[params.size()];
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
            boolean first = buffers[i] == null && momentum != 0;
            if (first) {
                buffers[i] = stateBuffer(p);
            }
            Autograd.backendFor("SGD", p, p.grad()).sgd(p, p.grad().contiguous(), buffers[i], rate, mu, damp, wd, nesterov,
                    first);
        }
    }

    @Override
    public long stateBytes() {
        long n = 0;
        for (Tensor b : buffers) {
            n += b == null ? 0 : 4L * b.numel();
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
            out.add(prefix + "momentum_buffer", Tensor.of(buffers[i].toFloatArray(), params.get(i).shape()));
        }
    }

    @Override
    Runnable importState(int i, String prefix, StateFile in, Set<String> used) {
        String name = prefix + "momentum_buffer";
        float[] buffer = in.contains(name) ? in.floats(name, params.get(i)) : null;
        if (buffer != null) {
            used.add(name); // with momentum 0 no file has buffers: the hyper-parameter check rejects it first
        }
        Tensor p = params.get(i);
        return () -> buffers[i] = buffer == null ? null : p.device() == dev.lora4j.tensor.Device.CPU
                ? Tensor.of(buffer, p.shape()) : p.backend().fromHost(buffer, p.shape());
    }

    @Override
    public String toString() {
        return "SGD(lr=" + lr + ", momentum=" + momentum + ", dampening=" + dampening + ", weightDecay=" + weightDecay
                + ", nesterov=" + nesterov + ")";
    }
}
