package dev.lora4j.cli;

import dev.lora4j.tensor.DType;
import java.util.Locale;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.TypeConversionException;

/** bf16 / f16 / f32 (also torch's bfloat16, float16, float32 and fp16, fp32) → {@link DType}. */
final class DTypeConverter implements ITypeConverter<DType> {
    @Override
    public DType convert(String value) {
        return switch (value.trim().toLowerCase(Locale.ROOT)) {
            case "bf16", "bfloat16" -> DType.BF16;
            case "f16", "fp16", "float16", "half" -> DType.F16;
            case "f32", "fp32", "float32", "float" -> DType.F32;
            default -> throw new TypeConversionException("'" + value + "' is not a weight dtype; use bf16, f16 or f32");
        };
    }

    /** The config.json torch_dtype name of a dtype. */
    static String torchName(DType dtype) {
        return switch (dtype) {
            case BF16 -> "bfloat16";
            case F16 -> "float16";
            case F32 -> "float32";
            default -> throw new IllegalArgumentException("no torch_dtype for " + dtype);
        };
    }
}
