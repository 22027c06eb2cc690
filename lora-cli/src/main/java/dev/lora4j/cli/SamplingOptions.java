package dev.lora4j.cli;

import dev.lora4j.model.Generator;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * Decoding settings of {@code generate} and {@code chat} ({@code @Mixin SamplingOptions sampling;}),
 * with LitGPT's generate defaults: 50 new tokens, temperature 0.8, top-k 50, top-p 1, seed 1234.
 * {@code --temperature 0} is greedy decoding.
 */
public final class SamplingOptions {

    @Spec(Spec.Target.MIXEE)
    private CommandSpec spec;

    @Option(names = "--max-new-tokens", defaultValue = "50", paramLabel = "N",
            description = "Tokens to generate at most (default: ${DEFAULT-VALUE}).")
    int maxNewTokens;

    @Option(names = {"-t", "--temperature"}, defaultValue = "0.8", paramLabel = "T",
            description = "Sampling temperature; 0 is greedy (default: ${DEFAULT-VALUE}).")
    double temperature;

    @Option(names = "--top-k", defaultValue = "50", paramLabel = "K",
            description = "Sample among the K most likely tokens; 0 is no limit (default: ${DEFAULT-VALUE}).")
    int topK;

    @Option(names = "--top-p", defaultValue = "1.0", paramLabel = "P",
            description = "Nucleus sampling: the smallest set of tokens whose probability reaches P; 1 is no limit "
                    + "(default: ${DEFAULT-VALUE}).")
    double topP;

    @Option(names = "--seed", defaultValue = "1234", paramLabel = "SEED",
            description = "Seed of the sampler (default: ${DEFAULT-VALUE}).")
    long seed;

    /**
     * Applies these options to a generator and returns it.
     *
     * @throws picocli.CommandLine.ParameterException naming the option whose value is out of range
     */
    public Generator configure(Generator g) {
        OptionErrors.check(spec, "--max-new-tokens", maxNewTokens, () -> g.maxNewTokens(maxNewTokens));
        OptionErrors.check(spec, "--temperature", temperature, () -> g.temperature(temperature));
        OptionErrors.check(spec, "--top-k", topK, () -> g.topK(topK));
        OptionErrors.check(spec, "--top-p", topP, () -> g.topP(topP));
        return g.seed(seed);
    }

    public int maxNewTokens() {
        return maxNewTokens;
    }

    @Override
    public String toString() {
        return "SamplingOptions(maxNewTokens=" + maxNewTokens + ", temperature=" + temperature + ", topK=" + topK
                + ", topP=" + topP + ", seed=" + seed + ")";
    }
}
