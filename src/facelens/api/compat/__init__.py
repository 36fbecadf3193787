"""The foreign APIs facelens speaks, one module per API: DeepStack / CodeProject.AI, CompreFace
and KServe's Open Inference Protocol, with the scores their clients decide on."""
