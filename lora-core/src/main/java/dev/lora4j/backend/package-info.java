/**
 * The compute SPI ({@link dev.lora4j.backend.Backend}: storage, arenas and every forward and
 * backward operation) and its CPU implementations ({@link dev.lora4j.backend.CpuBackend}, the
 * reference loops; {@link dev.lora4j.backend.ScalarBackend}; the Vector API backend).
 * Dimension letters used throughout lora4j: B batch, T time, S key positions, C channels,
 * V vocabulary, H query heads, G key/value heads, D head size, R LoRA rank, N rows,
 * M/N/K matrix-product sizes.
 */
package dev.lora4j.backend;
