package dev.lora4j.autograd;

import dev.lora4j.backend.Arena;
import dev.lora4j.backend.Backend;
import dev.lora4j.tensor.Tensor;
import java.util.Arrays;
import java.util.List;
import java.util.function.UnaryOperator;

/**
 * Activation checkpointing (Chen et al. 2016, "Training deep nets with sublinear memory cost";
 * torch.utils.checkpoint): a block y = f(x) whose forward runs without recording a graph, keeping
 * only its input, and whose backward recomputes f with the graph and back-propagates through it.
 * Its intermediate activations live in an arena of their own, given back as soon as the forward
 * (and later the recomputation's backward) is done, so only block inputs stay alive across the
 * step. The recomputation replays the forward's dropout seeds ({@link Autograd#recordSeeds}) and
 * every op is deterministic, so gradients are bit-identical to those without checkpointing.
 */
public final class Checkpoint {
    private Checkpoint() {
    }

    /**
     * @param x the block input
     * @param parameters the trainable tensors f reads besides x (LoRA matrices, norms, ...)
     * @param block f; its output must have x's shape (a residual block)
     */
    public static Tensor apply(Tensor x, List<Tensor> parameters, UnaryOperator<Tensor> block) {
        Tensor[] inputs = new Tensor[parameters.size() + 1];
        inputs[0] = x;
        for (int i = 0; i < parameters.size(); i++) {
            inputs[i + 1] = parameters.get(i);
        }
        if (!Autograd.needsGrad(inputs)) {
            return block.apply(x);
        }
        Backend be = Autograd.backendFor("checkpoint", x);
        Tensor saved = x.detach();
        Tensor out = be.empty(x.shape());
        Autograd.SeedTape seeds;
        try (Autograd.SeedTape tape = Autograd.recordSeeds(); Autograd.Scope ignored = Autograd.noGradForRecompute();
             Arena inner = be.openArena()) {
            seeds = tape;
            Tensor y = block.apply(saved);
            if (!Arrays.equals(y.shape(), x.shape())) {
                throw new IllegalArgumentException("checkpoint: the block maps " + Arrays.toString(x.shape()) + " to "
                        + Arrays.toString(y.shape()) + "; only blocks that keep the shape can be checkpointed");
            }
            be.copy(out, y);
        }
        return Autograd.record(out, "checkpoint", inputs, dOut -> {
            Tensor dx = x.requiresGrad() ? be.zeros(x.shape()) : null;
            try (Arena inner = be.openArena(); Autograd.Scope grad = Autograd.enableGrad();
                 Autograd.SeedTape replay = Autograd.replaySeeds(seeds)) {
                Tensor xr = saved.detach();
                if (dx != null) {
                    xr.requiresGrad(true);
                    xr.setGrad(dx);
                }
                Tensor y = block.apply(xr);
                if (y.requiresGrad()) {
                    Autograd.backward(y, dOut);
                }
            }
            if (dx != null) {
                Autograd.accumulateOwned(x, dx);
            }
        });
    }
}
