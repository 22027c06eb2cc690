/**
 * GGUF, the file format of llama.cpp, Ollama and LM Studio, both ways: {@link dev.lora4j.gguf.GgufFile}
 * and {@link dev.lora4j.gguf.GgufWriter} read and write the container; {@link dev.lora4j.gguf.GgufExport}
 * writes LoRA adapters and (merged) models with their tokenizer; {@link dev.lora4j.gguf.GgufModel}
 * loads a GGUF model, quantized blocks included, as a frozen base to train LoRA on. Names and layouts
 * per architecture live in one table, {@link dev.lora4j.gguf.GgufArchitecture}.
 */
package dev.lora4j.gguf;
