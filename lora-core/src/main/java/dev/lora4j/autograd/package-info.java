/**
 * Reverse-mode autograd and the differentiable ops, one class per op family with the forward
 * and its backward rule side by side. Each op states its math and what it saves for backward;
 * the arithmetic itself is a {@link dev.lora4j.backend.Backend} method of the inputs' device, so
 * no op reads a storage's elements.
 */
package dev.lora4j.autograd;
