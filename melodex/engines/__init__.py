"""Engines that run the decode -> MFCC -> CNN pipeline somewhere other than this process.

The local engine is :class:`melodex.inference.predictor.Predictor` itself (worker processes on
this machine). :mod:`melodex.engines.ray_engine` runs the same pipeline as a Ray Data dataset,
on a Ray cluster or a local Ray instance; it needs the optional ``ray`` extra
(``pip install 'melodex[ray]'``), so this package imports nothing from it by itself.
"""

RAY_INSTALL_HINT = "--engine ray needs Ray, which is not installed; install it with: pip install 'melodex[ray]'"
