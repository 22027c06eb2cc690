package dev.lora4j.benchmarks;

import dev.lora4j.autograd.Losses;
import dev.lora4j.backend.Arena;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.train.AdamW;
import dev.lora4j.train.Optimizer;
import dev.lora4j.train.Trainer;
import java.util.List;
import java.util.SplittableRandom;

/**
 * One LoRA training step as {@code torch_lora_bench.py} runs it, built through the public API: a
 * randomly initialized F32 model ({@link LlamaModel#initialize}), {@link LoraModel#wrap} with rank r,
 * alpha 2r, dropout 0.05 on {@link TrainShape#targets()}, AdamW (lr 3e-4, weight decay 0.01), and a
 * fixed batch of random token ids [B, T + 1]: the model reads ids[:, :T] and every position is
 * scored against the next id, so a step trains B·T tokens, exactly as the anchor's
 * {@code cross_entropy(m(x[:, :-1]), x[:, 1:])}.
 */
public final class TrainStep {
    /** The anchor's learning rate and weight decay. */
    public static final double LEARNING_RATE = 3e-4;
    public static final double WEIGHT_DECAY = 0.01;
    public static final double DROPOUT = 0.05;

    private final TrainShape shape;
    private final LoraModel lora;
    private final List<Tensor> parameters;
    private final Optimizer optimizer;
    private final int[] inputs;
    private final int[] targets;

    /**
     * @param rank LoRA rank (alpha is twice the rank, as in the anchor)
     * @param seed seeds the weights, the adapters and the token ids
     */
    public TrainStep(TrainShape shape, int rank, long seed) {
        this.shape = shape;
        LlamaModel base = LlamaModel.initialize(shape.config(), seed);
        this.lora = LoraModel.wrap(base, LoraConfig.rank(rank).alpha(2.0 * rank).dropout(DROPOUT).seed(seed)
                .targets(shape.targets()));
        this.parameters = Trainer.trainableParameters(lora.model());
        this.optimizer = new AdamW(parameters, LEARNING_RATE, WEIGHT_DECAY);
        int b = shape.batch();
        int t = shape.seq();
        int vocab = shape.config().vocabSize();
        SplittableRandom rng = new SplittableRandom(seed ^ 0x746f6b656e73L);
        this.inputs = new int[b * t];
        this.targets = new int[b * t];
        for (int row = 0; row < b; row++) {
            int[] ids = rng.ints(t + 1, 0, vocab).toArray();
            System.arraycopy(ids, 0, inputs, row * t, t);
            System.arraycopy(ids, 1, targets, row * t, t);
        }
    }

    /**
     * Forward, backward, AdamW update, gradients cleared; returns the loss before the update.
     * Activations and their gradients come from the backend's step arena, as in {@link Trainer#fit}.
     */
    public float step() {
        float value;
        try (Arena arena = lora.model().embedTokens().backend().openArena()) {
            Tensor logits = lora.model().forward(inputs, shape.batch());
            Tensor loss = Losses.crossEntropy(logits.reshape(shape.tokensPerStep(), shape.config().vocabSize()), targets);
            value = loss.toFloatArray()[0];
            loss.backward();
        }
        optimizer.step();
        optimizer.zeroGrad();
        return value;
    }

    public TrainShape shape() {
        return shape;
    }

    /** Number of trainable (LoRA) parameters; the anchor prints the same figure as {@code trainable=}. */
    public long trainableParameters() {
        long n = 0;
        for (Tensor p : parameters) {
            n += p.numel();
        }
        return n;
    }
}
