/**
 * QLoRA for lora4j: bitsandbytes-compatible 4-bit NormalFloat (NF4) and FP4 weights with
 * blockwise absmax and double quantization ({@link dev.lora4j.quant.QuantizedStorage}), 4-bit
 * frozen bases for LoRA training ({@link dev.lora4j.quant.Quantizer}), Hugging Face 4-bit
 * checkpoints in and out ({@link dev.lora4j.quant.QuantizedCheckpoint}), and merging adapters
 * into a 4-bit base ({@link dev.lora4j.quant.QuantizedMerge}).
 */
package dev.lora4j.quant;
