/**
 * Training: AdamW and SGD with PyTorch semantics, warmup + cosine schedule, global-norm clipping,
 * the causal-LM loss with prompt masking, and the {@link dev.lora4j.train.Trainer} loop with
 * gradient accumulation, validation, atomic checkpoints (trained tensors, optimizer state,
 * schedule and data position) and exact resume.
 */
package dev.lora4j.train;
