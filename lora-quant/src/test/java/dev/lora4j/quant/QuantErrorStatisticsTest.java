package dev.lora4j.quant;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * bitsandbytes' test_4bit_quant: quantize then dequantize 1024×1024 N(0, 1) values and compare the
 * mean absolute and mean relative error with the statistics it publishes (mean ± std over 200 GPU
 * runs); like bitsandbytes, the value must stay under mean + 7·std. Double quantization is held to
 * the same bound as plain absmax.
 */
class QuantErrorStatisticsTest {
    private static final int N = 1024 * 1024;
    private static float[] data;

    @BeforeAll
    static void normalData() {
        data = Tensor.normal(new SplittableRandom(20240521L), 0f, 1f, 1024, 1024).data();
    }

    static Stream<Arguments> cases() {
        Stream.Builder<Arguments> b = Stream.builder();
        for (QuantType type : QuantType.values()) {
            for (int blocksize = 32; blocksize <= 4096; blocksize *= 2) {
                b.add(Arguments.of(type, blocksize, false));
                b.add(Arguments.of(type, blocksize, true));
            }
        }
        return b.build();
    }

    @ParameterizedTest(name = "{0} blocksize {1} double-quant {2}")
    @MethodSource("cases")
    void errorWithinBitsandbytesStatistics(QuantType type, int blocksize, boolean doubleQuant) throws Exception {
        JsonNode stats = TestFixtures.nf4Reference().path("error_statistics").path(type.bnbName());
        JsonNode err = stats.path("err").path(String.valueOf(blocksize));
        JsonNode rel = stats.path("rel_err").path(String.valueOf(blocksize));
        QuantizedStorage q = QuantizedStorage.quantize("normal", Tensor.of(data, N).storage(), 0, new int[] {1024, 1024},
                new QuantConfig(type, blocksize, doubleQuant), DType.F32);
        float[] back = new float[N];
        q.decode(0, N, back, 0);
        double absSum = 0;
        double relSum = 0;
        for (int i = 0; i < N; i++) {
            float e = Math.abs(data[i] - back[i]);
            absSum += e;
            relSum += e / (Math.abs(data[i]) + 1e-8f);
        }
        double meanAbs = absSum / N;
        double meanRel = relSum / N;
        double absBound = err.get(0).asDouble() + 7 * err.get(1).asDouble();
        double relBound = rel.get(0).asDouble() + 7 * rel.get(1).asDouble();
        assertTrue(meanAbs < absBound, () -> String.format("mean |error| %.6f >= %.6f (bitsandbytes %s ± %s)", meanAbs, absBound,
                err.get(0), err.get(1)));
        assertTrue(meanRel < relBound, () -> String.format("mean relative error %.6f >= %.6f (bitsandbytes %s ± %s)", meanRel,
                relBound, rel.get(0), rel.get(1)));
        // a sanity floor: the statistic must be near the published mean, not trivially small
        assertTrue(meanAbs > err.get(0).asDouble() - 7 * err.get(1).asDouble(), () -> "mean |error| " + meanAbs
                + " is far below bitsandbytes' " + err.get(0));
    }
}
