/**
 * Reverse-mode autograd and the differentiable ops, one class per op family with the forward
 * and its backward rule side by side. Each op states its math and what it saves for backward.
 */
package dev.lora4j.autograd;
