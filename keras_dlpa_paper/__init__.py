"""Reproducing the DL2PA paper (CVPR 2024) with keras-dlpa.

The paper's experiment grids and numbers (`grids`), the harness that runs
them as resumable sweeps of recipe processes and writes the report
(`reproduce`, `sweep`), the tuned budget studies (`study`) and the
`keras-dlpa reproduce` subcommand (`cli`). It builds on `keras_dlpa`;
`keras_dlpa` imports nothing from here except `cli.register`, which adds
the subcommand. Importing this package imports nothing heavy.
"""
