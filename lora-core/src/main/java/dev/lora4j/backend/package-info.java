/**
 * The compute SPI ({@link dev.lora4j.backend.Backend}) and its CPU implementations.
 * Dimension letters used throughout lora4j: B batch, T time, C channels, V vocabulary,
 * H query heads, G key/value heads, D head size, R LoRA rank, M/N/K matrix-product sizes.
 */
package dev.lora4j.backend;
