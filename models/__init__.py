"""PyTorch architectures of the batch-normalization, ResNet and DenseNet chapters. Imports nothing from service.

Import from the modules: `models.catalog` (the architectures' facts, no torch), `models.registry` (build_model),
`models.batchnorm`, `models.summary`. This file imports nothing, so reading the catalogue never loads torch.
"""
