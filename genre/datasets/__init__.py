"""Where data comes from: one module per dataset, each with a ``build(...)`` that ``conf/dataset/*.yaml``
names as ``_target_`` and that returns a :class:`genre.data.index.DatasetIndex`.

A builder reads metadata and lists files; it opens no audio (the audio cache does, and reports the
damaged files). Every builder fails with a :class:`genre.errors.DatasetError` that says what was
expected where, and where the dataset can be obtained, before any work starts. The on-disk formats
and their traps are in docs/datasets.md.
"""
