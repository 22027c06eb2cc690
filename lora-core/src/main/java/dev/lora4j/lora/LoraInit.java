package dev.lora4j.lora;

import java.util.SplittableRandom;

/**
 * How a new adapter's A matrix is drawn; B always starts at zero, so a fresh adapter leaves the
 * model's output unchanged (Hu et al., "LoRA", arXiv:2106.09685, §4.1). The names follow PEFT's
 * {@code init_lora_weights}.
 *
 * <p>Layouts are row-major: A is [rank, inFeatures] ({@code a[i * inFeatures + j]}), B is
 * [outFeatures, rank], the shapes of PEFT's {@code lora_A.weight} and {@code lora_B.weight}.
 * Draws come only from {@link SplittableRandom#nextDouble()}, whose algorithm is fixed by its
 * specification, so a seed gives the same matrices on every JDK.
 */
public enum LoraInit {
    /**
     * PEFT's default ({@code init_lora_weights=true}): {@code kaiming_uniform_(A, a=√5)}, the
     * initialization of {@code torch.nn.Linear}. With fan_in = inFeatures, gain = √(2 / (1 + a²))
     * = √(1/3) and bound = gain · √(3 / fan_in) = 1 / √fan_in, so A ~ U(−1/√in, 1/√in).
     */
    KAIMING_UNIFORM("true"),
    /** PEFT's {@code "gaussian"}: {@code normal_(A, std=1/rank)}, i.e. A ~ N(0, (1/rank)²). */
    GAUSSIAN("gaussian");

    private final String peftName;

    LoraInit(String peftName) {
        this.peftName = peftName;
    }

    /** The value of PEFT's {@code init_lora_weights}: {@code "true"} (the JSON boolean) or {@code "gaussian"}. */
    public String peftName() {
        return peftName;
    }

    /** Bound of U(−b, b) for kaiming_uniform with a = √5: b = 1 / √fanIn. */
    public static double kaimingUniformBound(int fanIn) {
        requirePositive("fanIn", fanIn);
        return 1.0 / Math.sqrt(fanIn);
    }

    /** Standard deviation of the {@link #GAUSSIAN} draw: 1 / rank. */
    public static double gaussianStd(int rank) {
        requirePositive("rank", rank);
        return 1.0 / rank;
    }

    /** Fills A [rank, inFeatures] with this initialization's draws, in row-major order. */
    public void fillA(float[] a, int rank, int inFeatures, SplittableRandom random) {
        requirePositive("rank", rank);
        requirePositive("inFeatures", inFeatures);
        requireLength("A", a, (long) rank * inFeatures, "[" + rank + ", " + inFeatures + "]");
        if (this == KAIMING_UNIFORM) {
            double bound = kaimingUniformBound(inFeatures);
            for (int i = 0; i < a.length; i++) {
                a[i] = (float) (bound * (2.0 * random.nextDouble() - 1.0));
            }
        } else {
            double std = gaussianStd(rank);
            for (int i = 0; i < a.length; i += 2) {
                // Box–Muller gives two independent normals per pair of uniforms; 1 − u keeps log away from 0.
                double radius = Math.sqrt(-2.0 * Math.log(1.0 - random.nextDouble()));
                double angle = 2.0 * Math.PI * random.nextDouble();
                a[i] = (float) (std * radius * Math.cos(angle));
                if (i + 1 < a.length) {
                    a[i + 1] = (float) (std * radius * Math.sin(angle));
                }
            }
        }
    }

    /** Fills B [outFeatures, rank] with zeros, as every LoRA initialization here does. */
    public static void fillB(float[] b, int outFeatures, int rank) {
        requirePositive("outFeatures", outFeatures);
        requirePositive("rank", rank);
        requireLength("B", b, (long) outFeatures * rank, "[" + outFeatures + ", " + rank + "]");
        java.util.Arrays.fill(b, 0f);
    }

    /** A new A [rank, inFeatures] drawn with this initialization. */
    public float[] newA(int rank, int inFeatures, SplittableRandom random) {
        float[] a = new float[Math.multiplyExact(rank, inFeatures)];
        fillA(a, rank, inFeatures, random);
        return a;
    }

    /** A new zero B [outFeatures, rank]. */
    public static float[] newB(int outFeatures, int rank) {
        requirePositive("outFeatures", outFeatures);
        requirePositive("rank", rank);
        return new float[Math.multiplyExact(outFeatures, rank)];
    }

    private static void requirePositive(String name, int value) {
        if (value < 1) {
            throw new IllegalArgumentException(name + " must be >= 1, was " + value);
        }
    }

    private static void requireLength(String matrix, float[] array, long expected, String shape) {
        if (array.length != expected) {
            throw new IllegalArgumentException(matrix + " must have " + expected + " elements for shape " + shape
                    + ", was " + array.length + "; allocate rows × columns floats");
        }
    }
}
