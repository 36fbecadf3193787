"""The foreign APIs facelens speaks, one module per API (its routes and its error body):
DeepStack / CodeProject.AI, CompreFace and KServe's Open Inference Protocol."""
