/**
 * Decoder-only causal language models read from Hugging Face model folders — the Llama family
 * (Llama, Mistral, TinyLlama, SmolLM, Qwen2) and phi-1.5, Falcon, Phi-3, Gemma 2/3 and Qwen3,
 * each one block assembled from the parts its {@link dev.lora4j.model.Architecture} names — and
 * autoregressive generation.
 */
package dev.lora4j.model;
