package dev.lora4j.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.backend.Backends;
import dev.lora4j.data.Example;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.tensor.Device;
import dev.lora4j.train.Trainer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * {@code -Dlora4j.backend=NAME} with unchanged training code: a fresh JVM (the process backend is
 * chosen once per JVM) runs {@link #main} — plain {@code LlamaModel.load}, {@code LoraModel.wrap},
 * {@code Trainer.fit} — with the emulated CUDA backend selected by that property, and reports where
 * the weights, the adapter and the loss were. Here the property names the test provider
 * ({@code cuda-emulated}); on a GPU machine {@code cuda} takes the same path.
 */
class BackendPropertyPlacementTest {

    /** The user's program: no device code at all. Prints "embed=DEVICE adapter=DEVICE loss=VALUE". */
    public static void main(String[] args) {
        LlamaModel base = LlamaModel.load(Path.of(args[0]));
        LoraModel lora = LoraModel.wrap(base, LoraConfig.rank(4).alpha(8).targetModules("q_proj", "v_proj"));
        int[] ids = {1, 5, 9, 13, 17, 21};
        var result = Trainer.builder(lora.model()).learningRate(1e-2).maxSteps(1).globalBatchSize(1).microBatchSize(1)
                .progressLogging(false).build().fit(List.of(Example.unmasked(ids)));
        System.out.println("backend=" + Backends.get().name() + " embed=" + base.embedTokens().device() + " adapter="
                + lora.peftTensors("default", t -> t).values().iterator().next().device() + " loss=" + result.finalLoss());
    }

    @Test
    void unchangedTrainingCodeRunsOnTheSelectedDevice() throws Exception {
        Path root = Path.of(System.getProperty("lora4j.fixtures", "../../shared/fixtures")).resolve("golden-tiny-llama/model")
                .normalize();
        Assumptions.assumeTrue(Files.exists(root), "shared fixture " + root + " is absent; skipping");
        HostEmulation.driver();
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process p = new ProcessBuilder(java, "-cp", System.getProperty("java.class.path"), "-D" + Backends.PROPERTY
                + "=cuda-emulated", BackendPropertyPlacementTest.class.getName(), root.toAbsolutePath().toString())
                .redirectErrorStream(true).start();
        String out;
        try (var in = p.getInputStream()) {
            out = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        assertTrue(p.waitFor(5, TimeUnit.MINUTES), "the child JVM did not finish: " + out);
        assertEquals(0, p.exitValue(), out);
        assertTrue(out.contains("backend=cuda embed=" + Device.CUDA + " adapter=" + Device.CUDA + " loss="), out);
        String loss = out.substring(out.indexOf("loss=") + 5).trim().split("\\s")[0];
        assertTrue(Double.isFinite(Double.parseDouble(loss)), out);
    }
}
