/**
 * LoRA settings that need no model compute: {@link dev.lora4j.lora.LoraConfig} (which modules get
 * an adapter, with which rank, alpha, scaling and dropout), {@link dev.lora4j.lora.Target} groups
 * of Llama module names, {@link dev.lora4j.lora.LoraInit} for new adapters' A and B matrices, and
 * {@link dev.lora4j.lora.AdapterConfigJson}, PEFT's adapter_config.json.
 */
package dev.lora4j.lora;
