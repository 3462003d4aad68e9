"""The networks, each built from ``conf/model/*.yaml`` with the input shape ``(n_bands, clip_frames)`` and
the number of genres: ``cnn3`` (the seed project's 3-layer CNN) and ``resnet`` (short-chunk ResNet)."""
