package dev.lora4j.quant;

import java.nio.file.Path;

/**
 * Command-line entry point that quantizes a 16-bit Hugging Face folder into a bitsandbytes 4-bit
 * folder (what {@code lora4j quantize} will do):
 *
 * <pre>
 * java -cp lora-quant.jar:... dev.lora4j.quant.QuantizeFolder SOURCE TARGET [nf4|nf4-dq|fp4|fp4-dq][@BLOCKSIZE]
 * </pre>
 *
 * The default is nf4-dq (QLoRA's setting). Invalid arguments end with an IllegalArgumentException
 * that explains them.
 */
public final class QuantizeFolder {
    private QuantizeFolder() {
    }

    public static void main(String[] args) {
        if (args.length < 2 || args.length > 3) {
            throw new IllegalArgumentException("usage: QuantizeFolder SOURCE TARGET [nf4|nf4-dq|fp4|fp4-dq][@BLOCKSIZE] "
                    + "(got " + args.length + " arguments)");
        }
        QuantConfig config = args.length == 3 ? QuantConfig.parse(args[2]) : QuantConfig.NF4_DQ;
        QuantizedCheckpoint.Loaded result = QuantizedCheckpoint.quantizeFolder(Path.of(args[0]), Path.of(args[1]), config);
        System.out.printf("quantized %s -> %s as %s: %,d parameters, %,d bytes of frozen weights%n", args[0], args[1], config,
                result.model().baseParameterCount(), result.model().baseByteSize());
    }
}
