/**
 * Data-parallel LoRA and QLoRA training on Apache Spark: {@link dev.lora4j.spark.SparkLoraTrainer}
 * runs one barrier stage whose N tasks join a {@link dev.lora4j.train.distributed.TcpRingReducer}
 * ring (addresses exchanged with {@code BarrierTaskContext.allGather}) and train one adapter with
 * the same {@link dev.lora4j.train.Trainer} settings, data order and result as one process.
 */
package dev.lora4j.spark;
