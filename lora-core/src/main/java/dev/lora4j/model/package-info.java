/**
 * Llama-family causal language models (Llama, Mistral, TinyLlama, SmolLM, Qwen2) read from
 * Hugging Face model folders, and autoregressive generation.
 */
package dev.lora4j.model;
