package dev.lora4j.lora;

/**
 * The LoRA settings that apply to one module after {@code rankPattern} and {@code alphaPattern}
 * are resolved: the module computes {@code y = W x + scaling · B (A dropout(x))} with A of shape
 * [rank, in] and B of shape [out, rank].
 *
 * @param rank    inner dimension of B·A
 * @param alpha   the LoRA alpha this module uses
 * @param scaling alpha / rank, or alpha / √rank with rank-stabilized LoRA
 * @param dropout probability of zeroing an input element of the LoRA branch while training
 */
public record ModuleLora(int rank, double alpha, double scaling, double dropout) {
}
